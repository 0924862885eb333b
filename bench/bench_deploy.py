"""Deployment vs simulation: round time of a real federation against Flower's simulation, and per-message overhead.

Two figures, each against a baseline measured in the same run:

1. **Round time ratio** (3 and 10 members, DP + HE + chain on): a real deployment on this machine
   (anvil, a SuperLink with TLS and SuperNode authentication, one SuperNode and member worker per
   member: :mod:`fedchain.deployment`) runs ``rounds`` rounds; the same federation (members,
   model, DP, HE with the scoring preset, a ledger on the same anvil) runs in Flower's simulation
   runtime in this process. Ratio = mean deployed round / mean simulated round over rounds
   2..N (round 1 holds both runtimes' start-up: Ray actors, the workers' first message). Goal <= 2.
   The ratio of the medians comes with it (one slow round moves a mean of five).
2. **Per-message overhead** (process start to first line of work): the probe app
   (``tests/deployment/worker_probe``; its ClientApp imports fedchain's ClientApp module, as a
   member does) on 2 members, once with Flower's ``flwr-clientapp`` process per message
   (``member_runtime="flower"``, before) and once with the member worker (after). Overhead =
   the ClientApp's first line of work minus the time the ServerApp pushed the message
   (delivery, polling, process start, imports, app loading). The median over messages 2..N.

Environment: ``FEDCHAIN_BENCH_DEPLOY_MEMBERS`` (default ``3,10``; e.g. ``3`` to skip the slow
10-member runs), ``FEDCHAIN_BENCH_DEPLOY_ROUNDS`` (default 6), ``FEDCHAIN_BENCH_DEPLOY_PROBE=0`` to
skip the overhead probe. Needs anvil (``make node``).
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from fedchain.config import FedChainConfig

GOAL_RATIO = 2.0
PROBE_APP = Path(__file__).resolve().parents[1] / "tests" / "deployment" / "worker_probe"
#: The federation both runtimes run (besides members and rounds).
RUN_CONFIG: dict[str, bool | int | float | str] = {
    "dp": True,
    "he": True,
    "epsilon": 8.0,
    "local-epochs": 1,
    "round-timeout-s": 300.0,
}


def _rounds(directory: Path, members: int, rounds: int) -> tuple[list[float], list[float], dict[str, float]]:
    """Round seconds of the deployment and of the simulation (its ledger on the deployment's anvil), start timings."""
    from fedchain.deployment import DeploySpec, LocalFederation

    spec = DeploySpec(
        directory=directory,
        members=members,
        rounds=rounds,
        run_config=RUN_CONFIG,
        metrics=False,
        startup_timeout_s=300,
        run_timeout_s=1800,
    )
    federation = LocalFederation(spec)
    try:
        federation.start()
        outcome = federation.wait(federation.submit())
        if not outcome.ok:
            raise RuntimeError(f"the deployed run ended {outcome.status}")
        seconds = [float(row["seconds"]) for row in outcome.result["rounds"]]
        print(f"deploy: {members} members deployed, rounds " + ", ".join(f"{s:.1f} s" for s in seconds), flush=True)
        simulated = _simulated_rounds(members, rounds, chain=federation.rpc_url or "none")  # anvil still runs
    finally:
        federation.stop()
    return seconds, simulated, dict(federation.timings)


def _simulated_rounds(members: int, rounds: int, *, chain: str) -> list[float]:
    from fedchain.deployment import ANVIL_DEV_KEY
    from fedchain.runner import run_simulation

    previous = os.environ.get("FEDCHAIN_PRIVATE_KEY")
    os.environ["FEDCHAIN_PRIVATE_KEY"] = ANVIL_DEV_KEY  # the simulated coordinator deploys its ledger on anvil
    try:
        with tempfile.TemporaryDirectory() as tmp:
            config = FedChainConfig.from_run_config(
                {**RUN_CONFIG, "num-members": members, "num-server-rounds": rounds, "chain": chain, "out-dir": tmp}
            )
            result = run_simulation(config)
    finally:
        if previous is None:
            os.environ.pop("FEDCHAIN_PRIVATE_KEY", None)
        else:
            os.environ["FEDCHAIN_PRIVATE_KEY"] = previous
    return [float(row["seconds"]) for row in result["rounds"]]


def _probe(directory: Path, runtime: str, messages: int) -> dict[str, Any]:
    """The probe app on 2 members with ``runtime``: per-message overhead and processes seen."""
    from fedchain.deployment import DeploySpec, LocalFederation

    spec = DeploySpec(
        directory=directory,
        members=2,
        rounds=1,
        chain="none",
        metrics=False,
        app_dir=PROBE_APP,
        run_config={"he": False},
        member_runtime=runtime,
        startup_timeout_s=300,
        run_timeout_s=900,
    )
    federation = LocalFederation(spec)
    try:
        federation.start()
        outcome = federation.wait(federation.submit(run_config={"messages": messages}))
    finally:
        federation.stop()
    if not outcome.ok:
        raise RuntimeError(f"the probe run ({runtime}) ended {outcome.status}")
    rows = [row for row in outcome.result["replies"] if "started" in row]
    overhead = [row["started"] - row["pushed"] for row in rows]
    later = [row["started"] - row["pushed"] for row in rows if row["message"] > 0]
    return {
        "runtime": runtime,
        "messages": messages,
        "overhead_s": overhead,
        "first_message_overhead_s": max(row["started"] - row["pushed"] for row in rows if row["message"] == 0),
        "median_overhead_s": statistics.median(later),
        "processes": len({row["pid"] for row in rows}),
        "run_s": outcome.seconds,
    }


def run(out_dir: Path) -> dict[str, Any]:
    members_list = [int(m) for m in os.environ.get("FEDCHAIN_BENCH_DEPLOY_MEMBERS", "3,10").split(",") if m]
    rounds = int(os.environ.get("FEDCHAIN_BENCH_DEPLOY_ROUNDS", "6"))
    started = time.perf_counter()
    figures: dict[str, Any] = {
        "benchmark": "deployment_vs_simulation",
        "run_config": RUN_CONFIG,
        "rounds": rounds,
        "method": "mean of rounds 2..N; deployment: anvil + SuperLink (TLS, node auth) + SuperNodes with the "
        "member worker; simulation: Flower's simulation runtime in this process, ledger on the same anvil",
        "goal_ratio": GOAL_RATIO,
        "federations": {},
    }
    with tempfile.TemporaryDirectory(prefix="bench-deploy-") as tmp:
        if os.environ.get("FEDCHAIN_BENCH_DEPLOY_PROBE", "1") != "0":
            before = _probe(Path(tmp) / "probe", "flower", messages=3)
            after = _probe(Path(tmp) / "probe", "worker", messages=6)  # same directory: provisioned once
            figures["per_message_overhead"] = {
                "before": before,
                "after": after,
                "ratio": before["median_overhead_s"] / after["median_overhead_s"],
            }
            print(
                f"deploy: per-message overhead {before['median_overhead_s']:.2f} s (flwr-clientapp per message, "
                f"{before['processes']} processes) -> {after['median_overhead_s'] * 1000:.0f} ms (member worker, "
                f"{after['processes']} processes; its first message {after['first_message_overhead_s']:.2f} s)"
            )
        for members in members_list:
            deployed, simulated, timings = _rounds(Path(tmp) / f"fed-{members}", members, rounds)
            deployed_mean = statistics.mean(deployed[1:]) if len(deployed) > 1 else deployed[0]
            simulated_mean = statistics.mean(simulated[1:]) if len(simulated) > 1 else simulated[0]
            ratio = deployed_mean / simulated_mean
            # Medians beside the means: one slow simulated round (seen: 2.5 s among 1.0-1.2 s) moves the mean ratio.
            deployed_median = statistics.median(deployed[1:] or deployed)
            ratio_of_medians = deployed_median / statistics.median(simulated[1:] or simulated)
            figures["federations"][str(members)] = {
                "deployed_round_s": deployed,
                "simulated_round_s": simulated,
                "deployed_mean_round_s": deployed_mean,
                "simulated_mean_round_s": simulated_mean,
                "ratio": ratio,
                "ratio_of_medians": ratio_of_medians,
                "meets_goal": ratio <= GOAL_RATIO,
                "deployment_timings_s": {k: round(v, 2) for k, v in timings.items()},
            }
            print(
                f"deploy: {members} members, DP+HE+chain: deployed {deployed_mean:.2f} s/round vs simulated "
                f"{simulated_mean:.2f} s/round -> ratio {ratio:.2f} (goal <= {GOAL_RATIO}; of medians "
                f"{ratio_of_medians:.2f}); rounds deployed "
                + ", ".join(f"{s:.1f}" for s in deployed)
                + " / simulated "
                + ", ".join(f"{s:.1f}" for s in simulated)
            )
    figures["wall_s"] = time.perf_counter() - started
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "deploy.json").write_text(json.dumps(figures, indent=2) + "\n")
    return figures


if __name__ == "__main__":
    run(Path(__file__).parent / "results")
