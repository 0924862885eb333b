"""Plaintext server-optimizer state survives a checkpoint: a resumed run continues the same optimizer."""

from __future__ import annotations

import numpy as np
import pytest
from flwr.app import ConfigRecord

from fedchain.checkpoint import Checkpoint
from fedchain.config import FedChainConfig
from fedchain.errors import SerializationError, StrategyError
from fedchain.protocol import record_to_weights
from fedchain.types import ZERO_HASH
from strategies.conformance import flower_sandbox
from strategies.registry import create_strategy

SHAPES = {"w": (6, 4), "b": (4,)}
STATEFUL = ["fedavgm", "fedadam", "fedyogi"]


def _updates(rng: np.random.Generator, weights: dict[str, np.ndarray]) -> list[tuple[dict[str, np.ndarray], int]]:
    return [
        ({k: (v + rng.normal(0, 0.1, v.shape)).astype(np.float32) for k, v in weights.items()}, int(n))
        for n in rng.integers(1, 50, 3)
    ]


def _round(strategy, server_round, weights, updates, grid):
    strategy.configure_train(server_round, weights, ConfigRecord(), grid)
    return record_to_weights(strategy.aggregate_plain(server_round, updates))


def _config(name: str) -> FedChainConfig:
    return FedChainConfig(he=False, members=3, strategy=name, server_momentum=0.9)


@pytest.mark.parametrize("name", STATEFUL)
def test_restored_state_continues_the_optimizer(name: str) -> None:
    rng = np.random.default_rng(0)
    w0 = {k: rng.normal(size=s).astype(np.float32) for k, s in SHAPES.items()}
    first, second = _updates(rng, w0), _updates(rng, w0)
    with flower_sandbox(3) as grid:
        original = create_strategy(_config(name))
        w1 = _round(original, 1, w0, first, grid)
        state = original.server_state()
        assert state, f"{name} carries no state?"
        expected = _round(original, 2, w1, second, grid)

        resumed = create_strategy(_config(name))
        resumed.load_server_state(state)
        got = _round(resumed, 2, w1, second, grid)

        fresh = _round(create_strategy(_config(name)), 2, w1, second, grid)  # what a resume used to do
    for key in SHAPES:
        np.testing.assert_array_equal(got[key], expected[key])
    assert any(not np.allclose(fresh[k], expected[k]) for k in SHAPES), "state made no difference: weak test"


def test_checkpoint_round_trips_the_state(tmp_path) -> None:
    state = {"m_t/k:w": np.arange(6.0).reshape(2, 3), "momentum_vector/i:0": np.ones(3, np.float32)}
    Checkpoint(server_round=3, status="recorded", model_hash=ZERO_HASH, server_state=state).save(tmp_path)
    loaded = Checkpoint.load(tmp_path).server_state
    assert loaded is not None and sorted(loaded) == sorted(state)
    for key, array in state.items():
        np.testing.assert_array_equal(loaded[key], array)
        assert loaded[key].dtype == array.dtype
    Checkpoint(server_round=4, status="recorded", model_hash=ZERO_HASH, server_state=state).save(tmp_path)
    assert [p.name for p in (tmp_path / "coordinator").glob("strategy-*")] == ["strategy-4.safetensors"]


def test_tampered_state_file_is_refused(tmp_path) -> None:
    Checkpoint(server_round=1, status="recorded", model_hash=ZERO_HASH, server_state={"m_t/k:w": np.ones(3)}).save(
        tmp_path
    )
    path = tmp_path / "coordinator" / "strategy-1.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(SerializationError, match="unreadable"):
        Checkpoint.load(tmp_path)


@pytest.mark.parametrize("key", ["nonexistent/k:w", "current_arrays/k:w", "m_t/x:1", "momentum_vector/i:1"])
def test_foreign_state_is_refused(key: str) -> None:
    strategy = create_strategy(_config("fedavgm" if key.startswith("momentum") else "fedadam"))
    with pytest.raises(StrategyError):
        strategy.load_server_state({key: np.ones(2)})


def test_stateless_strategy_has_no_state() -> None:
    assert create_strategy(_config("fedavg")).server_state() == {}


def test_first_round_samples_members_that_connect_while_it_waits() -> None:
    """Flower sizes its sample before waiting for min_available_nodes; the strategy waits first."""
    import secrets
    import threading

    from flwr.common.constant import HEARTBEAT_INTERVAL_INF, NOOP_ACCOUNT_NAME, NOOP_FLWR_AID

    config = FedChainConfig(he=False, members=2, min_members=2)
    with flower_sandbox(1) as grid:

        def connect_second_member() -> None:
            state = grid.state  # type: ignore[attr-defined]
            node_id = state.create_node(
                NOOP_FLWR_AID, NOOP_ACCOUNT_NAME, secrets.token_bytes(32), heartbeat_interval=HEARTBEAT_INTERVAL_INF
            )
            state.acknowledge_node_heartbeat(node_id=node_id, heartbeat_interval=HEARTBEAT_INTERVAL_INF)

        timer = threading.Timer(0.3, connect_second_member)
        timer.start()
        try:
            weights = {"w": np.zeros(2, np.float32)}
            instructions = create_strategy(config).configure_train(1, weights, ConfigRecord(), grid)
        finally:
            timer.join()
    assert len({m.metadata.dst_node_id for m in instructions}) == 2
