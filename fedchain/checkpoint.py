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
  members that missed rounds still need. Written once; the coordinator keeps only the latest
  aggregate in memory and reads an older one back (:func:`read_aggregate`, digest checked) when a
  member that missed rounds asks for it, so its memory does not grow with the rounds.

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

__all__ = ["CHECKPOINT_DIR", "Checkpoint", "aggregate_on_disk", "read_aggregate"]

CHECKPOINT_DIR = "coordinator"
#: Options that must be the same when a run resumes.
FINGERPRINT_FIELDS = ("members", "adversaries", "seed", "he", "he_scoring", "strategy", "scorer", "dp", "epsilon")


def _aggregate_path(out_dir: str | Path, agg_round: int) -> Path:
    return Path(out_dir) / CHECKPOINT_DIR / f"agg-{agg_round}.safetensors"


def aggregate_on_disk(out_dir: str | Path, agg_round: int) -> bool:
    """Whether the checkpoint in ``out_dir`` holds round ``agg_round``'s encrypted aggregate."""
    return _aggregate_path(out_dir, agg_round).is_file()


def read_aggregate(out_dir: str | Path, agg_round: int, digest: str) -> tuple[bytes, ...]:
    """Round ``agg_round``'s aggregate ciphertext chunks from the checkpoint, checked against ``digest``.

    Raises:
        SerializationError: the file is missing or unreadable, or its chunks do not hash to ``digest``.

    Example:
        >>> import tempfile
        >>> from fedchain.crypto.digest import ciphertext_digest
        >>> from fedchain.types import ZERO_HASH, Aggregate
        >>> path, chunks = tempfile.mkdtemp(), (b"c0", b"c1")
        >>> aggregate = Aggregate(total_weight=3, digest=ciphertext_digest(chunks), ciphertext=chunks)
        >>> Checkpoint(1, "recorded", ZERO_HASH, aggregates={1: aggregate}).save(path)
        >>> read_aggregate(path, 1, aggregate.digest)
        (b'c0', b'c1')
    """
    from fedchain.crypto.digest import ciphertext_digest

    path = _aggregate_path(out_dir, agg_round)
    try:
        arrays = load_model(path)
        chunks = tuple(arrays[f"c{i}"].tobytes() for i in range(len(arrays)))
    except (OSError, KeyError, ValueError) as exc:
        raise SerializationError(f"the aggregate of round {agg_round} in {path} is unreadable: {exc}") from exc
    if ciphertext_digest(chunks) != digest:
        raise SerializationError(
            f"the aggregate of round {agg_round} in {path} does not match its digest {digest}: the file was altered"
        )
    return chunks


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
            path = _aggregate_path(out_dir, agg_round)
            if not path.exists():
                if aggregate.ciphertext is None:
                    raise SerializationError(
                        f"the aggregate of round {agg_round} is neither in memory nor in {directory}"
                    )
                chunks = {f"c{i}": np.frombuffer(c, dtype=np.uint8) for i, c in enumerate(aggregate.ciphertext)}
                atomic_write_bytes(path, model_bytes(chunks))
            aggregates[str(agg_round)] = {
                "file": path.name,
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
        """Read a checkpoint, verifying every file it reads.

        Aggregates of rounds before the latest are not read (their ``ciphertext`` is None): only
        checked to be there; :func:`read_aggregate` reads and verifies one when it is needed.

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
            latest = max((int(r) for r in state["aggregates"]), default=None)
            for agg_round, entry in state["aggregates"].items():
                if entry["file"] != _aggregate_path(out_dir, int(agg_round)).name:
                    raise SerializationError(f"aggregate {agg_round} names the file {entry['file']!r}")
                digest = str(entry["digest"])
                # Only the latest aggregate is read now; older ones when a member that missed rounds needs them.
                chunks = read_aggregate(out_dir, int(agg_round), digest) if int(agg_round) == latest else None
                if chunks is None and not aggregate_on_disk(out_dir, int(agg_round)):
                    raise SerializationError(f"the aggregate of round {agg_round} is missing from {directory}")
                aggregate = Aggregate(
                    total_weight=int(entry["weight"]),
                    digest=digest,
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
