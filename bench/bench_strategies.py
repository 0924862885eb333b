"""Strategies with HE on vs off: final accuracy of FedAvg, FedProx and FedAdam on digits.

Each strategy runs twice in Flower's simulation runtime, same seed and data split: with HE (members
apply the decrypted aggregate, FedAdam's server step included) and in plaintext (Flower's server-side
strategy). 10 members, Dirichlet alpha 0.5, 20 rounds, DP off, no chain. Target: the two final
accuracies differ by at most 0.5 points for each strategy.

A mode whose member-side parts (FedProx's proximal term, the members' server optimizer) are not
wired into the member node is skipped with the reason: the node declares what it implements in
``clients.node.MEMBER_FEATURES``, each strategy what it needs in ``member_requirements``.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from fedchain.config import FedChainConfig

TARGET_POINTS = 0.5
STRATEGIES = ("fedavg", "fedprox", "fedadam")


def node_features() -> frozenset[str]:
    """What the member node implements (``clients.node.MEMBER_FEATURES``; none declared: plain averaging only)."""
    from clients import node

    return frozenset(getattr(node, "MEMBER_FEATURES", ()))


def missing_features(name: str, *, he: bool, available: Iterable[str]) -> list[str]:
    """Member-node features strategy ``name`` needs in this mode that the node lacks."""
    from strategies.registry import resolve_strategy

    return sorted(resolve_strategy(name).member_requirements(he=he) - set(available))


def _run(config: FedChainConfig) -> tuple[dict[str, Any], float]:
    from fedchain.runner import run_simulation

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fedchain-bench-strategies-") as tmp:
        result = run_simulation(config.replace(out_dir=tmp))
    return result, time.perf_counter() - started


def run(
    out_dir: Path,
    *,
    strategies: Sequence[str] = STRATEGIES,
    members: int = 10,
    rounds: int = 20,
    alpha: float = 0.5,
    seed: int = 0,
) -> dict[str, Any]:
    """Measure every strategy with HE on and off; write ``out_dir/strategies.json``; return the figures."""
    started = time.perf_counter()
    available = node_features()
    base = FedChainConfig(
        members=members,
        rounds=rounds,
        dp=False,
        chain="none",
        partitioner="dirichlet",
        dirichlet_alpha=alpha,
        seed=seed,
    )
    rows: dict[str, dict[str, Any]] = {}
    for name in strategies:
        row: dict[str, Any] = {}
        for he in (False, True):
            mode = "he" if he else "plain"
            missing = missing_features(name, he=he, available=available)
            if missing:
                row[f"accuracy_{mode}"] = None
                row[f"skipped_{mode}"] = (
                    f"the member node does not implement {', '.join(missing)} yet "
                    f"(clients/node.py MEMBER_FEATURES = {sorted(available)})"
                )
                print(f"strategies: {name} {mode}: skipped: {row[f'skipped_{mode}']}", flush=True)
                continue
            result, wall_s = _run(base.replace(strategy=name, he=he))
            accuracy = result["final_accuracy"]
            row[f"accuracy_{mode}"] = accuracy
            row[f"model_hash_{mode}"] = result["model_hash"]
            row[f"wall_s_{mode}"] = round(wall_s, 1)
            print(f"strategies: {name} {mode}: final accuracy {accuracy} ({wall_s:.0f} s)", flush=True)
        if row["accuracy_plain"] is not None and row["accuracy_he"] is not None:
            row["difference_points"] = abs(row["accuracy_he"] - row["accuracy_plain"]) * 100
            row["meets_target"] = row["difference_points"] <= TARGET_POINTS
        else:
            row["difference_points"] = None
            row["meets_target"] = None
        rows[name] = row
    measured = [row["meets_target"] for row in rows.values() if row["meets_target"] is not None]
    figures = {
        "benchmark": "strategies_he_vs_plaintext",
        "task": "digits",
        "members": members,
        "rounds": rounds,
        "dirichlet_alpha": alpha,
        "dp": False,
        "seed": seed,
        "target_points": TARGET_POINTS,
        "node_features": sorted(available),
        "strategies": rows,
        "skipped": sorted(name for name, row in rows.items() if row["meets_target"] is None),
        "meets_target": bool(measured) and all(measured) and len(measured) == len(rows),
        "wall_s": round(time.perf_counter() - started, 1),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "strategies.json").write_text(json.dumps(figures, indent=2) + "\n")
    for name, row in rows.items():
        if row["difference_points"] is not None:
            print(
                f"strategies: {name}: HE {row['accuracy_he']:.4f} vs plaintext {row['accuracy_plain']:.4f} -> "
                f"{row['difference_points']:.2f} points (target <= {TARGET_POINTS})"
            )
    return figures
