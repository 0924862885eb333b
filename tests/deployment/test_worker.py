"""The member worker in a real deployment: one process answers every message of its SuperNode.

One small federation (2 members, TLS and SuperNode authentication, no chain) runs the probe app
(``worker_probe/``): its ClientApp reports its process id and how many messages that process
answered, and raises on the message the run names. Checked on that one deployment: several
messages answered by one warm process per node (a child of its SuperNode), a failing message
answered with Flower's error reply while the worker goes on, ``AcquireTask`` refused without the
node's secret, and the worker gone once its SuperNode is.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from flwr.common.constant import ErrorCode

from fedchain.deployment import DeploySpec, LocalFederation
from fedchain.deployment.processes import pid_alive, process_table
from fedchain.deployment.supernode import flower_loop_known
from fedchain.deployment.worker import MemberWorker
from fedchain.errors import ConfigError

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PROBE_APP = Path(__file__).parent / "worker_probe"
MEMBERS = 2
MESSAGES = 4
FAIL_AT = 1


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalFederation]:
    spec = DeploySpec(
        directory=tmp_path_factory.mktemp("worker") / "fed",
        members=MEMBERS,
        rounds=1,
        chain="none",
        metrics=False,
        app_dir=PROBE_APP,
        run_config={"he": False},  # addition-only CKKS keys: the quickest ceremony (the probe uses none)
        startup_timeout_s=120,
        run_timeout_s=180,
    )
    launched = LocalFederation(spec)
    launched.start()
    try:
        yield launched
    finally:
        launched.stop()


@pytest.fixture(scope="module")
def replies(federation: LocalFederation) -> list[dict[str, Any]]:
    run_id = federation.submit(run_config={"messages": MESSAGES, "fail-at": FAIL_AT})
    outcome = federation.wait(run_id, timeout_s=180)
    assert outcome.ok, outcome.status
    rows: list[dict[str, Any]] = outcome.result["replies"]
    assert len(rows) == MEMBERS * MESSAGES
    return rows


def _supernode_pids(federation: LocalFederation) -> dict[int, int]:
    return {int(r.name.split("-")[1]): r.pid for r in federation.supervisor.records if r.name.startswith("supernode-")}


def test_one_warm_process_answers_every_message_of_its_node(
    federation: LocalFederation, replies: list[dict[str, Any]]
) -> None:
    table = process_table()
    supernodes = set(_supernode_pids(federation).values())
    by_node: dict[int, list[dict[str, Any]]] = {}
    for row in replies:
        by_node.setdefault(row["node"], []).append(row)
    assert sorted(by_node) == sorted(federation.node_ids.values())
    workers = set()
    for rows in by_node.values():
        answered = [row for row in sorted(rows, key=lambda r: r["message"]) if "error" not in row]
        assert [row["message"] for row in answered] == [m for m in range(MESSAGES) if m != FAIL_AT]
        pids = {row["pid"] for row in answered}
        assert len(pids) == 1, f"a node's messages were answered by several processes: {pids}"
        # The count goes on across messages, the failing one included: the same process, state kept.
        assert [row["answered"] for row in answered] == [m + 1 for m in range(MESSAGES) if m != FAIL_AT]
        pid = pids.pop()
        assert table[pid].ppid in supernodes  # the worker is its SuperNode's child
        workers.add(pid)
    assert len(workers) == MEMBERS


def test_a_failing_message_gets_flowers_error_reply_and_the_worker_goes_on(replies: list[dict[str, Any]]) -> None:
    failed = [row for row in replies if "error" in row]
    assert [row["message"] for row in failed] == [FAIL_AT] * MEMBERS
    assert all(row["error_code"] == ErrorCode.CLIENT_APP_RAISED_EXCEPTION for row in failed)
    assert all("probe: asked to fail" in row["error"] for row in failed)
    assert all(any(r["message"] > FAIL_AT and r["node"] == row["node"] for r in replies) for row in failed)


def test_tasks_are_only_given_to_the_holder_of_the_nodes_secret(federation: LocalFederation) -> None:
    address = f"{federation.spec.host}:{federation.ports['supernode-0']}"
    for secret in (None, b"not the secret"):
        with pytest.raises(httpx.HTTPStatusError) as refused:
            MemberWorker(address, auth_secret=secret)._acquire()
        assert refused.value.response.status_code in (401, 403)
    with pytest.raises(ConfigError, match="loopback"):
        MemberWorker("10.1.2.3:9094")


def test_the_worker_exits_when_its_supernode_does(federation: LocalFederation, replies: list[dict[str, Any]]) -> None:
    supernode = _supernode_pids(federation)[0]
    table = process_table()
    workers = [pid for pid, info in table.items() if info.ppid == supernode]
    assert workers, "the SuperNode has no worker child"
    os.kill(supernode, signal.SIGKILL)  # the SuperNode alone, as a crash would
    deadline = time.monotonic() + 15
    while any(pid_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(pid_alive(pid) for pid in workers), "the worker outlived its SuperNode"


def test_the_cadence_applies_to_this_flower() -> None:
    assert flower_loop_known(), "flwr's SuperNode loop changed: review fedchain.deployment.supernode"
