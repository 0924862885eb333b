"""``make bench``: run every benchmark, each measuring its baseline in the same run; write bench/results/*.json.

python -m bench            # all
python -m bench overhead   # some, by name
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback
from pathlib import Path

BENCHMARKS = {
    "strategies": "bench.bench_strategies",
    "tasks": "bench.bench_tasks",
    "overhead": "bench.bench_overhead",
    "privacy": "bench.bench_privacy",
    "dp_models": "bench.bench_dp_models",
    "he": "bench.bench_he",
    "he_scale": "bench.bench_he_scale",
    "gas": "bench.bench_gas",
    "load": "bench.bench_load",
    "scoring": "bench.bench_scoring",
    "he_round": "bench.bench_he_round",
    "he_round_scale": "bench.bench_he_round_scale",
    "committee": "bench.bench_committee",
    "noise": "bench.bench_noise",
    "http_layers": "bench.bench_http_layers",
    "deploy": "bench.bench_deploy",
    "netns": "bench.bench_netns",
    "memory": "bench.bench_memory",
}


def main(argv: list[str]) -> int:
    from fedchain.runner import flower_environment

    for name, value in flower_environment(Path.cwd() / ".flwr").items():
        os.environ.setdefault(name, value)
    out_dir = Path(__file__).parent / "results"
    names = argv or list(BENCHMARKS)
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s) {unknown}; known: {sorted(BENCHMARKS)}", file=sys.stderr)
        return 2
    summary_path = out_dir / "summary.json"
    summary: dict[str, object] = {}
    if summary_path.is_file():  # keep the other benchmarks' last outcome when running a few
        try:
            summary = dict(json.loads(summary_path.read_text()))
        except (OSError, ValueError):
            summary = {}
    failed = []
    for name in names:
        started = time.perf_counter()
        print(f"== {name}", flush=True)
        try:
            module = importlib.import_module(BENCHMARKS[name])
            module.run(out_dir)
            summary[name] = {"ok": True, "seconds": round(time.perf_counter() - started, 1)}
        except Exception as exc:
            traceback.print_exc()
            failed.append(name)
            summary[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    out_dir.mkdir(parents=True, exist_ok=True)
    summary_path.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
