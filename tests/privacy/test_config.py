from __future__ import annotations

import math

import pytest

from fedchain.errors import ConfigError
from fedchain.privacy import ACCOUNTANT_NAMES, GRAD_SAMPLE_MODES, DPConfig, PrivacyBudget, check_delta

BUDGET = PrivacyBudget(epsilon=8.0, delta=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"epsilon": 0.0, "delta": 1e-5}, "The 'epsilon' parameter must be a float in (0, inf). Got 0.0."),
        ({"epsilon": -1, "delta": 1e-5}, "The 'epsilon' parameter must be a float in (0, inf). Got -1.0."),
        ({"epsilon": math.inf, "delta": 1e-5}, "The 'epsilon' parameter must be a float in (0, inf). Got inf."),
        ({"epsilon": True, "delta": 1e-5}, "The 'epsilon' parameter must be a float in (0, inf). Got True."),
        ({"epsilon": 8.0, "delta": 0.0}, "The 'delta' parameter must be a float in (0, 1). Got 0.0."),
        ({"epsilon": 8.0, "delta": 1.0}, "The 'delta' parameter must be a float in (0, 1). Got 1.0."),
    ],
)
def test_budget_rejects_with_sklearn_style_message(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        PrivacyBudget(**kwargs)
    assert str(info.value) == message


def test_epsilon_nan_is_rejected() -> None:
    with pytest.raises(ConfigError, match="'epsilon' parameter must be a float in \\(0, inf\\)"):
        PrivacyBudget(epsilon=math.nan, delta=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_grad_norm": 0.0}, "The 'max_grad_norm' parameter must be a float in (0, inf). Got 0.0."),
        (
            {"noise_multiplier": 0.0},
            "The 'noise_multiplier' parameter must be a float in (0, inf) or None. Got 0.0. "
            "None calibrates it from the budget; 0 would mean no privacy at all.",
        ),
        ({"planned_rounds": 0}, "The 'planned_rounds' parameter must be an int in [1, inf). Got 0."),
        ({"planned_rounds": 2.5}, "The 'planned_rounds' parameter must be an int in [1, inf). Got 2.5."),
        ({"accountant": "gdp"}, "The 'accountant' parameter must be one of 'prv', 'rdp'. Got 'gdp'."),
        (
            {"grad_sample_mode": "fast"},
            "The 'grad_sample_mode' parameter must be one of 'auto', 'ew', 'functorch', 'fused', 'ghost', 'hooks'. "
            "Got 'fast'.",
        ),
        ({"budget": 8.0}, "The 'budget' parameter must be a PrivacyBudget. Got 8.0."),
    ],
)
def test_config_rejects_with_sklearn_style_message(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        DPConfig(**{"budget": BUDGET, **kwargs})
    assert str(info.value) == message


def test_config_defaults_and_coercion() -> None:
    config = DPConfig(budget=BUDGET, max_grad_norm=2, noise_multiplier=1, planned_rounds=3.0)
    assert config.max_grad_norm == 2.0 and isinstance(config.max_grad_norm, float)
    assert config.noise_multiplier == 1.0 and config.planned_rounds == 3
    assert (config.accountant, config.grad_sample_mode, config.fix_incompatible_layers) == ("rdp", "auto", False)


def test_every_registered_name_is_accepted() -> None:
    for name in ACCOUNTANT_NAMES:
        assert DPConfig(budget=BUDGET, accountant=name).accountant == name
    for mode in GRAD_SAMPLE_MODES:
        assert DPConfig(budget=BUDGET, grad_sample_mode=mode).grad_sample_mode == mode


def test_config_is_frozen() -> None:
    config = DPConfig(budget=BUDGET)
    with pytest.raises(AttributeError):
        config.max_grad_norm = 5.0  # type: ignore[misc]


def test_delta_must_be_below_one_over_n() -> None:
    assert check_delta(1e-5, 150) == 1e-5
    with pytest.raises(ConfigError) as info:
        check_delta(0.01, 150)
    assert str(info.value) == (
        "The 'delta' parameter must be a float in (0, 1/n) = (0, 0.00666667) for a member with n=150 "
        "training examples. Got 0.01. A delta of 1/n or more allows releasing one example outright; "
        "use one well below 1/n, such as 1e-5."
    )
    with pytest.raises(ConfigError, match="'num_examples' parameter must be an int in \\[1, inf\\)"):
        check_delta(1e-5, 0)
