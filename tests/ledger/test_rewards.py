"""The reward rule and the fixed-point encodings; the chain must agree with the Python mirror."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fedchain.errors import ConfigError
from fedchain.ledger import Chain, Web3Ledger
from fedchain.ledger.fixedpoint import epsilon_to_fixed, fixed_to_epsilon, pack_dp, unpack_dp
from fedchain.rewards import (
    SCORE_SCALE,
    fixed_to_score,
    proportional_rewards,
    rewards_by_address,
    score_to_fixed,
)
from fedchain.types import DPParams

from .helpers import member_addresses, next_record


def test_golden_split() -> None:
    assert proportional_rewards([3, 1, 0], 1001) == ([750, 250, 0], 1)
    assert proportional_rewards([], 10) == ([], 10)
    assert proportional_rewards([0, 0], 10) == ([0, 0], 10)
    assert proportional_rewards([5], 0) == ([0], 0)
    assert rewards_by_address({"0xA": 3.0, "0xB": 1.0}, pool_wei=10) == ({"0xA": 7, "0xB": 2}, 1)


def test_rule_rejects_bad_inputs() -> None:
    with pytest.raises(ConfigError, match="'pool_wei' parameter"):
        proportional_rewards([1], -1)
    with pytest.raises(ConfigError, match="'scores_fixed' parameter"):
        proportional_rewards([1, -2], 10)
    for bad in (-0.1, math.nan, math.inf):
        with pytest.raises(ConfigError, match="'score' parameter"):
            score_to_fixed(bad)


def test_score_scale_is_exact() -> None:
    assert SCORE_SCALE == 10**18
    assert score_to_fixed(0.1) == 100000000000000000  # from the shortest decimal form
    assert score_to_fixed(1e-19) == 0 and score_to_fixed(5e-19) == 0 and score_to_fixed(1.5e-18) == 2
    assert fixed_to_score(score_to_fixed(0.123456789)) == 0.123456789


@given(
    scores=st.lists(st.integers(0, 2**128), max_size=40),
    pool=st.integers(0, 2**128),
)
def test_rule_sums_to_the_pool(scores: list[int], pool: int) -> None:
    rewards, remainder = proportional_rewards(scores, pool)
    assert sum(rewards) + remainder == pool
    assert remainder >= 0
    assert all(r >= 0 for r in rewards)
    total = sum(scores)
    if total:
        assert remainder < max(1, len([s for s in scores if s])) + 1 or remainder <= len(scores)
        assert all(r == pool * s // total for r, s in zip(rewards, scores, strict=True))


dp_params = st.builds(
    DPParams,
    noise_multiplier=st.floats(1e-3, 1e4),
    sample_rate=st.floats(1e-9, 1.0),
    steps=st.integers(1, 2**32 - 1),
    max_grad_norm=st.floats(1e-3, 1e4),
    delta=st.floats(1e-18, 0.999),
)


@given(dp=dp_params)
def test_dp_word_round_trips_to_the_recorded_resolution(dp: DPParams) -> None:
    decoded = unpack_dp(pack_dp(dp))
    assert decoded is not None
    assert decoded.steps == dp.steps
    # half a grid step, plus the float rounding of x * 1e9 and of the decoded value (a few ulps of x):
    # hypothesis found 4096.5657048715 off by 5.0002e-10
    assert abs(decoded.noise_multiplier - dp.noise_multiplier) <= 0.5e-9 + 4 * math.ulp(dp.noise_multiplier)
    assert abs(decoded.max_grad_norm - dp.max_grad_norm) <= 0.5e-9 + 4 * math.ulp(dp.max_grad_norm)
    assert abs(decoded.sample_rate - dp.sample_rate) <= 1e-18
    assert abs(decoded.delta - dp.delta) <= 1e-18


def test_dp_golden_word() -> None:
    dp = DPParams(noise_multiplier=1.1, sample_rate=0.02, steps=150, max_grad_norm=1.0, delta=1e-5)
    word = pack_dp(dp)
    assert word & (2**48 - 1) == 1_100_000_000
    assert (word >> 112) & (2**32 - 1) == 150
    assert unpack_dp(word) == dp
    assert pack_dp(None) == 0 and unpack_dp(0) is None
    assert epsilon_to_fixed(None) == 0 and fixed_to_epsilon(0) is None
    assert fixed_to_epsilon(epsilon_to_fixed(7.123456)) == 7.123456
    with pytest.raises(ConfigError, match=r"'dp\.noise_multiplier' parameter"):
        pack_dp(DPParams(noise_multiplier=0.0, sample_rate=0.1, steps=1, max_grad_norm=1.0, delta=1e-5))
    with pytest.raises(ConfigError, match=r"'dp\.steps' parameter"):
        pack_dp(DPParams(noise_multiplier=1.0, sample_rate=0.1, steps=0, max_grad_norm=1.0, delta=1e-5))


POOL_MEMBERS = 12


@pytest.fixture(scope="module")
def pool_ledger(chain: Chain) -> Web3Ledger:
    deployed = Web3Ledger.deploy(chain)
    deployed.register_members(member_addresses(POOL_MEMBERS, seed="prop"))
    return deployed


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    scores=st.lists(st.one_of(st.just(0.0), st.floats(1e-12, 1e6, allow_nan=False)), min_size=0, max_size=POOL_MEMBERS),
    pool=st.one_of(st.integers(0, 10**6), st.integers(0, 2**128 - 1)),
)
def test_chain_pays_exactly_the_python_mirror(pool_ledger: Web3Ledger, scores: list[float], pool: int) -> None:
    members = member_addresses(POOL_MEMBERS, seed="prop")[: len(scores)]
    supply_before = pool_ledger.total_supply()
    balances_before = {m: pool_ledger.balance_of(m) for m in members}
    receipt = pool_ledger.record_round(next_record(pool_ledger, members, scores, pool_wei=pool))
    expected, remainder = proportional_rewards([score_to_fixed(s) for s in scores], pool)
    assert receipt.rewards_wei == dict(zip(members, expected, strict=True))
    assert receipt.treasury_wei == remainder
    assert sum(receipt.rewards_wei.values()) + receipt.treasury_wei == pool
    # Token supply grows by exactly the pool: it always equals the rewards paid.
    assert pool_ledger.total_supply() - supply_before == pool
    for member, reward in zip(members, expected, strict=True):
        assert pool_ledger.balance_of(member) - balances_before[member] == reward
