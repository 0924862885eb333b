"""The run's results: per-round summaries and ``result.json``.

Example:
    >>> summary = RoundSummary(server_round=1, status="completed")
    >>> summary.to_dict()["round"]
    1
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedchain._io import atomic_write_json
from fedchain.types import DPParams, MemberRound

__all__ = ["RESULT_SCHEMA_VERSION", "RoundSummary", "RunResult"]

RESULT_SCHEMA_VERSION = 1


@dataclass
class RoundSummary:
    """One round as the coordinator saw it.

    Attributes:
        server_round: round number.
        status: ``"completed"`` or ``"skipped"`` (too few accepted updates).
        accuracy: example-weighted accuracy of the round's global model from federated evaluation.
        loss: example-weighted evaluation loss.
        model_hash: hash of the canonical safetensors bytes of the global model after the round.
        previous_model_hash: the model hash of the round before.
        aggregate_hash: hash of the aggregate sent to members.
        tx_hash: transaction that recorded the round; None without a chain.
        gas_used: gas of that transaction.
        seconds: wall time of the round.
        members: one entry per member that was sampled.
        rejections: count of rejected or failed replies by reason.
        flagged: why the decrypt committee flagged the round (its rewards are withheld); "" if not.
        stage_seconds: wall time of each stage the round ran (``train``, ``validate``, ``aggregate``,
            ``score``, ``evaluate``, ``record``), in that order.
    """

    server_round: int
    status: str
    accuracy: float | None = None
    loss: float | None = None
    model_hash: str | None = None
    previous_model_hash: str | None = None
    aggregate_hash: str | None = None
    tx_hash: str | None = None
    gas_used: int | None = None
    block_number: int | None = None
    treasury_wei: int | None = None
    seconds: float = 0.0
    members: list[MemberRound] = field(default_factory=list)
    rejections: dict[str, int] = field(default_factory=dict)
    flagged: str = ""
    stage_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def accepted(self) -> int:
        """Members whose update went into the aggregate."""
        return sum(1 for member in self.members if member.status == "accepted")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RoundSummary:
        """Inverse of :meth:`to_dict` (used to resume a run from its checkpoint)."""
        members = []
        for entry in data["members"]:
            entry = dict(entry)
            entry["dp"] = DPParams(**entry["dp"]) if entry.get("dp") else None
            entry["reward_wei"] = None if entry.get("reward_wei") is None else int(entry["reward_wei"])
            members.append(MemberRound(**entry))
        return cls(
            server_round=int(data["round"]),
            status=str(data["status"]),
            accuracy=data.get("accuracy"),
            loss=data.get("loss"),
            model_hash=data.get("model_hash"),
            previous_model_hash=data.get("previous_model_hash"),
            aggregate_hash=data.get("aggregate_hash"),
            tx_hash=data.get("tx_hash"),
            gas_used=data.get("gas_used"),
            block_number=data.get("block_number"),
            treasury_wei=None if data.get("treasury_wei") is None else int(data["treasury_wei"]),
            seconds=float(data.get("seconds", 0.0)),
            members=members,
            rejections=dict(data.get("rejections", {})),
            flagged=str(data.get("flagged", "")),
            stage_seconds={str(k): float(v) for k, v in data.get("stage_seconds", {}).items()},
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (``round`` is the round number)."""
        members = []
        for member in self.members:
            entry = dataclasses.asdict(member)
            entry["reward_wei"] = None if member.reward_wei is None else str(member.reward_wei)
            members.append(entry)
        return {
            "round": self.server_round,
            "status": self.status,
            "accuracy": self.accuracy,
            "loss": self.loss,
            "model_hash": self.model_hash,
            "previous_model_hash": self.previous_model_hash,
            "aggregate_hash": self.aggregate_hash,
            "tx_hash": self.tx_hash,
            "gas_used": self.gas_used,
            "block_number": self.block_number,
            "treasury_wei": None if self.treasury_wei is None else str(self.treasury_wei),
            "seconds": round(self.seconds, 3),
            "members": members,
            "rejections": dict(self.rejections),
            "flagged": self.flagged,
            "stage_seconds": {stage: round(seconds, 4) for stage, seconds in self.stage_seconds.items()},
        }


@dataclass
class RunResult:
    """The whole run, written as ``result.json``. Money is a decimal string of wei (JSON-safe)."""

    config: dict[str, Any]
    rounds: list[RoundSummary] = field(default_factory=list)
    ledger_address: str | None = None
    token_address: str | None = None
    chain: str | None = None
    balances_wei: dict[str, int] = field(default_factory=dict)
    audit: dict[str, Any] | None = None
    model_path: str | None = None
    model_hash: str | None = None
    wall_seconds: float = 0.0

    @property
    def final_accuracy(self) -> float | None:
        """Accuracy of the last completed round's global model."""
        for summary in reversed(self.rounds):
            if summary.accuracy is not None:
                return summary.accuracy
        return None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict in the layout DESIGN.md section 9 documents."""
        return {
            "schema_version": RESULT_SCHEMA_VERSION,
            "final_accuracy": self.final_accuracy,
            "model_hash": self.model_hash,
            "model_path": self.model_path,
            "ledger_address": self.ledger_address,
            "token_address": self.token_address,
            "chain": self.chain,
            "balances_wei": {address: str(wei) for address, wei in self.balances_wei.items()},
            "audit": self.audit,
            "wall_seconds": round(self.wall_seconds, 3),
            "rounds": [summary.to_dict() for summary in self.rounds],
            "config": self.config,
        }

    def write(self, out_dir: str | Path) -> Path:
        """Write ``result.json`` into ``out_dir`` atomically; return its path."""
        path = Path(out_dir) / "result.json"
        atomic_write_json(path, self.to_dict())
        return path
