"""Administering a ledger on any JSON-RPC chain: deploy, members, budgets, treasury, roles and claims.

``fedchain chain`` (admins), ``fedchain member claim`` (members), the local launcher and
``fedchain run --chain URL`` all go through this module, so they behave the same:

* every write is **idempotent where that makes sense**: registering a registered member,
  granting a role already held, setting a budget to the value it has, or a treasury to the current
  one sends nothing and says so (:attr:`AdminAction.changed` is False);
* a **dry run** estimates gas and cost without sending (:attr:`AdminAction.dry_run`);
* failures name what is wrong before anything is sent: :class:`MissingRoleError` (the role and
  the address lacking it), :class:`UnfundedAccountError` (the address, its balance and the cost),
  :class:`ChainIdMismatchError` (the chain id expected and the one the node reports);
* keys come only from encrypted keystores or the environment (:func:`signer_chain`), never from a
  command-line argument, and are never logged.

Errors (all :class:`~fedchain.errors.LedgerError`)::

    LedgerError
    ├── ChainIdMismatchError     the node is not on the chain the admin expected
    ├── UnfundedAccountError     the signing account cannot pay for the transaction
    └── MissingRoleError         the signing account lacks the contract role the call needs

Example:
    >>> from fedchain.ledger import connect
    >>> chain = connect("embedded")
    >>> admin = ChainAdmin.deploy(chain).admin
    >>> member = "0x" + "11" * 20
    >>> admin.register([member]).changed, admin.register([member]).changed
    (True, False)
    >>> admin.register([member]).message
    '1 member(s) already registered: nothing to do'
    >>> sorted(admin.role_holders())
    ['DEFAULT_ADMIN_ROLE', 'RECORDER_ROLE']
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

from eth_utils import to_checksum_address
from hexbytes import HexBytes
from web3.exceptions import ContractCustomError, ContractLogicError, ContractPanicError

from fedchain.errors import (
    ChainIdMismatchError,
    ConfigError,
    LedgerError,
    MissingRoleError,
    TransactionError,
    UnfundedAccountError,
)
from fedchain.ledger._abi import ContractAbi, load_artifact
from fedchain.ledger.chain import KEY_ENV, KEYSTORE_ENV, KEYSTORE_PASSWORD_ENV, Chain, connect
from fedchain.ledger.fixedpoint import budget_to_fixed, fixed_to_budget
from fedchain.ledger.web3_ledger import Web3Ledger

__all__ = [
    "ADMIN_KEYSTORE_ENV",
    "ADMIN_KEY_ENV",
    "DEFAULT_ADMIN_ROLE",
    "AdminAction",
    "ChainAdmin",
    "ChainIdMismatchError",
    "ClaimResult",
    "DeployResult",
    "MissingRoleError",
    "UnfundedAccountError",
    "claim",
    "ensure_funded",
    "setup_federation_ledger",
    "signer_chain",
]

logger = logging.getLogger(__name__)

#: Environment variables naming the admin's key (tried before the generic ``FEDCHAIN_*`` ones).
ADMIN_KEY_ENV = "FEDCHAIN_ADMIN_PRIVATE_KEY"
ADMIN_KEYSTORE_ENV = "FEDCHAIN_ADMIN_KEYSTORE"
DEFAULT_ADMIN_ROLE = "DEFAULT_ADMIN_ROLE"

try:  # the embedded chain reverts with eth-tester's exception
    from eth_tester.exceptions import TransactionFailed

    _REVERTS: tuple[type[BaseException], ...] = (
        ContractCustomError,
        ContractLogicError,
        ContractPanicError,
        TransactionFailed,
    )
except ImportError:  # pragma: no cover - eth-tester is a dependency
    _REVERTS = (ContractCustomError, ContractLogicError, ContractPanicError)


# ---- errors ----------------------------------------------------------------------------------


# ---- results ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class AdminAction:
    """The outcome of one administrative operation.

    Attributes:
        action: what was asked, e.g. ``"register"``.
        changed: whether the chain changed (False: nothing to do, or a dry run).
        message: one human sentence.
        dry_run: True when nothing was sent (the gas figures are estimates).
        gas: gas used (sent) or estimated (dry run); None when nothing was to be done.
        cost_wei: estimated cost at the node's gas price (dry run) or the fee paid.
        tx_hash: the transaction, when one was sent.
        details: the addresses or values concerned.
    """

    action: str
    changed: bool
    message: str
    dry_run: bool = False
    gas: int | None = None
    cost_wei: int | None = None
    tx_hash: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (wei as decimal strings)."""
        data = asdict(self)
        if self.cost_wei is not None:
            data["cost_wei"] = str(self.cost_wei)
        return data


@dataclass(frozen=True)
class DeployResult:
    """What :meth:`ChainAdmin.deploy` did: the action, and the admin of the new ledger (None on a dry run)."""

    action: AdminAction
    admin: ChainAdmin | None


@dataclass(frozen=True)
class ClaimResult:
    """What :func:`claim` moved.

    Attributes:
        member: the claiming address.
        amount_wei: credit moved into its ERC-20 balance (0: nothing was claimable).
        token_balance_wei: its ERC-20 balance afterwards (before, on a dry run).
        claimable_wei: credit left unclaimed (0 after a claim).
        action: the transaction details.
        symbol: the token's ERC-20 symbol.
    """

    member: str
    amount_wei: int
    token_balance_wei: int
    claimable_wei: int
    action: AdminAction
    symbol: str = "FED"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (wei as decimal strings)."""
        return {
            "member": self.member,
            "amount_wei": str(self.amount_wei),
            "token_balance_wei": str(self.token_balance_wei),
            "claimable_wei": str(self.claimable_wei),
            "symbol": self.symbol,
            **{k: v for k, v in self.action.to_dict().items() if k in ("dry_run", "gas", "cost_wei", "tx_hash")},
        }


# ---- keys and chains -------------------------------------------------------------------------


def signer_chain(
    target: str,
    *,
    keystore: str | Path | None = None,
    key_env: str | None = None,
    keystore_env: str | None = None,
    password_env: str = KEYSTORE_PASSWORD_ENV,
    expected_chain_id: int | None = None,
    generic_fallback: bool = True,
) -> Chain:
    """Connect to ``target`` with a key from a keystore or the environment only.

    The key is, in order: ``keystore`` (password in ``$password_env``), ``$keystore_env``,
    ``$key_env``, then (with ``generic_fallback``) :func:`~fedchain.ledger.connect`'s
    ``$FEDCHAIN_KEYSTORE`` / ``$FEDCHAIN_PRIVATE_KEY``.

    Raises:
        ConfigError: no key is available, or a keystore cannot be opened.
        ChainIdMismatchError: ``expected_chain_id`` is given and the node reports another.
        LedgerError: no node answers.
    """
    password = os.environ.get(password_env)
    if keystore is not None:
        chain = connect(target, keystore=keystore, password=password)
    elif keystore_env and os.environ.get(keystore_env):
        chain = connect(target, keystore=os.environ[keystore_env], password=password)
    elif key_env and os.environ.get(key_env):
        chain = connect(target, private_key=os.environ[key_env])
    elif target != "embedded" and not (generic_fallback and (os.environ.get(KEY_ENV) or os.environ.get(KEYSTORE_ENV))):
        names = [f"${n}" for n in (keystore_env, key_env) if n]
        names += [f"${KEYSTORE_ENV}", f"${KEY_ENV}"] if generic_fallback else []
        raise ConfigError("keystore", f"given, or a key named by {', '.join(names)}", None)
    else:
        chain = connect(target, password=password)
    check_chain_id(chain, expected_chain_id)
    return chain


def check_chain_id(chain: Chain, expected: int | None) -> None:
    """Raise :class:`ChainIdMismatchError` when ``expected`` is given and differs from the node's."""
    if expected is not None and int(chain.chain_id) != int(expected):
        raise ChainIdMismatchError(int(expected), int(chain.chain_id), chain.target)


def ensure_funded(chain: Chain, address: str, what: str, *, minimum_wei: int = 1) -> int:
    """The account's balance; :class:`UnfundedAccountError` when it is below ``minimum_wei``."""
    balance = int(chain.w3.eth.get_balance(to_checksum_address(address)))
    if balance < minimum_wei:
        raise UnfundedAccountError(to_checksum_address(address), balance, minimum_wei, what)
    return balance


def _address(value: str, name: str) -> str:
    try:
        return str(to_checksum_address(value))
    except (TypeError, ValueError):
        raise ConfigError(name, "a 20-byte hex address", value) from None


def _unique(addresses: Sequence[str], name: str) -> list[str]:
    seen: dict[str, None] = {}
    for value in addresses:
        seen.setdefault(_address(value, name), None)
    if not seen:
        raise ConfigError(name, "at least one address", list(addresses))
    return list(seen)


def _transact(
    chain: Chain, abi: ContractAbi, call: Any, what: str, *, dry_run: bool, timeout_s: float
) -> tuple[int, int, str | None]:
    """Estimate, check funds, then (unless ``dry_run``) send: ``(gas, cost_wei, tx_hash)``."""
    w3 = chain.w3
    sender = to_checksum_address(chain.address)
    try:
        gas = int(call.estimate_gas({"from": sender}))
    except _REVERTS as exc:
        raise TransactionError(f"{what} would revert", reason=abi.revert_reason(exc)) from exc
    gas_price = int(w3.eth.gas_price)
    cost = gas * gas_price
    balance = int(w3.eth.get_balance(sender))
    if balance < cost or (balance == 0 and not chain.is_embedded):
        raise UnfundedAccountError(sender, balance, cost, what)
    if dry_run:
        return gas, cost, None
    from fedchain.ledger.web3_ledger import _send

    receipt = _send(chain, abi, call, what, timeout_s)
    used = int(receipt["gasUsed"])
    price = int(receipt.get("effectiveGasPrice", gas_price) or gas_price)
    tx_hash = receipt["transactionHash"]
    tx_hex = tx_hash if isinstance(tx_hash, str) else "0x" + bytes(tx_hash).hex()
    return used, used * price, tx_hex


# ---- the admin -------------------------------------------------------------------------------


class ChainAdmin:
    """Administrative operations over a :class:`~fedchain.ledger.Web3Ledger` (signing with its chain's key).

    Args:
        ledger: the ledger, connected with the signing account.
        timeout_s: receipt timeout of each transaction.
    """

    def __init__(self, ledger: Web3Ledger, *, timeout_s: float = 120.0) -> None:
        self.ledger = ledger
        self.chain = ledger.chain
        self.timeout_s = float(timeout_s)
        self._abi = ContractAbi.fedchain()
        self._roles: dict[str, bytes] | None = None

    @classmethod
    def attach(
        cls, chain: Chain, ledger_address: str, *, expected_chain_id: int | None = None, timeout_s: float = 120.0
    ) -> ChainAdmin:
        """The admin of the ledger at ``ledger_address`` (checks the chain id first)."""
        check_chain_id(chain, expected_chain_id)
        return cls(Web3Ledger(chain, _address(ledger_address, "ledger"), timeout_s=timeout_s), timeout_s=timeout_s)

    @classmethod
    def deploy(
        cls,
        chain: Chain,
        *,
        recorder: str | None = None,
        treasury: str | None = None,
        token_name: str = "FedChain Token",
        token_symbol: str = "FED",
        dry_run: bool = False,
        timeout_s: float = 120.0,
    ) -> DeployResult:
        """Deploy a ``ContributionLedger`` (and its ``FedToken``) with the chain's account as admin.

        Args:
            chain: the chain; its account becomes ``DEFAULT_ADMIN_ROLE``.
            recorder: the coordinator's address, given ``RECORDER_ROLE`` (default: the admin).
            treasury: receives each round's remainder (default: the admin).
            token_name: ERC-20 name.
            token_symbol: ERC-20 symbol.
            dry_run: estimate gas and cost only.
            timeout_s: receipt timeout.

        Raises:
            UnfundedAccountError: the admin cannot pay for the deployment.
            TransactionError: the deployment reverted.
        """
        admin = chain.address
        recorder = _address(recorder or admin, "recorder")
        treasury = _address(treasury or admin, "treasury")
        artifact = load_artifact("ContributionLedger")
        factory = chain.w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
        constructor = factory.constructor(admin, recorder, treasury, token_name, token_symbol)
        details: dict[str, Any] = {
            "chain_id": chain.chain_id,
            "admin": admin,
            "recorder": recorder,
            "treasury": treasury,
            "token_symbol": token_symbol,
        }
        abi = ContractAbi.fedchain()
        if dry_run:
            gas, cost, _ = _transact(chain, abi, constructor, "deploy ContributionLedger", dry_run=True, timeout_s=0)
            action = AdminAction(
                "deploy", False, f"deploying would use about {gas} gas", True, gas, cost, None, details
            )
            return DeployResult(action, None)
        _transact(chain, abi, constructor, "deploy ContributionLedger", dry_run=True, timeout_s=0)  # funds, reverts
        ledger = Web3Ledger.deploy(
            chain,
            recorder=recorder,
            treasury=treasury,
            token_name=token_name,
            token_symbol=token_symbol,
            timeout_s=timeout_s,
        )
        receipt = _deploy_receipt(ledger)
        details.update(ledger=ledger.address, token=ledger.token_address, block=ledger.deploy_block)
        action = AdminAction(
            "deploy",
            True,
            f"deployed ContributionLedger {ledger.address} (token {ledger.token_address}) on chain {chain.chain_id}",
            False,
            receipt[0],
            receipt[1],
            receipt[2],
            details,
        )
        return DeployResult(action, cls(ledger, timeout_s=timeout_s))

    # ---- roles ---------------------------------------------------------------------------------

    def roles(self) -> dict[str, bytes]:
        """Every role the contract declares (its ``*_ROLE`` constants), name to id."""
        if self._roles is None:
            abi: list[dict[str, Any]] = [dict(item) for item in self.ledger.ledger_contract.abi]
            names = [
                str(item["name"])
                for item in abi
                if item.get("type") == "function"
                and str(item.get("name", "")).endswith("_ROLE")
                and not item.get("inputs")
            ]
            functions = self.ledger.ledger_contract.functions
            self._roles = {name: bytes(getattr(functions, name)().call()) for name in sorted(names)}
        return self._roles

    def _role_id(self, role: str) -> bytes:
        roles = self.roles()
        name = role.upper()
        name = next((n for n in (name, f"{name}_ROLE", f"DEFAULT_{name}_ROLE") if n in roles), name)
        if name not in roles:
            raise ConfigError("role", f"one of {', '.join(roles)}", role)
        return roles[name]

    def _role_name(self, role: str) -> str:
        wanted = self._role_id(role)
        return next(name for name, value in self.roles().items() if value == wanted)

    def has_role(self, role: str, address: str) -> bool:
        """Whether ``address`` holds ``role`` (a name such as ``RECORDER_ROLE`` or ``recorder``)."""
        return bool(
            self.ledger.ledger_contract.functions.hasRole(self._role_id(role), _address(address, "address")).call()
        )

    def require_role(self, role: str, what: str) -> None:
        """Raise :class:`MissingRoleError` unless the signing account holds ``role``."""
        if not self.has_role(role, self.chain.address):
            raise MissingRoleError(self._role_name(role), self.chain.address, self.ledger.address, what)

    def role_holders(self) -> dict[str, list[str]]:
        """Who holds which role now, from the ``RoleGranted``/``RoleRevoked`` history (checked with ``hasRole``)."""
        contract = self.ledger.ledger_contract
        by_id = {value: name for name, value in self.roles().items()}
        candidates: dict[str, dict[str, None]] = {name: {} for name in self.roles()}
        for event in ("RoleGranted", "RoleRevoked"):
            for log in getattr(contract.events, event).get_logs(from_block=self.ledger.deploy_block):
                name = by_id.get(bytes(log["args"]["role"]))
                if name is not None:
                    candidates[name].setdefault(str(to_checksum_address(log["args"]["account"])), None)
        return {name: [a for a in accounts if self.has_role(name, a)] for name, accounts in candidates.items()}

    def grant_role(self, role: str, address: str, *, dry_run: bool = False) -> AdminAction:
        """Grant ``role`` to ``address`` (a no-op when it holds it already)."""
        return self._role_change("grant", role, address, dry_run=dry_run)

    def revoke_role(self, role: str, address: str, *, dry_run: bool = False) -> AdminAction:
        """Revoke ``role`` from ``address`` (a no-op when it does not hold it)."""
        return self._role_change("revoke", role, address, dry_run=dry_run)

    def _role_change(self, verb: str, role: str, address: str, *, dry_run: bool) -> AdminAction:
        name = self._role_name(role)
        account = _address(address, "address")
        details = {"role": name, "address": account}
        holds = self.has_role(name, account)
        if holds == (verb == "grant"):
            state = "already holds" if holds else "does not hold"
            return AdminAction(
                f"{verb}-role", False, f"{account} {state} {name}: nothing to do", dry_run, details=details
            )
        admin_role = self.ledger.ledger_contract.functions.getRoleAdmin(self._role_id(name)).call()
        admin_name = next(
            (n for n, v in self.roles().items() if v == bytes(admin_role)), "0x" + bytes(admin_role).hex()
        )
        self.require_role(admin_name, f"{verb} {name}")
        function = (
            self.ledger.ledger_contract.functions.grantRole
            if verb == "grant"
            else self.ledger.ledger_contract.functions.revokeRole
        )
        done = "granted" if verb == "grant" else "revoked"
        return self._write(
            f"{verb}-role",
            function(self._role_id(name), account),
            f"{name} {done} {'to' if verb == 'grant' else 'from'} {account}",
            details,
            dry_run,
        )

    # ---- members -------------------------------------------------------------------------------

    def register(self, addresses: Sequence[str], *, dry_run: bool = False) -> AdminAction:
        """Register members; those registered already are skipped (all of them: nothing is sent)."""
        members = _unique(addresses, "members")
        todo = [m for m in members if not self.ledger.is_registered(m)]
        skipped = [m for m in members if m not in todo]
        details = {"registered": todo, "already_registered": skipped}
        if not todo:
            return AdminAction(
                "register",
                False,
                f"{len(skipped)} member(s) already registered: nothing to do",
                dry_run,
                details=details,
            )
        self.require_role(DEFAULT_ADMIN_ROLE, "registering members")
        call = self.ledger.ledger_contract.functions.registerMembers(todo)
        note = f" ({len(skipped)} already registered)" if skipped else ""
        return self._write("register", call, f"registered {len(todo)} member(s){note}", details, dry_run)

    def deregister(self, addresses: Sequence[str], *, dry_run: bool = False) -> AdminAction:
        """Deregister members; those not registered are skipped. Their unclaimed credit stays claimable."""
        members = _unique(addresses, "members")
        todo = [m for m in members if self.ledger.is_registered(m)]
        skipped = [m for m in members if m not in todo]
        details = {"deregistered": todo, "not_registered": skipped}
        if not todo:
            return AdminAction(
                "deregister", False, f"{len(skipped)} member(s) not registered: nothing to do", dry_run, details=details
            )
        self.require_role(DEFAULT_ADMIN_ROLE, "deregistering members")
        call = self.ledger.ledger_contract.functions.deregisterMembers(todo)
        note = f" ({len(skipped)} were not registered)" if skipped else ""
        return self._write("deregister", call, f"deregistered {len(todo)} member(s){note}", details, dry_run)

    def set_budgets(self, budgets: Mapping[str, tuple[float, float]], *, dry_run: bool = False) -> AdminAction:
        """Set members' lifetime ``(epsilon, delta)`` budgets, once each.

        A member whose budget already has exactly this value is skipped; one with another value
        is an error (the contract sets a budget once), as is an unregistered member.

        Raises:
            ConfigError: a budget is out of range, differs from the one on chain, or names an
                unregistered member.
        """
        todo: dict[str, tuple[int, int]] = {}
        skipped: list[str] = []
        for raw, budget in budgets.items():
            member = _address(raw, "budgets")
            words = budget_to_fixed(budget[0], budget[1], name=f"budgets[{member}]")
            current = self.ledger.privacy_budget_fixed(member)
            if current is not None and current != (0, 0):
                if tuple(current) == words:
                    skipped.append(member)
                    continue
                epsilon, delta = fixed_to_budget(*current) or (0.0, 0.0)
                raise ConfigError(
                    f"budgets[{member}]",
                    f"equal to the budget already on chain (epsilon {epsilon:g}, delta {delta:g}; it is set once)",
                    f"epsilon {budget[0]:g}, delta {budget[1]:g}",
                )
            if not self.ledger.is_registered(member):
                raise ConfigError(f"budgets[{member}]", "for a registered member (register it first)", member)
            todo[member] = words
        details = {"set": list(todo), "unchanged": skipped}
        if not todo:
            return AdminAction(
                "budgets",
                False,
                f"{len(skipped)} budget(s) already set to these values: nothing to do",
                dry_run,
                details=details,
            )
        self.require_role(DEFAULT_ADMIN_ROLE, "setting privacy budgets")
        call = self.ledger.ledger_contract.functions.setPrivacyBudgets(
            list(todo), [w[0] for w in todo.values()], [w[1] for w in todo.values()]
        )
        note = f" ({len(skipped)} unchanged)" if skipped else ""
        return self._write("budgets", call, f"set the privacy budget of {len(todo)} member(s){note}", details, dry_run)

    def set_treasury(self, address: str, *, dry_run: bool = False) -> AdminAction:
        """Point each round's remainder at ``address`` (a no-op when it is the treasury already)."""
        treasury = _address(address, "treasury")
        current = self.ledger.treasury
        details = {"previous": current, "treasury": treasury}
        if current.lower() == treasury.lower():
            return AdminAction(
                "treasury", False, f"{treasury} is the treasury already: nothing to do", dry_run, details=details
            )
        self.require_role(DEFAULT_ADMIN_ROLE, "changing the treasury")
        call = self.ledger.ledger_contract.functions.setTreasury(treasury)
        return self._write("treasury", call, f"treasury changed from {current} to {treasury}", details, dry_run)

    # ---- reads ---------------------------------------------------------------------------------

    def show(self) -> dict[str, Any]:
        """The ledger at a glance: chain, addresses, treasury, roles, members, rounds, token supply."""
        ledger = self.ledger
        registered: dict[str, None] = {}
        for event in ledger.registrations():
            if event.registered:
                registered[event.address] = None
            else:
                registered.pop(event.address, None)
        members = []
        for address in registered:
            budget = ledger.privacy_budget(address)
            members.append(
                {
                    "address": address,
                    "budget": None if budget is None else {"epsilon": budget[0], "delta": budget[1]},
                    "claimable_wei": str(ledger.claimable_of(address)),
                    "token_balance_wei": str(ledger.token_balance_of(address)),
                }
            )
        return {
            "rpc": self.chain.target,
            "chain_id": self.chain.chain_id,
            "ledger": ledger.address,
            "token": ledger.token_address,
            "token_symbol": ledger.token_symbol(),
            "deploy_block": ledger.deploy_block,
            "treasury": ledger.treasury,
            "roles": self.role_holders(),
            "last_round": ledger.last_round(),
            "total_supply_wei": str(ledger.total_supply()),
            "members": members,
        }

    # ---- internals -----------------------------------------------------------------------------

    def _write(self, action: str, call: Any, message: str, details: dict[str, Any], dry_run: bool) -> AdminAction:
        gas, cost, tx_hash = _transact(self.chain, self._abi, call, action, dry_run=dry_run, timeout_s=self.timeout_s)
        if dry_run:
            return AdminAction(action, False, f"would have {message} (about {gas} gas)", True, gas, cost, None, details)
        logger.info("%s (tx %s, gas %d)", message, tx_hash, gas)
        return AdminAction(action, True, message, False, gas, cost, tx_hash, details)


def _deploy_receipt(ledger: Web3Ledger) -> tuple[int, int, str]:
    """Gas, fee and hash of the transaction that deployed ``ledger`` (from its block)."""
    w3 = ledger.chain.w3
    block = w3.eth.get_block(ledger.deploy_block, full_transactions=False)
    for tx_hash in block["transactions"]:
        receipt = w3.eth.get_transaction_receipt(cast(HexBytes, tx_hash))
        if receipt["contractAddress"] and receipt["contractAddress"].lower() == ledger.address.lower():
            used = int(receipt["gasUsed"])
            price = int(receipt.get("effectiveGasPrice", 0) or 0)
            return used, used * price, "0x" + bytes(receipt["transactionHash"]).hex().removeprefix("0x")
    return 0, 0, ""


# ---- members' claims -------------------------------------------------------------------------


def claim(chain: Chain, ledger_address: str, *, dry_run: bool = False, timeout_s: float = 120.0) -> ClaimResult:
    """Move the signing member's credit into its ERC-20 balance (``ContributionLedger.claim()``).

    Nothing is sent when nothing is claimable.

    Raises:
        UnfundedAccountError: the member cannot pay the claim's gas (anyone may call
            ``claimFor`` on its behalf instead).
        TransactionError: the claim reverted.

    Example:
        >>> from fedchain.ledger import connect
        >>> chain = connect("embedded")
        >>> ledger = ChainAdmin.deploy(chain).admin.ledger
        >>> claim(chain, ledger.address).amount_wei
        0
    """
    ledger = Web3Ledger(chain, _address(ledger_address, "ledger"), timeout_s=timeout_s)
    member = chain.address
    owed = ledger.claimable_of(member)
    before = ledger.token_balance_of(member)
    symbol = ledger.token_symbol()
    if owed == 0:
        action = AdminAction("claim", False, "nothing to claim", dry_run, details={"member": member})
        return ClaimResult(member, 0, before, 0, action, symbol)
    call = ledger.ledger_contract.functions.claim()
    gas, cost, tx_hash = _transact(chain, ContractAbi.fedchain(), call, "claim", dry_run=dry_run, timeout_s=timeout_s)
    if dry_run:
        action = AdminAction(
            "claim", False, f"would claim {owed} wei (about {gas} gas)", True, gas, cost, None, {"member": member}
        )
        return ClaimResult(member, owed, before, owed, action, symbol)
    after = ledger.token_balance_of(member)
    action = AdminAction("claim", True, f"claimed {after - before} wei", False, gas, cost, tx_hash, {"member": member})
    return ClaimResult(member, after - before, after, ledger.claimable_of(member), action, symbol)


# ---- a federation's ledger, set up by its admin ------------------------------------------------


def setup_federation_ledger(
    chain: Chain,
    *,
    recorder: str,
    members: Sequence[str],
    treasury: str | None = None,
    privacy_budget: tuple[float, float] | None = None,
    timeout_s: float = 120.0,
) -> ChainAdmin:
    """Deploy a ledger with ``chain``'s account as admin, ``recorder`` as the only recorder, and members registered.

    Used by the local launcher and ``fedchain run --chain URL``: the admin keeps
    ``DEFAULT_ADMIN_ROLE``, the coordinator gets ``RECORDER_ROLE`` only, the treasury (default: the
    admin) receives remainders. With ``privacy_budget`` every member's ``(epsilon, delta)`` is set.

    Raises:
        ConfigError: a budget is out of range (checked before anything is sent).
        UnfundedAccountError: the admin cannot pay.
        LedgerError: a transaction failed or a member is not registered afterwards.

    Example:
        >>> from fedchain.ledger import connect
        >>> chain = connect("embedded")
        >>> coordinator = chain.test_accounts[1].address
        >>> admin = setup_federation_ledger(chain, recorder=coordinator, members=["0x" + "11" * 20])
        >>> admin.has_role("RECORDER_ROLE", coordinator), admin.has_role("DEFAULT_ADMIN_ROLE", coordinator)
        (True, False)
    """
    if privacy_budget is not None:
        budget_to_fixed(*privacy_budget, name="privacy_budget")
    deployed = ChainAdmin.deploy(chain, recorder=recorder, treasury=treasury, timeout_s=timeout_s).admin
    assert deployed is not None  # not a dry run
    deployed.register(list(members))
    missing = [m for m in members if not deployed.ledger.is_registered(m)]
    if missing:
        raise LedgerError(f"members not registered on chain: {missing}")
    if privacy_budget is not None:
        deployed.set_budgets(dict.fromkeys(members, privacy_budget))
    return deployed
