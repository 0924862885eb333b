"""Export a ledger's complete on-chain record to JSON, and read it back as a read-only ledger.

The embedded eth-tester chain lives in process memory and is gone when the run ends (py-evm's state
can only be persisted by pickling, which fedchain never does). So at the end of a run the
coordinator calls :func:`export_ledger`, which writes everything an auditor reads from the chain:

* every log of ``ContributionLedger`` and ``FedToken`` since deployment (address, topics, data,
  block number and hash, transaction hash, log index), undecoded, so nothing is lost;
* the stored header of every round (``getRound``), the deployed addresses, deploy block,
  treasury, chain id and the block number/hash at export;
* the artifacts' source hash and compiler version, and the event signatures (topic -> name);
* a snapshot of the state at export (total supply, per-address ERC-20 balance and claimable
  credit, registration blocks, privacy budgets), which a reader can cross-check against the logs.

Member-round statuses (``MemberRecorded.status``), scalar commitments (``RoundRecorded``), privacy
spends recorded after their round (``SpendRecorded``) and disputes (``RoundDisputed``) travel in the
logs too; the snapshot adds ``disputeCounts`` (round -> the contract's ``disputeCount``, for rounds
with disputes) to cross-check the ``RoundDisputed`` logs. Exports written before these existed hold
the older ``RoundRecorded`` / ``MemberRecorded`` logs, which still decode (every member-round
accepted, no commitment, no spends, no disputes).

Members' privacy budgets travel as the ``PrivacyBudgetSet`` logs (and, in the snapshot, as
``privacyBudgets``: address -> stored ``{"epsilon", "delta"}`` words, present when the contract has
``privacyBudget``). An export written before budgets existed has neither: :meth:`ExportedLedger.privacy_budget`
then returns None, as for a member whose budget was never set.

:class:`ExportedLedger` decodes the logs with the same code as :class:`~fedchain.ledger.Web3Ledger`
and implements :class:`~fedchain.ledger.LedgerReader`, so an audit of a finished embedded run and an
audit of a live chain run the same checks. Balances and supply are recomputed from the logs.

Example:
    >>> import tempfile, pathlib
    >>> from fedchain.ledger import ExportedLedger, Web3Ledger, connect, export_ledger
    >>> ledger = Web3Ledger.deploy(connect("embedded"))
    >>> path = export_ledger(ledger, pathlib.Path(tempfile.mkdtemp()) / "chain.json")
    >>> ExportedLedger.load(path).address == ledger.address
    True
"""

from __future__ import annotations

import json
import logging
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

from eth_utils import to_checksum_address

from fedchain.errors import LedgerError, SerializationError
from fedchain.ledger._abi import (
    CONTRACT_NAMES,
    ContractAbi,
    DecodedEvent,
    build_round,
    dispute_from_event,
    load_artifact,
    member_from_event,
    registration_from_event,
    spend_from_event,
)
from fedchain.ledger.base import (
    LedgerReader,
    RecordedDispute,
    RecordedMember,
    RecordedRound,
    RecordedSpend,
    RegistrationEvent,
)
from fedchain.ledger.fixedpoint import fixed_to_budget
from fedchain.ledger.web3_ledger import Web3Ledger

__all__ = ["EXPORT_FILENAME", "EXPORT_FORMAT", "ExportedLedger", "export_ledger"]

logger = logging.getLogger(__name__)

#: File name of the export inside a run directory.
EXPORT_FILENAME = "chain.json"
#: Format tag written in, and required of, every export.
EXPORT_FORMAT = "fedchain-ledger-export/1"
_ZERO_ADDRESS = "0x" + "00" * 20


def export_ledger(ledger: Web3Ledger, path: str | Path) -> Path:
    """Write the ledger's complete on-chain record to ``path`` (JSON, written atomically).

    Args:
        ledger: a live ledger (embedded or JSON-RPC).
        path: target file, conventionally ``RUN_DIR / EXPORT_FILENAME``.

    Returns:
        The path written.
    """
    target = Path(path)
    w3 = ledger.chain.w3
    latest = w3.eth.get_block("latest")
    logs = ledger.raw_logs()
    abi = ContractAbi.fedchain()
    last = ledger.last_round()
    addresses: set[str] = {ledger.treasury}
    for log in logs:
        event = abi.decode_log(log)
        if event is not None:
            addresses.update(v for v in event.args.values() if isinstance(v, str) and len(v) == 42)
    addresses.discard(_ZERO_ADDRESS)
    contract = ledger.ledger_contract
    snapshot: dict[str, Any] = {
        "totalSupply": ledger.total_supply(),
        "accounts": {
            a: {
                "token": ledger.token_balance_of(a),
                "claimable": ledger.claimable_of(a),
                "registeredSince": int(contract.functions.registeredSince(a).call()),
            }
            for a in sorted(addresses)
        },
    }
    budgets = {a: ledger.privacy_budget_fixed(a) for a in sorted(addresses)}
    if all(words is not None for words in budgets.values()):  # else: a contract without privacyBudget
        snapshot["privacyBudgets"] = {
            a: {"epsilon": words[0], "delta": words[1]} for a, words in budgets.items() if words and words[0]
        }
    disputed = sorted({d.server_round for d in ledger.disputes()})
    snapshot["disputeCounts"] = {str(n): ledger.dispute_count(n) for n in disputed}
    document = {
        "format": EXPORT_FORMAT,
        "chain": {
            "target": ledger.chain.target,
            "chainId": ledger.chain.chain_id,
            "exportedAtBlock": int(latest["number"]),
            "exportedAtBlockHash": "0x" + bytes(latest["hash"]).hex(),
        },
        "contracts": {
            "ContributionLedger": {"address": ledger.address},
            "FedToken": {"address": ledger.token_address},
        },
        "artifacts": {
            name: {
                "sourceHash": load_artifact(name)["sourceHash"],
                "compiler": load_artifact(name)["compiler"]["version"],
            }
            for name in CONTRACT_NAMES
        },
        "events": {topic: name for name, topic in sorted(abi.topics.items())},
        "deployBlock": ledger.deploy_block,
        "treasury": ledger.treasury,
        "lastRound": last,
        "rounds": {str(n): ledger.round_header(n) for n in range(1, last + 1)},
        "snapshot": snapshot,
        "logs": logs,
    }
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, target)
    logger.info("exported ledger %s (%d rounds, %d logs) to %s", ledger.address, last, len(logs), target)
    return target


class ExportedLedger(LedgerReader):
    """A read-only ledger over a file written by :func:`export_ledger`.

    Attributes:
        document: the parsed export (chain, contracts, rounds, snapshot, logs).
    """

    def __init__(self, document: dict[str, Any]) -> None:
        if not isinstance(document, dict) or document.get("format") != EXPORT_FORMAT:
            found = document.get("format") if isinstance(document, dict) else type(document).__name__
            raise SerializationError(f"not a fedchain ledger export (format {found!r}, expected {EXPORT_FORMAT!r})")
        self.document = document
        abi = ContractAbi.fedchain()
        self._events: list[DecodedEvent] = []
        for log in document["logs"]:
            event = abi.decode_log(log)
            if event is not None:
                self._events.append(event)
        self._events.sort(key=lambda e: (e.block_number, e.log_index))
        self._ledger = to_checksum_address(document["contracts"]["ContributionLedger"]["address"])
        self._token = to_checksum_address(document["contracts"]["FedToken"]["address"])

    @classmethod
    def load(cls, path: str | Path) -> ExportedLedger:
        """Read an export file.

        Raises:
            SerializationError: the file is not valid JSON or not a fedchain ledger export.
        """
        try:
            document = json.loads(Path(path).read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise SerializationError(f"cannot read ledger export {path}: {exc}") from exc
        return cls(document)

    @property
    def address(self) -> str:
        """Address of the exported ``ContributionLedger``."""
        return str(self._ledger)

    @property
    def token_address(self) -> str:
        """Address of the exported ``FedToken``."""
        return str(self._token)

    @property
    def chain_id(self) -> int:
        """Chain id of the exported chain."""
        return int(self.document["chain"]["chainId"])

    @property
    def snapshot(self) -> dict[str, Any]:
        """State read from contract storage at export time (for cross-checks against the logs)."""
        snapshot: dict[str, Any] = self.document["snapshot"]
        return snapshot

    def last_round(self) -> int:
        """The last recorded round at export time."""
        return int(self.document["lastRound"])

    def get_round(self, server_round: int) -> RecordedRound:
        """A recorded round, from its stored header and its logs."""
        header = self.document["rounds"].get(str(server_round))
        if header is None:
            raise LedgerError(f"round {server_round} is not recorded (last recorded round: {self.last_round()})")
        return build_round(server_round, header, self._of(self._ledger))

    def member_history(self, address: str) -> list[RecordedMember]:
        """Every recorded entry of a member, in round order."""
        wanted = address.lower()
        entries = [
            member_from_event(e)
            for e in self._of(self._ledger)
            if e.name == "MemberRecorded" and e.args["member"].lower() == wanted
        ]
        return sorted(entries, key=lambda m: m.server_round)

    def spends(self, server_round: int | None = None, *, address: str | None = None) -> list[RecordedSpend]:
        """Privacy spends recorded after their round, in chain order (none in older exports)."""
        wanted = None if address is None else address.lower()
        return [
            spend_from_event(e)
            for e in self._of(self._ledger)
            if e.name == "SpendRecorded"
            and (server_round is None or e.args["round"] == server_round)
            and (wanted is None or e.args["member"].lower() == wanted)
        ]

    def disputes(self, server_round: int | None = None) -> list[RecordedDispute]:
        """Members' disputes, in chain order (none in older exports)."""
        return [
            dispute_from_event(e)
            for e in self._of(self._ledger)
            if e.name == "RoundDisputed" and (server_round is None or e.args["round"] == server_round)
        ]

    def registrations(self) -> list[RegistrationEvent]:
        """Every (de)registration, in chain order."""
        return [
            registration_from_event(e)
            for e in self._of(self._ledger)
            if e.name in ("MemberRegistered", "MemberDeregistered")
        ]

    def privacy_budget(self, address: str) -> tuple[float, float] | None:
        """A member's budget from its ``PrivacyBudgetSet`` log; None when there is none (or an old export).

        Example:
            >>> import tempfile, pathlib
            >>> from fedchain.ledger import Web3Ledger, connect, export_ledger
            >>> ledger = Web3Ledger.deploy(connect("embedded"))
            >>> member = "0x" + "11" * 20
            >>> ledger.register_members([member])
            >>> ledger.set_privacy_budgets({member: (3.0, 1e-6)})
            >>> path = export_ledger(ledger, pathlib.Path(tempfile.mkdtemp()) / "chain.json")
            >>> ExportedLedger.load(path).privacy_budget(member)
            (3.0, 1e-06)
        """
        words = self.privacy_budget_words().get(to_checksum_address(address))
        return None if words is None else fixed_to_budget(words["epsilon"], words["delta"])

    def privacy_budget_words(self) -> dict[str, dict[str, int]]:
        """Every budget in the ``PrivacyBudgetSet`` logs: address -> ``{"epsilon", "delta"}`` (1e18 fixed point).

        The contract sets a budget once, so a member has at most one such log; should an export hold
        more, the first counts (as it would have on chain).
        """
        words: dict[str, dict[str, int]] = {}
        for event in self._of(self._ledger):
            if event.name == "PrivacyBudgetSet":
                words.setdefault(
                    event.args["member"], {"epsilon": int(event.args["epsilon"]), "delta": int(event.args["delta"])}
                )
        return words

    def balance_of(self, address: str) -> int:
        """ERC-20 balance plus unclaimed credit, recomputed from the Transfer/credit/claim logs."""
        wanted = to_checksum_address(address)
        return self._token_balances()[wanted] + self._claimable()[wanted]

    def total_supply(self) -> int:
        """Total supply recomputed from the token's Transfer logs (mints minus burns)."""
        supply = 0
        for event in self._of(self._token):
            if event.name != "Transfer":
                continue
            if event.args["from"] == _ZERO_ADDRESS:
                supply += int(event.args["value"])
            if event.args["to"] == _ZERO_ADDRESS:
                supply -= int(event.args["value"])
        return supply

    def _of(self, address: str) -> list[DecodedEvent]:
        return [e for e in self._events if e.address == address]

    def _token_balances(self) -> defaultdict[str, int]:
        balances: defaultdict[str, int] = defaultdict(int)
        for event in self._of(self._token):
            if event.name == "Transfer":
                value = int(event.args["value"])
                balances[event.args["from"]] -= value
                balances[event.args["to"]] += value
        return balances

    def _claimable(self) -> defaultdict[str, int]:
        claimable: defaultdict[str, int] = defaultdict(int)
        for event in self._of(self._ledger):
            if event.name == "MemberRecorded":
                claimable[event.args["member"]] += int(event.args["reward"])
            elif event.name == "Claimed":
                claimable[event.args["member"]] -= int(event.args["amount"])
        return claimable
