"""The built-in scorers: ``data_size``, ``cosine``, ``loo`` and ``gtg_shapley``.

======================  ==========  ===========  ==========================================
scorer                  under HE    validation   score of member ``i``
======================  ==========  ===========  ==========================================
``data_size``           yes         no           ``n_i / sum_j n_j`` (baseline: claims only)
``cosine``              yes [1]_    no           ``n_i * max(0, cos(a_i, S - a_i))``
``loo``                 no          yes          ``max(0, u(N) - u(N without i))``
``gtg_shapley``         no          yes          ``max(0, GTG-Shapley estimate of phi_i)``
======================  ==========  ===========  ==========================================

.. [1] under HE, from the scalars ``||a_i||^2``, ``<a_i, S>`` and ``||S||^2`` decrypted by the
   committee (SCORING parameters).

``u`` is the coordinator's validation utility (see :func:`~fedchain.contribution.round_utility`).
Shapley and leave-one-out values can be negative (a member that hurts the model); scores are
clipped at zero because rewards cannot be negative.

Example:
    >>> import numpy as np
    >>> from fedchain.contribution import ScoringInputs
    >>> same, orthogonal, opposite = np.array([1.0, 0.0]), np.array([0.0, 1.0]), np.array([-1.0, 0.0])
    >>> n = {"a": 10, "b": 10, "c": 10}
    >>> scores = CosineScorer()(ScoringInputs(num_examples=n, deltas={"a": same, "b": same, "c": orthogonal}))
    >>> {member: round(score, 3) for member, score in scores.items()}  # 10 x cos(45 degrees)
    {'a': 7.071, 'b': 7.071, 'c': 0.0}
    >>> n = {"a": 10, "b": 10, "c": 10, "d": 10}
    >>> CosineScorer()(ScoringInputs(num_examples=n, deltas={"a": same, "b": same, "c": same, "d": opposite}))
    {'a': 10.0, 'b': 10.0, 'c': 10.0, 'd': 0.0}
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any, ClassVar

from fedchain._validation import Interval, check_bool
from fedchain.contribution.base import ContributionScorer, InnerProducts, ScoringInputs
from fedchain.contribution.registry import register_scorer
from fedchain.contribution.shapley import gtg_shapley, leave_one_out, round_utility
from fedchain.errors import StrategyError

__all__ = [
    "CosineScorer",
    "DataSizeScorer",
    "GTGShapleyScorer",
    "LeaveOneOutScorer",
    "cosine_scores",
    "data_size_scores",
]

log = logging.getLogger(__name__)

#: An update whose weighted norm is below this fraction of the round's largest counts as zero
#: (a free rider's ``Enc(0)`` decrypts to CKKS noise, not to exactly zero).
ZERO_NORM_TOLERANCE = 1e-4


def data_size_scores(num_examples: Mapping[str, int]) -> dict[str, float]:
    """Baseline: each member's share of the round's examples (sums to 1; all zero if none).

    Example:
        >>> data_size_scores({"a": 30, "b": 10})
        {'a': 0.75, 'b': 0.25}
    """
    total = sum(num_examples.values())
    if total <= 0:
        return dict.fromkeys(num_examples, 0.0)
    return {member: n / total for member, n in num_examples.items()}


def cosine_scores(
    num_examples: Mapping[str, int],
    products: InnerProducts,
    *,
    include_self: bool = False,
    zero_tolerance: float = ZERO_NORM_TOLERANCE,
) -> dict[str, float]:
    """``n_i * max(0, cos)`` from inner products of the weighted updates ``a_i = n_i delta_i``.

    With ``d_i = <a_i, S>``, ``q_i = ||a_i||^2`` and ``Q = ||S||^2``:

    * default (``include_self=False``), against the aggregate of the *other* members
      ``R_i = S - a_i``: ``cos = (d_i - q_i) / (sqrt(q_i) * sqrt(Q - 2 d_i + q_i))``. The scalars are
      the same three; no vector ``S - a_i`` is ever formed or revealed. Comparing with the others
      removes each update's correlation with itself, which otherwise pays a large random update for
      dominating the aggregate. When the others' sum vanishes (every other update is zero) the
      member is compared with ``S`` itself.
    * ``include_self=True``, against the whole aggregate: ``cos = d_i / (sqrt(q_i) * sqrt(Q))``.

    A zero update (norm below ``zero_tolerance`` times the round's largest) scores 0.

    Args:
        num_examples: ``n_i`` per member.
        products: ``sq_norms``, ``dots`` and ``agg_sq_norm`` over exactly these members.
        include_self: compare with the whole aggregate instead of the others'.
        zero_tolerance: relative norm below which an update counts as zero.

    Returns:
        Non-negative scores, in the order of ``num_examples``.

    Raises:
        StrategyError: when a member's scalars are missing.

    Example:
        >>> p = InnerProducts(sq_norms={"a": 1.0, "b": 1.0}, dots={"a": 1.0, "b": 1.0}, agg_sq_norm=2.0)
        >>> cosine_scores({"a": 2, "b": 3}, p)  # orthogonal updates: nothing in common
        {'a': 0.0, 'b': 0.0}
    """
    missing = [a for a in num_examples if a not in products.sq_norms or a not in products.dots]
    if missing or products.agg_sq_norm is None:
        raise StrategyError(f"cosine scores need ||a_i||^2, <a_i, S> and ||S||^2; missing for {missing or 'S'}")
    agg_sq = max(products.agg_sq_norm, 0.0)
    norms = {a: math.sqrt(max(products.sq_norms[a], 0.0)) for a in num_examples}
    floor = zero_tolerance * max(norms.values(), default=0.0)
    scores: dict[str, float] = {}
    for address, n in num_examples.items():
        norm, dot, sq = norms[address], products.dots[address], max(products.sq_norms[address], 0.0)
        if norm <= floor or norm == 0.0:
            scores[address] = 0.0
            continue
        others_sq = max(agg_sq - 2.0 * dot + sq, 0.0)
        if include_self or math.sqrt(others_sq) <= floor:
            denominator = norm * math.sqrt(agg_sq)
            numerator = dot
        else:
            denominator = norm * math.sqrt(others_sq)
            numerator = dot - sq
        cosine = numerator / denominator if denominator > 0 else 0.0
        scores[address] = n * max(0.0, min(cosine, 1.0))
    return scores


@register_scorer
class DataSizeScorer(ContributionScorer):
    """Proportional to the examples each member claims (the baseline; a free rider's claims pay)."""

    name: ClassVar[str] = "data_size"
    summary: ClassVar[str] = "share of the round's examples (baseline, trusts claims)"

    def score(self, inputs: ScoringInputs) -> dict[str, float]:
        """``n_i / sum_j n_j``; needs only the claimed counts."""
        return data_size_scores(inputs.num_examples)


@register_scorer
class CosineScorer(ContributionScorer):
    """``n_i * max(0, cos(a_i, S - a_i))``; works under HE from committee-decrypted scalars.

    Args:
        include_self: compare each update with the whole aggregate ``S`` (the literal formula)
            instead of the other members' aggregate (default; see :func:`cosine_scores`).
        zero_tolerance: relative norm below which an update counts as zero.
    """

    name: ClassVar[str] = "cosine"
    needs_scalars: ClassVar[bool] = True
    summary: ClassVar[str] = "examples x cosine with the other members' aggregate (works under HE)"

    def __init__(self, *, include_self: bool = False, zero_tolerance: float = ZERO_NORM_TOLERANCE) -> None:
        self.include_self = check_bool("include_self", include_self)
        self.zero_tolerance = Interval(float, 0, 1, closed="left").check("zero_tolerance", zero_tolerance)

    def score(self, inputs: ScoringInputs) -> dict[str, float]:
        """Cosine scores from ``inputs.inner_products()``."""
        return cosine_scores(
            inputs.num_examples,
            inputs.inner_products(),
            include_self=self.include_self,
            zero_tolerance=self.zero_tolerance,
        )


@register_scorer
class LeaveOneOutScorer(ContributionScorer):
    """``max(0, u(N) - u(N without i))`` on the coordinator's validation set; plaintext only."""

    name: ClassVar[str] = "loo"
    needs_plaintext: ClassVar[bool] = True
    needs_validation: ClassVar[bool] = True
    summary: ClassVar[str] = "validation accuracy lost without the member (plaintext only)"

    def score(self, inputs: ScoringInputs) -> dict[str, float]:
        """Leave-one-out values clipped at zero; ``n + 1`` validation evaluations."""
        estimate = leave_one_out(inputs.members, round_utility(inputs))
        log.debug("leave-one-out: %d evaluations", estimate.evaluations)
        return {address: max(0.0, value) for address, value in estimate.values.items()}


@register_scorer
class GTGShapleyScorer(ContributionScorer):
    """GTG-Shapley values (Liu et al., 2022) clipped at zero; plaintext only.

    Args:
        **options: passed to :func:`~fedchain.contribution.gtg_shapley` (tolerances, permutation
            and evaluation budgets); the seed comes from ``ScoringInputs.seed``.
    """

    name: ClassVar[str] = "gtg_shapley"
    needs_plaintext: ClassVar[bool] = True
    needs_validation: ClassVar[bool] = True
    summary: ClassVar[str] = "GTG-Shapley estimate on the validation set (plaintext only)"

    def __init__(self, **options: Any) -> None:
        if "seed" in options:
            raise StrategyError("the GTG-Shapley seed comes from ScoringInputs.seed, not from the scorer options")
        gtg_shapley([], lambda _: 0.0, **options)  # validates the options once, at construction
        self.options = options
        self.last_evaluations = 0

    def score(self, inputs: ScoringInputs) -> dict[str, float]:
        """GTG-Shapley estimate clipped at zero; the evaluations used are logged and kept."""
        estimate = gtg_shapley(inputs.members, round_utility(inputs), seed=inputs.seed, **self.options)
        self.last_evaluations = estimate.evaluations
        log.info(
            "GTG-Shapley: %d evaluations, %d permutations, converged %s",
            estimate.evaluations,
            estimate.permutations,
            estimate.converged,
        )
        return {address: max(0.0, value) for address, value in estimate.values.items()}
