"""The deployment's chain: a local anvil node, the ledger deployed on it, members registered.

anvil comes from the npm package ``@foundry-rs/anvil`` (``contracts/node_modules``; ``make
node`` installs it) or the ``PATH``; the launcher starts the native binary itself, so the PID it
records is anvil's. :func:`setup_ledger` works with any JSON-RPC chain: the admin key deploys
``ContributionLedger`` (and its token) with the provisioned coordinator wallet as recorder,
funds that wallet for gas, and registers every member's provisioned wallet address.

Example::

    info = setup_ledger("http://127.0.0.1:8545", federation, admin_key=ANVIL_DEV_KEY)
    info.ledger_address
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedchain.errors import LedgerError

__all__ = [
    "ANVIL_CHAIN_ID",
    "ANVIL_DEV_KEY",
    "ChainSetup",
    "anvil_binary",
    "anvil_command",
    "fund",
    "run_privacy_budget",
    "setup_ledger",
]

log = logging.getLogger(__name__)

#: anvil's first default account: a public, well-known development key (never holds real funds).
ANVIL_DEV_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
ANVIL_CHAIN_ID = 31337
#: Gas money given to the coordinator wallet on a development chain (1 ETH).
COORDINATOR_FUNDING_WEI = 10**18


@dataclass(frozen=True)
class ChainSetup:
    """What :func:`setup_ledger` deployed.

    Attributes:
        rpc_url: the chain's JSON-RPC URL.
        chain_id: its chain id.
        ledger_address: the ``ContributionLedger``.
        token_address: its ``FedToken``.
        admin_address: the account that deployed it and registers members.
        recorder_address: the coordinator wallet allowed to record rounds.
        members: the registered member addresses, by member id.
    """

    rpc_url: str
    chain_id: int
    ledger_address: str
    token_address: str
    admin_address: str
    recorder_address: str
    members: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (addresses only; no key)."""
        return {
            "rpc_url": self.rpc_url,
            "chain_id": self.chain_id,
            "ledger_address": self.ledger_address,
            "token_address": self.token_address,
            "admin_address": self.admin_address,
            "recorder_address": self.recorder_address,
            "members": list(self.members),
        }


def anvil_binary(app_dir: Path | None = None) -> Path | None:
    """The native anvil executable: ``$FEDCHAIN_ANVIL``, the npm package under ``contracts/``, or ``PATH``.

    The npm package's ``bin.mjs`` is a Node wrapper; the native binary sits in the platform
    package (``@foundry-rs/anvil-<os>-<arch>/bin/anvil``).
    """
    override = os.environ.get("FEDCHAIN_ANVIL")
    if override:
        return Path(override)
    roots = [app_dir] if app_dir is not None else []
    roots.append(Path(__file__).resolve().parents[2])
    for root in roots:
        found = sorted((root / "contracts" / "node_modules" / "@foundry-rs").glob("anvil-*/bin/anvil"))
        if found:
            return found[0]
    which = shutil.which("anvil")
    return Path(which) if which else None


def anvil_command(binary: Path, *, host: str, port: int, state: Path | None = None) -> list[str]:
    """Anvil on ``host:port`` with its deterministic development accounts.

    ``state``: a JSON file anvil loads its chain from at start (if it exists) and writes it to on
    exit (``--state``), so a stopped anvil comes back with every block and balance.
    """
    command = [str(binary), "--host", host, "--port", str(port)]
    if state is not None:
        command += ["--state", str(state)]
    return command


def fund(chain: Any, address: str, wei: int, *, timeout_s: float = 60.0) -> str:
    """Send ``wei`` from the chain's account to ``address``; return the transaction hash.

    Raises:
        LedgerError: the transfer failed.
    """
    w3 = chain.w3
    tx = {
        "to": w3.to_checksum_address(address),
        "value": int(wei),
        "gas": 21_000,
        "gasPrice": int(w3.eth.gas_price),
        "nonce": w3.eth.get_transaction_count(chain.address, "pending"),
        "chainId": chain.chain_id,
    }
    signed = chain.account.sign_transaction(tx)
    tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=timeout_s, poll_latency=0.05)
    if int(receipt["status"]) != 1:
        raise LedgerError(f"funding {address} failed (tx {tx_hash.hex()})")
    return "0x" + bytes(tx_hash).hex().removeprefix("0x")


def run_privacy_budget(run_config: Mapping[str, Any]) -> tuple[float, float] | None:
    """Every member's lifetime budget ``(epsilon, delta)`` under a run config, None without DP.

    Keys the run config leaves out take fedchain's defaults (the app's run config declares the same).

    Example:
        >>> run_privacy_budget({"epsilon": 3.0})
        (3.0, 1e-05)
        >>> run_privacy_budget({"dp": False}) is None
        True
    """
    from fedchain.config import FedChainConfig

    config = FedChainConfig.from_run_config(dict(run_config))
    return (config.epsilon, config.delta) if config.dp else None


def setup_ledger(
    rpc_url: str,
    federation: Any,
    *,
    admin_key: str,
    coordinator_funding_wei: int = COORDINATOR_FUNDING_WEI,
    timeout_s: float = 60.0,
    privacy_budget: tuple[float, float] | None = None,
) -> ChainSetup:
    """Deploy the ledger, fund the coordinator wallet and register the members' wallets.

    With DP on, pass the run's ``privacy_budget=(epsilon, delta)``: it is recorded on chain as every
    member's lifetime budget right after registration (once; an auditor judges privacy spend by it).

    Args:
        rpc_url: the chain's JSON-RPC URL.
        federation: a :class:`~fedchain.provision.ProvisionedFederation`.
        admin_key: hex key of a funded account that becomes the ledger's admin (never logged).
        coordinator_funding_wei: ETH sent to the coordinator wallet for gas (0: none).
        timeout_s: receipt timeout of each transaction.
        privacy_budget: every member's ``(epsilon, delta)`` when the federation trains with DP
            (``FedChainConfig.epsilon`` / ``.delta``); None records no budgets (DP off).

    Returns:
        The addresses deployed and registered.

    Raises:
        ConfigError: ``privacy_budget`` is out of range (epsilon in (0, inf), delta in (0, 1)).
        LedgerError: the chain refused a transaction.
    """
    from fedchain.ledger import connect
    from fedchain.ledger.admin import setup_federation_ledger
    from fedchain.ledger.fixedpoint import budget_to_fixed

    if privacy_budget is not None:  # validated before anything is sent
        budget_to_fixed(*privacy_budget, name="privacy_budget")
    chain = connect(rpc_url, private_key=admin_key)
    if coordinator_funding_wei:
        fund(chain, federation.coordinator_address, coordinator_funding_wei, timeout_s=timeout_s)
    members = tuple(bundle.address for bundle in federation.members)
    # The same code as `fedchain chain deploy/register/budgets`: the admin keeps DEFAULT_ADMIN_ROLE,
    # the coordinator wallet gets RECORDER_ROLE only.
    ledger = setup_federation_ledger(
        chain,
        recorder=federation.coordinator_address,
        members=members,
        privacy_budget=privacy_budget,
        timeout_s=timeout_s,
    ).ledger
    log.info("ledger %s on %s: %d members registered", ledger.address, rpc_url, len(members))
    return ChainSetup(
        rpc_url=rpc_url,
        chain_id=chain.chain_id,
        ledger_address=ledger.address,
        token_address=ledger.token_address,
        admin_address=chain.address,
        recorder_address=federation.coordinator_address,
        members=members,
    )
