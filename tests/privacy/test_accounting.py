from __future__ import annotations

import itertools
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opacus.accountants import PRVAccountant, RDPAccountant

from fedchain.errors import ConfigError, PrivacyError
from fedchain.privacy import (
    DPConfig,
    PrivacyBudget,
    calibrate_noise_multiplier,
    compute_epsilon,
    epsilon_curve,
    plan_round,
    sample_rate_for,
)
from fedchain.types import DPParams

#: One member's life: three rounds at one setting, a round at another, one more at the first.
HISTORY = [(1.1, 0.2, 15), (1.1, 0.2, 15), (0.9, 0.1, 30), (1.1, 0.2, 15)]
DELTA = 1e-5


def _opacus_rdp(history: list, delta: float) -> float:
    accountant = RDPAccountant()
    accountant.history = list(history)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(accountant.get_epsilon(delta))


def test_golden_rdp_epsilon() -> None:
    # Pinned to all digits: a change here changes every epsilon on chain.
    assert compute_epsilon(HISTORY, DELTA) == 10.48473668886121


def test_rdp_equals_a_fresh_opacus_accountant_replaying_the_history() -> None:
    assert compute_epsilon(HISTORY, DELTA) == _opacus_rdp(HISTORY, DELTA)
    assert compute_epsilon(HISTORY[:1], 1e-6) == _opacus_rdp(HISTORY[:1], 1e-6)


def test_prv_equals_opacus_on_the_merged_history() -> None:
    accountant = PRVAccountant()
    accountant.history = [(1.1, 0.2, 30), (0.9, 0.1, 30), (1.1, 0.2, 15)]
    assert compute_epsilon(HISTORY, DELTA, "prv") == pytest.approx(float(accountant.get_epsilon(DELTA)), rel=1e-12)
    # PRV is tighter than RDP.
    assert compute_epsilon(HISTORY, DELTA, "prv") < compute_epsilon(HISTORY, DELTA)


def test_dp_params_from_chain_give_the_same_epsilon() -> None:
    params = [
        DPParams(noise_multiplier=s, sample_rate=q, steps=k, max_grad_norm=1.0, delta=DELTA) for s, q, k in HISTORY
    ]
    assert compute_epsilon(params, DELTA) == compute_epsilon(HISTORY, DELTA)


def test_curve_is_cumulative_and_monotone() -> None:
    curve = epsilon_curve(HISTORY, DELTA)
    assert len(curve) == len(HISTORY)
    assert curve == sorted(curve) and curve[0] > 0
    assert curve[-1] == compute_epsilon(HISTORY, DELTA)
    assert curve[1] == compute_epsilon(HISTORY[:2], DELTA)
    assert epsilon_curve([], DELTA) == [0.0]
    assert compute_epsilon([], DELTA) == 0.0


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(0.5, 5.0), st.sampled_from([0.05, 0.1, 0.2, 0.5, 1.0]), st.integers(1, 50)),
        min_size=1,
        max_size=5,
    )
)
def test_epsilon_grows_with_every_round(history: list) -> None:
    curve = epsilon_curve(history, DELTA)
    assert all(later >= earlier for earlier, later in itertools.pairwise(curve))


@pytest.mark.parametrize(
    ("entry", "fragment"),
    [
        ((0.0, 0.2, 15), "history entry 0: The 'noise_multiplier' parameter must be a float in (0, inf). Got 0.0."),
        ((1.0, 0.0, 15), "history entry 0: The 'sample_rate' parameter must be a float in (0, 1]. Got 0.0."),
        ((1.0, 0.2, 0), "history entry 0: The 'steps' parameter must be an int in [1, inf). Got 0."),
        ((1.0, 0.2), "history entry 0 must be (noise_multiplier, sample_rate, steps) or DPParams"),
    ],
)
def test_malformed_history_entries_are_named(entry: tuple, fragment: str) -> None:
    with pytest.raises(PrivacyError) as info:
        compute_epsilon([entry], DELTA)
    assert fragment in str(info.value)


def test_bad_delta_and_accountant() -> None:
    with pytest.raises(ConfigError, match=r"^The 'delta' parameter must be a float in \(0, 1\)\. Got 0\.0\.$"):
        compute_epsilon(HISTORY, 0.0)
    with pytest.raises(ConfigError, match=r"^The 'accountant' parameter must be one of 'prv', 'rdp'\. Got 'gdp'\.$"):
        compute_epsilon(HISTORY, DELTA, "gdp")


def test_sample_rate_matches_opacus_dataloader() -> None:
    assert sample_rate_for(150, 32) == (0.2, 5)
    assert sample_rate_for(1437, 32) == (1 / 45, 45)
    assert sample_rate_for(10, 32) == (1.0, 1)


@pytest.mark.parametrize(("epsilon", "rounds"), [(1.0, 20), (3.0, 20), (8.0, 20), (8.0, 1)])
def test_calibration_lands_the_planned_run_just_within_budget(epsilon: float, rounds: int) -> None:
    budget = PrivacyBudget(epsilon=epsilon, delta=DELTA)
    sigma = calibrate_noise_multiplier(budget=budget, sample_rate=0.2, steps_per_round=15, rounds=rounds)
    spent = compute_epsilon([(sigma, 0.2, 15)] * rounds, DELTA)
    assert epsilon - 0.02 <= spent <= epsilon
    # One more round than planned no longer fits.
    assert compute_epsilon([(sigma, 0.2, 15)] * (rounds + 1), DELTA) > epsilon


def test_calibration_with_prv() -> None:
    budget = PrivacyBudget(epsilon=3.0, delta=DELTA)
    sigma = calibrate_noise_multiplier(budget=budget, sample_rate=0.2, steps_per_round=15, rounds=4, accountant="prv")
    assert 2.9 <= compute_epsilon([(sigma, 0.2, 15)] * 4, DELTA, "prv") <= 3.0


def test_calibration_refuses_an_impossible_budget() -> None:
    budget = PrivacyBudget(epsilon=1e-9, delta=DELTA)
    with pytest.raises(PrivacyError, match="no noise multiplier up to 1e6"):
        calibrate_noise_multiplier(budget=budget, sample_rate=1.0, steps_per_round=100, rounds=100)


def test_plan_round_uses_fixed_or_calibrated_noise() -> None:
    budget = PrivacyBudget(epsilon=8.0, delta=DELTA)
    fixed = plan_round(
        DPConfig(budget=budget, noise_multiplier=1.3, max_grad_norm=0.5), num_examples=150, epochs=3, batch_size=32
    )
    assert fixed == DPParams(noise_multiplier=1.3, sample_rate=0.2, steps=15, max_grad_norm=0.5, delta=DELTA)
    planned = plan_round(DPConfig(budget=budget, planned_rounds=20), num_examples=150, epochs=3, batch_size=32)
    assert planned.noise_multiplier == calibrate_noise_multiplier(
        budget=budget, sample_rate=0.2, steps_per_round=15, rounds=20
    )
    assert compute_epsilon([planned] * 20, DELTA) <= 8.0
