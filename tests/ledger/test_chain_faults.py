"""Chain faults against a real anvil node: RPC down, connections dropped, a node restarted from its state.

The coordinator retries with backoff, never pays twice (record_round is idempotent), and holds the
round on disk (``out_dir/pending``) until it is recorded.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fedchain.config import FedChainConfig
from fedchain.errors import LedgerError
from fedchain.ledger import Web3Ledger, connect
from fedchain.recording import Recorder
from fedchain.types import record_from_json
from tests.anvil import ANVIL_KEY_0, free_port, start_anvil, stop_anvil

from .helpers import member_addresses, next_record

pytestmark = [pytest.mark.integration]


class DroppingProxy:
    """A loopback TCP proxy that closes the first ``drop`` connections, then forwards to ``target``."""

    def __init__(self, target_port: int, drop: int) -> None:
        self.target_port = target_port
        self.remaining_drops = drop
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.stopped = False
        self.open_sockets: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.server.settimeout(0.2)
        while not self.stopped:
            try:
                client, _ = self.server.accept()
            except OSError:
                continue
            if self.remaining_drops > 0:
                self.remaining_drops -= 1
                client.close()
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            self.open_sockets += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self, drops: int) -> None:
        """Cut every open connection, then refuse the next ``drops`` new ones."""
        self.remaining_drops = drops
        for sock in self.open_sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self.open_sockets.clear()

    def close(self) -> None:
        self.stopped = True
        self.server.close()
        self.thread.join(timeout=2)


@pytest.fixture
def anvil(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    port, state = free_port(), tmp_path / "anvil-state.json"
    process = start_anvil(port, state)
    try:
        yield port, state
    finally:
        stop_anvil(process)


def _recorder(ledger: Web3Ledger, out_dir: Path, attempts: int) -> Recorder:
    config = FedChainConfig(
        members=3, he=False, dp=False, chain="none", out_dir=str(out_dir), chain_attempts=attempts, chain_backoff_s=0.05
    )
    return Recorder(config, ledger)


def test_dropped_connections_are_retried_and_paid_once(anvil, tmp_path):
    port, _ = anvil
    ledger = Web3Ledger.deploy(connect(f"http://127.0.0.1:{port}", private_key=ANVIL_KEY_0), timeout_s=30)
    members = member_addresses(3, seed="faults")
    ledger.register_members(members)
    record = next_record(ledger, members, [1.0, 2.0, 3.0], pool_wei=600)
    proxy = DroppingProxy(port, drop=0)
    flaky = Web3Ledger(connect(f"http://127.0.0.1:{proxy.port}", private_key=ANVIL_KEY_0), ledger.address)
    proxy.cut(drops=2)  # the live connection dies and the next two are refused as the coordinator records
    try:
        receipt = _recorder(flaky, tmp_path, attempts=5).record_with_retries(record)
    finally:
        proxy.close()
    assert proxy.remaining_drops == 0  # the faults really happened
    assert sorted(receipt.rewards_wei.values()) == [100, 200, 300]
    assert ledger.total_supply() == 600  # paid exactly once
    assert not list((tmp_path / "pending").glob("*.json"))


def test_rpc_down_gives_a_clear_error_and_the_round_is_held_until_recorded(tmp_path):
    port, state = free_port(), tmp_path / "anvil-state.json"
    process = start_anvil(port, state)
    try:
        url = f"http://127.0.0.1:{port}"
        ledger = Web3Ledger.deploy(connect(url, private_key=ANVIL_KEY_0), timeout_s=30)
        members = member_addresses(3, seed="down")
        ledger.register_members(members)
        record = next_record(ledger, members, [1.0, 1.0, 2.0], pool_wei=400)
    finally:
        stop_anvil(process)  # the node goes down (its state is saved)

    recorder = _recorder(ledger, tmp_path, attempts=3)
    started = time.monotonic()
    with pytest.raises(LedgerError) as info:
        recorder.record_with_retries(record)
    assert "round 1 was not recorded after 3 attempts" in str(info.value)
    assert time.monotonic() - started >= 0.05 + 0.1  # backoff: 0.05 s then 0.1 s
    held = tmp_path / "pending" / "round-1.json"
    assert str(held) in str(info.value)
    assert record_from_json(json.loads(held.read_text())) == record

    process = start_anvil(port, state)  # the node comes back with its state
    try:
        revived = Web3Ledger(connect(url, private_key=ANVIL_KEY_0), ledger.address)
        receipt = _recorder(revived, tmp_path, attempts=3).record_with_retries(
            record_from_json(json.loads(held.read_text()))
        )
        assert sorted(receipt.rewards_wei.values()) == [100, 100, 200]
        assert revived.last_round() == 1 and revived.total_supply() == 400
        assert not held.exists()
    finally:
        stop_anvil(process)
