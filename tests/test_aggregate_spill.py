"""Under HE the coordinator keeps only the latest encrypted aggregate in memory.

Members that missed rounds still get every aggregate they lack: the older ones come back from the
checkpoint, checked against their digest, so the coordinator's memory does not grow with the rounds.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from fedchain import crypto
from fedchain.checkpoint import CHECKPOINT_DIR, Checkpoint, read_aggregate
from fedchain.config import FedChainConfig
from fedchain.coordinator import Coordinator
from fedchain.errors import SerializationError
from fedchain.pipeline.values import Aggregation, RoundOutcome
from fedchain.serialization import model_bytes
from fedchain.types import ZERO_HASH, Aggregate
from strategies.registry import create_strategy

SIZE = 6


def _aggregate(member: Any, server_round: int) -> Aggregate:
    chunks = tuple(crypto.encrypt_update(member, np.full(SIZE, float(server_round))))
    return Aggregate(total_weight=server_round, digest=crypto.ciphertext_digest(chunks), ciphertext=chunks, members=2)


def _run_rounds(tmp_path: Any, member: Any, public: Any, rounds: int) -> tuple[Coordinator, dict[int, Aggregate]]:
    """Adopt ``rounds`` aggregates, checkpointing after each, as the round loop does."""
    config = FedChainConfig(members=2, he=True, dp=False, chain="none", norm_bound=0, out_dir=str(tmp_path))
    coordinator = Coordinator(
        config=config,
        strategy=create_strategy(config),
        initial_weights={"w": np.zeros(SIZE, np.float32)},
        public_context=public,
    )
    made = {}
    for server_round in range(1, rounds + 1):
        made[server_round] = aggregate = _aggregate(member, server_round)
        outcome = RoundOutcome(
            server_round=server_round,
            status="completed",
            previous_model_hash=ZERO_HASH,
            model_hash=None,
            aggregate_hash=aggregate.digest,
            members=(),
            rejections={},
            aggregation=Aggregation(kept=(), aggregate=aggregate),
        )
        coordinator._adopt(outcome)
        Checkpoint(server_round, "recorded", ZERO_HASH, aggregates=coordinator.aggregates).save(tmp_path)
    return coordinator, made


def test_older_aggregates_leave_memory_and_come_back_from_the_checkpoint(
    tmp_path: Any, agg_member: Any, agg_coordinator: Any
) -> None:
    coordinator, made = _run_rounds(tmp_path, agg_member, agg_coordinator, 3)
    assert [coordinator.aggregates[r].ciphertext is None for r in (1, 2, 3)] == [True, True, False]

    coordinator.known_rounds = {11: 0, 12: 2}  # node 11 missed every round, node 12 only the last
    behind = coordinator._sealed_for(11)
    assert [s.server_round for s in behind] == [1, 2, 3]
    for sealed in behind:
        assert sealed.chunks == made[sealed.server_round].ciphertext
        total = crypto.decrypt_update(agg_member, list(sealed.chunks), SIZE)
        np.testing.assert_allclose(total, float(sealed.server_round), atol=1e-4)
    assert [s.server_round for s in coordinator._sealed_for(12)] == [3]

    # A resumed coordinator reads only the latest aggregate; the others stay on disk until needed.
    loaded = Checkpoint.load(tmp_path)
    assert [loaded.aggregates[r].ciphertext is None for r in (1, 2, 3)] == [True, True, False]
    assert loaded.aggregates[3].ciphertext == made[3].ciphertext
    assert read_aggregate(tmp_path, 1, loaded.aggregates[1].digest) == made[1].ciphertext


def test_an_altered_or_missing_aggregate_file_is_refused(tmp_path: Any, agg_member: Any, agg_coordinator: Any) -> None:
    coordinator, _ = _run_rounds(tmp_path, agg_member, agg_coordinator, 2)
    path = tmp_path / CHECKPOINT_DIR / "agg-1.safetensors"
    other = _aggregate(agg_member, 7).ciphertext
    assert other is not None
    chunks = {f"c{i}": np.frombuffer(c, dtype=np.uint8) for i, c in enumerate(other)}
    path.write_bytes(model_bytes(chunks))  # a valid file holding another ciphertext
    coordinator.known_rounds = {11: 0}
    with pytest.raises(SerializationError, match="does not match its digest"):
        coordinator._sealed_for(11)
    path.unlink()
    with pytest.raises(SerializationError, match="round 1 is missing"):
        Checkpoint.load(tmp_path)
    with pytest.raises(SerializationError, match="neither in memory nor"):
        Checkpoint(2, "recorded", ZERO_HASH, aggregates=coordinator.aggregates).save(tmp_path)
