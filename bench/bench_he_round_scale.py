"""HE round time over plaintext round time at model scale (issue 15): ``mnist-wide`` at about 1M (and 10M) parameters.

Each comparison runs :func:`fedchain.runner.run_simulation` twice with the same options, once with
``he`` on and once off: the ``mnist-wide`` task (784-w-w-10 MLP on the bundled MNIST 5k) at the
width :func:`fedchain.tasks.width_for_params` gives for the size, DP off, no chain (so the ratio
isolates HE), 1 local epoch, ``ROUNDS`` rounds, every other option at its default: the norm bound
(20) is on, so under HE ``he-scoring`` is on (CKKS ``SCORING`` keys, bigger ciphertexts) and a
decrypt committee of 2 members decrypts each update's encrypted squared norm in the
``aggregate`` stage, as in a default fedchain run. The figure is the mean of ``rounds[].seconds``
(coordinator wall time from sending the train instructions to the end of evaluation) over every
round but the first (Ray actors' start-up, first imports); medians and the per-stage medians of
``stage_seconds`` come with it: ``train`` (until the last reply is in, validated and, under HE,
added to the running encrypted sum), ``aggregate`` (under HE: the committee's norm check and the
sealed sum), ``score``, ``evaluate`` (under HE: members decrypt the aggregate).

Member counts: as many members as cores (``os.cpu_count()``: each member's encrypt and decrypt
has a core, as when members have their own machines) and 10 members (their HE work queues for
this machine's cores, so it adds up).

Upload bytes per member: the bytes of :func:`fedchain.crypto.encrypt_update` (what a member's
train reply carries under HE) for a vector of the model's size under the run's CKKS parameters,
and under the addition-only ``AGGREGATION`` ones (a run with ``norm-bound 0``), against float32.

About 10M parameters only with ``FEDCHAIN_BENCH_10M=1`` (many minutes on 2 cores); the JSON says
whether it ran. ``FEDCHAIN_BENCH_HE_ROUND_SCALE_REPEATS`` (default 1) alternates more run pairs.

Writes ``out_dir/he_round_scale.json``. Run: ``.venv/bin/python -m bench he_round_scale``.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROUNDS = 3
MEMBERS = 10
SIZES = (1_000_000,)
BIG = 10_000_000
BIG_ENV = "FEDCHAIN_BENCH_10M"
REPEATS_ENV = "FEDCHAIN_BENCH_HE_ROUND_SCALE_REPEATS"


def _config(*, he: bool, width: int, members: int, out_dir: str) -> Any:
    from fedchain.config import FedChainConfig

    return FedChainConfig(
        task="mnist-wide",
        model_width=width,
        members=members,
        rounds=ROUNDS,
        local_epochs=1,
        dp=False,
        he=he,
        chain="none",
        out_dir=out_dir,
    )


def _run(*, he: bool, width: int, members: int) -> dict[str, Any]:
    from fedchain.runner import run_simulation

    with tempfile.TemporaryDirectory(prefix="fedchain-he-round-scale-") as tmp:
        started = time.perf_counter()
        result = run_simulation(_config(he=he, width=width, members=members, out_dir=tmp))
        wall = time.perf_counter() - started
    rows = result["rounds"]
    return {
        "round_s": [round(float(row["seconds"]), 3) for row in rows],
        "stage_s": [row.get("stage_seconds", {}) for row in rows],
        "statuses": [row["status"] for row in rows],
        "accepted": [sum(member["status"] == "accepted" for member in row["members"]) for row in rows],
        "final_accuracy": result.get("final_accuracy"),
        "run_wall_s": round(wall, 1),
    }


def _stage_medians(runs: list[dict[str, Any]], good: Any) -> dict[str, float]:
    stages: dict[str, list[float]] = {}
    for run_ in runs:
        for i, seconds in enumerate(run_["stage_s"]):
            if i > 0 and good(run_, i):
                for stage, value in seconds.items():
                    stages.setdefault(stage, []).append(float(value))
    return {stage: round(statistics.median(values), 4) for stage, values in stages.items()}


def _compare(width: int, members: int, repeats: int) -> dict[str, Any]:
    """Plain and HE runs, alternating ``repeats`` times; see :func:`summary`."""
    runs: dict[str, list[dict[str, Any]]] = {"plain": [], "he": []}
    for _ in range(repeats):
        for he in (False, True):
            runs["he" if he else "plain"].append(_run(he=he, width=width, members=members))
    return summary(runs, members)


def summary(runs: dict[str, list[dict[str, Any]]], members: int) -> dict[str, Any]:
    """Means and medians of each side's rounds 2.., counting only rounds completed with every member.

    A round that was skipped or lost a member (e.g. a Ray actor killed for memory) is left out of
    the figures and counted in ``rounds_left_out``; a side with no round left has no ratio (None).
    """

    def good(r: dict[str, Any], i: int) -> bool:
        return bool(r["statuses"][i] == "completed" and r["accepted"][i] == members)

    measured = {
        side: [s for r in entries for i, s in enumerate(r["round_s"]) if i > 0 and good(r, i)]
        for side, entries in runs.items()
    }
    left_out = {
        side: sum(1 for r in entries for i in range(1, len(r["round_s"])) if not good(r, i))
        for side, entries in runs.items()
    }
    means = {side: statistics.mean(v) if v else None for side, v in measured.items()}
    medians = {side: statistics.median(v) if v else None for side, v in measured.items()}

    def ratio(of: dict[str, float | None]) -> float | None:
        he, plain = of["he"], of["plain"]
        return round(he / plain, 3) if he is not None and plain else None

    def rounded(x: float | None) -> float | None:
        return None if x is None else round(x, 3)

    return {
        "members": members,
        "plain_mean_round_s": rounded(means["plain"]),
        "he_mean_round_s": rounded(means["he"]),
        "plain_median_round_s": rounded(medians["plain"]),
        "he_median_round_s": rounded(medians["he"]),
        "ratio": ratio(means),
        "ratio_of_medians": ratio(medians),
        "rounds_measured": {side: len(v) for side, v in measured.items()},
        "rounds_left_out": left_out,
        "stage_median_s": {side: _stage_medians(entries, good) for side, entries in runs.items()},
        "every_round_completed_with_every_member_accepted": not any(left_out.values())
        and all(good(r, 0) for entries in runs.values() for r in entries),
        "runs": runs,
    }


def _upload_bytes(params: int, *, width: int) -> dict[str, Any]:
    """Bytes of one member's upload under the run's CKKS parameters (and under the addition-only ones)."""
    from fedchain import crypto

    scoring = bool(_config(he=True, width=width, members=MEMBERS, out_dir="").he_scoring)
    delta = np.random.default_rng(0).normal(scale=1e-3, size=params) * 400.0
    figures: dict[str, Any] = {"he_scoring": scoring, "float32_bytes": params * 4}
    keys = {"run": crypto.SCORING if scoring else crypto.AGGREGATION, "aggregation_only": crypto.AGGREGATION}
    for name, ckks in keys.items():
        context = crypto.create_secret_context(ckks)
        started = time.perf_counter()
        chunks = crypto.encrypt_update(context, delta)
        encrypt_s = time.perf_counter() - started
        upload = sum(len(chunk) for chunk in chunks)
        figures[name] = {
            "ckks": "SCORING" if ckks is crypto.SCORING else "AGGREGATION",
            "chunks": len(chunks),
            "upload_bytes_per_member": upload,
            "upload_over_float32": round(upload / (params * 4), 3),
            "encrypt_s_one_member": round(encrypt_s, 3),
        }
    return figures


def _size(target: int, cpus: int, repeats: int) -> dict[str, Any]:
    from fedchain.tasks.builtin import width_for_params

    width = width_for_params(target)
    params = width * width + 796 * width + 10  # mnist-wide: 784*w + w + w*w + w + 10*w + 10
    counts = sorted({cpus, MEMBERS})
    figures: dict[str, Any] = {"target_params": target, "model_width": width, "params": params}
    figures["upload"] = _upload_bytes(params, width=width)
    figures["by_members"] = {str(members): _compare(width, members, repeats) for members in counts}
    run = figures["upload"]["run"]
    for members, row in figures["by_members"].items():
        print(
            f"he_round_scale: {params:,} params, {members} members: plain {row['plain_mean_round_s']} s/round, "
            f"HE {row['he_mean_round_s']} s/round -> ratio {row['ratio']} "
            f"(rounds measured {row['rounds_measured']}, left out {row['rounds_left_out']}); "
            f"upload {run['upload_bytes_per_member'] / 1e6:.1f} MB/member "
            f"({run['upload_over_float32']:.2f}x float32, {run['ckks']} keys)",
            flush=True,
        )
    return figures


def run(out_dir: Path) -> dict[str, Any]:
    """Measure each size (10M only with ``FEDCHAIN_BENCH_10M=1``); write ``out_dir/he_round_scale.json``."""
    started = time.perf_counter()
    load_before = os.getloadavg()
    logging.getLogger("fedchain").setLevel(logging.WARNING)
    cpus = os.cpu_count() or 1
    repeats = int(os.environ.get(REPEATS_ENV, "1"))
    big = os.environ.get(BIG_ENV) == "1"
    sizes = [*SIZES, BIG] if big else list(SIZES)
    defaults = _config(he=True, width=64, members=MEMBERS, out_dir="")
    figures: dict[str, Any] = {
        "benchmark": "he_round_scale",
        "task": "mnist-wide",
        "rounds": ROUNDS,
        "local_epochs": 1,
        "dp": False,
        "chain": "none",
        "norm_bound": defaults.norm_bound,
        "he_scoring": defaults.he_scoring,
        "committee_size": defaults.committee_size,
        "repeats": repeats,
        "method": (
            "fedchain.runner.run_simulation, he=True vs he=False, same options; mean of rounds[].seconds "
            "excluding round 1; members = os.cpu_count() and 10"
        ),
        "ten_million_ran": big,
        "ten_million_how": f"{BIG_ENV}=1",
        "sizes": [_size(size, cpus, repeats) for size in sizes],
        "python": platform.python_version(),
        "cpus": cpus,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "bench_seconds": round(time.perf_counter() - started, 1),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "he_round_scale.json"
    path.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"he_round_scale: wrote {path} in {figures['bench_seconds']:.0f} s (10M ran: {big})")
    return figures


if __name__ == "__main__":
    from fedchain.runner import flower_environment

    for key, value in flower_environment().items():
        os.environ.setdefault(key, value)
    run(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent / "results")
