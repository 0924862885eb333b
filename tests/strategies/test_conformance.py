"""The conformance suite: every registered strategy passes it, and it catches broken strategies."""

import numpy as np
import pytest
from flwr.serverapp.strategy import FedAdam, FedAvg, FedMedian, Strategy

from fedchain.config import FedChainConfig
from fedchain.errors import StrategyError
from strategies.base import FedChainStrategy
from strategies.builtin import sampling_options
from strategies.conformance import (
    ConformanceError,
    check_declarations,
    check_deterministic,
    check_example_weights,
    check_failed_replies,
    check_he_matches_plaintext,
    check_he_refusal,
    check_scorers,
    check_strategy,
    check_zero_weight,
    parametrize_with_checks,
)
from strategies.registry import available_strategies


@parametrize_with_checks(list(available_strategies().values()))
def test_every_registered_strategy_conforms(strategy_cls, check):
    check(strategy_cls)


# --------------------------------------------------------------- broken strategies
class DishonestAdam(FedChainStrategy):
    """Claims plain averaging under HE but runs Adam in plaintext."""

    name = "dishonest_adam"

    def build_inner(self, config: FedChainConfig) -> Strategy:
        return FedAdam(eta=0.05, **sampling_options(config))


class ClaimsHE(FedChainStrategy):
    """Says it works under HE but gives members nothing to apply."""

    name = "claims_he"
    member_update = None

    def build_inner(self, config: FedChainConfig) -> Strategy:
        return FedMedian(**sampling_options(config))


class MedianAsAverage(FedChainStrategy):
    """A median that declares itself an average."""

    name = "median_as_average"

    def build_inner(self, config: FedChainConfig) -> Strategy:
        return FedMedian(**sampling_options(config))


class SilentOnHE(FedChainStrategy):
    """Needs plaintext but forgets the base class's HE refusal."""

    name = "silent_on_he"
    needs_plaintext = True
    member_update = None

    def __init__(self, config: FedChainConfig) -> None:
        self.config, self.option_values, self._reference = config, {}, None
        self.inner = self.build_inner(config)

    def build_inner(self, config: FedChainConfig) -> Strategy:
        return FedMedian(**sampling_options(config))


class PlaintextAlternative(FedChainStrategy):
    """Recommends another plaintext strategy under HE."""

    name = "plaintext_alternative"
    needs_plaintext = True
    member_update = None
    he_alternative = "fedmedian"

    def build_inner(self, config: FedChainConfig) -> Strategy:
        return FedMedian(**sampling_options(config))


class RawFlower(FedChainStrategy):
    """Hands updates to Flower without fedchain's guards (as the first version did)."""

    name = "raw_flower"

    def build_inner(self, config: FedChainConfig) -> Strategy:
        return FedAvg(**sampling_options(config))

    def aggregate_plain(self, server_round, updates):
        from flwr.app import Message

        from fedchain.protocol import StrategyReply, encode

        replies = [Message(encode(StrategyReply(w, n)), 0, "train") for w, n in updates]
        arrays, _ = self.inner.aggregate_train(server_round, replies)
        if arrays is None:
            raise StrategyError("no model")
        return arrays


class Jittery(FedChainStrategy):
    """Adds noise from fresh OS entropy to the average."""

    name = "jittery"

    def build_inner(self, config: FedChainConfig) -> Strategy:
        return FedAvg(**sampling_options(config))

    def aggregate_plain(self, server_round, updates):
        record = super().aggregate_plain(server_round, updates)
        from fedchain.protocol import record_to_weights, weights_to_record

        noisy = {
            k: v + np.float32(np.random.default_rng().random() * 1e-3) for k, v in record_to_weights(record).items()
        }
        return weights_to_record(noisy)


class NeedsEveryone(FedChainStrategy):
    """Assumes every sampled member replies."""

    name = "needs_everyone"

    def build_inner(self, config: FedChainConfig) -> Strategy:
        return FedAvg(**sampling_options(config))

    def configure_train(self, server_round, weights, config, grid):
        messages = super().configure_train(server_round, weights, config, grid)
        self.sampled = len(messages)
        return messages

    def aggregate_plain(self, server_round, updates):
        updates = list(updates)
        if len(updates) != self.sampled:
            raise IndexError(f"expected {self.sampled} updates")
        return super().aggregate_plain(server_round, updates)


class OnlyCosine(FedChainStrategy):
    """Supports one scorer but does not enforce it."""

    name = "only_cosine"
    supported_scorers = ("cosine",)

    def __init__(self, config: FedChainConfig) -> None:
        super().__init__(config.replace(scorer="cosine"))

    def build_inner(self, config: FedChainConfig) -> Strategy:
        return FedAvg(**sampling_options(config))


@pytest.mark.parametrize(
    ("strategy_cls", "check", "message"),
    [
        (DishonestAdam, check_he_matches_plaintext, "the 'avg' member update differs from the plaintext aggregation"),
        (ClaimsHE, check_declarations, "a strategy works under HE exactly when members can apply its aggregate"),
        (MedianAsAverage, check_example_weights, "30:10 examples should give a 3:1 weighted mean"),
        (MedianAsAverage, check_he_matches_plaintext, "differs from the plaintext aggregation"),
        (SilentOnHE, check_he_refusal, "needs plaintext updates but was built with HE on"),
        (PlaintextAlternative, check_declarations, "'he_alternative' 'fedmedian' does not work under HE either"),
        (RawFlower, check_zero_weight, "raised ZeroDivisionError"),
        (Jittery, check_deterministic, "the same updates gave different models"),
        (NeedsEveryone, check_failed_replies, "raised IndexError: expected 6 updates"),
        (OnlyCosine, check_scorers, "accepted scorer 'data_size', outside supported_scorers ('cosine',)"),
    ],
    ids=lambda value: getattr(value, "__name__", None) or "",
)
def test_conformance_catches_broken_strategies(strategy_cls, check, message):
    with pytest.raises(ConformanceError) as info:
        check(strategy_cls)
    assert message in str(info.value)
    assert info.value.check == check.__name__ and info.value.strategy == strategy_cls.name
    assert str(info.value).startswith(f"{check.__name__} failed for strategy {strategy_cls.name!r}: ")


def test_check_strategy_runs_the_whole_battery_in_one_call():
    check_strategy(available_strategies()["fedadam"])
    with pytest.raises(ConformanceError, match="check_he_matches_plaintext"):
        check_strategy(DishonestAdam)


def test_conformance_leaves_flowers_task_identity_as_it_found_it():
    from flwr.supercore.task_identity import TaskIdentity

    before = (TaskIdentity._run_id, TaskIdentity._task_id, TaskIdentity._node_id)
    check_strategy(available_strategies()["fedavg"])
    assert (TaskIdentity._run_id, TaskIdentity._task_id, TaskIdentity._node_id) == before
