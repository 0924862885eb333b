from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np
import pytest

from fedchain.contribution import (
    SubsetUtility,
    default_max_evaluations,
    exact_shapley,
    gtg_shapley,
    leave_one_out,
)
from fedchain.errors import ConfigError

PLAYERS = [f"p{k}" for k in range(6)]
WORTH = dict(zip(PLAYERS, [0.05, 0.1, 0.0, 0.2, 0.15, 0.02], strict=True))


def additive(coalition: frozenset[str]) -> float:
    return sum(WORTH[p] for p in coalition)


def saturating(coalition: frozenset[str]) -> float:
    """Diminishing returns, like accuracy: 1 - prod(1 - w_i)."""
    return 1.0 - float(np.prod([1.0 - 2 * WORTH[p] for p in coalition]))


def _brute_force_shapley(players: list[str], u: Callable[[frozenset[str]], float]) -> dict[str, float]:
    """Average marginal contribution over every permutation (definition of the Shapley value)."""
    totals = dict.fromkeys(players, 0.0)
    perms = list(itertools.permutations(players))
    for order in perms:
        coalition: frozenset[str] = frozenset()
        for p in order:
            totals[p] += u(coalition | {p}) - u(coalition)
            coalition = coalition | {p}
    return {p: v / len(perms) for p, v in totals.items()}


def test_exact_shapley_of_an_additive_game_is_each_players_worth() -> None:
    estimate = exact_shapley(PLAYERS, additive)
    assert estimate.values == pytest.approx(WORTH, abs=1e-12)
    assert estimate.evaluations == 2 ** len(PLAYERS)


def test_exact_shapley_matches_the_permutation_definition() -> None:
    players = PLAYERS[:5]
    exact = exact_shapley(players, saturating).values
    assert exact == pytest.approx(_brute_force_shapley(players, saturating), abs=1e-12)
    # efficiency: the values add up to u(N) - u(empty)
    assert sum(exact.values()) == pytest.approx(saturating(frozenset(players)) - saturating(frozenset()))


def test_gtg_on_an_additive_game_recovers_the_worths() -> None:
    estimate = gtg_shapley(PLAYERS, additive, seed=0, within_round_tolerance=0.0, max_evaluations=2**6)
    assert estimate.values == pytest.approx(WORTH, abs=1e-12)
    assert estimate.converged and estimate.permutations >= len(PLAYERS)


def test_gtg_approximates_exact_shapley_with_fewer_evaluations() -> None:
    players = PLAYERS
    exact = exact_shapley(players, saturating).values
    estimate = gtg_shapley(players, saturating, seed=1, within_round_tolerance=0.0, max_evaluations=40)
    assert estimate.evaluations <= 40 < 2 ** len(players)
    errors = [abs(estimate.values[p] - exact[p]) for p in players]
    assert max(errors) < 0.03
    ranking = lambda values: sorted(players, key=values.get)  # noqa: E731
    assert ranking(estimate.values)[-2:] == ranking(exact)[-2:]


def test_gtg_is_deterministic_for_a_seed_and_varies_with_it() -> None:
    rng = np.random.default_rng(0)
    noise = {frozenset(c): float(rng.normal()) * 0.01 for r in range(7) for c in itertools.combinations(PLAYERS, r)}
    game = lambda c: saturating(c) + noise[c]  # noqa: E731
    a = gtg_shapley(PLAYERS, game, seed=7, max_permutations=12, within_round_tolerance=0.0)
    b = gtg_shapley(PLAYERS, game, seed=7, max_permutations=12, within_round_tolerance=0.0)
    c = gtg_shapley(PLAYERS, game, seed=8, max_permutations=12, within_round_tolerance=0.0)
    assert a == b
    assert a.values != c.values


def test_gtg_between_round_truncation_scores_everyone_zero() -> None:
    flat = lambda c: 0.5 if len(c) in (0, len(PLAYERS)) else 0.9  # noqa: E731
    estimate = gtg_shapley(PLAYERS, flat, seed=0)
    assert estimate.truncated_round
    assert estimate.values == dict.fromkeys(PLAYERS, 0.0)
    assert estimate.evaluations == 2


def test_gtg_within_round_truncation_saves_evaluations() -> None:
    """Once a coalition reaches the full utility, the rest of the permutation is not evaluated."""
    capped = lambda c: min(len(c), 2) / 2  # noqa: E731 - any two players reach the full utility
    truncated = gtg_shapley(PLAYERS, capped, seed=0, within_round_tolerance=1e-9, max_evaluations=2**6)
    full = gtg_shapley(PLAYERS, capped, seed=0, within_round_tolerance=0.0, max_evaluations=2**6)
    assert truncated.evaluations < full.evaluations
    # every permutation still hands out u(N) - u(empty) in total (efficiency), close to 1/6 each
    assert sum(truncated.values.values()) == pytest.approx(1.0)
    assert truncated.values == pytest.approx(exact_shapley(PLAYERS, capped).values, abs=0.1)


def test_gtg_default_budget_is_a_quarter_of_the_coalitions() -> None:
    players = [f"q{k}" for k in range(8)]
    estimate = gtg_shapley(players, lambda c: 1 - 0.9 ** len(c), seed=0, within_round_tolerance=0.0)
    assert estimate.evaluations == default_max_evaluations(8) == 64


def test_gtg_never_exceeds_its_evaluation_budget() -> None:
    for budget in (2, 5, 17, 30):
        estimate = gtg_shapley(PLAYERS, saturating, seed=0, within_round_tolerance=0.0, max_evaluations=budget)
        assert estimate.evaluations <= budget
    with pytest.raises(ConfigError, match="max_evaluations"):
        gtg_shapley(PLAYERS, saturating, max_evaluations=1)


def test_leave_one_out_values() -> None:
    assert leave_one_out(PLAYERS, additive).values == pytest.approx(WORTH)
    assert leave_one_out(PLAYERS, additive).evaluations == len(PLAYERS) + 1


def test_subset_utility_memoises_and_rejects_strangers() -> None:
    calls: list[frozenset[str]] = []
    u = SubsetUtility(["a", "b"], lambda c: calls.append(c) or 1.0)  # type: ignore[func-returns-value]
    u(frozenset({"a"}))
    u(frozenset({"a"}))
    assert len(calls) == 1 and u.evaluations == 1
    with pytest.raises(ConfigError, match="a subset of the round's members"):
        u(frozenset({"z"}))
    with pytest.raises(ConfigError, match="distinct"):
        SubsetUtility(["a", "a"], additive)


def test_exact_shapley_refuses_huge_games() -> None:
    with pytest.raises(ConfigError, match="at most 20 members"):
        exact_shapley([str(k) for k in range(21)], additive)
