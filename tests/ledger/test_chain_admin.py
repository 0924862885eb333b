"""``fedchain chain`` (admins) and ``fedchain member claim`` (members) against a real anvil node.

The member's tokens are checked with a generic ERC-20 client: the standard ABI written here, nothing
of fedchain's, as a wallet or block explorer would see them.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account
from typer.testing import CliRunner
from web3 import HTTPProvider, Web3

from fedchain.cli import app
from fedchain.deployment.chain import fund
from fedchain.ledger import Web3Ledger, connect
from fedchain.ledger.admin import ADMIN_KEY_ENV, ChainAdmin, MissingRoleError, UnfundedAccountError
from fedchain.member_status import member_status
from fedchain.types import ZERO_HASH, MemberRoundRecord, RoundRecord
from tests.anvil import ANVIL_KEY_0, ANVIL_KEY_1, ANVIL_KEY_2, running_anvil

pytestmark = pytest.mark.integration


# The standard ERC-20 ABI (EIP-20): balanceOf, symbol, decimals, totalSupply and the Transfer event.
ERC20_ABI = [
    {
        "type": "function",
        "name": "balanceOf",
        "stateMutability": "view",
        "inputs": [{"name": "owner", "type": "address"}],
        "outputs": [{"name": "", "type": "uint256"}],
    },
    {"type": "function", "name": "symbol", "stateMutability": "view", "inputs": [], "outputs": [{"type": "string"}]},
    {"type": "function", "name": "decimals", "stateMutability": "view", "inputs": [], "outputs": [{"type": "uint8"}]},
    {
        "type": "function",
        "name": "totalSupply",
        "stateMutability": "view",
        "inputs": [],
        "outputs": [{"type": "uint256"}],
    },
    {
        "type": "event",
        "name": "Transfer",
        "anonymous": False,
        "inputs": [
            {"indexed": True, "name": "from", "type": "address"},
            {"indexed": True, "name": "to", "type": "address"},
            {"indexed": False, "name": "value", "type": "uint256"},
        ],
    },
]

runner = CliRunner()


@pytest.fixture(scope="module")
def anvil_url() -> Iterator[str]:
    with running_anvil() as url:
        yield url


def _cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), env=env or {}, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def _admin_env(key: str = ANVIL_KEY_0) -> dict[str, str]:
    return {ADMIN_KEY_ENV: key, "FEDCHAIN_PRIVATE_KEY": "", "FEDCHAIN_KEYSTORE": "", "FEDCHAIN_ADMIN_KEYSTORE": ""}


def test_chain_commands_deploy_register_budgets_roles_and_refuse_clearly(anvil_url):
    admin = Account.from_key(ANVIL_KEY_0).address
    coordinator = Account.from_key(ANVIL_KEY_1).address
    treasury = Account.from_key(ANVIL_KEY_2).address
    env = _admin_env()
    a, b, c = (Account.create().address for _ in range(3))

    # A wrong chain id is refused before anything is sent.
    code, _, err = _cli("chain", "deploy", "--rpc", anvil_url, "--chain-id", "1", env=env)
    assert code == 1
    assert "chain id 31337, not the expected chain id 1" in err

    code, out, err = _cli(
        "chain", "deploy", "--rpc", anvil_url, "--recorder", coordinator, "--dry-run", "--json", env=env
    )
    assert code == 0, err
    estimate = json.loads(out)
    assert estimate["dry_run"] and estimate["gas"] > 1_000_000 and not estimate["changed"]

    code, out, err = _cli(
        "chain", "deploy", "--rpc", anvil_url, "--chain-id", "31337", "--recorder", coordinator, "--json", env=env
    )
    assert code == 0, err
    deployed = json.loads(out)
    ledger = deployed["details"]["ledger"]
    assert deployed["changed"] and deployed["tx_hash"] and deployed["details"]["recorder"] == coordinator
    common = ("--rpc", anvil_url, "--ledger", ledger)

    code, out, _ = _cli("chain", "register", a, b, *common, env=env)
    assert code == 0 and "registered 2 member(s)" in out
    code, out, _ = _cli("chain", "register", a, *common, env=env)
    assert code == 0 and "1 member(s) already registered: nothing to do" in out
    code, out, _ = _cli("chain", "register", a, c, *common, "--dry-run", "--json", env=env)
    dry = json.loads(out)
    assert code == 0 and dry["dry_run"] and dry["gas"] > 21_000 and dry["details"]["registered"] == [c]
    reader = Web3Ledger(connect(anvil_url, private_key=ANVIL_KEY_0), ledger)
    assert not reader.is_registered(c)  # a dry run sends nothing

    code, out, _ = _cli("chain", "budgets", a, b, "--epsilon", "8", "--delta", "1e-5", *common, env=env)
    assert code == 0 and "set the privacy budget of 2 member(s)" in out
    code, out, _ = _cli("chain", "budgets", a, "--epsilon", "8", "--delta", "1e-5", *common, env=env)
    assert code == 0 and "nothing to do" in out
    code, _, err = _cli("chain", "budgets", a, "--epsilon", "4", *common, env=env)
    assert code == 2 and "already on chain (epsilon 8" in err
    assert reader.privacy_budget(a) == (8.0, 1e-5)

    code, out, _ = _cli("chain", "treasury", treasury, *common, env=env)
    assert code == 0 and f"to {treasury}" in out
    code, out, _ = _cli("chain", "treasury", *common)
    assert out.strip() == treasury

    code, out, _ = _cli("chain", "roles", "show", *common, "--json")
    assert code == 0
    assert json.loads(out) == {"DEFAULT_ADMIN_ROLE": [admin], "RECORDER_ROLE": [coordinator]}

    # The coordinator's key holds only RECORDER_ROLE: admin work names the missing role and the address.
    code, _, err = _cli("chain", "register", c, *common, env=_admin_env(ANVIL_KEY_1))
    assert code == 1
    assert "needs DEFAULT_ADMIN_ROLE" in err and coordinator in err

    # An unfunded admin key is named with its balance.
    poor = Account.create()
    code, _, _ = _cli("chain", "roles", "grant", "DEFAULT_ADMIN_ROLE", poor.address, *common, env=env)
    assert code == 0
    code, _, err = _cli("chain", "deregister", b, *common, env=_admin_env("0x" + bytes(poor.key).hex()))
    assert code == 1
    assert f"account {poor.address} cannot pay for deregister: it holds 0 wei" in err
    code, out, _ = _cli("chain", "roles", "revoke", "admin", poor.address, *common, env=env)
    assert code == 0 and "DEFAULT_ADMIN_ROLE revoked" in out
    code, out, _ = _cli("chain", "roles", "revoke", "DEFAULT_ADMIN_ROLE", poor.address, *common, env=env)
    assert code == 0 and "does not hold DEFAULT_ADMIN_ROLE: nothing to do" in out

    code, out, _ = _cli("chain", "deregister", b, *common, env=env)
    assert code == 0 and "deregistered 1 member(s)" in out
    code, out, _ = _cli("chain", "show", *common, "--json")
    shown = json.loads(out)
    assert [m["address"] for m in shown["members"]] == [a]
    assert shown["treasury"] == treasury and shown["chain_id"] == 31337
    assert shown["roles"]["RECORDER_ROLE"] == [coordinator]

    # No key at all: the error names where a key may come from (never a command-line key).
    code, _, err = _cli("chain", "register", c, *common, env=_admin_env(""))
    assert code == 2 and "$FEDCHAIN_ADMIN_PRIVATE_KEY" in err


def test_admin_errors_carry_role_address_and_funds(anvil_url):
    chain = connect(anvil_url, private_key=ANVIL_KEY_0)
    deployed = ChainAdmin.deploy(chain, recorder=Account.from_key(ANVIL_KEY_1).address).admin
    assert deployed is not None
    outsider = ChainAdmin.attach(connect(anvil_url, private_key=ANVIL_KEY_1), deployed.ledger.address)
    with pytest.raises(MissingRoleError) as missing:
        outsider.set_treasury(Account.create().address)
    assert (missing.value.role, missing.value.address) == ("DEFAULT_ADMIN_ROLE", outsider.chain.address)
    poor = connect(anvil_url, private_key="0x" + secrets.token_hex(32))
    with pytest.raises(UnfundedAccountError) as unfunded:
        ChainAdmin.deploy(poor)
    assert unfunded.value.balance_wei == 0 and unfunded.value.needed_wei > 0


def _keystore(tmp_path: Path, password: str) -> tuple[Path, str]:
    account = Account.create()
    path = tmp_path / "wallet.json"
    path.write_text(json.dumps(Account.encrypt(account.key, password)))
    return path, account.address


def test_member_claims_its_rewards_into_an_erc20_balance(anvil_url, tmp_path):
    wallet, member = _keystore(tmp_path, "s3cret")
    chain = connect(anvil_url, private_key=ANVIL_KEY_0)
    admin = ChainAdmin.deploy(chain).admin
    assert admin is not None
    admin.register([member])
    ledger = admin.ledger
    pool = 3 * 10**18
    ledger.record_round(
        RoundRecord(
            server_round=1,
            aggregate_hash="01" * 32,
            model_hash="02" * 32,
            previous_model_hash=ZERO_HASH,
            reward_pool_wei=pool,
            members=(MemberRoundRecord(member, 1.0),),
        )
    )

    # What any wallet sees: the generic ERC-20 client, knowing only the token address.
    w3 = Web3(HTTPProvider(anvil_url))
    token = w3.eth.contract(address=ledger.token_address, abi=ERC20_ABI)
    assert token.functions.balanceOf(member).call() == 0
    assert token.functions.symbol().call() == "FED" and token.functions.decimals().call() == 18

    env = {"FEDCHAIN_WALLET_PASSWORD": "s3cret"}
    common = ("--wallet-keystore", str(wallet), "--rpc", anvil_url, "--ledger", ledger.address)
    # The member has no gas money yet: the error says so and names it.
    code, _, err = _cli("member", "claim", *common, env=env)
    assert code == 1 and f"account {member} cannot pay for claim" in err

    fund(chain, member, 10**17)
    code, out, _ = _cli("member", "claim", *common, "--dry-run", "--json", env=env)
    assert code == 0 and json.loads(out)["dry_run"] and token.functions.balanceOf(member).call() == 0

    code, out, err = _cli("member", "claim", *common, env=env)
    assert code == 0, err
    assert "claimed 3.000000 FED" in out and "ERC-20 balance: 3.000000 FED" in out
    assert token.functions.balanceOf(member).call() == pool
    transfers = token.events.Transfer().get_logs(from_block=0)
    assert any(t["args"]["to"] == member and t["args"]["value"] == pool for t in transfers)

    code, out, _ = _cli("member", "claim", *common, "--json", env=env)
    again = json.loads(out)
    assert code == 0 and again["amount_wei"] == "0" and again["token_balance_wei"] == str(pool)

    # member status shows the ERC-20 balance and what is still claimable, apart.
    state = tmp_path / "state"
    state.mkdir()
    status = member_status(state, ledger=ledger, address=member)
    assert status.chain is not None
    assert (status.chain.token_balance_wei, status.chain.claimable_wei) == (pool, 0)
    code, out, _ = _cli(
        "member",
        "status",
        "--state-dir",
        str(state),
        "--rpc",
        anvil_url,
        "--ledger",
        ledger.address,
        "--address",
        member,
    )
    assert code == 0 and "ERC-20 balance (FED)" in out and "claimable (FED)" in out

    # A wrong password is one line naming the variable, never a traceback.
    code, _, err = _cli("member", "claim", *common, env={"FEDCHAIN_WALLET_PASSWORD": "wrong"})
    assert code == 2 and "FEDCHAIN_WALLET_PASSWORD" in err
