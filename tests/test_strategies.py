import numpy as np
import pytest

from fedchain.config import FedChainConfig
from fedchain.errors import ConfigError, StrategyError
from strategies.registry import available_strategies, create_strategy, resolve_strategy


def test_registry_lists_builtins():
    names = set(available_strategies())
    assert {"fedavg", "fedmedian", "fedtrimmedavg"} <= names


@pytest.mark.parametrize("name", ["fedmedian", "fedtrimmedavg"])
def test_plaintext_strategy_refuses_he_and_says_why(name):
    with pytest.raises(StrategyError) as info:
        create_strategy(FedChainConfig(strategy=name, he=True))
    message = str(info.value)
    assert "needs plaintext updates, but HE is on" in message and "'fedavg'" in message and "--no-he" in message
    assert create_strategy(FedChainConfig(strategy=name, he=False)).needs_plaintext


def test_unknown_strategy_lists_registered_names():
    with pytest.raises(ConfigError) as info:
        resolve_strategy("fedmagic")
    assert "'fedavg'" in str(info.value) and "'fedmedian'" in str(info.value)


def test_dotted_path_resolves():
    assert resolve_strategy("strategies.builtin:FedAvgStrategy").name == "fedavg"
    with pytest.raises(ConfigError, match="importable dotted path"):
        resolve_strategy("strategies.builtin:Nope")


@pytest.fixture
def flower_task_identity():
    """Messages can only be built inside a Flower run; pose as one (as the simulation runtime does)."""
    from flwr.common.constant import SUPERLINK_NODE_ID
    from flwr.supercore.task_identity import TaskIdentity

    TaskIdentity.run_id, TaskIdentity.task_id, TaskIdentity.node_id = 1, 1, SUPERLINK_NODE_ID


def test_fedavg_aggregate_is_example_weighted(flower_task_identity):
    strategy = create_strategy(FedChainConfig(he=False, members=2))
    a = {"w": np.zeros(3, np.float32)}
    b = {"w": np.ones(3, np.float32)}
    record = strategy.aggregate_plain(1, [(a, 30), (b, 10)])
    assert np.allclose(record["w"].numpy(), 0.25)


def test_fedmedian_aggregate_is_coordinatewise_median(flower_task_identity):
    strategy = create_strategy(FedChainConfig(strategy="fedmedian", he=False, members=3))
    updates = [({"w": np.full(2, v, np.float32)}, n) for v, n in ((0.0, 1), (5.0, 100), (1.0, 1))]
    assert np.allclose(strategy.aggregate_plain(1, updates)["w"].numpy(), 1.0)
