"""Built-in strategies, each a thin declaration around Flower's own implementation.

| name | Flower strategy | under HE | member side |
|---|---|---|---|
| ``fedavg`` | ``FedAvg`` | yes | mean update |
| ``fedprox`` | ``FedProx`` | yes | mean update; proximal term in local training |
| ``fedavgm`` | ``FedAvgM`` | yes | server momentum, applied by members |
| ``fedadam`` | ``FedAdam`` | yes | Adam, applied by members |
| ``fedyogi`` | ``FedYogi`` | yes | Yogi, applied by members |
| ``fedmedian`` | ``FedMedian`` | no | |
| ``fedtrimmedavg`` | ``FedTrimmedAvg`` | no | |
| ``krum`` | ``Krum`` | no | |

In plaintext every one runs Flower's server-side code. Under HE the server-optimizer strategies
run the same math on the members (:mod:`fedchain.aggregation`).

Example:
    >>> from fedchain.config import FedChainConfig
    >>> make_server_optimizer(FedChainConfig(strategy="fedadam")).kind
    'adam'
"""

from __future__ import annotations

from typing import Any

from flwr.serverapp.strategy import (
    FedAdam,
    FedAvg,
    FedAvgM,
    FedMedian,
    FedProx,
    FedTrimmedAvg,
    FedYogi,
    Krum,
    Strategy,
)

from fedchain._validation import Interval
from fedchain.aggregation import ServerOptimizer
from fedchain.config import FedChainConfig
from strategies.base import CONFIG_KEY, MODEL_KEY, FedChainStrategy, StrategyOption
from strategies.registry import register_strategy, resolve_strategy

__all__ = [
    "FedAdamStrategy",
    "FedAvgMStrategy",
    "FedAvgStrategy",
    "FedMedianStrategy",
    "FedProxStrategy",
    "FedTrimmedAvgStrategy",
    "FedYogiStrategy",
    "KrumStrategy",
    "make_server_optimizer",
    "sampling_options",
]

_POSITIVE = Interval(float, 0, None, closed="neither")
_BETA = Interval(float, 0, 1, closed="left")

PROXIMAL_MU = StrategyOption(
    "proximal_mu", "proximal-mu", 0.01, Interval(float, 0, None, closed="left"), "FedProx: proximal term weight mu"
)
SERVER_LEARNING_RATE = StrategyOption(
    "server_learning_rate", "server-learning-rate", 1.0, _POSITIVE, "FedAvgM: server learning rate"
)
SERVER_MOMENTUM = StrategyOption("server_momentum", "server-momentum", 0.7, _BETA, "FedAvgM: server momentum")
SERVER_ETA = StrategyOption("server_eta", "server-eta", 0.1, _POSITIVE, "FedAdam/FedYogi: server learning rate eta")
SERVER_BETA_1 = StrategyOption("server_beta_1", "server-beta-1", 0.9, _BETA, "FedAdam/FedYogi: first-moment decay")
SERVER_BETA_2 = StrategyOption("server_beta_2", "server-beta-2", 0.99, _BETA, "FedAdam/FedYogi: second-moment decay")
SERVER_TAU = StrategyOption("server_tau", "server-tau", 1e-3, _POSITIVE, "FedAdam/FedYogi: adaptivity tau")
TRIMMED_BETA = StrategyOption(
    "trimmed_beta", "trimmed-beta", 0.2, Interval(float, 0, 0.5, closed="left"), "FedTrimmedAvg: share cut at each end"
)
KRUM_MALICIOUS = StrategyOption(
    "krum_malicious_members",
    "krum-malicious-members",
    0,
    Interval(int, 0, None, closed="left"),
    "Krum: members assumed malicious (f)",
)


def sampling_options(config: FedChainConfig) -> dict[str, Any]:
    """Flower sampling options shared by every built-in strategy."""
    return {
        "fraction_train": config.fraction_train,
        "fraction_evaluate": config.fraction_evaluate,
        "min_train_nodes": 1,
        "min_evaluate_nodes": 1 if config.fraction_evaluate > 0 else 0,
        "min_available_nodes": config.min_members,
        "arrayrecord_key": MODEL_KEY,
        "configrecord_key": CONFIG_KEY,
    }


def make_server_optimizer(config: FedChainConfig) -> ServerOptimizer:
    """The server optimizer members apply under HE for ``config.strategy`` (name or dotted path).

    Raises:
        StrategyError: the strategy needs plaintext updates.
        ConfigError: the strategy is unknown or an option is out of range.
    """
    return resolve_strategy(config.strategy).server_optimizer(config)


@register_strategy
class FedAvgStrategy(FedChainStrategy):
    """Federated averaging (McMahan et al. 2017): example-weighted mean; works under HE."""

    name = "fedavg"

    def build_inner(self, config: FedChainConfig) -> Strategy:
        """Flower's FedAvg with fedchain's record keys."""
        return FedAvg(**sampling_options(config))


@register_strategy
class FedProxStrategy(FedChainStrategy):
    """FedProx (Li et al. 2020): FedAvg plus a proximal term in members' training; works under HE."""

    name = "fedprox"
    member_training = ("proximal",)
    options = (PROXIMAL_MU,)

    def build_inner(self, config: FedChainConfig) -> Strategy:
        """Flower's FedProx: it sends ``proximal-mu`` in every train config."""
        return FedProx(proximal_mu=self.option_values["proximal_mu"], **sampling_options(config))


@register_strategy
class FedAvgMStrategy(FedChainStrategy):
    """FedAvgM (Hsu et al. 2019): server momentum; under HE members apply it to the decrypted mean."""

    name = "fedavgm"
    member_update = "avgm"
    options = (SERVER_LEARNING_RATE, SERVER_MOMENTUM)

    @classmethod
    def server_optimizer_options(cls, config: FedChainConfig) -> dict[str, Any]:
        """Flower FedAvgM's ``server_learning_rate`` and ``server_momentum``."""
        return {
            "server_learning_rate": SERVER_LEARNING_RATE.value(config),
            "server_momentum": SERVER_MOMENTUM.value(config),
        }

    def build_inner(self, config: FedChainConfig) -> Strategy:
        """Flower's FedAvgM."""
        return FedAvgM(**self.server_optimizer_options(config), **sampling_options(config))


class _FedOptStrategy(FedChainStrategy):
    """Shared options of Flower's FedOpt family (Reddi et al. 2020)."""

    options = (SERVER_ETA, SERVER_BETA_1, SERVER_BETA_2, SERVER_TAU)

    @classmethod
    def server_optimizer_options(cls, config: FedChainConfig) -> dict[str, Any]:
        """Flower FedOpt's ``eta``, ``beta_1``, ``beta_2`` and ``tau`` (``eta_l`` is unused by Flower)."""
        return {
            "eta": SERVER_ETA.value(config),
            "beta_1": SERVER_BETA_1.value(config),
            "beta_2": SERVER_BETA_2.value(config),
            "tau": SERVER_TAU.value(config),
        }


@register_strategy
class FedAdamStrategy(_FedOptStrategy):
    """FedAdam (Reddi et al. 2020): server Adam; under HE members apply it to the decrypted mean."""

    name = "fedadam"
    member_update = "adam"

    def build_inner(self, config: FedChainConfig) -> Strategy:
        """Flower's FedAdam."""
        return FedAdam(**self.server_optimizer_options(config), **sampling_options(config))


@register_strategy
class FedYogiStrategy(_FedOptStrategy):
    """FedYogi (Reddi et al. 2020): server Yogi; under HE members apply it to the decrypted mean."""

    name = "fedyogi"
    member_update = "yogi"

    def build_inner(self, config: FedChainConfig) -> Strategy:
        """Flower's FedYogi."""
        return FedYogi(**self.server_optimizer_options(config), **sampling_options(config))


@register_strategy
class FedMedianStrategy(FedChainStrategy):
    """Coordinate-wise median (Yin et al. 2018): robust to outliers; needs plaintext updates."""

    name = "fedmedian"
    needs_plaintext = True
    member_update = None

    def build_inner(self, config: FedChainConfig) -> Strategy:
        """Flower's FedMedian with fedchain's record keys."""
        return FedMedian(**sampling_options(config))


@register_strategy
class FedTrimmedAvgStrategy(FedChainStrategy):
    """Trimmed mean (Yin et al. 2018), a share cut at each end; needs plaintext updates."""

    name = "fedtrimmedavg"
    needs_plaintext = True
    member_update = None
    options = (TRIMMED_BETA,)

    def build_inner(self, config: FedChainConfig) -> Strategy:
        """Flower's FedTrimmedAvg with fedchain's record keys."""
        return FedTrimmedAvg(beta=self.option_values["trimmed_beta"], **sampling_options(config))


@register_strategy
class KrumStrategy(FedChainStrategy):
    """Krum (Blanchard et al. 2017): keeps the update closest to its neighbours; needs plaintext updates."""

    name = "krum"
    needs_plaintext = True
    member_update = None
    options = (KRUM_MALICIOUS,)

    def build_inner(self, config: FedChainConfig) -> Strategy:
        """Flower's Krum."""
        return Krum(num_malicious_nodes=self.option_values["krum_malicious_members"], **sampling_options(config))
