"""Integration: a real federation on loopback, brought up, run and brought down by the launcher.

Provisions 3 members, starts anvil (ledger deployed, wallets registered), a SuperLink with TLS
and SuperNode authentication, 3 SuperNodes with their own CSV, keys and state, and the metrics
exporters; checks a SuperNode with an unregistered key is refused; runs 2 rounds with DP and HE
through ``flwr run``; checks the rounds on anvil, scrapes ``/metrics`` during the run, and stops
everything with no process left.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fedchain.deployment import ANVIL_DEV_KEY, DeploySpec, LocalFederation, anvil_binary, default_app_dir
from fedchain.deployment.flower import supernode_command, supernodes
from fedchain.deployment.launcher import app_run_config_keys
from fedchain.deployment.processes import pid_alive, process_table

from .helpers import Samples, scrape, value

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MEMBERS = 3
ROUNDS = 2
EPSILON = 8.0
#: pid -> kernel start time of every process the federation ran (filled while the run goes on).
SEEN: dict[int, int] = {}


class Watcher:
    """Scrapes the coordinator's /metrics and records every process of the federation, while a run goes on."""

    def __init__(self, federation: LocalFederation) -> None:
        self.federation = federation
        self.url = federation.metrics_urls()["coordinator"]
        self.scrapes: list[Samples] = []
        self.seen: dict[int, int] = {}  # pid -> start ticks of every process of the federation
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> Watcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def snapshot_processes(self) -> None:
        table = process_table()
        for pid in self.federation.supervisor.leftover_pids():
            if pid in table:
                self.seen[pid] = table[pid].start_ticks

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.snapshot_processes()
            with contextlib.suppress(OSError):  # the ServerApp is not up yet, or has finished
                self.scrapes.append(scrape(self.url, timeout_s=2))
            self._stop.wait(0.25)


#: Run-config keys the deployment needs the app to declare (pyproject [tool.flwr.app.config]).
NEEDED_KEYS = {"he-keys-dir", "ledger-address", "metrics-port", "metrics-host"}


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalFederation]:
    if anvil_binary() is None:
        pytest.skip("anvil is not installed: run `make node` (npm @foundry-rs/anvil 1.7.1)")
    directory = tmp_path_factory.mktemp("federation") / "fed"
    spec = DeploySpec(
        directory=directory,
        members=MEMBERS,
        rounds=ROUNDS,
        run_config={"dp": True, "he": True, "epsilon": EPSILON, "local-epochs": 1, "round-timeout-s": 120.0},
        startup_timeout_s=120,
        run_timeout_s=300,
    )
    launched = LocalFederation(spec)
    started = time.perf_counter()
    launched.start()
    launched.timings["test_start_s"] = time.perf_counter() - started
    try:
        yield launched
    finally:
        launched.stop()  # idempotent: test_down_stops_every_process stops it first


def test_unregistered_supernode_key_is_refused(federation: LocalFederation, tmp_path: Path) -> None:
    # A well-formed P-384 key the SuperLink was never told about.
    key = ec.generate_private_key(ec.SECP384R1())
    rogue = tmp_path / "rogue"
    rogue.mkdir()
    (rogue / "supernode.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption())
    )
    (rogue / "ca.crt").write_bytes(federation.federation.ca_certificate.read_bytes())
    record = federation.supervisor.start(
        "rogue-supernode",
        supernode_command(
            rogue,
            superlink=federation.superlink_address,
            runtime_port=_free_port(),
            node_config="member-id=99",
            flwr_bin=federation.flwr_bin,
        ),
        log_path=federation.log_dir / "rogue-supernode.log",
        env=federation.env(),
    )
    deadline = time.monotonic() + 90
    while federation.supervisor.is_running(record) and time.monotonic() < deadline:
        time.sleep(0.5)
    still_running = federation.supervisor.is_running(record)
    federation.supervisor.stop(record)
    log = Path(record.log_path).read_text()
    assert not still_running, "a SuperNode with an unregistered key kept running"
    assert "Failed to activate SuperNode" in log and "305" in log, log[-2000:]
    online = [n for n in supernodes(env=federation.env()) if n["status"] == "online"]
    assert sorted(n["node-id"] for n in online) == sorted(str(i) for i in federation.node_ids.values())
    assert "https://" in Path(federation.log_dir / "superlink.log").read_text()  # TLS on the one port


def test_two_rounds_with_dp_and_he_recorded_on_anvil(federation: LocalFederation) -> None:
    from fedchain.ledger import Web3Ledger, connect

    missing = NEEDED_KEYS - app_run_config_keys(default_app_dir())
    if missing:
        pytest.skip(f"the app does not declare run-config keys {sorted(missing)} yet (issue 8 integration step)")
    provisioned = federation.federation
    wallets = {bundle.address for bundle in provisioned.members}
    with Watcher(federation) as watcher:
        run_id = federation.submit()
        outcome = federation.wait(run_id, timeout_s=300)
        watcher.snapshot_processes()
    federation.timings["test_run_s"] = outcome.seconds
    assert outcome.ok, (outcome.status, _logs(federation))
    result = outcome.result
    rounds = result["rounds"]
    assert [row["round"] for row in rounds] == [1, 2]
    assert all(row["status"] == "completed" for row in rounds), [row["rejections"] for row in rounds]
    assert result["final_accuracy"] is not None and result["final_accuracy"] > 0.2
    for row in rounds:
        assert {m["address"] for m in row["members"]} == wallets  # provisioned wallets, not simulated keys
        assert all(m["epsilon"] is not None and 0 < m["epsilon"] <= EPSILON for m in row["members"])
        assert all(m["dp"] is not None for m in row["members"])
    epsilon_after = {m["address"]: m["epsilon"] for m in rounds[-1]["members"]}
    assert all(epsilon_after[m["address"]] > m["epsilon"] for m in rounds[0]["members"])  # cumulative

    # On anvil: the ledger the launcher deployed holds both rounds and paid the pool.
    assert federation.chain_setup is not None and federation.rpc_url is not None
    assert result["ledger_address"] == federation.chain_setup.ledger_address
    reader = Web3Ledger(connect(federation.rpc_url, private_key=ANVIL_DEV_KEY), result["ledger_address"])
    assert reader.last_round() == ROUNDS
    for row in rounds:
        recorded = reader.get_round(row["round"])
        assert recorded.tx_hash == row["tx_hash"]
        assert recorded.rewards_wei == {m["address"]: int(m["reward_wei"]) for m in row["members"]}
    pool = int(result["config"]["reward_pool_wei"])
    assert reader.total_supply() == ROUNDS * pool
    assert sum(reader.balance_of(address) for address in wallets) > 0

    # The coordinator's /metrics, scraped while the run went on: the series moved.
    completed = [value(s, "fedchain_rounds_total", status="completed") for s in watcher.scrapes]
    assert 0.0 in completed, "no scrape before the first round finished"
    assert max(c for c in completed if c is not None) >= 1.0
    last = next(
        s for s in reversed(watcher.scrapes) if (value(s, "fedchain_rounds_total", status="completed") or 0) >= 1
    )
    assert value(last, "fedchain_round_duration_seconds_count") >= 1
    assert value(last, "fedchain_members_sampled_total", stage="train") >= MEMBERS
    assert value(last, "fedchain_members_replied_total", stage="train") >= MEMBERS
    assert value(last, "fedchain_stage_duration_seconds_count", stage="aggregate") >= 1
    assert value(last, "fedchain_ciphertext_bytes_total", direction="received") > 0
    assert value(last, "fedchain_gas_used_total") > 0
    assert value(last, "fedchain_tokens_paid_wei_total") > 0
    for address in wallets:
        epsilon = value(last, "fedchain_member_epsilon", member=address)
        remaining = value(last, "fedchain_member_epsilon_budget_remaining", member=address)
        assert epsilon is not None and epsilon > 0
        assert remaining is not None and remaining == pytest.approx(EPSILON - epsilon)

    # Each member's own exporter (still up): training seconds and epsilon of both rounds.
    urls = federation.metrics_urls()
    for bundle in provisioned.members:
        samples = scrape(urls[f"member-{bundle.member_id}"])
        assert value(samples, "fedchain_member_training_duration_seconds_count", member=bundle.address) == ROUNDS
        assert value(samples, "fedchain_member_epsilon", member=bundle.address) == pytest.approx(
            epsilon_after[bundle.address]
        )
    SEEN.update(watcher.seen)
    print(
        f"\ndeployment: start {federation.timings['start_s']:.1f} s, run {outcome.seconds:.1f} s, "
        "rounds " + ", ".join(f"{row['seconds']:.1f} s" for row in rounds)
    )


def test_down_stops_every_process(federation: LocalFederation) -> None:
    seen = dict(SEEN)
    table = process_table()
    for pid in federation.supervisor.leftover_pids():
        seen[pid] = table[pid].start_ticks if pid in table else 0
    assert len(seen) >= 2 + 2 * MEMBERS  # anvil, SuperLink (+ its SuperExec), nodes, exporters
    federation.stop()
    assert federation.supervisor.records == []
    left = [pid for pid, ticks in seen.items() if pid_alive(pid, ticks or None)]
    assert left == [], f"processes left after down: {left}"


def _free_port() -> int:
    from fedchain.deployment.launcher import free_ports

    return free_ports(1)[0]


def _logs(federation: LocalFederation) -> str:
    tails = []
    for path in sorted(federation.log_dir.glob("*.log")):
        tails.append(f"--- {path.name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-15:]))
    return "\n".join(tails)
