"""`fedchain run` keeps dependencies' warnings off the console: they go to DIR/warnings.log (-v shows them).

Ray leaves files open when it starts its services (ResourceWarning) and eth-tester turns every
warning back on when it creates the embedded chain: without routing, a newcomer's first run prints
a dozen warning lines before the first round.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def test_a_run_prints_no_dependency_warnings_and_logs_them(tmp_path):
    out = tmp_path / "run"
    args = ["run", "--out", str(out), "--members", "2", "--rounds", "1", "--no-dp", "--no-he", "--chain", "embedded"]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    done = subprocess.run(
        [sys.executable, "-m", "fedchain.cli", *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env={**env, "PYTHONUNBUFFERED": "1"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    console = done.stdout + done.stderr
    assert "Warning" not in console and "tracemalloc" not in console, console[-3000:]
    assert "round   1  completed" in done.stderr
    # The run header says what was chosen (HE off here; fedchain/run_header.py's doctest covers the CKKS choice).
    assert "fedchain run: 2 members x 1 rounds" in done.stderr and "HE off" in done.stderr
    log = (out / "warnings.log").read_text()
    assert "ResourceWarning" in log  # nothing is lost: Ray's warnings are in the run's log file
