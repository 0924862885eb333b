"""Load: 100 simulated members with HE and the embedded chain on, 3 rounds, on this machine.

Reports wall time, peak memory (resident set of this process and every child: Ray's workers),
and the per-member-round cost at 10 vs 100 members (median round seconds / members; target ratio
<= 1.2), measured in the same run.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from fedchain.config import FedChainConfig

TARGET_RATIO = 1.2


class PeakMemory:
    """Samples the resident memory of this process tree every 0.2 s."""

    def __init__(self) -> None:
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        root = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for process in [root, *root.children(recursive=True)]:
                try:
                    total += process.memory_info().rss
                except psutil.Error:
                    continue
            self.peak_bytes = max(self.peak_bytes, total)
            self._stop.wait(0.2)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def _run(members: int, rounds: int) -> dict[str, Any]:
    from fedchain.runner import run_simulation

    config = FedChainConfig(members=members, rounds=rounds, he=True, chain="embedded", min_members=2)
    with tempfile.TemporaryDirectory() as tmp, PeakMemory() as memory:
        started = time.perf_counter()
        result = run_simulation(config.replace(out_dir=tmp), cpus_per_member=1.0)
        wall_s = time.perf_counter() - started
    round_s = [row["seconds"] for row in result["rounds"]]
    steady = statistics.median(round_s[1:]) if len(round_s) > 1 else round_s[0]
    return {
        "members": members,
        "rounds": rounds,
        "wall_s": wall_s,
        "round_s": round_s,
        "median_round_s": steady,
        "per_member_round_s": steady / members,
        "peak_memory_mb": memory.peak_bytes / 2**20,
        "final_accuracy": result["final_accuracy"],
        "gas_used": [row["gas_used"] for row in result["rounds"]],
        "accepted": [sum(m["status"] == "accepted" for m in row["members"]) for row in result["rounds"]],
    }


def run(out_dir: Path, *, rounds: int = 3) -> dict[str, Any]:
    small = _run(10, rounds)
    large = _run(100, rounds)
    ratio = large["per_member_round_s"] / small["per_member_round_s"]
    figures = {
        "benchmark": "load",
        "runs": [small, large],
        "per_member_round_ratio_100_vs_10": ratio,
        "target_ratio": TARGET_RATIO,
        "meets_target": ratio <= TARGET_RATIO,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "load.json").write_text(json.dumps(figures, indent=2) + "\n")
    for entry in (small, large):
        print(
            f"load: {entry['members']:>3} members x {rounds} rounds: wall {entry['wall_s']:.1f} s, median round "
            f"{entry['median_round_s']:.2f} s, {entry['per_member_round_s'] * 1000:.1f} ms per member-round, "
            f"peak memory {entry['peak_memory_mb']:.0f} MiB"
        )
    print(f"load: per-member-round cost 100 vs 10 members: {ratio:.2f}x (target <= {TARGET_RATIO})")
    return figures


if __name__ == "__main__":
    run(Path(__file__).parent / "results")
