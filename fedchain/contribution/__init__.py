"""Contribution scoring: how much each member's update is worth in a round.

* :class:`ContributionScorer` (the extension point, in :mod:`.base`) and its inputs
  :class:`ScoringInputs`; a registry (:func:`register_scorer`, :func:`create_scorer`,
  :func:`check_scorer_allowed`);
* built-in scorers ``data_size``, ``cosine`` (also under HE), ``loo`` and ``gtg_shapley``
  (plaintext only) in :mod:`.scorers`; the coalition games behind the last two in :mod:`.shapley`;
* the norm bound (:func:`norm_bound_filter`, :mod:`.bounds`);
* the decrypt-committee protocol for scoring under HE (:mod:`.committee`).

This package is pure: NumPy only, no I/O. The committee functions call :mod:`fedchain.crypto`
(TenSEAL), imported when they run.

Example:
    >>> from fedchain.contribution import ScoringInputs, create_scorer, data_size_scores
    >>> data_size_scores({"a": 30, "b": 10})
    {'a': 0.75, 'b': 0.25}
    >>> create_scorer("data_size")(ScoringInputs(num_examples={"a": 30, "b": 10}))
    {'a': 0.75, 'b': 0.25}
"""

from fedchain.contribution.base import ContributionScorer, InnerProducts, ScoringInputs
from fedchain.contribution.bounds import DEFAULT_NORM_BOUND, norm_bound_filter, update_norms
from fedchain.contribution.committee import (
    DEFAULT_COMMITTEE_SIZE,
    CommitteeVerdict,
    ScalarRequest,
    reconcile,
    select_committee,
    withheld_scores,
)
from fedchain.contribution.registry import (
    available_scorers,
    check_scorer_allowed,
    create_scorer,
    register_scorer,
    resolve_scorer,
)
from fedchain.contribution.scorers import (
    CosineScorer,
    DataSizeScorer,
    GTGShapleyScorer,
    LeaveOneOutScorer,
    cosine_scores,
    data_size_scores,
)
from fedchain.contribution.shapley import (
    ShapleyEstimate,
    SubsetUtility,
    default_max_evaluations,
    exact_shapley,
    gtg_shapley,
    leave_one_out,
    round_utility,
)

__all__ = [
    "CommitteeVerdict",
    "ContributionScorer",
    "CosineScorer",
    "DEFAULT_COMMITTEE_SIZE",
    "DEFAULT_NORM_BOUND",
    "DataSizeScorer",
    "GTGShapleyScorer",
    "InnerProducts",
    "LeaveOneOutScorer",
    "ScalarRequest",
    "ScoringInputs",
    "ShapleyEstimate",
    "SubsetUtility",
    "available_scorers",
    "check_scorer_allowed",
    "cosine_scores",
    "create_scorer",
    "data_size_scores",
    "default_max_evaluations",
    "exact_shapley",
    "gtg_shapley",
    "leave_one_out",
    "norm_bound_filter",
    "reconcile",
    "register_scorer",
    "resolve_scorer",
    "round_utility",
    "select_committee",
    "update_norms",
    "withheld_scores",
]
