from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import fedchain.privacy.training as training
from fedchain.errors import BudgetExhaustedError, ConfigError, DataError, DPIncompatibleModelError, PrivacyError
from fedchain.privacy import (
    GRAD_SAMPLE_MODES,
    DPConfig,
    PrivacyAccountant,
    PrivacyBudget,
    compute_epsilon,
    incompatible_layers,
    train_plain,
    train_private,
)

DELTA = 1e-5
HYPER = {"epochs": 3, "batch_size": 32, "learning_rate": 0.05, "momentum": 0.9}


def _params(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def _distance(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    return math.sqrt(sum(float(((x - y) ** 2).sum()) for x, y in zip(a, b, strict=True)))


def test_round_trains_records_and_reports(member_data, make_mlp, config: DPConfig) -> None:
    x, y = (array.copy() for array in member_data)
    for array in (x, y):
        array.setflags(write=False)  # fedchain.data hands out read-only arrays
    model, ledger = make_mlp(), PrivacyAccountant()
    before = _params(model)
    result = train_private(model, x, y, **HYPER, config=config, accountant=ledger, seed=0)
    assert result.model is model and _distance(before, _params(model)) > 0
    assert result.num_examples == 150 and result.steps == 15 and math.isfinite(result.train_loss)
    assert result.dp is not None and (result.dp.sample_rate, result.dp.steps) == (0.2, 15)
    assert (result.dp.max_grad_norm, result.dp.delta) == (1.0, DELTA)
    assert ledger.history == ((result.dp.noise_multiplier, 0.2, 15),)
    assert result.epsilon == ledger.epsilon(DELTA) == compute_epsilon([result.dp], DELTA)
    # Opacus leaves nothing behind on the caller's model.
    for parameter in model.parameters():
        assert parameter.grad is None and not hasattr(parameter, "grad_sample")
        assert not hasattr(parameter, "summed_grad")
    assert not model._forward_hooks and not model[0]._forward_hooks


def test_epsilon_accumulates_over_rounds_until_the_member_declines(member_data, make_mlp, config, tmp_path: Path):
    x, y = member_data
    path = tmp_path / "privacy.json"
    epsilons = []
    for round_ in range(config.planned_rounds):
        ledger = PrivacyAccountant.open(path)  # a fresh process each round: state comes from disk
        result = train_private(make_mlp(), x, y, **HYPER, config=config, accountant=ledger, seed=round_)
        epsilons.append(result.epsilon)
    assert epsilons == sorted(epsilons) and len(set(epsilons)) == len(epsilons)
    ledger = PrivacyAccountant.open(path)
    assert len(ledger) == config.planned_rounds
    # The auditor's replay of the recorded parameters gives the member's number exactly.
    assert compute_epsilon(ledger.history, DELTA) == epsilons[-1]
    assert config.budget.epsilon - 0.02 <= epsilons[-1] <= config.budget.epsilon
    # The planned run used the budget: one more round is refused before any training.
    model = make_mlp()
    before = _params(model)
    with pytest.raises(BudgetExhaustedError) as info:
        train_private(model, x, y, **HYPER, config=config, accountant=ledger, seed=99)
    assert info.value.epsilon_spent == epsilons[-1]
    assert info.value.epsilon_next > info.value.epsilon_budget == 8.0
    assert str(info.value).startswith("privacy budget exhausted: epsilon spent ")
    assert _distance(before, _params(model)) == 0.0
    assert len(PrivacyAccountant.load(path)) == config.planned_rounds


def test_fixed_noise_beyond_budget_is_refused_up_front(member_data, make_mlp) -> None:
    x, y = member_data
    config = DPConfig(budget=PrivacyBudget(epsilon=0.5, delta=DELTA), noise_multiplier=0.5)
    ledger = PrivacyAccountant()
    with pytest.raises(BudgetExhaustedError):
        train_private(make_mlp(), x, y, **HYPER, config=config, accountant=ledger, seed=0)
    assert len(ledger) == 0


def test_seed_makes_a_round_reproducible(member_data, make_mlp, config) -> None:
    x, y = member_data
    runs = [
        train_private(make_mlp(), x, y, **HYPER, config=config, accountant=PrivacyAccountant(), seed=7)
        for _ in range(2)
    ]
    assert _distance(_params(runs[0].model), _params(runs[1].model)) == 0.0
    other = train_private(make_mlp(), x, y, **HYPER, config=config, accountant=PrivacyAccountant(), seed=8)
    assert _distance(_params(runs[0].model), _params(other.model)) > 0.0


@pytest.mark.parametrize("mode", [m for m in GRAD_SAMPLE_MODES if m != "ew"])
def test_every_mode_computes_the_same_dp_step_as_ew(member_data, make_mlp, mode: str) -> None:
    x, y = member_data
    budget = PrivacyBudget(epsilon=8.0, delta=DELTA)
    results = {
        m: train_private(
            make_mlp(),
            x,
            y,
            **HYPER,
            config=DPConfig(budget=budget, noise_multiplier=1.0, grad_sample_mode=m),
            accountant=PrivacyAccountant(),
            seed=3,
        )
        for m in ("ew", mode)
    }
    assert _distance(_params(results["ew"].model), _params(results[mode].model)) < 1e-4
    assert results["ew"].epsilon == results[mode].epsilon


def test_training_clips_per_sample_gradients(member_data, make_mlp) -> None:
    x, y = member_data
    hyper = {"epochs": 1, "batch_size": 32, "learning_rate": 1.0, "momentum": 0.0}
    start = make_mlp()
    plain = train_plain(copy.deepcopy(start), x, y, **hyper, seed=0)
    config = DPConfig(budget=PrivacyBudget(epsilon=1e6, delta=DELTA), max_grad_norm=1e-4, noise_multiplier=0.3)
    private = train_private(copy.deepcopy(start), x, y, **hyper, config=config, accountant=PrivacyAccountant(), seed=0)
    # Each step moves by (sum of clipped grads + noise) / expected batch: at most
    # steps * (C * n + ~sigma * C * sqrt(d) * 3) / 30 with C = 1e-4: a few thousandths here.
    assert _distance(_params(start), _params(private.model)) < 0.01
    assert _distance(_params(start), _params(plain.model)) > 0.5


def test_zero_gradients_do_not_divide_by_zero(make_mlp, config) -> None:
    x = np.zeros((64, 64), dtype=np.float32)
    y = np.zeros(64, dtype=np.int64)
    model = make_mlp()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()
    result = train_private(model, x, y, **HYPER, config=config, accountant=PrivacyAccountant(), seed=0)
    assert all(torch.isfinite(p).all() for p in result.model.parameters())
    assert math.isfinite(result.train_loss)


@pytest.mark.parametrize("mode", [m for m in GRAD_SAMPLE_MODES if m not in ("auto", "fused")])
def test_empty_poisson_batches_take_a_noise_only_step(digits, mode: str, monkeypatch) -> None:
    x, y = digits
    empty_steps = []
    original = training._noise_only_step

    def spy(optimizer, *, ghost: bool) -> None:
        empty_steps.append(ghost)
        original(optimizer, ghost=ghost)

    monkeypatch.setattr(training, "_noise_only_step", spy)
    config = DPConfig(budget=PrivacyBudget(epsilon=1e4, delta=DELTA), noise_multiplier=1.0, grad_sample_mode=mode)
    model = nn.Sequential(nn.Linear(64, 4), nn.ReLU(), nn.Linear(4, 10))
    result = train_private(
        model,
        x[:4],
        y[:4],
        epochs=5,
        batch_size=1,
        learning_rate=0.05,
        config=config,
        accountant=PrivacyAccountant(),
        seed=1,
    )
    assert empty_steps and result.steps == 20  # every planned step was taken and accounted
    assert all(torch.isfinite(p).all() for p in model.parameters())


def _bn_model() -> nn.Module:
    return nn.Sequential(nn.Linear(64, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 10))


def test_batchnorm_is_refused_by_name(member_data, config) -> None:
    x, y = member_data
    ledger = PrivacyAccountant()
    with pytest.raises(DPIncompatibleModelError) as info:
        train_private(_bn_model(), x, y, **HYPER, config=config, accountant=ledger, seed=0)
    assert "cannot train this model:\n  - 1 (BatchNorm1d): BatchNorm mixes the examples of a batch" in str(info.value)
    assert "fix_incompatible_layers=True" in str(info.value)
    assert isinstance(info.value, PrivacyError)
    assert len(ledger) == 0


def test_batchnorm_without_affine_is_still_refused() -> None:
    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4, affine=False))
    assert incompatible_layers(model) == ["1 (BatchNorm1d)"]


def test_batchnorm_is_fixed_when_asked(member_data, config, caplog) -> None:
    x, y = member_data
    fixing = DPConfig(budget=config.budget, planned_rounds=5, fix_incompatible_layers=True)
    original = _bn_model()
    with caplog.at_level(logging.WARNING, logger="fedchain.privacy.training"):
        result = train_private(original, x, y, **HYPER, config=fixing, accountant=PrivacyAccountant(), seed=0)
    assert result.model is not original
    assert isinstance(result.model[1], nn.GroupNorm)
    assert "1 (BatchNorm1d)" in caplog.text
    assert incompatible_layers(result.model) == []


@pytest.mark.parametrize("trainer", ["private", "plain"])
@pytest.mark.parametrize(
    ("x", "y", "fragment"),
    [
        (np.zeros((0, 64), np.float32), np.zeros(0, np.int64), "no training examples"),
        (np.zeros((10, 64), np.float32), np.zeros(9, np.int64), "x_train has 10 rows but y_train has 9 labels"),
        (np.zeros(10, np.float32), np.zeros(10, np.int64), "x of shape (n, features...)"),
    ],
)
def test_bad_data_is_a_data_error(make_mlp, config, trainer: str, x, y, fragment: str) -> None:
    with pytest.raises(DataError) as info:
        if trainer == "private":
            train_private(make_mlp(), x, y, **HYPER, config=config, accountant=PrivacyAccountant(), seed=0)
        else:
            train_plain(make_mlp(), x, y, **HYPER, seed=0)
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"epochs": 0}, "The 'epochs' parameter must be an int in [1, inf). Got 0."),
        ({"batch_size": 0}, "The 'batch_size' parameter must be an int in [1, inf). Got 0."),
        ({"learning_rate": 0.0}, "The 'learning_rate' parameter must be a float in (0, inf). Got 0.0."),
        ({"momentum": 1.0}, "The 'momentum' parameter must be a float in [0, 1). Got 1.0."),
    ],
)
def test_bad_hyperparameters(member_data, make_mlp, config, override: dict, message: str) -> None:
    x, y = member_data
    with pytest.raises(ConfigError) as info:
        train_private(make_mlp(), x, y, **{**HYPER, **override}, config=config, accountant=PrivacyAccountant(), seed=0)
    assert str(info.value) == message


def test_delta_not_below_one_over_n_is_refused(member_data, make_mlp) -> None:
    x, y = member_data
    config = DPConfig(budget=PrivacyBudget(epsilon=8.0, delta=0.01))
    with pytest.raises(ConfigError, match=r"must be a float in \(0, 1/n\) = \(0, 0\.00666667\)"):
        train_private(make_mlp(), x, y, **HYPER, config=config, accountant=PrivacyAccountant(), seed=0)


def test_ledger_with_another_accountant_is_refused(member_data, make_mlp, config) -> None:
    x, y = member_data
    with pytest.raises(PrivacyError, match="ledger uses the 'prv' accountant but the config asks for 'rdp'"):
        train_private(make_mlp(), x, y, **HYPER, config=config, accountant=PrivacyAccountant("prv"), seed=0)


def test_plain_training_has_the_same_shape(member_data, make_mlp) -> None:
    x, y = (array.copy() for array in member_data)
    for array in (x, y):
        array.setflags(write=False)  # fedchain.data hands out read-only arrays
    model = make_mlp()
    result = train_plain(model, x, y, **HYPER, seed=0)
    assert result.model is model and result.steps == 15 and result.num_examples == 150
    assert result.dp is None and result.epsilon is None and math.isfinite(result.train_loss)
    again = train_plain(make_mlp(), x, y, **HYPER, seed=0)
    assert _distance(_params(model), _params(again.model)) == 0.0


def test_training_leaves_the_callers_rng_alone(member_data, make_mlp, config) -> None:
    x, y = member_data
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    trainers: list[Callable[[], object]] = [
        lambda: train_private(make_mlp(), x, y, **HYPER, config=config, accountant=PrivacyAccountant(), seed=0),
        lambda: train_plain(make_mlp(), x, y, **HYPER, seed=0),
    ]
    for trainer in trainers:
        trainer()
    assert torch.equal(torch.rand(3), expected)
