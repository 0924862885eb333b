"""The scorer extension point: :class:`ContributionScorer` and what it is given, :class:`ScoringInputs`.

A scorer turns one round's accepted updates into one non-negative score per member. What it may
look at depends on the mode, and each scorer declares what it needs with three class attributes:

* ``needs_plaintext``: it must see individual plaintext updates (leave-one-out, Shapley). Such a
  scorer is refused when HE is on (:func:`~fedchain.contribution.check_scorer_allowed`).
* ``needs_scalars``: it works from inner products of the weighted updates (cosine). In plaintext
  mode they are computed from the updates; under HE they are the scalars a decrypt committee
  returned (:mod:`fedchain.contribution.committee`), so the HE run needs the SCORING parameters.
* ``needs_validation``: it needs ``ScoringInputs.evaluate``, the coordinator's utility over a
  validation set.

Notation used throughout: member ``i`` reports ``n_i`` examples and the update ``delta_i`` (new
local weights minus the global model); ``a_i = n_i * delta_i`` is its weighted update (what it
encrypts under HE) and ``S = sum_i a_i`` the round's weighted sum over the members being scored.

Example:
    >>> import numpy as np
    >>> from fedchain.contribution import ScoringInputs, create_scorer
    >>> inputs = ScoringInputs(num_examples={"a": 10, "b": 30})
    >>> create_scorer("data_size")(inputs)
    {'a': 0.25, 'b': 0.75}
"""

from __future__ import annotations

import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import ClassVar

import numpy as np

from fedchain.errors import ConfigError, StrategyError

__all__ = ["ContributionScorer", "InnerProducts", "ScoringInputs"]

log = logging.getLogger(__name__)

#: Utility of a candidate model: takes a flat delta (added to the round's starting global model)
#: and returns a figure of merit on the coordinator's validation set, higher is better (accuracy).
Evaluate = Callable[[np.ndarray], float]


@dataclass(frozen=True)
class InnerProducts:
    """Inner products of the weighted updates ``a_i = n_i * delta_i`` and their sum ``S``.

    Under HE these are the scalars a decrypt committee returned; in plaintext mode
    :meth:`from_deltas` computes them. Any part may be missing (``None`` / empty) when the
    corresponding request was not made.

    Attributes:
        sq_norms: ``||a_i||^2`` per member address.
        dots: ``<a_i, S>`` per member address.
        agg_sq_norm: ``||S||^2``, or None.

    Example:
        >>> import numpy as np
        >>> p = InnerProducts.from_deltas({"a": 2, "b": 1}, {"a": np.ones(2), "b": -np.ones(2)})
        >>> p.sq_norms["a"], p.dots["b"], p.agg_sq_norm
        (8.0, -2.0, 2.0)
    """

    sq_norms: Mapping[str, float] = field(default_factory=dict)
    dots: Mapping[str, float] = field(default_factory=dict)
    agg_sq_norm: float | None = None

    def __post_init__(self) -> None:
        for name in ("sq_norms", "dots"):
            values = getattr(self, name)
            for address, value in values.items():
                if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
                    raise ConfigError(f"{name}[{address!r}]", "a finite number", value)
            object.__setattr__(self, name, MappingProxyType({k: float(v) for k, v in values.items()}))
        if self.agg_sq_norm is not None and not math.isfinite(self.agg_sq_norm):
            raise ConfigError("agg_sq_norm", "a finite number or None", self.agg_sq_norm)

    @classmethod
    def from_deltas(cls, num_examples: Mapping[str, int], deltas: Mapping[str, np.ndarray]) -> InnerProducts:
        """Compute every inner product from plaintext updates (what the committee returns under HE).

        Args:
            num_examples: ``n_i`` per member.
            deltas: ``delta_i`` per member (unweighted), flat arrays of equal length.

        Returns:
            ``||a_i||^2``, ``<a_i, S>`` and ``||S||^2`` with ``S`` the sum over ``deltas``' members.
        """
        weighted = {address: float(num_examples[address]) * np.asarray(d, np.float64) for address, d in deltas.items()}
        if not weighted:
            return cls(agg_sq_norm=0.0)
        total = np.sum(list(weighted.values()), axis=0)
        return cls(
            sq_norms={address: float(a @ a) for address, a in weighted.items()},
            dots={address: float(a @ total) for address, a in weighted.items()},
            agg_sq_norm=float(total @ total),
        )


@dataclass(frozen=True)
class ScoringInputs:
    """Everything a scorer may use for one round. The coordinator builds one per round.

    Attributes:
        num_examples: ``n_i`` per member address, for every member to score, in a fixed order
            (the order of the round record). Counts are as claimed by members.
        deltas: plaintext mode: ``delta_i`` per member, flat float64 arrays of equal length
            (unweighted: the member's new weights minus the round's starting global model).
            ``None`` under HE: the coordinator never sees individual updates.
        products: inner products of the weighted updates over the members scored: computed from
            ``deltas`` when omitted in plaintext mode; under HE the committee's decrypted scalars.
        evaluate: the coordinator's validation utility (see ``Evaluate``): ``evaluate(delta)`` is
            the accuracy of the starting global model plus ``delta``; ``evaluate(zeros)`` that of
            the global model itself. Needed by scorers with ``needs_validation``.
        seed: seed for randomised scorers (derive it from the run seed and the round).

    Raises:
        ConfigError: when the members of the parts disagree, a count is not a positive int, or
            an update is not a finite flat array of the common length.

    Example:
        >>> import numpy as np
        >>> inputs = ScoringInputs(num_examples={"a": 3}, deltas={"a": np.ones(4)})
        >>> inputs.members, inputs.he, inputs.inner_products().sq_norms["a"]
        (('a',), False, 36.0)
    """

    num_examples: Mapping[str, int]
    deltas: Mapping[str, np.ndarray] | None = None
    products: InnerProducts | None = None
    evaluate: Evaluate | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        for address, n in self.num_examples.items():
            if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
                raise ConfigError(f"num_examples[{address!r}]", "an int in [1, inf)", n)
        object.__setattr__(self, "num_examples", MappingProxyType({k: int(v) for k, v in self.num_examples.items()}))
        if self.deltas is not None:
            if list(self.deltas) != list(self.num_examples):
                raise ConfigError("deltas", "one update per member, in the order of num_examples", sorted(self.deltas))
            flat: dict[str, np.ndarray] = {}
            size: int | None = None
            for address, delta in self.deltas.items():
                array = np.asarray(delta, dtype=np.float64)
                if array.ndim != 1 or (size is not None and array.size != size):
                    raise ConfigError(
                        f"deltas[{address!r}]", f"a flat array of {size or 'the common'} values", array.shape
                    )
                if not np.isfinite(array).all():
                    raise ConfigError(f"deltas[{address!r}]", "finite values", "a NaN or infinite value")
                size = array.size
                flat[address] = array
            object.__setattr__(self, "deltas", MappingProxyType(flat))
        if self.products is not None:
            for part in (self.products.sq_norms, self.products.dots):
                if part and list(part) != list(self.num_examples):
                    raise ConfigError("products", "inner products of exactly the members scored", sorted(part))

    @property
    def members(self) -> tuple[str, ...]:
        """Member addresses, in order."""
        return tuple(self.num_examples)

    @property
    def he(self) -> bool:
        """True when individual updates are not available (HE mode)."""
        return self.deltas is None

    def inner_products(self) -> InnerProducts:
        """The round's inner products: given ones (HE), else computed from the plaintext updates.

        Raises:
            StrategyError: under HE when the committee's scalars were not supplied.
        """
        if self.products is not None:
            return self.products
        if self.deltas is None:
            raise StrategyError(
                "this scorer needs inner products of the updates, but HE is on and no decrypted scalars were "
                "given: run the decrypt committee (fedchain.contribution.committee) with the SCORING parameters"
            )
        return InnerProducts.from_deltas(self.num_examples, self.deltas)

    def subset_delta(self, subset: frozenset[str] | set[str] | tuple[str, ...]) -> np.ndarray:
        """FedAvg of a subset's updates: ``sum_{i in subset} n_i delta_i / sum_{i in subset} n_i``.

        The empty subset gives a zero delta (the global model unchanged).

        Raises:
            StrategyError: under HE (there are no plaintext updates to combine).
        """
        if self.deltas is None:
            raise StrategyError("subset updates need plaintext updates; HE is on")
        members = [address for address in self.members if address in subset]
        if not members:
            return np.zeros_like(next(iter(self.deltas.values())))
        weights = np.array([self.num_examples[a] for a in members], dtype=np.float64)
        stacked = np.stack([self.deltas[a] for a in members])
        return (weights @ stacked) / weights.sum()


class ContributionScorer(ABC):
    """Base class of every contribution scorer (see the module docstring for the notation).

    Subclasses set ``name`` and the ``needs_*`` flags and implement :meth:`score`. The coordinator
    calls the scorer object itself (``scorer(inputs)``), which checks that the inputs carry what
    the scorer declared it needs and that the scores are valid.
    """

    #: Registry name, used in ``--scorer``.
    name: ClassVar[str] = ""
    #: True if it must see individual plaintext updates (refused under HE).
    needs_plaintext: ClassVar[bool] = False
    #: True if it works from inner products of weighted updates (under HE: committee scalars).
    needs_scalars: ClassVar[bool] = False
    #: True if it needs ``ScoringInputs.evaluate`` (a validation set on the coordinator).
    needs_validation: ClassVar[bool] = False
    #: One line for ``fedchain scorers`` and the docs.
    summary: ClassVar[str] = ""

    @abstractmethod
    def score(self, inputs: ScoringInputs) -> dict[str, float]:
        """Score one round.

        Args:
            inputs: the round's members and what the scorer declared it needs; the base class has
                already checked that those parts are present.

        Returns:
            A score for every member of ``inputs.num_examples``: finite, non-negative, and a pure
            function of ``inputs`` (randomised scorers draw only from ``inputs.seed``). Rewards are
            proportional to scores, so only their ratios matter; all zero pays nobody.

        Raises:
            StrategyError: when the scorer cannot work with these inputs.
        """

    def check_inputs(self, inputs: ScoringInputs) -> None:
        """Raise :class:`StrategyError` when ``inputs`` lack what this scorer needs."""
        if self.needs_plaintext and inputs.deltas is None:
            raise StrategyError(
                f"scorer {self.name!r} needs plaintext updates, but HE is on: the coordinator only holds "
                "ciphertexts. Use --no-he, or a scorer that works under HE ('cosine', 'data_size')."
            )
        if self.needs_validation and inputs.evaluate is None:
            raise StrategyError(
                f"scorer {self.name!r} needs a validation set on the coordinator (ScoringInputs.evaluate), "
                "and none was given"
            )
        if self.needs_scalars and inputs.deltas is None and inputs.products is None:
            inputs.inner_products()  # raises with the explanation

    def __call__(self, inputs: ScoringInputs) -> dict[str, float]:
        """Check the inputs, score, and check the scores (what the coordinator calls).

        Returns:
            ``{address: score}`` in the order of ``inputs.members``.

        Raises:
            StrategyError: when the inputs lack what the scorer needs, or the scorer returned an
                invalid score (missing member, negative, NaN): that is a bug in the scorer.
        """
        self.check_inputs(inputs)
        if not inputs.members:
            return {}
        raw = self.score(inputs)
        scores: dict[str, float] = {}
        for address in inputs.members:
            value = raw.get(address)
            if value is None or not math.isfinite(value) or value < 0:
                raise StrategyError(
                    f"scorer {self.name!r} returned {value!r} for member {address}: scores must be finite and >= 0"
                )
            scores[address] = float(value)
        extra = sorted(set(raw) - set(scores))
        if extra:
            raise StrategyError(f"scorer {self.name!r} scored members that are not in the round: {extra}")
        log.debug("scorer %s: %s", self.name, scores)
        return scores

    def describe(self) -> dict[str, object]:
        """What the scorer needs, for listings."""
        return {
            "name": self.name,
            "he": not self.needs_plaintext,
            "needs_plaintext": self.needs_plaintext,
            "needs_scalars": self.needs_scalars,
            "needs_validation": self.needs_validation,
            "summary": self.summary,
        }
