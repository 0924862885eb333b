"""Across hosts: how long a cut member takes to be excluded, and the federation to recover after a SuperLink restart.

The federation of ``tests/deployment/test_netns.py`` (a hub namespace with anvil and the
SuperLink, one namespace per member, TLS naming the hub's IP, node authentication on), 3
members. Measured in one run:

* baseline: round 2 with every member connected (round 1 warms the members' workers up);
* exclusion: member 2's link is cut as soon as its round-3 train instruction reaches it; the
  seconds from the cut until the round's train stage ends without it (the coordinator's
  ``round-timeout-s`` bounds it), and round 3 against round 2;
* recovery: the SuperLink is stopped and started again (``--database``: registrations kept)
  until every SuperNode is online again, against the first start of the SuperLink plus its
  nodes; then the resumed run's round (``resume``, round 4) against round 2.

Writes ``bench/results/netns.json``. Skips (writes the reason) where network namespaces cannot
be created (not root) or anvil is missing. ``FEDCHAIN_BENCH_NETNS_TIMEOUT`` sets the round
timeout (default 60 s: a run's first round loads each member's worker). About 5-7 minutes on 2
busy cores.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

MEMBERS = 3
CUT = 2


def coordinator_state(out_dir: Path) -> dict[str, Any]:
    """The coordinator's ``state.json`` in a run's out-dir ({} while it has none or it is being written)."""
    try:
        return dict(json.loads((out_dir / "coordinator" / "state.json").read_text("utf-8")))
    except (OSError, ValueError):
        return {}


def round_recorded(out_dir: Path, server_round: int) -> bool:
    """Whether the run has recorded ``server_round`` on chain (also used by tests/deployment/test_netns.py)."""
    state = coordinator_state(out_dir)
    return int(state.get("round", 0)) >= server_round and state.get("status") == "recorded"


def log_count(log_path: Path, text: str) -> int:
    """How many times a SuperNode's log says ``text`` (Flower logs each message it receives and sends)."""
    try:
        return log_path.read_text("utf-8", errors="replace").count(text)
    except OSError:
        return 0


def received_train(log_path: Path) -> int:
    """Train instructions a SuperNode received."""
    return log_count(log_path, "Receiving: train message")


def received_other(log_path: Path) -> int:
    """Messages after the train stage (committee queries, evaluations) a SuperNode received."""
    return log_count(log_path, "Receiving: ") - received_train(log_path)


def _until(what: str, check: Any, timeout_s: float) -> float:
    started = time.perf_counter()
    while not check():
        if time.perf_counter() - started > timeout_s:
            raise TimeoutError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(0.1)
    return time.perf_counter() - started


def _skip(out_dir: Path, reason: str) -> None:
    print(f"netns: skipped: {reason}")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "netns.json").write_text(json.dumps({"skipped": reason}, indent=2) + "\n")


def run(out_dir: Path) -> None:
    from fedchain.deployment import DeploySpec, LocalFederation, anvil_binary
    from fedchain.deployment.netns import Topology, unavailable

    if anvil_binary() is None:
        return _skip(out_dir, "anvil is not installed (make node)")
    reason = unavailable()
    if reason is not None:
        return _skip(out_dir, f"network namespaces cannot be created here: {reason}")
    timeout_s = float(os.environ.get("FEDCHAIN_BENCH_NETNS_TIMEOUT", "60"))
    run_config: dict[str, bool | int | float | str] = {
        "dp": True,
        "epsilon": 8.0,
        "dp-local-epochs": 1,
        "noise-multiplier": 2.0,
        "local-epochs": 1,
        "hidden-units": 16,
        "round-timeout-s": timeout_s,
        "committee-timeout-s": timeout_s,
    }
    with tempfile.TemporaryDirectory(dir=Path(__file__).resolve().parents[1] / "runs") as tmp:
        topology = Topology.create(MEMBERS)
        federation: LocalFederation | None = None
        try:
            with topology.entered():
                spec = DeploySpec(
                    directory=Path(tmp) / "fed",
                    members=MEMBERS,
                    rounds=3,
                    hub_host=topology.hub_ip,
                    wrappers=topology.wrappers(),
                    superlink_state=True,
                    metrics=False,
                    run_config=run_config,
                    startup_timeout_s=180,
                    run_timeout_s=600,
                )
                federation = LocalFederation(spec)
                federation.start()
                first_start_s = sum(federation.timings[k] for k in ("superlink_s", "register_s", "supernodes_s"))
                runs = spec.directory / "runs" / "bench"
                logs = [federation.log_dir / f"supernode-{i}.log" for i in range(MEMBERS)]

                federation.submit(out_dir=runs)
                _until("round 1", lambda: round_recorded(runs, 1), 600)
                _until("round 2", lambda: round_recorded(runs, 2), 600)
                seen = received_train(logs[CUT])
                _until("member 2's round-3 instruction", lambda: received_train(logs[CUT]) > seen, 300)
                other = received_other(logs[0])
                topology.cut(CUT)
                cut_at = time.perf_counter()
                # Excluded: the train stage ends without it (member 0 gets the round's next message).
                excluded_s = _until("round 3's train stage to end", lambda: received_other(logs[0]) > other, 600)
                topology.restore(CUT)
                _until("round 3", lambda: round_recorded(runs, 3), 600)
                cut_to_recorded_s = time.perf_counter() - cut_at
                rounds = coordinator_state(runs)["rounds"]

                recovery_s = federation.restart_superlink()
                resumed = federation.submit(run_config={"resume": True, "num-server-rounds": 4}, out_dir=runs)
                outcome = federation.wait(resumed, timeout_s=600)
                if not outcome.ok:
                    raise RuntimeError(f"the resumed run ended {outcome.status}")
                rows = outcome.result["rounds"]
        finally:
            if federation is not None:
                federation.stop()
            topology.close()

    def train_s(row: dict[str, Any]) -> float:
        return float(row.get("stage_seconds", {}).get("train", float("nan")))

    base, cut, resumed_row = rounds[1], rounds[2], rows[3]
    cut_members = {m["address"] for m in cut["members"]}
    result = {
        "members": MEMBERS,
        "round_timeout_s": timeout_s,
        "baseline_round_s": round(float(base["seconds"]), 2),
        "baseline_train_stage_s": round(train_s(base), 2),
        "cut_round_s": round(float(cut["seconds"]), 2),
        "cut_train_stage_s": round(train_s(cut), 2),
        "cut_to_excluded_s": round(excluded_s, 2),
        "cut_to_round_recorded_s": round(cut_to_recorded_s, 2),
        "cut_member_excluded": len(cut_members) == MEMBERS - 1,
        "cut_round_vs_baseline": round(float(cut["seconds"]) / float(base["seconds"]), 2),
        "first_start_s": round(first_start_s, 2),
        "superlink_recovery_s": round(recovery_s, 2),
        "recovery_vs_first_start": round(recovery_s / first_start_s, 2),
        "resumed_round_s": round(float(resumed_row["seconds"]), 2),
        "resumed_round_vs_baseline": round(float(resumed_row["seconds"]) / float(base["seconds"]), 2),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "netns.json").write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"netns: baseline round {result['baseline_round_s']} s (train {result['baseline_train_stage_s']} s); "
        f"member cut mid-round: excluded after {result['cut_to_excluded_s']} s, "
        f"round {result['cut_round_s']} s (x{result['cut_round_vs_baseline']}), "
        f"train stage {result['cut_train_stage_s']} s with round-timeout-s {timeout_s:g}, "
        f"excluded={result['cut_member_excluded']}; SuperLink restart: nodes online again in "
        f"{result['superlink_recovery_s']} s (first start {result['first_start_s']} s, "
        f"x{result['recovery_vs_first_start']}); resumed round {result['resumed_round_s']} s "
        f"(x{result['resumed_round_vs_baseline']})"
    )
