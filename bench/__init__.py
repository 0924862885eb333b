"""fedchain benchmarks: each module's ``run(out_dir)`` measures one target against a baseline in the same run."""
