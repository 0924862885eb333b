"""Reading the chain: everything the checks need, gathered once into a :class:`LedgerSnapshot`.

This is the auditor's only I/O. It goes through :class:`fedchain.ledger.LedgerReader` (a live
:class:`~fedchain.ledger.Web3Ledger` over JSON-RPC, or the :class:`~fedchain.ledger.ExportedLedger`
of a finished embedded run) plus the raw event logs both expose, and never trusts anything the
federation wrote off chain. The checks in :mod:`fedchain.audit.checks` are pure functions of the
snapshot.

A live chain is read without any key: :func:`open_rpc` connects with a throwaway key that never
signs (``connect`` insists on one for JSON-RPC targets).

Example:
    >>> from fedchain.ledger import Web3Ledger, connect
    >>> snapshot = read_snapshot(Web3Ledger.deploy(connect("embedded")))
    >>> snapshot.last_round, snapshot.total_supply_wei, len(snapshot.recorder_roles or ())
    (0, 0, 1)
"""

from __future__ import annotations

import logging
import secrets
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_utils import keccak, to_checksum_address

from fedchain.errors import AuditError, ConfigError, FedChainError, LedgerError
from fedchain.ledger import (
    EXPORT_FILENAME,
    ExportedLedger,
    LedgerReader,
    RecordedDispute,
    RecordedRound,
    RecordedSpend,
    RegistrationEvent,
    Web3Ledger,
    connect,
)
from fedchain.ledger._abi import ContractAbi

__all__ = [
    "RECORDER_ROLE",
    "LedgerSnapshot",
    "RoleChange",
    "open_rpc",
    "open_run",
    "read_snapshot",
]

logger = logging.getLogger(__name__)

#: ``keccak256("RECORDER_ROLE")``: the coordinator's role in ``ContributionLedger``.
RECORDER_ROLE = "0x" + keccak(text="RECORDER_ROLE").hex()

_TOPICS = {
    name: "0x" + keccak(text=signature).hex()
    for name, signature in {
        "RoleGranted": "RoleGranted(bytes32,address,address)",
        "RoleRevoked": "RoleRevoked(bytes32,address,address)",
    }.items()
}
# RoundRecorded / MemberRecorded as emitted now and by ledgers that predate statuses and disputes.
_ABI = ContractAbi.fedchain()
_ROUND_TOPICS = frozenset(_ABI.event_topics("RoundRecorded"))
_RECORD_TOPICS = _ROUND_TOPICS | frozenset(_ABI.event_topics("MemberRecorded"))


@dataclass(frozen=True)
class RoleChange:
    """A ``RoleGranted`` (``granted=True``) or ``RoleRevoked`` event of the ledger.

    Attributes:
        role: the role id (``0x`` hex).
        account: checksummed account.
        granted: True for a grant.
        block_number: block of the event.
        log_index: position in the block.
    """

    role: str
    account: str
    granted: bool
    block_number: int
    log_index: int


@dataclass(frozen=True)
class LedgerSnapshot:
    """Everything the auditor read from one ledger.

    Attributes:
        target: what was read (``"run DIR"``, a JSON-RPC URL, or a description).
        ledger_address: the ``ContributionLedger``.
        chain_id: the chain id, when known.
        last_round: the ledger's ``lastRound``.
        rounds: every round in ``1..last_round`` that could be read, in order.
        unreadable_rounds: round number -> why it could not be read (a gap in the record).
        registrations: every (de)registration event, in chain order.
        total_supply_wei: FedToken total supply.
        round_events: ``(round, block, log_index)`` of every ``RoundRecorded`` log in chain order;
            None when the reader exposes no raw logs.
        round_log_index: per round, the first log index of its recording transaction in its block.
        recorder_roles: ``RECORDER_ROLE`` grants and revocations in chain order; None without raw logs.
        tx_senders: recording transaction hash -> its sender, where the chain could say (live chain).
        exported_state: the state snapshot stored in ``chain.json`` (None for a live chain).
        recomputed_state: the same figures recomputed from the logs (None for a live chain).
        budgets: member address -> lifetime ``(epsilon, delta)`` budget set on chain, for every
            recorded or registered member that has one (empty for a ledger without budgets).
        spends: privacy spends recorded after their round (``recordSpends``), in chain order.
        disputes: members' disputes (``fileDispute``), in chain order.
    """

    target: str
    ledger_address: str
    chain_id: int | None
    last_round: int
    rounds: tuple[RecordedRound, ...]
    unreadable_rounds: Mapping[int, str]
    registrations: tuple[RegistrationEvent, ...]
    total_supply_wei: int
    round_events: tuple[tuple[int, int, int], ...] | None = None
    round_log_index: Mapping[int, int] = field(default_factory=dict)
    recorder_roles: tuple[RoleChange, ...] | None = None
    tx_senders: Mapping[str, str] = field(default_factory=dict)
    exported_state: Mapping[str, Any] | None = None
    recomputed_state: Mapping[str, Any] | None = None
    budgets: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    spends: tuple[RecordedSpend, ...] = ()
    disputes: tuple[RecordedDispute, ...] = ()


def open_rpc(url: str, ledger_address: str, *, request_timeout_s: float = 30.0) -> Web3Ledger:
    """Open a ledger on a JSON-RPC node for reading; no key is needed and nothing is ever sent.

    Args:
        url: the node's ``http(s)://`` URL.
        ledger_address: the ``ContributionLedger`` address.
        request_timeout_s: HTTP timeout per request.

    Returns:
        A :class:`~fedchain.ledger.Web3Ledger` used only for reads.

    Raises:
        ConfigError: the URL or the address is malformed.
        AuditError: no node answers, or there is no ledger at the address.

    Example::

        ledger = open_rpc("http://127.0.0.1:8545", "0x5FbDB2315678afecb367f032d93F642f64180aa3")
    """
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ConfigError("rpc", "an http(s):// JSON-RPC URL", url)
    # connect() demands a signing key for JSON-RPC targets; the auditor never signs, so it gets a
    # fresh random key that exists only in this process (and never holds funds).
    try:
        chain = connect(url, private_key="0x" + secrets.token_hex(32), request_timeout_s=request_timeout_s)
    except LedgerError as exc:
        raise AuditError(str(exc)) from exc
    try:
        return Web3Ledger(chain, ledger_address)
    except ConfigError:
        raise ConfigError("ledger", "a 20-byte hex address", ledger_address) from None
    except LedgerError as exc:
        raise AuditError(f"{exc}: is --ledger the ContributionLedger address?") from exc
    except Exception as exc:  # a contract that is not a ContributionLedger (token() reverts or is missing)
        raise AuditError(f"the contract at {ledger_address} on {url} is not a fedchain ContributionLedger") from exc


def open_run(run_dir: str | Path) -> ExportedLedger:
    """Open the exported chain of a finished embedded run (``RUN_DIR/chain.json``).

    Raises:
        ConfigError: ``run_dir`` is not a directory or holds no ``chain.json``.
        AuditError: the export cannot be read.

    Example::

        ledger = open_run("runs/demo")
    """
    directory = Path(run_dir)
    path = directory / EXPORT_FILENAME
    if not directory.is_dir():
        raise ConfigError("run", "a run directory", str(run_dir))
    if not path.is_file():
        raise ConfigError(
            "run",
            f"a run directory holding {EXPORT_FILENAME} (written by runs on the embedded chain)",
            str(run_dir),
        )
    try:
        return ExportedLedger.load(path)
    except FedChainError as exc:
        raise AuditError(str(exc)) from exc


def _raw_logs(reader: LedgerReader) -> list[Mapping[str, Any]] | None:
    if isinstance(reader, Web3Ledger):
        return list(reader.raw_logs())
    if isinstance(reader, ExportedLedger):
        return list(reader.document.get("logs", []))
    return None


def _topic_int(topic: str) -> int:
    return int(topic, 16)


def _topic_address(topic: str) -> str:
    return str(to_checksum_address("0x" + topic[-40:]))


def _log_tables(
    logs: Sequence[Mapping[str, Any]], ledger: str
) -> tuple[tuple[tuple[int, int, int], ...], dict[int, int], tuple[RoleChange, ...]]:
    round_events: list[tuple[int, int, int]] = []
    first_index: dict[tuple[int, int], int] = {}
    roles: list[RoleChange] = []
    wanted = ledger.lower()
    ordered = sorted(logs, key=lambda log: (int(log["blockNumber"]), int(log["logIndex"])))
    for log in ordered:
        if str(log["address"]).lower() != wanted or not log["topics"]:
            continue
        topics = [str(t).lower() for t in log["topics"]]
        block, index = int(log["blockNumber"]), int(log["logIndex"])
        if topics[0] in _RECORD_TOPICS and len(topics) > 1:
            key = (_topic_int(topics[1]), block)
            first_index[key] = min(first_index.get(key, index), index)
            if topics[0] in _ROUND_TOPICS:
                round_events.append((_topic_int(topics[1]), block, index))
        elif (
            topics[0] in (_TOPICS["RoleGranted"], _TOPICS["RoleRevoked"])
            and len(topics) > 2
            and topics[1] == RECORDER_ROLE
        ):
            roles.append(
                RoleChange(
                    role=topics[1],
                    account=_topic_address(topics[2]),
                    granted=topics[0] == _TOPICS["RoleGranted"],
                    block_number=block,
                    log_index=index,
                )
            )
    round_first = {r: i for (r, b), i in first_index.items()}
    # A round's own block decides (the same round number could in principle appear in two blocks).
    for server_round, block, _ in round_events:
        round_first[server_round] = first_index[(server_round, block)]
    return tuple(round_events), round_first, tuple(roles)


def read_snapshot(reader: LedgerReader, *, target: str | None = None) -> LedgerSnapshot:
    """Read everything the checks need from a ledger.

    Rounds that cannot be read (a gap left by a faulty contract) are noted in
    ``unreadable_rounds``, not raised, so the audit reports them as findings.

    Args:
        reader: a live or exported ledger.
        target: how to name it in the report (default: its class and address).

    Returns:
        The snapshot.

    Raises:
        AuditError: the chain cannot be read at all.
    """
    try:
        last = reader.last_round()
        rounds: list[RecordedRound] = []
        unreadable: dict[int, str] = {}
        for server_round in range(1, last + 1):
            try:
                rounds.append(reader.get_round(server_round))
            except LedgerError as exc:
                unreadable[server_round] = str(exc)
        registrations = tuple(reader.registrations())
        total_supply = reader.total_supply()
        logs = _raw_logs(reader)
        spends = tuple(reader.spends())
        disputes = tuple(reader.disputes())
        members = (
            {m.address for r in rounds for m in r.members}
            | {e.address for e in registrations}
            | {s.address for s in spends}
        )
        budgets = {a: b for a in sorted(members) if (b := reader.privacy_budget(a)) is not None}
    except FedChainError as exc:
        raise AuditError(f"cannot read the ledger {reader.address}: {exc}") from exc
    except Exception as exc:  # node errors surface as web3/requests exceptions
        raise AuditError(f"cannot read the ledger {reader.address}: {exc}") from exc

    round_events: tuple[tuple[int, int, int], ...] | None = None
    round_first: dict[int, int] = {}
    roles: tuple[RoleChange, ...] | None = None
    if logs is not None:
        round_events, round_first, roles = _log_tables(logs, reader.address)

    chain_id: int | None = None
    senders: dict[str, str] = {}
    exported: Mapping[str, Any] | None = None
    recomputed: dict[str, Any] | None = None
    if isinstance(reader, Web3Ledger):
        chain_id = reader.chain.chain_id
        for recorded in rounds:
            try:
                tx = reader.chain.w3.eth.get_transaction(recorded.tx_hash)  # type: ignore[arg-type]
                senders[recorded.tx_hash] = str(to_checksum_address(tx["from"]))
            except Exception:  # a pruned node may not serve old transactions: the check says so
                logger.debug("transaction %s not available from the node", recorded.tx_hash)
        target = target or reader.chain.target
    elif isinstance(reader, ExportedLedger):
        chain_id = reader.chain_id
        exported = reader.snapshot
        accounts = exported.get("accounts", {}) if isinstance(exported, Mapping) else {}
        recomputed = {
            "totalSupply": total_supply,
            "balances": {address: reader.balance_of(address) for address in accounts},
            "privacyBudgets": reader.privacy_budget_words(),
            "disputeCounts": {str(n): c for n, c in sorted(Counter(d.server_round for d in disputes).items())},
        }
    logger.info("read ledger %s: %d rounds (%d unreadable)", reader.address, last, len(unreadable))
    return LedgerSnapshot(
        target=target or f"{type(reader).__name__} {reader.address}",
        ledger_address=reader.address,
        chain_id=chain_id,
        last_round=last,
        rounds=tuple(rounds),
        unreadable_rounds=unreadable,
        registrations=registrations,
        total_supply_wei=total_supply,
        round_events=round_events,
        round_log_index=round_first,
        recorder_roles=roles,
        tx_senders=senders,
        exported_state=exported,
        recomputed_state=recomputed,
        budgets=budgets,
        spends=spends,
        disputes=disputes,
    )
