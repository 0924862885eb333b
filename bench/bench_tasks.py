"""The mnist-cnn task in a real federation: plaintext vs HE, and DP at epsilon 8 vs non-private.

Three runs of Flower's simulation runtime (``fedchain.runner.run_simulation``), same seed and data
split: 10 members, Dirichlet alpha 0.5 over the 4,000 MNIST training examples, a fixed number of
rounds, no chain, norm bound off (the bound of 20 was chosen for the digits MLP; a CNN's first
update can exceed it):

* ``plain``: no HE, no DP (the baseline);
* ``he``: CKKS aggregation, no DP. Target: final accuracy within 0.5 points of ``plain``;
* ``dp``: DP-SGD at epsilon 8 (delta 1e-5) over the run, no HE. Target: within 3 points of ``plain``.

Environment: ``FEDCHAIN_BENCH_TASKS_ROUNDS`` (default 10), ``FEDCHAIN_BENCH_TASKS_EPOCHS`` (local
epochs without DP; default: the task's), ``FEDCHAIN_BENCH_TASKS_DP_EPOCHS`` (with DP; default: the
task's), ``FEDCHAIN_BENCH_TASKS_MEMBERS`` (10), ``FEDCHAIN_BENCH_TASKS_RUNS`` (which of
``plain,he,dp``). Writes ``bench/results/tasks.json``.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from fedchain.config import FedChainConfig

TASK = "mnist-cnn"
HE_TARGET_POINTS = 0.5
DP_TARGET_POINTS = 3.0
RUNS = ("plain", "he", "dp")


def _env_int(name: str, default: int | None) -> int | None:
    value = os.environ.get(name, "")
    return int(value) if value else default


def configs(*, members: int, rounds: int, epochs: int | None, dp_epochs: int | None, seed: int = 0) -> dict[str, Any]:
    """The three runs' configurations (same seed, data split and model)."""
    local: dict[str, Any] = {}
    if epochs is not None:
        local["local_epochs"] = epochs
    if dp_epochs is not None:
        local["dp_local_epochs"] = dp_epochs
    base = FedChainConfig(
        task=TASK,
        members=members,
        rounds=rounds,
        partitioner="dirichlet",
        dirichlet_alpha=0.5,
        chain="none",
        norm_bound=0.0,
        seed=seed,
        dp=False,
        he=False,
        **local,
    )
    return {
        "plain": base,
        "he": base.replace(he=True),
        "dp": base.replace(dp=True, epsilon=8.0, delta=1e-5),
    }


def _run(config: FedChainConfig) -> tuple[dict[str, Any], float]:
    from fedchain.runner import run_simulation

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fedchain-bench-tasks-") as tmp:
        result = run_simulation(config.replace(out_dir=tmp))
    return result, time.perf_counter() - started


def run(out_dir: Path) -> dict[str, Any]:
    """Run the three federations; print the differences; write ``out_dir/tasks.json``."""
    started = time.perf_counter()
    rounds = _env_int("FEDCHAIN_BENCH_TASKS_ROUNDS", 10) or 10
    members = _env_int("FEDCHAIN_BENCH_TASKS_MEMBERS", 10) or 10
    epochs = _env_int("FEDCHAIN_BENCH_TASKS_EPOCHS", None)
    dp_epochs = _env_int("FEDCHAIN_BENCH_TASKS_DP_EPOCHS", None)
    selected = [r for r in os.environ.get("FEDCHAIN_BENCH_TASKS_RUNS", ",".join(RUNS)).split(",") if r]
    runs = configs(members=members, rounds=rounds, epochs=epochs, dp_epochs=dp_epochs)
    rows: dict[str, dict[str, Any]] = {}
    for name in selected:
        config = runs[name]
        result, wall_s = _run(config)
        members_last = result["rounds"][-1]["members"]
        rows[name] = {
            "final_accuracy": result["final_accuracy"],
            "accuracy_by_round": [row["accuracy"] for row in result["rounds"]],
            "epsilon_max": max((m["epsilon"] or 0.0 for m in members_last), default=None) if config.dp else None,
            "local_epochs": config.dp_local_epochs if config.dp else config.local_epochs,
            "wall_s": round(wall_s, 1),
        }
        print(f"tasks: {name}: final accuracy {result['final_accuracy']} ({wall_s:.0f} s)", flush=True)
    plain = rows.get("plain", {}).get("final_accuracy")

    def points(name: str) -> float | None:
        other = rows.get(name, {}).get("final_accuracy")
        return None if plain is None or other is None else round((plain - other) * 100, 2)

    he_points, dp_points = points("he"), points("dp")
    figures = {
        "benchmark": "tasks",
        "task": TASK,
        "parameters": 20586,
        "members": members,
        "rounds": rounds,
        "dirichlet_alpha": 0.5,
        "norm_bound": 0.0,
        "runs": rows,
        "he_minus_plain_points": None if he_points is None else -he_points,
        "plain_minus_dp_points": dp_points,
        "he_target_points": HE_TARGET_POINTS,
        "dp_target_points": DP_TARGET_POINTS,
        "he_meets_target": None if he_points is None else abs(he_points) <= HE_TARGET_POINTS,
        "dp_meets_target": None if dp_points is None else dp_points <= DP_TARGET_POINTS,
        "wall_s": round(time.perf_counter() - started, 1),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "tasks.json").write_text(json.dumps(figures, indent=2) + "\n")
    if he_points is not None:
        print(f"tasks: HE {rows['he']['final_accuracy']:.4f} vs plaintext {plain:.4f}: {abs(he_points):.2f} points "
              f"(target <= {HE_TARGET_POINTS})")  # fmt: skip
    if dp_points is not None:
        print(f"tasks: DP eps 8 {rows['dp']['final_accuracy']:.4f} vs non-private {plain:.4f}: {dp_points:.2f} "
              f"points lower (target <= {DP_TARGET_POINTS})")  # fmt: skip
    return figures


if __name__ == "__main__":
    run(Path(__file__).parent / "results")
