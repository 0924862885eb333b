"""Built-in strategies, each a thin declaration around Flower's own implementation."""

from __future__ import annotations

from flwr.serverapp.strategy import FedAvg, FedMedian, FedTrimmedAvg, Strategy

from fedchain.config import FedChainConfig
from strategies.base import CONFIG_KEY, MODEL_KEY, FedChainStrategy
from strategies.registry import register_strategy

__all__ = ["FedAvgStrategy", "FedMedianStrategy", "FedTrimmedAvgStrategy"]


def sampling_options(config: FedChainConfig) -> dict[str, object]:
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


@register_strategy
class FedAvgStrategy(FedChainStrategy):
    """Federated averaging (McMahan et al. 2017): example-weighted mean; works under HE."""

    name = "fedavg"

    def build_inner(self, config: FedChainConfig) -> Strategy:
        """Flower's FedAvg with fedchain's record keys."""
        return FedAvg(**sampling_options(config))  # type: ignore[arg-type]


@register_strategy
class FedMedianStrategy(FedChainStrategy):
    """Coordinate-wise median (Yin et al. 2018): robust to outliers; needs plaintext updates."""

    name = "fedmedian"
    needs_plaintext = True

    def build_inner(self, config: FedChainConfig) -> Strategy:
        """Flower's FedMedian with fedchain's record keys."""
        return FedMedian(**sampling_options(config))  # type: ignore[arg-type]


@register_strategy
class FedTrimmedAvgStrategy(FedChainStrategy):
    """Trimmed mean (Yin et al. 2018), 20% cut at each end; needs plaintext updates."""

    name = "fedtrimmedavg"
    needs_plaintext = True

    def build_inner(self, config: FedChainConfig) -> Strategy:
        """Flower's FedTrimmedAvg with fedchain's record keys."""
        return FedTrimmedAvg(beta=0.2, **sampling_options(config))  # type: ignore[arg-type]
