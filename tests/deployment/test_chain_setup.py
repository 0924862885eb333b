"""The deployment chain on a real anvil: ledger deployed, coordinator funded as recorder, wallets registered."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fedchain.deployment import ANVIL_DEV_KEY, ProcessSupervisor, anvil_binary, setup_ledger
from fedchain.deployment.chain import anvil_command
from fedchain.deployment.launcher import free_ports
from fedchain.errors import TransactionError
from fedchain.provision import ProvisionedFederation, read_wallet
from fedchain.types import ZERO_HASH, MemberRoundRecord, RoundRecord

pytestmark = [pytest.mark.integration]


@pytest.fixture(scope="module")
def anvil_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = anvil_binary()
    if binary is None:
        pytest.skip("anvil is not installed: run `make node` (npm @foundry-rs/anvil 1.7.1)")
    port = free_ports(1)[0]
    supervisor = ProcessSupervisor()
    logs = tmp_path_factory.mktemp("anvil")
    record = supervisor.start("anvil", anvil_command(binary, host="127.0.0.1", port=port), log_path=logs / "a.log")
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert supervisor.is_running(record) and time.monotonic() < deadline, Path(record.log_path).read_text()
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        supervisor.stop_all()


def test_setup_ledger_registers_wallets_and_lets_the_coordinator_record(
    anvil_url: str, provisioned: ProvisionedFederation
) -> None:
    from fedchain.ledger import Web3Ledger, connect

    setup = setup_ledger(anvil_url, provisioned, admin_key=ANVIL_DEV_KEY)
    members = [bundle.address for bundle in provisioned.members]
    assert setup.members == tuple(members)
    assert setup.recorder_address == provisioned.coordinator_address
    assert setup.chain_id == 31337
    assert "0xac0974" not in repr(setup.to_dict())  # addresses only

    # The coordinator signs with its provisioned wallet (as the ServerApp does from FEDCHAIN_KEYSTORE).
    coordinator = read_wallet(provisioned.coordinator_keystore)
    chain = connect(anvil_url, private_key=coordinator.key.hex())
    assert chain.w3.eth.get_balance(coordinator.address) > 0  # funded for gas
    ledger = Web3Ledger(chain, setup.ledger_address)
    assert all(ledger.is_registered(address) for address in members)
    record = RoundRecord(
        server_round=1,
        aggregate_hash="11" * 32,
        model_hash="22" * 32,
        previous_model_hash=ZERO_HASH,
        members=tuple(MemberRoundRecord(address, 1.0) for address in members),
        reward_pool_wei=3 * 10**18,
    )
    receipt = ledger.record_round(record)
    assert receipt.rewards_wei == dict.fromkeys(members, 10**18)

    # The admin registered the wallets but is not the recorder; an unregistered address is refused.
    admin_view = Web3Ledger(connect(anvil_url, private_key=ANVIL_DEV_KEY), setup.ledger_address)
    assert admin_view.last_round() == 1
    stranger = "0x" + "77" * 20
    with pytest.raises(TransactionError) as info:
        ledger.record_round(
            RoundRecord(
                server_round=2,
                aggregate_hash="33" * 32,
                model_hash="44" * 32,
                previous_model_hash="22" * 32,
                members=(MemberRoundRecord(stranger, 1.0),),
                reward_pool_wei=1,
            )
        )
    assert info.value.reason is not None and info.value.reason.startswith("UnregisteredMember")
