"""Across hosts: the federation with the hub and each member in its own network namespace.

The topology (:class:`fedchain.deployment.netns.Topology`): a hub namespace (anvil, the
SuperLink with TLS and SuperNode authentication, the coordinator it runs) with a bridge at
``10.213.X.1``, and one namespace per member (its SuperNode) linked to it by a veth pair. The
SuperLink's certificate names the hub's IP; members dial it there. The test process enters the
hub namespace (its ``flwr`` calls, JSON-RPC and port checks go to the hub's address) and the
members' processes start behind ``ip netns exec``.

One federation, one run interrupted and resumed, three faults:

1. member 2's link is cut once it has received its round-1 train instruction and restored once
   the train stage is over: round 1 completes without it (unpaid); its late reply counts nowhere;
2. anvil is stopped once members 0 and 1 have sent their round-2 updates (members read the chain
   before they train) and started again (same chain, ``--state``) once the coordinator holds the
   round, retrying the chain: round 2 is recorded later, once;
3. the SuperLink is restarted (its state in ``--database``) once round 2 is recorded, which ends
   the run (Flower 1.42 does not carry a run over a restart); every member's SuperNode reconnects by
   itself and a resumed run (``resume``, same ``out-dir``) does round 3.

On chain: rounds 1..3 each recorded once, the pool minted three times, member 2 unpaid in round 1.
Namespaces, links and processes are removed at the end, pass or fail. Skipped, with the reason,
where namespaces cannot be created (not root) or anvil is missing. About 3-5 minutes on 2 busy
cores with Flower's process-per-message runtime; select with ``-m netns``, deselect with
``-m 'not netns'``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.bench_netns import log_count, received_other, round_recorded
from fedchain.deployment import ANVIL_DEV_KEY, DeploySpec, LocalFederation, anvil_binary
from fedchain.deployment.flower import CONNECTION_NAME

MEMBERS = 3
CUT = 2
ROUNDS = 3
ROUND_TIMEOUT_S = 60.0  # a run's first round on 2 busy cores (a process per message) can take 30 s
RUN_CONFIG: dict[str, bool | int | float | str] = {
    "dp": True,
    "epsilon": 8.0,
    "dp-local-epochs": 1,
    "noise-multiplier": 2.0,  # fixed: the rounds a restart interrupts spend too, and the budget must outlast them
    "local-epochs": 1,
    "hidden-units": 16,
    "round-timeout-s": ROUND_TIMEOUT_S,
    "committee-timeout-s": 60.0,
    "chain-attempts": 12,
    "chain-backoff-s": 0.5,
}


def _until(what: str, check: Any, timeout_s: float, federation: LocalFederation, step_s: float = 0.25) -> float:
    """Poll ``check()`` until true; return the seconds it took. Fails with the logs' tails on timeout."""
    started = time.perf_counter()
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:g} s waiting for {what}\n{_logs(federation)}")
        time.sleep(step_s)
    return time.perf_counter() - started


@pytest.fixture(scope="module")
def netns_federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, LocalFederation]]:
    from fedchain.deployment.netns import Topology, unavailable

    if anvil_binary() is None:
        pytest.skip("anvil is not installed: run `make node` (npm @foundry-rs/anvil 1.7.1)")
    reason = unavailable()
    if reason is not None:
        pytest.skip(f"network namespaces cannot be created here: {reason}")
    topology = Topology.create(MEMBERS)
    federation: LocalFederation | None = None
    try:
        with topology.entered():
            spec = DeploySpec(
                directory=tmp_path_factory.mktemp("netns") / "fed",
                members=MEMBERS,
                rounds=ROUNDS,
                hub_host=topology.hub_ip,
                wrappers=topology.wrappers(),
                superlink_state=True,
                metrics=False,
                run_config=RUN_CONFIG,
                startup_timeout_s=180,
                run_timeout_s=600,
            )
            federation = LocalFederation(spec)
            started = time.perf_counter()
            federation.start()
            federation.timings["test_start_s"] = time.perf_counter() - started
            yield topology, federation
    finally:
        if federation is not None:
            federation.stop()
        topology.close()


@pytest.mark.netns
@pytest.mark.integration
@pytest.mark.slow
def test_hosts_are_separate_namespaces(netns_federation: tuple[Any, LocalFederation]) -> None:
    topology, federation = netns_federation
    assert topology.hub_ip in federation.federation.addresses  # the certificate names the hub's IP
    assert federation.superlink_address.startswith(topology.hub_ip + ":")
    hub_net = os.readlink("/proc/thread-self/ns/net")
    nets = {}
    for record in federation.supervisor.records:
        nets[record.name] = os.readlink(f"/proc/{record.pid}/ns/net")
        if record.name.startswith("supernode-"):
            assert record.command[:4] == ("ip", "netns", "exec", topology.member(int(record.name.split("-")[1])))
    assert nets["superlink"] == nets["anvil"] == hub_net
    members = [nets[f"supernode-{i}"] for i in range(MEMBERS)]
    assert len(set(members)) == MEMBERS and hub_net not in members
    assert "https://" in (federation.log_dir / "superlink.log").read_text()  # TLS


@pytest.mark.netns
@pytest.mark.integration
@pytest.mark.slow
def test_cut_link_chain_outage_and_superlink_restart(netns_federation: tuple[Any, LocalFederation]) -> None:
    from fedchain.ledger import Web3Ledger, connect

    topology, federation = netns_federation
    provisioned = federation.federation
    assert provisioned is not None and federation.chain_setup is not None and federation.rpc_url is not None
    out_dir = federation.spec.directory / "runs" / "netns"
    cut_address = provisioned.members[CUT].address
    logs = [federation.log_dir / f"supernode-{i}.log" for i in range(MEMBERS)]
    figures: dict[str, float] = {}

    with topology.entered():
        received = log_count(logs[CUT], "Receiving: train message")
        first = federation.submit(out_dir=out_dir)
        follower = federation.supervisor.start(  # the first run's log (it ends with the SuperLink restart)
            f"flwr-log-{first}",
            [str(federation.flwr_bin / "flwr"), "log", str(first), CONNECTION_NAME, "--stream"],
            log_path=federation.log_dir / f"run-{first}.log",
            env=federation.env(),
        )
        # 1. Cut member 2 once its round-1 train instruction reached it; restore it once the train stage is
        #    over (member 0 gets the round's next message: a committee query or an evaluation).
        _until(
            "member 2's round-1 train instruction",
            lambda: log_count(logs[CUT], "Receiving: train message") > received,
            300,
            federation,
        )
        other = received_other(logs[0])
        topology.cut(CUT)
        cut_at = time.perf_counter()
        figures["cut_to_train_stage_end_s"] = _until(
            "round 1's train stage to end", lambda: received_other(logs[0]) > other, ROUND_TIMEOUT_S + 120, federation
        )
        topology.restore(CUT)
        _until("round 1 on chain", lambda: round_recorded(out_dir, 1), 300, federation)
        figures["cut_to_round_recorded_s"] = time.perf_counter() - cut_at

        # 2. The chain goes away once members 0 and 1 have sent their round-2 updates (members read the
        #    chain before training) and before the round is recorded: it waits in pending/ and lands later.
        sent = [log_count(log, "Sending: train message") for log in logs[:2]]
        _until(
            "round-2 updates of members 0 and 1",
            lambda: all(log_count(log, "Sending: train message") > n for log, n in zip(logs, sent, strict=False)),
            ROUND_TIMEOUT_S + 120,
            federation,
        )
        federation.stop_chain()
        pending = out_dir / "pending" / "round-2.json"
        run_log = federation.log_dir / f"run-{first}.log"

        def held() -> bool:  # reading the chain (spends) or recording the round, retrying
            return pending.exists() or log_count(run_log, "failed (attempt") > 0

        _until("round 2 held, the coordinator retrying the chain", held, ROUND_TIMEOUT_S + 180, federation)
        time.sleep(3.0)
        assert not round_recorded(out_dir, 2)
        federation.start_chain()
        _until("round 2 on chain", lambda: round_recorded(out_dir, 2), 240, federation)
        assert not pending.exists()

        # 3. SuperLink restart between rounds: the run ends with it; members reconnect; a resumed run does round 3.
        federation.supervisor.stop(follower)
        figures["superlink_recovery_s"] = federation.restart_superlink()
        run_id = federation.submit(run_config={"resume": True}, out_dir=out_dir)
        outcome = federation.wait(run_id, timeout_s=600)
        assert outcome.ok, (outcome.status, _logs(federation))

        rounds = outcome.result["rounds"]
        assert [row["round"] for row in rounds] == [1, 2, 3]
        assert all(row["status"] == "completed" for row in rounds), rounds
        paid = [{m["address"] for m in row["members"] if int(m.get("reward_wei") or 0) > 0} for row in rounds]
        assert cut_address not in paid[0], "the cut member was paid for round 1"
        # Member 2 is online again (restart_superlink waited for every node); whether it is back in round 2
        # or 3 depends on its SuperNode's reconnect backoff (up to ~20 s a try) and its worker: reported.
        back = [row["round"] for row, members in zip(rounds[1:], paid[1:], strict=True) if cut_address in members]

        reader = Web3Ledger(connect(federation.rpc_url, private_key=ANVIL_DEV_KEY), outcome.result["ledger_address"])
        assert reader.last_round() == ROUNDS
        for row in rounds:
            recorded = reader.get_round(row["round"])
            assert recorded.tx_hash == row["tx_hash"]
            assert recorded.rewards_wei == {m["address"]: int(m["reward_wei"]) for m in row["members"]}
        assert reader.get_round(1).rewards_wei.get(cut_address, 0) == 0
        pool = int(outcome.result["config"]["reward_pool_wei"])
        assert reader.total_supply() == ROUNDS * pool  # each round paid once: none lost, none twice
    print(
        f"\nnetns: start {federation.timings['test_start_s']:.1f} s, cut to train stage end "
        f"{figures['cut_to_train_stage_end_s']:.1f} s, cut to round 1 recorded "
        f"{figures['cut_to_round_recorded_s']:.1f} s, SuperLink recovery {figures['superlink_recovery_s']:.1f} s, "
        f"resumed run {outcome.seconds:.1f} s, member 2 paid again in rounds {back}"
    )


def _logs(federation: LocalFederation) -> str:
    tails = []
    for path in sorted(federation.log_dir.glob("*.log")):
        tails.append(f"--- {path.name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-12:]))
    return "\n".join(tails)


# ---- the multi-host options, without processes ---------------------------------------------------


def test_spec_roles_and_wrappers_are_checked(tmp_path: Path) -> None:
    from fedchain.errors import ConfigError

    directory = tmp_path / "fed"
    with pytest.raises(ConfigError, match="role"):
        DeploySpec(directory=directory, role="coordinator")
    with pytest.raises(ConfigError, match="member"):
        DeploySpec(directory=directory, role="member", members=3, member=3)
    with pytest.raises(ConfigError, match="wrappers"):
        DeploySpec(directory=directory, wrappers={"m0": ("ip", "netns", "exec", "m0")})
    member = DeploySpec(directory=directory, role="member", members=3, member=1, hub_host="10.0.0.1")
    assert member.chain == "none"  # the hub runs the chain
    federation = LocalFederation(DeploySpec(directory=directory, hub_host="10.213.9.1", hub_bind="0.0.0.0"))
    federation.ports = {"superlink": 9093, "anvil": 8545}
    assert federation.superlink_address == "10.213.9.1:9093" and federation.rpc_url == "http://10.213.9.1:8545"
    assert federation.hub_bind == "0.0.0.0"


def test_wrappers_prefix_each_hosts_processes(tmp_path: Path) -> None:
    from fedchain.deployment.launcher import process_host

    assert [process_host(n) for n in ("supernode-1", "member-1-metrics", "superlink", "anvil", "flwr-log-7")] == [
        "member-1", "member-1", "hub", "hub", "hub"
    ]  # fmt: skip
    spec = DeploySpec(directory=tmp_path / "fed", wrappers={"member-1": ("env", "FEDCHAIN_HOST=member-1")})
    federation = LocalFederation(spec)
    script = "import os, sys; sys.stdout.write(os.environ.get('FEDCHAIN_HOST', 'hub'))"
    for name in ("supernode-1", "anvil"):
        record = federation.supervisor.start(
            name, [sys.executable, "-c", script], log_path=tmp_path / f"{name}.log", env=dict(os.environ)
        )
        deadline = time.monotonic() + 30
        while federation.supervisor.is_running(record) and time.monotonic() < deadline:
            time.sleep(0.05)
    assert (tmp_path / "supernode-1.log").read_text() == "member-1"
    assert (tmp_path / "anvil.log").read_text() == "hub"
    federation.stop()


def test_member_bundle_holds_only_that_member(provisioned: Any, tmp_path: Path) -> None:
    from fedchain.deployment.cli import main
    from fedchain.deployment.launcher import member_bundle

    data = tmp_path / "m1.csv"
    data.write_text("f0,label\n0.5,1\n")
    policy = tmp_path / "policy.toml"
    policy.write_text("max-epsilon = 4.0\n")
    out = tmp_path / "member-1"
    argv = ["bundle", str(provisioned.directory), "--member", "1", "--out", str(out), "--data", str(data)]
    assert main([*argv, "--policy", str(policy)]) == 0
    bundle = member_bundle(out, 1)  # complete: what `up --role member --member 1` reads
    source = provisioned.members[1].directory
    assert sorted(p.name for p in bundle.directory.iterdir()) == sorted(p.name for p in source.iterdir())
    assert bundle.supernode_key.read_bytes() == provisioned.members[1].supernode_key.read_bytes()
    assert sorted(p.name for p in (out / "members").iterdir()) == ["member-1"]  # no other member's keys
    assert all(p.stat().st_mode & 0o077 == 0 for p in bundle.directory.rglob("*"))
    assert (out / "data" / "m1.csv").read_text() == data.read_text()
    assert (out / "state" / "member-1" / "policy.toml").read_text() == policy.read_text()
    assert main(argv) == 2  # never over an existing bundle
    assert main(["up", str(tmp_path / "empty"), "--role", "member", "--member", "0", "--superlink-port", "9"]) == 2


@pytest.mark.netns
@pytest.mark.integration
@pytest.mark.slow
def test_a_member_machine_joins_from_its_bundle(netns_federation: tuple[Any, LocalFederation], tmp_path: Path) -> None:
    """`fedchain deploy bundle` + `up --role member` in member 0's namespace: its SuperNode authenticates over TLS."""
    from fedchain.deployment.flower import supernodes
    from fedchain.deployment.launcher import write_member_bundle

    topology, federation = netns_federation
    with topology.entered():
        federation.supervisor.stop(next(r for r in federation.supervisor.records if r.name == "supernode-0"))
        node = str(federation.node_ids[0])

        def offline() -> bool:  # the SuperLink refuses a second session for a node it still sees online
            return all(n["node-id"] != node or n["status"] != "online" for n in supernodes(env=federation.env()))

        _until("member 0's old SuperNode to go offline", offline, 180, federation, step_s=2.0)
        data = sorted((federation.spec.directory / "data").glob("member-0.*"))[0]
        out = tmp_path / "machine-0"
        write_member_bundle(federation.spec.directory, 0, out, data=data)
        port = str(federation.ports["superlink"])
        command = [sys.executable, "-m", "fedchain.deployment", "up", str(out), "--role", "member", "--member", "0",
                   "--members", str(MEMBERS), "--hub-host", topology.hub_ip, "--superlink-port", port,
                   "--no-metrics", "--data", str(out / "data" / data.name)]  # fmt: skip
        machine = federation.supervisor.start(  # "member-0-...": behind member 0's `ip netns exec`
            "member-0-machine", command, log_path=federation.log_dir / "member-0-machine.log", env=federation.env()
        )
        assert machine.command[:4] == ("ip", "netns", "exec", topology.member(0))
        log = out / "logs" / "supernode-0.log"
        expected = f"SuperNode ID: {federation.node_ids[0]}"

        def joined() -> bool:
            assert federation.supervisor.is_running(machine), log_count(log, "") and log.read_text()[-1500:]
            return log_count(log, expected) > 0

        _until("member 0's SuperNode to authenticate", joined, 180, federation)
        assert federation.supervisor.is_running(machine), (federation.log_dir / "member-0-machine.log").read_text()
        state = json.loads((out / "deployment" / "state.json").read_text())
        assert state["role"] == "member" and state["superlink"] == federation.superlink_address
        federation.supervisor.stop(machine)
