from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from fedchain.contribution import (
    CosineScorer,
    InnerProducts,
    ScoringInputs,
    cosine_scores,
    create_scorer,
    data_size_scores,
)
from fedchain.errors import ConfigError, StrategyError


def _inputs(deltas: dict[str, np.ndarray], n: dict[str, int] | None = None, **kw: object) -> ScoringInputs:
    counts = n or dict.fromkeys(deltas, 10)
    return ScoringInputs(num_examples=counts, deltas=deltas, **kw)  # type: ignore[arg-type]


def test_data_size_is_the_share_of_examples() -> None:
    inputs = ScoringInputs(num_examples={"a": 10, "b": 30, "c": 60})
    assert create_scorer("data_size")(inputs) == {"a": 0.1, "b": 0.3, "c": 0.6}
    assert data_size_scores({}) == {}


def test_cosine_identical_honest_updates_score_equally() -> None:
    rng = np.random.default_rng(0)
    shared = rng.normal(size=50)
    deltas = {m: shared.copy() for m in ("a", "b", "c")}
    scores = CosineScorer()(_inputs(deltas))
    assert scores == pytest.approx({"a": 10.0, "b": 10.0, "c": 10.0})


def test_cosine_opposite_and_zero_updates_score_zero() -> None:
    rng = np.random.default_rng(1)
    honest = rng.normal(size=40)
    deltas = {"a": honest, "b": honest * 1.1, "c": -honest, "free": np.zeros(40)}
    scores = CosineScorer()(_inputs(deltas, {"a": 10, "b": 10, "c": 10, "free": 1000}))
    assert scores["c"] == 0.0
    assert scores["free"] == 0.0
    assert scores["a"] > 5 and scores["b"] > 5


def test_cosine_does_not_pay_a_random_update_for_its_weight_in_the_aggregate() -> None:
    """Against the whole aggregate, a noise update is partly compared with itself; against the others', not."""
    rng = np.random.default_rng(2)
    honest = rng.normal(size=2000)
    deltas = {f"h{k}": honest + 0.3 * rng.normal(size=2000) for k in range(3)}
    deltas["noise"] = 2 * rng.normal(size=2000)  # twice an honest update's norm
    literal = CosineScorer(include_self=True)(_inputs(deltas))
    others = CosineScorer()(_inputs(deltas))
    assert literal["noise"] > 4.0  # what comparing with the whole aggregate would pay it
    assert others["noise"] < 0.5
    assert min(others[f"h{k}"] for k in range(3)) > 6.0


def test_cosine_scores_are_nonnegative_and_weighted_by_examples() -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        members = [f"m{k}" for k in range(6)]
        deltas = {m: rng.normal(size=30) for m in members}
        counts = {m: int(rng.integers(1, 500)) for m in members}
        scores = CosineScorer()(_inputs(deltas, counts))
        assert all(v >= 0 for v in scores.values())
        assert all(scores[m] <= counts[m] + 1e-9 for m in members)


def test_cosine_from_scalars_equals_plaintext() -> None:
    rng = np.random.default_rng(4)
    deltas = {m: rng.normal(size=30) + 1 for m in "abcd"}
    counts = {"a": 5, "b": 50, "c": 20, "d": 7}
    plain = CosineScorer()(_inputs(deltas, counts))
    products = InnerProducts.from_deltas(counts, deltas)
    from_scalars = CosineScorer()(ScoringInputs(num_examples=counts, products=products))
    assert from_scalars == pytest.approx(plain, rel=1e-12)


def test_cosine_single_member_gets_its_examples() -> None:
    assert CosineScorer()(_inputs({"a": np.ones(3)}, {"a": 7})) == {"a": 7.0}


def test_cosine_under_he_without_scalars_says_what_is_missing() -> None:
    with pytest.raises(StrategyError, match="no decrypted scalars were given"):
        CosineScorer()(ScoringInputs(num_examples={"a": 1, "b": 2}))


def test_cosine_needs_every_scalar() -> None:
    products = InnerProducts(sq_norms={"a": 1.0}, dots={"a": 1.0}, agg_sq_norm=None)
    with pytest.raises(StrategyError, match="missing"):
        cosine_scores({"a": 1}, products)


def test_scoring_inputs_validate_their_parts() -> None:
    with pytest.raises(ConfigError, match=r"num_examples\['a'\]"):
        ScoringInputs(num_examples={"a": 0})
    with pytest.raises(ConfigError, match="one update per member"):
        ScoringInputs(num_examples={"a": 1, "b": 1}, deltas={"a": np.ones(2)})
    with pytest.raises(ConfigError, match=r"deltas\['b'\]"):
        ScoringInputs(num_examples={"a": 1, "b": 1}, deltas={"a": np.ones(2), "b": np.ones(3)})
    with pytest.raises(ConfigError, match="finite"):
        ScoringInputs(num_examples={"a": 1}, deltas={"a": np.array([np.nan])})


def _linear_evaluate(target: np.ndarray) -> Callable[[np.ndarray], float]:
    """Utility: how far the model moves towards ``target`` (a smooth stand-in for accuracy)."""

    def evaluate(delta: np.ndarray) -> float:
        return float(-np.linalg.norm(target - delta))

    return evaluate


def test_loo_scores_the_accuracy_lost_without_each_member() -> None:
    target = np.array([1.0, 0.0])
    deltas = {"good": np.array([1.0, 0.0]), "same": np.array([1.0, 0.0]), "bad": np.array([-3.0, 0.0])}
    inputs = _inputs(deltas, evaluate=_linear_evaluate(target))
    scores = create_scorer("loo")(inputs)
    # all: mean -1/3, distance 4/3; without "bad": the target itself; without a good one: mean -1
    assert scores["bad"] == 0.0
    assert scores["good"] == pytest.approx(2.0 - 4.0 / 3.0)
    assert scores["same"] == scores["good"]
    assert scores == create_scorer("loo")(inputs)


def test_gtg_scores_are_clipped_seeded_shapley_estimates() -> None:
    from fedchain.contribution import exact_shapley, gtg_shapley, round_utility

    rng = np.random.default_rng(5)
    target = rng.normal(size=20)
    deltas = {f"m{k}": target + rng.normal(size=20) * (0.2 + k) for k in range(5)}
    deltas["bad"] = -3 * target
    make = lambda seed: _inputs(deltas, evaluate=_linear_evaluate(target), seed=seed)  # noqa: E731
    scorer = create_scorer("gtg_shapley")
    first = scorer(make(1))
    assert first == scorer(make(1))
    estimate = gtg_shapley(list(deltas), round_utility(make(1)), seed=1)
    assert first == {m: max(0.0, v) for m, v in estimate.values.items()}
    assert first["bad"] == 0.0 and estimate.values["bad"] < 0
    exact = exact_shapley(list(deltas), round_utility(make(1))).values
    assert max(first, key=first.__getitem__) == max(exact, key=exact.__getitem__)


def test_plaintext_scorers_refuse_he_inputs_clearly() -> None:
    inputs = ScoringInputs(num_examples={"a": 1, "b": 2}, evaluate=lambda d: 0.0)
    for name in ("loo", "gtg_shapley"):
        with pytest.raises(StrategyError, match=f"scorer '{name}' needs plaintext updates, but HE is on"):
            create_scorer(name)(inputs)


def test_validation_scorers_need_evaluate() -> None:
    inputs = _inputs({"a": np.ones(2)})
    with pytest.raises(StrategyError, match="needs a validation set on the coordinator"):
        create_scorer("loo")(inputs)


def test_gtg_scorer_options_are_validated_once() -> None:
    with pytest.raises(ConfigError, match="The 'within_round_tolerance' parameter must be a float in"):
        create_scorer("gtg_shapley", within_round_tolerance=-1.0)
    with pytest.raises(StrategyError, match=r"seed comes from ScoringInputs\.seed"):
        create_scorer("gtg_shapley", seed=3)


def test_invalid_scores_from_a_custom_scorer_are_refused() -> None:
    from fedchain.contribution import ContributionScorer

    class Negative(ContributionScorer):
        name = "negative_test_only"

        def score(self, inputs: ScoringInputs) -> dict[str, float]:
            return dict.fromkeys(inputs.members, -1.0)

    with pytest.raises(StrategyError, match="scores must be finite and >= 0"):
        Negative()(ScoringInputs(num_examples={"a": 1}))
