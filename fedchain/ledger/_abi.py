"""Committed contract artifacts and pure ABI decoding of logs, headers and revert data.

Shared by the live :class:`~fedchain.ledger.Web3Ledger` and the offline
:class:`~fedchain.ledger.ExportedLedger`, so both decode the chain the same way.

Ledgers deployed (and runs exported) before member-round statuses, scalar commitments and disputes
emitted ``RoundRecorded`` and ``MemberRecorded`` with fewer fields: :data:`LEGACY_EVENTS` keeps those
definitions so their logs still decode, under the same event names (a legacy member-round reads as
``"accepted"``, a legacy round as undisputed with no scalars commitment).
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from eth_abi import decode as abi_decode
from eth_utils import keccak, to_checksum_address

from fedchain.errors import LedgerError
from fedchain.ledger.base import RecordedDispute, RecordedMember, RecordedRound, RecordedSpend, RegistrationEvent
from fedchain.ledger.fixedpoint import bytes32_to_hex
from fedchain.types import ZERO_HASH

__all__ = [
    "CONTRACT_NAMES",
    "LEGACY_EVENTS",
    "ContractAbi",
    "DecodedEvent",
    "build_round",
    "dispute_from_event",
    "header_from_tuple",
    "load_artifact",
    "member_from_event",
    "normalize_log",
    "registration_from_event",
    "revert_data",
    "spend_from_event",
]

CONTRACT_NAMES = ("ContributionLedger", "FedToken")


def _event(name: str, *inputs: tuple[str, str, bool]) -> dict[str, Any]:
    return {
        "type": "event",
        "name": name,
        "anonymous": False,
        "inputs": [{"name": n, "type": t, "indexed": i} for n, t, i in inputs],
    }


#: Events as ``ContributionLedger`` emitted them before statuses, commitments and disputes.
LEGACY_EVENTS: tuple[dict[str, Any], ...] = (
    _event(
        "RoundRecorded",
        ("round", "uint256", True),
        *((name, "bytes32", False) for name in ("aggregateHash", "modelHash", "previousModelHash", "updateMerkleRoot")),
        ("recordHash", "bytes32", False),
        ("rewardPool", "uint256", False),
        ("totalScore", "uint256", False),
        ("memberCount", "uint256", False),
        ("treasury", "address", False),
        ("treasuryAmount", "uint256", False),
    ),
    _event(
        "MemberRecorded",
        ("round", "uint256", True),
        ("member", "address", True),
        *((name, "uint256", False) for name in ("score", "reward", "dpParams", "epsilon")),
    ),
)


@cache
def load_artifact(name: str) -> dict[str, Any]:
    """Load a committed artifact (``abi``, ``bytecode``, compiler and source hashes) by contract name."""
    if name not in CONTRACT_NAMES:
        raise LedgerError(f"unknown contract artifact {name!r}; known: {', '.join(CONTRACT_NAMES)}")
    text = resources.files("fedchain.ledger").joinpath("artifacts", f"{name}.json").read_text("utf-8")
    artifact: dict[str, Any] = json.loads(text)
    return artifact


def _canonical_type(item: Mapping[str, Any]) -> str:
    kind = str(item["type"])
    if kind.startswith("tuple"):
        inner = ",".join(_canonical_type(c) for c in item["components"])
        return f"({inner}){kind[5:]}"
    return kind


def _to_python(kind: str, value: Any) -> Any:
    if kind == "address":
        return to_checksum_address(value)
    if kind == "bytes32":
        return bytes32_to_hex(value)
    return value


@dataclass(frozen=True)
class DecodedEvent:
    """One decoded log.

    Attributes:
        name: event name, e.g. ``"MemberRecorded"``.
        args: argument values (addresses checksummed, bytes32 as ``0x`` hex, uints as int).
        address: emitting contract.
        block_number: block of the log.
        tx_hash: transaction of the log.
        log_index: position of the log in its block.
    """

    name: str
    args: dict[str, Any]
    address: str
    block_number: int
    tx_hash: str
    log_index: int


def normalize_log(log: Mapping[str, Any]) -> dict[str, Any]:
    """Turn a web3 log (AttributeDict with bytes) into plain JSON-ready values."""

    def hexstr(value: Any) -> str:
        if isinstance(value, bytes | bytearray):
            return "0x" + bytes(value).hex()
        text = str(value)
        return text if text.startswith("0x") else "0x" + text

    return {
        "address": to_checksum_address(log["address"]),
        "topics": [hexstr(t) for t in log["topics"]],
        "data": hexstr(log["data"]),
        "blockNumber": int(log["blockNumber"]),
        "blockHash": hexstr(log["blockHash"]),
        "transactionHash": hexstr(log["transactionHash"]),
        "logIndex": int(log["logIndex"]),
    }


class ContractAbi:
    """Decoding tables for one or more contract ABIs (events by topic, errors by selector)."""

    def __init__(
        self, abis: Iterable[Sequence[Mapping[str, Any]]], *, legacy_events: Iterable[Mapping[str, Any]] = ()
    ) -> None:
        self.events: dict[bytes, Mapping[str, Any]] = {}
        self.topics: dict[str, str] = {}
        self.errors: dict[bytes, Mapping[str, Any]] = {}
        #: Topics of the legacy definitions (decoded under their names; ``topics`` names the current ones).
        self.legacy_topics: dict[str, str] = {}
        for item in legacy_events:
            digest = keccak(text=self._signature(item))
            self.events[digest] = item
            self.legacy_topics[str(item["name"])] = "0x" + digest.hex()
        for abi in abis:
            for item in abi:
                if item["type"] not in ("event", "error"):
                    continue
                digest = keccak(text=self._signature(item))
                if item["type"] == "event":
                    self.events[digest] = item
                    self.topics[str(item["name"])] = "0x" + digest.hex()
                else:
                    self.errors[digest[:4]] = item

    @staticmethod
    def _signature(item: Mapping[str, Any]) -> str:
        return f"{item['name']}({','.join(_canonical_type(i) for i in item['inputs'])})"

    @classmethod
    def fedchain(cls) -> ContractAbi:
        """Tables for both fedchain contracts (and the legacy events of older ledgers)."""
        return cls((load_artifact(name)["abi"] for name in CONTRACT_NAMES), legacy_events=LEGACY_EVENTS)

    def event_topics(self, name: str) -> list[str]:
        """Every topic an event of this name may carry: the current one, then a legacy one if any."""
        return [self.topics[name]] + ([self.legacy_topics[name]] if name in self.legacy_topics else [])

    def decode_log(self, log: Mapping[str, Any]) -> DecodedEvent | None:
        """Decode a normalized log; None when its event is not in these ABIs."""
        topics = [bytes.fromhex(t[2:]) for t in log["topics"]]
        if not topics or topics[0] not in self.events:
            return None
        item = self.events[topics[0]]
        indexed = [i for i in item["inputs"] if i["indexed"]]
        plain = [i for i in item["inputs"] if not i["indexed"]]
        args: dict[str, Any] = {}
        for inp, topic in zip(indexed, topics[1:], strict=True):
            (value,) = abi_decode([_canonical_type(inp)], topic)
            args[inp["name"]] = _to_python(inp["type"], value)
        values = abi_decode([_canonical_type(i) for i in plain], bytes.fromhex(log["data"][2:]))
        for inp, value in zip(plain, values, strict=True):
            args[inp["name"]] = _to_python(inp["type"], value)
        return DecodedEvent(
            name=str(item["name"]),
            args=args,
            address=to_checksum_address(log["address"]),
            block_number=int(log["blockNumber"]),
            tx_hash=str(log["transactionHash"]),
            log_index=int(log["logIndex"]),
        )

    def revert_reason(self, exc: BaseException) -> str:
        """Name the revert behind an exception: the decoded custom error, else the node's message."""
        data = revert_data(exc)
        if data is not None:
            try:
                reason = self.decode_error(data)
            except Exception:  # malformed revert data: fall back to the message
                reason = None
            if reason:
                return reason
        message = getattr(exc, "message", None) or str(exc)
        return str(message)

    def decode_error(self, data: bytes | str | None) -> str | None:
        """Name a revert from its return data, e.g. ``"WrongRound(expected=3, got=5)"``."""
        if data is None:
            return None
        raw = bytes.fromhex(data[2:] if data.startswith("0x") else data) if isinstance(data, str) else data
        if len(raw) < 4:
            return None
        selector, body = raw[:4], raw[4:]
        if selector == bytes.fromhex("08c379a0"):  # Error(string)
            (message,) = abi_decode(["string"], body)
            return str(message)
        if selector == bytes.fromhex("4e487b71"):  # Panic(uint256)
            (code,) = abi_decode(["uint256"], body)
            return f"Panic(0x{code:02x})"
        item = self.errors.get(selector)
        if item is None:
            return f"unknown error 0x{selector.hex()}"
        values = abi_decode([_canonical_type(i) for i in item["inputs"]], body)
        parts = [f"{inp['name']}={_to_python(inp['type'], v)}" for inp, v in zip(item["inputs"], values, strict=True)]
        return f"{item['name']}({', '.join(parts)})"


_TESTER_PREFIX = "execution reverted: "


def revert_data(exc: BaseException) -> bytes | None:
    """The raw revert data carried by a web3 or eth-tester exception, when there is any."""
    data = getattr(exc, "data", None)
    if isinstance(data, dict):
        data = data.get("data")
    if isinstance(data, str) and data.startswith("0x"):
        try:
            return bytes.fromhex(data[2:])
        except ValueError:
            return None
    # eth-tester (through web3's EthereumTesterProvider) raises TransactionFailed whose message is
    # "execution reverted: b'...'" -- the repr of the raw revert bytes.
    message = str(exc.args[0]) if exc.args else ""
    if message.startswith(_TESTER_PREFIX + "b'") or message.startswith(_TESTER_PREFIX + 'b"'):
        try:
            value = ast.literal_eval(message[len(_TESTER_PREFIX) :])
        except (ValueError, SyntaxError):
            return None
        return value if isinstance(value, bytes) else None
    return None


def header_from_tuple(values: Sequence[Any]) -> dict[str, Any]:
    """Name the fields of a ``getRound`` result (JSON-ready)."""
    return {
        "aggregateHash": bytes32_to_hex(values[0]),
        "modelHash": bytes32_to_hex(values[1]),
        "previousModelHash": bytes32_to_hex(values[2]),
        "updateMerkleRoot": bytes32_to_hex(values[3]),
        "recordHash": bytes32_to_hex(values[4]),
        "rewardPool": int(values[5]),
        "totalScore": int(values[6]),
        "recorder": to_checksum_address(values[7]),
        "blockNumber": int(values[8]),
        "memberCount": int(values[9]),
    }


def build_round(server_round: int, header: Mapping[str, Any], events: Iterable[DecodedEvent]) -> RecordedRound:
    """Assemble a :class:`RecordedRound` from its stored header and its transaction's events."""
    round_event: DecodedEvent | None = None
    members: list[RecordedMember] = []
    for event in events:
        if event.args.get("round") != server_round or event.block_number != header["blockNumber"]:
            continue
        if event.name == "RoundRecorded":
            round_event = event
        elif event.name == "MemberRecorded":
            members.append(member_from_event(event))
    if round_event is None:
        raise LedgerError(f"round {server_round}: no RoundRecorded event in block {header['blockNumber']}")
    members.sort(key=lambda m: int(m.address, 16))
    args = round_event.args
    return RecordedRound(
        server_round=server_round,
        aggregate_hash=header["aggregateHash"],
        model_hash=header["modelHash"],
        previous_model_hash=header["previousModelHash"],
        update_merkle_root=header["updateMerkleRoot"],
        record_hash=header["recordHash"],
        reward_pool_wei=int(header["rewardPool"]),
        total_score_fixed=int(header["totalScore"]),
        member_count=int(header["memberCount"]),
        recorder=header["recorder"],
        treasury=args["treasury"],
        treasury_wei=int(args["treasuryAmount"]),
        block_number=round_event.block_number,
        tx_hash=round_event.tx_hash,
        members=tuple(members),
        scalars_commitment=args.get("scalarsCommitment", ZERO_HASH),
        disputes_at_record=int(args.get("disputes", 0)),
    )


def member_from_event(event: DecodedEvent) -> RecordedMember:
    """Decode one ``MemberRecorded`` event."""
    args = event.args
    return RecordedMember(
        server_round=int(args["round"]),
        address=args["member"],
        score_fixed=int(args["score"]),
        reward_wei=int(args["reward"]),
        dp_word=int(args["dpParams"]),
        epsilon_fixed=int(args["epsilon"]),
        block_number=event.block_number,
        tx_hash=event.tx_hash,
        status_code=int(args.get("status", 0)),
    )


def spend_from_event(event: DecodedEvent) -> RecordedSpend:
    """Decode one ``SpendRecorded`` event."""
    args = event.args
    return RecordedSpend(
        server_round=int(args["round"]),
        address=args["member"],
        dp_word=int(args["dpParams"]),
        epsilon_fixed=int(args["epsilon"]),
        status_code=int(args["status"]),
        spend_id=args["spendId"],
        block_number=event.block_number,
        log_index=event.log_index,
        tx_hash=event.tx_hash,
    )


def dispute_from_event(event: DecodedEvent) -> RecordedDispute:
    """Decode one ``RoundDisputed`` event."""
    args = event.args
    return RecordedDispute(
        server_round=int(args["round"]),
        member=args["member"],
        scalars_commitment=args["scalarsCommitment"],
        round_recorded=bool(args["roundRecorded"]),
        block_number=event.block_number,
        log_index=event.log_index,
        tx_hash=event.tx_hash,
    )


def registration_from_event(event: DecodedEvent) -> RegistrationEvent:
    """Decode a ``MemberRegistered`` / ``MemberDeregistered`` event."""
    return RegistrationEvent(
        address=event.args["member"],
        registered=event.name == "MemberRegistered",
        block_number=event.block_number,
        log_index=event.log_index,
        tx_hash=event.tx_hash,
    )
