"""The norm bound under DP: honest DP updates pass, boosted ones and inflated noise claims do not."""

from __future__ import annotations

from dataclasses import replace

import pytest

from fedchain.config import FedChainConfig
from fedchain.contribution.bounds import dp_update_bound, norm_bound_filter
from fedchain.errors import ConfigError
from fedchain.privacy import DPConfig, PrivacyBudget, declared_dp_problem, federation_dp_config, plan_round

CONFIG = DPConfig(budget=PrivacyBudget(epsilon=3.0, delta=1e-5), max_grad_norm=0.5, planned_rounds=20)
N, EPOCHS, BATCH = 144, 5, 96


def _honest():
    return plan_round(CONFIG, num_examples=N, epochs=EPOCHS, batch_size=BATCH)


def test_bound_grows_with_noise_steps_and_model_size() -> None:
    dp = _honest()
    base = dp_update_bound(dp, num_examples=N, learning_rate=0.3, momentum=0.9, num_params=4810)
    for changed in (
        dp_update_bound(
            replace(dp, noise_multiplier=2 * dp.noise_multiplier),
            num_examples=N,
            learning_rate=0.3,
            momentum=0.9,
            num_params=4810,
        ),
        dp_update_bound(
            replace(dp, steps=2 * dp.steps), num_examples=N, learning_rate=0.3, momentum=0.9, num_params=4810
        ),
        dp_update_bound(dp, num_examples=N, learning_rate=0.3, momentum=0.9, num_params=4 * 4810),
        dp_update_bound(dp, num_examples=N // 2, learning_rate=0.3, momentum=0.9, num_params=4810),
    ):
        assert changed > base
    no_momentum = dp_update_bound(dp, num_examples=N, learning_rate=0.3, momentum=0.0, num_params=4810)
    assert 0 < no_momentum < base


def test_honest_declaration_is_accepted_and_inflated_ones_are_not() -> None:
    honest = _honest()
    check = {"num_examples": N, "config": CONFIG, "epochs": EPOCHS, "batch_size": BATCH}
    assert declared_dp_problem(honest, **check) is None
    assert declared_dp_problem(replace(honest, steps=honest.steps - 3), **check) is None  # stopped early
    more_noise = declared_dp_problem(replace(honest, noise_multiplier=3 * honest.noise_multiplier), **check)
    assert more_noise is not None and "more noise than calibrated" in more_noise
    assert "steps" in (declared_dp_problem(replace(honest, steps=honest.steps + 1), **check) or "")
    assert "sample rate" in (declared_dp_problem(replace(honest, sample_rate=0.25), **check) or "")
    assert "clipping" in (declared_dp_problem(replace(honest, max_grad_norm=1.0), **check) or "")


def test_per_member_bounds_in_the_filter() -> None:
    sq = {"a": 30.0**2, "b": 30.0**2, "c": 1e9}
    counts = {"a": 1, "b": 1, "c": 1}
    assert norm_bound_filter(sq, counts, {"a": 20.0, "b": 40.0, "c": 0.0}) == ["a"]  # 0: check off for c
    with pytest.raises(ConfigError):
        norm_bound_filter(sq, counts, {"a": -1.0, "b": 1.0, "c": 1.0})


def test_federation_dp_config_matches_the_member_settings() -> None:
    config = FedChainConfig(epsilon=3.0, rounds=20, max_grad_norm=0.5, noise_multiplier=0.0)
    assert federation_dp_config(config) == CONFIG


@pytest.mark.slow
@pytest.mark.integration
def test_strong_privacy_no_longer_excludes_honest_members(tmp_path) -> None:
    """At epsilon 0.5 honest updates reach ~50 (default bound 20): once every member was excluded."""
    from fedchain.runner import run_simulation

    config = FedChainConfig(
        members=4,
        adversaries=("scaled",),
        rounds=2,
        dp=True,
        epsilon=0.5,
        he=False,
        chain="none",
        out_dir=str(tmp_path),
    )
    result = run_simulation(config)
    for row in result["rounds"]:
        assert row["status"] == "completed"
        statuses = {m["kind"]: m["status"] for m in row["members"]}
        assert statuses == {"honest": "accepted", "scaled": "rejected:norm-bound"}
        assert [m["status"] for m in row["members"]].count("accepted") == 4
