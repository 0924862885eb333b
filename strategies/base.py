"""The extension point for strategy authors: :class:`FedChainStrategy`.

A fedchain strategy wraps an inner Flower strategy (sampling, configuration and, in plaintext
mode, aggregation are Flower's own) and declares what it needs:

* ``needs_plaintext``: True if it must see individual plaintext updates (median, Krum...). Such
  a strategy refuses to start when HE is on, naming ``he_alternative``.
* ``member_update``: how members apply the decrypted aggregate under HE, a registered server
  optimizer kind (:mod:`fedchain.aggregation`): ``"avg"`` (FedAvg), ``"avgm"``, ``"adam"``,
  ``"yogi"``. Every member applies the same step to the same decrypted mean update, so the
  coordinator stays blind. ``None`` for plaintext-only strategies.
* ``member_training``: terms members add to local training (``"proximal"`` for FedProx).
* ``supported_scorers``: contribution scorers it can be combined with (``None`` = any).
* ``options``: the :class:`StrategyOption` values it reads from the config.

Subclasses implement one method, :meth:`~FedChainStrategy.build_inner`, returning the Flower
strategy; a server-optimizer strategy also overrides :meth:`~FedChainStrategy.server_optimizer_options`.
``strategies.conformance.check_strategy`` checks that the declarations are honest.

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

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message
from flwr.app.exception import AppExitException
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from fedchain._validation import Interval
from fedchain.aggregation import ServerOptimizer, create_server_optimizer
from fedchain.config import FedChainConfig
from fedchain.errors import FedChainError, StrategyError
from fedchain.protocol import (
    CONFIG,
    MODEL,
    StrategyReply,
    decode_strategy_reply,
    encode,
    record_to_weights,
    weights_to_record,
)
from fedchain.serialization import Weights

__all__ = ["MEMBER_FEATURES", "FedChainStrategy", "Interval", "StrategyOption"]

log = logging.getLogger(__name__)

#: Record keys fedchain's inner Flower strategies use (``fedchain.protocol``'s ``MODEL`` and ``CONFIG``).
MODEL_KEY = MODEL
CONFIG_KEY = CONFIG

#: Member-side features a strategy may require of the member node (``member_requirements``):
#: ``"server-optimizer"``: the node applies aggregates through the strategy's server optimizer
#: (any ``member_update`` other than ``"avg"``); ``"proximal"``: FedProx's term in local training.
MEMBER_FEATURES = ("proximal", "server-optimizer")


@dataclass(frozen=True)
class StrategyOption:
    """A config option a strategy reads (``FedChainConfig`` attribute, with a default when absent).

    Attributes:
        field: the ``FedChainConfig`` attribute name, e.g. ``"server_eta"``.
        key: the Flower run-config key, e.g. ``"server-eta"``.
        default: the value used when the config has no such attribute.
        check: the allowed range; bad values raise ``ConfigError`` naming ``field``.
        help: one line for ``fedchain strategies`` and the configuration reference.

    Example:
        >>> from fedchain._validation import Interval
        >>> option = StrategyOption("proximal_mu", "proximal-mu", 0.01, Interval(float, 0, None, "left"), "mu")
        >>> option.value(FedChainConfig())
        0.01
    """

    field: str
    key: str
    default: float | int
    check: Interval
    help: str

    def value(self, config: FedChainConfig) -> Any:
        """The validated value from ``config`` (its attribute, or the default)."""
        return self.check.check(self.field, getattr(config, self.field, self.default))


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
    #: Server optimizer kind members apply to the decrypted mean update under HE; None: plaintext only.
    member_update: ClassVar[str | None] = "avg"
    #: Terms members add to local training (``"proximal"``), in both modes.
    member_training: ClassVar[tuple[str, ...]] = ()
    #: Config options this strategy reads.
    options: ClassVar[tuple[StrategyOption, ...]] = ()

    def __init__(self, config: FedChainConfig) -> None:
        if config.he and self.needs_plaintext:
            raise StrategyError(
                f"strategy {self.name!r} needs plaintext updates, but HE is on: the coordinator only "
                f"sees ciphertexts. Use --no-he for {self.name!r}, or choose {self.he_alternative!r}, "
                "which works under HE."
            )
        if config.he and self.member_update is None:
            raise StrategyError(
                f"strategy {self.name!r} declares no member_update, so members cannot apply its aggregate "
                "under HE: declare one (see fedchain.aggregation) or set needs_plaintext = True"
            )
        if self.supported_scorers is not None and config.scorer not in self.supported_scorers:
            raise StrategyError(
                f"strategy {self.name!r} cannot be combined with scorer {config.scorer!r}; "
                f"it supports {', '.join(self.supported_scorers)}"
            )
        self.config = config
        self.option_values: dict[str, Any] = {option.field: option.value(config) for option in self.options}
        if config.he:
            self.server_optimizer(config)  # an invalid kind or option fails here, not on the members
        self.inner = self.build_inner(config)
        self._reference: Weights | None = None

    @abstractmethod
    def build_inner(self, config: FedChainConfig) -> Strategy:
        """Return the Flower strategy that samples members and (in plaintext) aggregates.

        It must use the record keys ``"model"`` (``arrayrecord_key``) and ``"config"``, and
        weight replies by ``"num-examples"``. Option values are in ``self.option_values``.
        """

    # ----------------------------------------------------------- declarations
    @classmethod
    def server_optimizer_options(cls, config: FedChainConfig) -> dict[str, Any]:
        """Keyword arguments of the ``member_update`` server optimizer (none for ``"avg"``).

        They must reproduce what the inner Flower strategy does in plaintext, so that HE and
        plaintext runs compute the same model (the conformance suite checks it).
        """
        return {}

    @classmethod
    def server_optimizer(cls, config: FedChainConfig) -> ServerOptimizer:
        """The server optimizer members apply under HE.

        Raises:
            StrategyError: the strategy is plaintext-only (``member_update`` is None).
            ConfigError: the kind is not registered or an option is out of range.
        """
        if cls.member_update is None:
            raise StrategyError(
                f"strategy {cls.name!r} has no member-side update: it needs plaintext updates "
                f"(use {cls.he_alternative!r} under HE)"
            )
        return create_server_optimizer(cls.member_update, **cls.server_optimizer_options(config))

    @classmethod
    def member_update_rule(cls, config: FedChainConfig) -> tuple[str, tuple[tuple[str, float], ...]]:
        """What members apply to each decrypted aggregate: ``(member_update, options)``, sent with it.

        Members build the update from the library (``fedchain.aggregation.create_server_optimizer``),
        so a member never imports a strategy.

        Raises:
            StrategyError: the strategy is plaintext-only (``member_update`` is None).
        """
        cls.server_optimizer(config)  # validates the kind and its options
        assert cls.member_update is not None
        options = cls.server_optimizer_options(config)
        return cls.member_update, tuple(sorted((name, float(value)) for name, value in options.items()))

    @classmethod
    def member_requirements(cls, *, he: bool) -> frozenset[str]:
        """Member-node features (:data:`MEMBER_FEATURES`) this strategy needs in the given mode."""
        needs = set(cls.member_training)
        if he and cls.member_update not in (None, "avg"):
            needs.add("server-optimizer")
        return frozenset(needs)

    @classmethod
    def capabilities(cls) -> dict[str, Any]:
        """What the strategy supports, without building it (for ``fedchain strategies``).

        Example:
            >>> from strategies.builtin import FedAdamStrategy
            >>> caps = FedAdamStrategy.capabilities()
            >>> caps["he"], caps["member_update"], caps["options"][0]["key"]
            (True, 'adam', 'server-eta')
        """
        return {
            "name": cls.name,
            "summary": (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else "",
            "he": not cls.needs_plaintext,
            "needs_plaintext": cls.needs_plaintext,
            "he_alternative": cls.he_alternative if cls.needs_plaintext else None,
            "member_update": cls.member_update,
            "member_training": list(cls.member_training),
            "scorers": list(cls.supported_scorers) if cls.supported_scorers is not None else "any",
            "options": [{"key": o.key, "default": o.default, "help": o.help} for o in cls.options],
        }

    # ------------------------------------------------------------------ rounds
    def configure_train(self, server_round: int, weights: Weights, config: ConfigRecord, grid: Grid) -> list[Message]:
        """Sample members and build their train instructions (Flower's sampling)."""
        self._reference = dict(weights)
        self._wait_for_nodes(grid)
        return list(self.inner.configure_train(server_round, weights_to_record(weights), config, grid))

    def configure_evaluate(
        self, server_round: int, weights: Weights, config: ConfigRecord, grid: Grid
    ) -> list[Message]:
        """Sample members and build their evaluate instructions (Flower's sampling)."""
        self._wait_for_nodes(grid)
        return list(self.inner.configure_evaluate(server_round, weights_to_record(weights), config, grid))

    def _wait_for_nodes(self, grid: Grid, poll_s: float = 0.05) -> None:
        """Wait until the inner strategy's ``min_available_nodes`` are connected.

        Flower 1.42 computes the sample size from the nodes connected *before* it waits for
        ``min_available_nodes``, so a first round that starts while nodes are still connecting
        samples too few of them (seen: 1 of 2, and the round skipped). Waiting here first makes the
        sample size count every node Flower would wait for.
        """
        needed = int(getattr(self.inner, "min_available_nodes", 0) or 0)
        last_log = 0.0
        while (connected := len(list(grid.get_node_ids()))) < needed:
            if time.monotonic() - last_log >= 5.0:
                log.info("waiting for members to connect: %d of %d", connected, needed)
                last_log = time.monotonic()
            time.sleep(poll_s)

    def aggregate_plain(self, server_round: int, updates: Iterable[tuple[Weights, int]]) -> ArrayRecord:
        """Aggregate validated plaintext member weights with the inner Flower strategy.

        Updates with zero examples carry no information and are left out (Flower would divide
        by a zero total weight).

        Args:
            server_round: the current round.
            updates: (weights, example count) of each accepted member.

        Returns:
            The new global model as an ArrayRecord, with the names and dtypes of the model
            given to :meth:`configure_train` (or of the first update).

        Raises:
            StrategyError: no update has a positive example count, a count is not an int >= 0,
                or the inner strategy fails or produces no (or a non-finite) model.
        """
        given = list(updates)
        kept: list[tuple[Weights, int]] = []
        for index, (weights, n) in enumerate(given):
            if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
                raise StrategyError(f"round {server_round}: update {index} has example count {n!r}, not an int >= 0")
            if n > 0:
                kept.append((weights, int(n)))
        if not kept:
            raise StrategyError(
                f"strategy {self.name!r}: nothing to aggregate in round {server_round}: "
                f"{len(given)} update(s), none with a positive example count"
            )
        replies = [
            Message(encode(StrategyReply(weights, n)), dst_node_id=0, message_type="train") for weights, n in kept
        ]
        try:
            arrays, _ = self.inner.aggregate_train(server_round, replies)
        except (AppExitException, ArithmeticError, KeyError, TypeError, ValueError) as exc:
            raise StrategyError(f"strategy {self.name!r} could not aggregate round {server_round}: {exc}") from exc
        if arrays is None:
            raise StrategyError(f"strategy {self.name!r} produced no model in round {server_round}")
        return self._conform(server_round, arrays, self._reference or kept[0][0])

    def _conform(self, server_round: int, arrays: ArrayRecord, reference: Weights) -> ArrayRecord:
        """Cast Flower's result to the model's dtypes (FedAdam returns float64) and refuse NaN."""
        out: Weights = {}
        for name, array in record_to_weights(arrays).items():
            dtype = reference[name].dtype if name in reference else array.dtype
            if not np.all(np.isfinite(array)):
                raise StrategyError(f"strategy {self.name!r} produced NaN or infinite {name!r} in round {server_round}")
            out[name] = np.asarray(array, dtype=dtype)
        return weights_to_record(out)

    def aggregate_replies(self, server_round: int, replies: Iterable[Message]) -> ArrayRecord:
        """Aggregate Flower train replies: failed and malformed replies are left out, the rest aggregated.

        A reply counts when it carries no error and decodes as a
        :class:`~fedchain.protocol.StrategyReply` (one ArrayRecord, the model, and an int example count).

        Raises:
            StrategyError: as :meth:`aggregate_plain`, e.g. when no reply is valid.
        """
        updates: list[tuple[Weights, int]] = []
        failed = 0
        for reply in replies:
            if reply.has_error():
                failed += 1
                log.info(
                    "round %d: reply from node %d failed: %s", server_round, reply.metadata.src_node_id, reply.error
                )
                continue
            try:
                decoded = decode_strategy_reply(reply.content)
                updates.append((decoded.weights, decoded.num_examples))
            except FedChainError as exc:
                failed += 1
                log.warning("round %d: malformed reply from node %d: %s", server_round, reply.metadata.src_node_id, exc)
        log.info("round %d: aggregating %d valid replies (%d failed)", server_round, len(updates), failed)
        return self.aggregate_plain(server_round, updates)

    # ------------------------------------------------------------ checkpoints
    #: Inner-strategy attributes that are not carried state: rebuilt from the global model.
    DERIVED_STATE: ClassVar[tuple[str, ...]] = ("current_arrays", "initial_arrays")

    def server_state(self) -> dict[str, np.ndarray]:
        """The arrays the inner strategy carries from round to round, for the coordinator's checkpoint.

        In plaintext mode, Flower's server optimizers keep moments between rounds (FedAvgM's
        ``momentum_vector``, FedAdam's and FedYogi's ``m_t`` and ``v_t``). Every attribute of the
        inner strategy that holds an array, a dict of arrays or a list of arrays is captured (so a
        custom strategy's state is too), except :attr:`DERIVED_STATE`. Keys are ``attr``,
        ``attr/k:<key>`` or ``attr/i:<index>``.

        Example:
            >>> import numpy as np
            >>> from fedchain.config import FedChainConfig
            >>> from strategies.builtin import FedAdamStrategy
            >>> strategy = FedAdamStrategy(FedChainConfig(he=False, members=2, strategy="fedadam"))
            >>> strategy.inner.m_t = {"w": np.ones(2)}
            >>> sorted(strategy.server_state())
            ['m_t/k:w']
        """
        state: dict[str, np.ndarray] = {}
        for attr, value in vars(self.inner).items():
            if attr in self.DERIVED_STATE:
                continue
            if isinstance(value, np.ndarray):
                state[attr] = value
            elif isinstance(value, dict) and value and all(isinstance(v, np.ndarray) for v in value.values()):
                state.update({f"{attr}/k:{key}": array for key, array in value.items()})
            elif isinstance(value, list | tuple) and value and all(isinstance(v, np.ndarray) for v in value):
                state.update({f"{attr}/i:{index}": array for index, array in enumerate(value)})
        return state

    def load_server_state(self, state: dict[str, np.ndarray]) -> None:
        """Put :meth:`server_state` output back into the inner strategy (on resume).

        Raises:
            StrategyError: a key names no attribute of the inner strategy, or is malformed.
        """
        dicts: dict[str, dict[str, np.ndarray]] = {}
        lists: dict[str, dict[int, np.ndarray]] = {}
        for key, array in state.items():
            attr, _, part = key.partition("/")
            if not hasattr(self.inner, attr) or attr in self.DERIVED_STATE:
                raise StrategyError(f"checkpointed strategy state {key!r} does not belong to {self.name!r}")
            if not part:
                setattr(self.inner, attr, array)
            elif part.startswith("k:"):
                dicts.setdefault(attr, {})[part[2:]] = array
            elif part.startswith("i:") and part[2:].isdigit():
                lists.setdefault(attr, {})[int(part[2:])] = array
            else:
                raise StrategyError(f"malformed checkpointed strategy state key {key!r}")
        for attr, entries in dicts.items():
            setattr(self.inner, attr, entries)
        for attr, items in lists.items():
            if sorted(items) != list(range(len(items))):
                raise StrategyError(f"checkpointed strategy state {attr!r} misses list entries")
            setattr(self.inner, attr, [items[i] for i in range(len(items))])

    def describe(self) -> dict[str, object]:
        """What the strategy supports, for ``fedchain strategies``: :meth:`capabilities` plus its settings."""
        return {**self.capabilities(), "inner": type(self.inner).__name__, "option_values": dict(self.option_values)}
