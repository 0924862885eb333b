"""The extension point for strategy authors: :class:`FedChainStrategy`.

A fedchain strategy wraps an inner Flower strategy (sampling, configuration and, in plaintext
mode, aggregation are Flower's own) and declares what it needs:

* ``needs_plaintext``: True if it must see individual plaintext updates (median, Krum, server-side
  Adam...). Such a strategy refuses to start when HE is on.
* ``supported_scorers``: contribution scorers it can be combined with (``None`` = any).

Subclasses implement one method, :meth:`build_inner`, returning the Flower strategy.

Example:
    >>> from flwr.serverapp.strategy import FedAvg
    >>> class MyAvg(FedChainStrategy):
    ...     name = "my_avg"
    ...     def build_inner(self, config):
    ...         return FedAvg(fraction_train=config.fraction_train, min_train_nodes=1, min_available_nodes=1)
    >>> from fedchain.config import FedChainConfig
    >>> MyAvg(FedChainConfig(he=False, members=2)).needs_plaintext
    False
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import ClassVar

from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from fedchain.config import FedChainConfig
from fedchain.errors import StrategyError
from fedchain.protocol import weights_to_record
from fedchain.serialization import Weights

__all__ = ["FedChainStrategy"]

#: Record keys fedchain's inner Flower strategies use.
MODEL_KEY = "model"
CONFIG_KEY = "config"


class FedChainStrategy(ABC):
    """Base class of every fedchain strategy; see the module docstring."""

    #: Registry name, used in ``--strategy``.
    name: ClassVar[str] = ""
    #: True if the strategy must see plaintext updates (refused with HE on).
    needs_plaintext: ClassVar[bool] = False
    #: Scorers this strategy supports; ``None`` means every registered scorer.
    supported_scorers: ClassVar[tuple[str, ...] | None] = None
    #: What to use instead under HE, named in the refusal message.
    he_alternative: ClassVar[str] = "fedavg"

    def __init__(self, config: FedChainConfig) -> None:
        if config.he and self.needs_plaintext:
            raise StrategyError(
                f"strategy {self.name!r} needs plaintext updates, but HE is on: the coordinator only "
                f"sees ciphertexts. Use --no-he for {self.name!r}, or choose {self.he_alternative!r}, "
                "which works under HE."
            )
        if self.supported_scorers is not None and config.scorer not in self.supported_scorers:
            raise StrategyError(
                f"strategy {self.name!r} cannot be combined with scorer {config.scorer!r}; "
                f"it supports {', '.join(self.supported_scorers)}"
            )
        self.config = config
        self.inner = self.build_inner(config)

    @abstractmethod
    def build_inner(self, config: FedChainConfig) -> Strategy:
        """Return the Flower strategy that samples members and (in plaintext) aggregates.

        It must use the record keys ``"model"`` (``arrayrecord_key``) and ``"config"``, and
        weight replies by ``"num-examples"``.
        """

    # ------------------------------------------------------------------ rounds
    def configure_train(self, server_round: int, weights: Weights, config: ConfigRecord, grid: Grid) -> list[Message]:
        """Sample members and build their train instructions (Flower's sampling)."""
        return list(self.inner.configure_train(server_round, weights_to_record(weights), config, grid))

    def configure_evaluate(
        self, server_round: int, weights: Weights, config: ConfigRecord, grid: Grid
    ) -> list[Message]:
        """Sample members and build their evaluate instructions (Flower's sampling)."""
        return list(self.inner.configure_evaluate(server_round, weights_to_record(weights), config, grid))

    def aggregate_plain(self, server_round: int, updates: Iterable[tuple[Weights, int]]) -> ArrayRecord:
        """Aggregate validated plaintext member weights with the inner Flower strategy.

        Args:
            server_round: the current round.
            updates: (weights, example count) of each accepted member.

        Returns:
            The new global model as an ArrayRecord.
        """
        replies = [
            Message(
                RecordDict({MODEL_KEY: weights_to_record(weights), "metrics": MetricRecord({"num-examples": n})}),
                dst_node_id=0,
                message_type="train",
            )
            for weights, n in updates
        ]
        arrays, _ = self.inner.aggregate_train(server_round, replies)
        if arrays is None:
            raise StrategyError(f"strategy {self.name!r} produced no model in round {server_round}")
        return arrays

    def describe(self) -> dict[str, object]:
        """What the strategy supports, for ``fedchain strategies``."""
        return {
            "name": self.name,
            "needs_plaintext": self.needs_plaintext,
            "he": not self.needs_plaintext,
            "scorers": list(self.supported_scorers) if self.supported_scorers else "any",
            "inner": type(self.inner).__name__,
        }
