"""The coordinator's checkpoint: what it needs to resume after a crash, written atomically.

Layout of ``out_dir/coordinator/``:

* ``state.json`` (written last, by atomic rename): the last round, its status (``"staged"``: the
  round is computed and its record is about to be sent; ``"recorded"``: the chain has it), the
  round record when staged, the global model hash, which round each member node holds, the
  ledger address, the round summaries so far and a fingerprint of the options that must not
  change across a resume;
* ``model-<round>.safetensors``: the plaintext global model (plaintext mode);
* ``strategy-<round>.safetensors``: the strategy's carried server state, e.g. FedAdam's moments
  (plaintext mode, strategies that have any);
* ``agg-<round>.safetensors``: each round's encrypted aggregate as uint8 arrays (HE mode), which
  members that missed rounds still need.

Nothing is pickled. A reader sees the previous state or the new one, never a mix: data files are
immutable per round and ``state.json`` points to them.

Example:
    >>> import tempfile
    >>> from fedchain.types import ZERO_HASH
    >>> ckpt = Checkpoint(server_round=0, status="recorded", model_hash=ZERO_HASH)
    >>> path = tempfile.mkdtemp()
    >>> ckpt.save(path)
    >>> Checkpoint.load(path).status
    'recorded'
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fedchain._io import atomic_write_bytes, atomic_write_json
from fedchain.errors import SerializationError
from fedchain.serialization import Weights, load_model, model_bytes, sha256_hex
from fedchain.types import Aggregate, RoundRecord, record_from_json, record_to_json

__all__ = ["CHECKPOINT_DIR", "Checkpoint"]

CHECKPOINT_DIR = "coordinator"
#: Options that must be the same when a run resumes.
FINGERPRINT_FIELDS = ("members", "adversaries", "seed", "he", "he_scoring", "strategy", "scorer", "dp", "epsilon")


@dataclass
class Checkpoint:
    """The coordinator's durable state after a round (see the module docstring)."""

    server_round: int
    status: str
    model_hash: str
    weights: Weights | None = None
    aggregates: dict[int, Aggregate] = field(default_factory=dict)
    known_rounds: dict[int, int] = field(default_factory=dict)
    rounds: list[dict[str, Any]] = field(default_factory=list)
    record: RoundRecord | None = None
    ledger_address: str | None = None
    fingerprint: dict[str, Any] = field(default_factory=dict)
    server_state: Weights | None = None

    def save(self, out_dir: str | Path) -> None:
        """Write the data files, then ``state.json`` atomically."""
        directory = Path(out_dir) / CHECKPOINT_DIR
        directory.mkdir(parents=True, exist_ok=True)
        model_file = model_file_hash = None
        if self.weights is not None:
            data = model_bytes(self.weights)
            model_file, model_file_hash = f"model-{self.server_round}.safetensors", sha256_hex(data)
            atomic_write_bytes(directory / model_file, data)
        state_file = state_file_hash = None
        if self.server_state:
            data = model_bytes(self.server_state)
            state_file, state_file_hash = f"strategy-{self.server_round}.safetensors", sha256_hex(data)
            atomic_write_bytes(directory / state_file, data)
        aggregates = {}
        for agg_round, aggregate in self.aggregates.items():
            name = f"agg-{agg_round}.safetensors"
            if not (directory / name).exists():
                chunks = {f"c{i}": np.frombuffer(c, dtype=np.uint8) for i, c in enumerate(aggregate.ciphertext or ())}
                atomic_write_bytes(directory / name, model_bytes(chunks))
            aggregates[str(agg_round)] = {
                "file": name,
                "weight": aggregate.total_weight,
                "digest": aggregate.digest,
                "members": aggregate.members,
            }
        state = {
            "round": self.server_round,
            "status": self.status,
            "model_hash": self.model_hash,
            "model_file": model_file,
            "model_file_hash": model_file_hash,
            "strategy_file": state_file,
            "strategy_file_hash": state_file_hash,
            "aggregates": aggregates,
            "known_rounds": {str(node): r for node, r in self.known_rounds.items()},
            "rounds": self.rounds,
            "record": record_to_json(self.record) if self.record is not None else None,
            "ledger_address": self.ledger_address,
            "fingerprint": self.fingerprint,
        }
        atomic_write_json(directory / "state.json", state)
        for pattern, current in (("model-*.safetensors", model_file), ("strategy-*.safetensors", state_file)):
            for stale in directory.glob(pattern):
                if stale.name != current:
                    stale.unlink(missing_ok=True)

    @classmethod
    def exists(cls, out_dir: str | Path) -> bool:
        """Whether ``out_dir`` holds a checkpoint."""
        return (Path(out_dir) / CHECKPOINT_DIR / "state.json").is_file()

    @classmethod
    def load(cls, out_dir: str | Path) -> Checkpoint:
        """Read a checkpoint, verifying every file it points to.

        Raises:
            SerializationError: the checkpoint is missing, malformed or its files do not match.
        """
        directory = Path(out_dir) / CHECKPOINT_DIR
        try:
            state = json.loads((directory / "state.json").read_text())
            weights = None
            if state["model_file"]:
                weights = load_model(directory / state["model_file"], expected_hash=state["model_file_hash"])
            server_state = None
            if state.get("strategy_file"):
                server_state = load_model(directory / state["strategy_file"], expected_hash=state["strategy_file_hash"])
            aggregates = {}
            for agg_round, entry in state["aggregates"].items():
                arrays = load_model(directory / entry["file"])
                chunks = tuple(arrays[f"c{i}"].tobytes() for i in range(len(arrays)))
                aggregate = Aggregate(
                    total_weight=int(entry["weight"]),
                    digest=str(entry["digest"]),
                    ciphertext=chunks,
                    members=int(entry.get("members", 0)),
                )
                aggregates[int(agg_round)] = aggregate
            return cls(
                server_round=int(state["round"]),
                status=str(state["status"]),
                model_hash=str(state["model_hash"]),
                weights=weights,
                aggregates=aggregates,
                known_rounds={int(node): int(r) for node, r in state["known_rounds"].items()},
                rounds=list(state["rounds"]),
                record=record_from_json(state["record"]) if state["record"] else None,
                ledger_address=state["ledger_address"],
                fingerprint=dict(state["fingerprint"]),
                server_state=server_state,
            )
        except (OSError, KeyError, TypeError, ValueError) as exc:
            raise SerializationError(f"checkpoint in {directory} is unreadable: {exc}") from exc
