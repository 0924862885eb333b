"""The fused DP-SGD step against Opacus: same batches, same clipped sums, same noise, same rounds."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from opacus import PrivacyEngine
from torch import nn
from torch.utils.data import DataLoader

import fedchain.privacy.training as training
from fedchain.errors import PrivacyError
from fedchain.privacy import DPConfig, PrivacyAccountant, PrivacyBudget, train_private
from fedchain.privacy._fused import FusedDPStep, expected_batch_size, fused_incompatibilities, poisson_epoch
from fedchain.privacy._quiet import quiet_opacus

DELTA = 1e-5
HYPER = {"epochs": 2, "batch_size": 32, "learning_rate": 0.05, "momentum": 0.9}


def _opacus_step(model: nn.Module, xb, yb, *, sigma: float, clip: float, n: int, noise_seed: int) -> list[torch.Tensor]:
    """Gradients after Opacus's DPOptimizer.pre_step (clip, sum, noise, scale) on one batch."""
    x_all = torch.zeros((n, xb.shape[1]))
    loader = DataLoader(training._Rows(x_all, torch.zeros(n, dtype=torch.long)), batch_size=32)
    with quiet_opacus():
        dp_model, optimizer, _ = PrivacyEngine().make_private(
            module=model,
            optimizer=torch.optim.SGD(model.parameters(), lr=1.0),
            data_loader=loader,
            noise_multiplier=sigma,
            max_grad_norm=clip,
            poisson_sampling=True,
            grad_sample_mode="hooks",
            noise_generator=torch.Generator().manual_seed(noise_seed),
        )
        optimizer.zero_grad()
        nn.CrossEntropyLoss()(dp_model(xb), yb).backward()
        optimizer.pre_step()
    grads = [p.grad.detach().clone() for p in model.parameters()]
    dp_model._close()
    return grads


def _fused_step(model: nn.Module, xb, yb, *, sigma: float, clip: float, n: int, noise_seed: int) -> list[torch.Tensor]:
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    step = FusedDPStep(
        model,
        optimizer,
        noise_multiplier=sigma,
        max_grad_norm=clip,
        expected_batch_size=expected_batch_size(n, 1 / math.ceil(n / 32)),
        noise_generator=torch.Generator().manual_seed(noise_seed),
        criterion=nn.CrossEntropyLoss(reduction="sum"),
    )
    before = [p.detach().clone() for p in model.parameters()]
    step.step(xb, yb)
    # SGD with lr 1 and no momentum: the step taken is exactly minus the gradient.
    grads = [(b - p.detach()) for b, p in zip(before, model.parameters(), strict=True)]
    step.close()
    return grads


def _max_diff(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    return max(float((x.detach() - y.detach()).abs().max()) for x, y in zip(a, b, strict=True))


@pytest.fixture
def batch(digits) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = digits
    return torch.tensor(x[:30]), torch.tensor(y[:30])


def _per_sample_norms(model: nn.Module, xb, yb) -> torch.Tensor:
    norms = []
    for i in range(len(yb)):
        model.zero_grad()
        nn.functional.cross_entropy(model(xb[i : i + 1]), yb[i : i + 1]).backward()
        norms.append(math.sqrt(sum(float((p.grad**2).sum()) for p in model.parameters())))
    model.zero_grad()
    return torch.tensor(norms)


def test_clipped_sums_equal_opacus_without_noise(make_mlp, batch) -> None:
    xb, yb = batch
    model = make_mlp()
    norms = _per_sample_norms(model, xb, yb)
    clip = float(norms.median())  # about half the examples are clipped, half are not
    assert (norms > clip).sum() >= 10 and (norms < clip).sum() >= 10
    opacus = _opacus_step(copy.deepcopy(model), xb, yb, sigma=0.0, clip=clip, n=150, noise_seed=0)
    fused = _fused_step(copy.deepcopy(model), xb, yb, sigma=0.0, clip=clip, n=150, noise_seed=0)
    assert max(float(g.abs().max()) for g in opacus) > 1e-3
    assert _max_diff(opacus, fused) < 1e-6


def test_noise_is_opacus_noise_draw_for_draw(make_mlp, batch) -> None:
    xb, yb = batch
    model = make_mlp()
    opacus = _opacus_step(copy.deepcopy(model), xb, yb, sigma=1.3, clip=0.5, n=150, noise_seed=11)
    fused = _fused_step(copy.deepcopy(model), xb, yb, sigma=1.3, clip=0.5, n=150, noise_seed=11)
    assert _max_diff(opacus, fused) < 1e-6
    other = _fused_step(copy.deepcopy(model), xb, yb, sigma=1.3, clip=0.5, n=150, noise_seed=12)
    assert _max_diff(fused, other) > 1e-2


def test_noise_has_the_calibrated_distribution(make_mlp) -> None:
    # An empty Poisson batch: the step is pure noise N(0, (sigma C / E)^2) in every coordinate.
    model = make_mlp(hidden=64)
    sigma, clip, n = 1.7, 0.8, 150
    noise = torch.cat(
        [
            g.flatten()
            for g in _fused_step(
                model, torch.zeros((0, 64)), torch.zeros(0, dtype=torch.long), sigma=sigma, clip=clip, n=n, noise_seed=5
            )
        ]
    )
    expected_std = sigma * clip / expected_batch_size(n, 0.2)
    assert noise.numel() == 4810 and expected_batch_size(n, 0.2) == 30
    assert abs(float(noise.std()) / expected_std - 1) < 0.05  # 4,810 draws: 1 sigma is 1%
    assert abs(float(noise.mean())) < 4 * expected_std / math.sqrt(noise.numel())
    fourth = float(((noise / expected_std) ** 4).mean())
    assert abs(fourth - 3.0) < 0.4  # Gaussian kurtosis


def test_poisson_epochs_are_the_dp_dataloader_batches(digits) -> None:
    x, y = digits
    x, y = torch.tensor(x[:150]), torch.tensor(y[:150])
    loader = DataLoader(
        training._Rows(x, y),
        batch_size=32,
        collate_fn=training._whole_batch,
        generator=torch.Generator().manual_seed(3),
    )
    model = nn.Linear(64, 10)
    with quiet_opacus():
        _, _, dp_loader = PrivacyEngine().make_private(
            module=model,
            optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
            data_loader=loader,
            noise_multiplier=1.0,
            max_grad_norm=1.0,
            poisson_sampling=True,
        )
    generator = torch.Generator().manual_seed(3)
    for _ in range(2):
        expected = [yb.tolist() for _, yb in dp_loader]
        index, sizes = poisson_epoch(150, 0.2, 5, generator)
        assert [y[i].tolist() for i in index.split(sizes)] == expected
    assert sum(len(b) for b in expected) > 0


class _TwoTower(nn.Module):
    """Not a Sequential: the fused step records its Linears with forward hooks."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Linear(64, 12)
        self.head = nn.Linear(12, 10, bias=False)
        self.frozen = nn.Linear(64, 10)
        self.frozen.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.tanh(self.encoder(x))) + self.frozen(x)


@pytest.mark.parametrize(
    "build",
    [
        lambda: nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10)),
        _TwoTower,
        lambda: nn.Sequential(nn.Linear(64, 16), nn.Dropout(0.2), nn.ReLU(), nn.Linear(16, 10)),
    ],
    ids=["sequential", "hooks-path", "dropout"],
)
def test_a_fused_round_is_the_opacus_round(member_data, build) -> None:
    x, y = member_data
    torch.manual_seed(0)
    start = build()
    config = {
        m: DPConfig(budget=PrivacyBudget(8.0, DELTA), noise_multiplier=1.1, grad_sample_mode=m) for m in ("ew", "fused")
    }
    results = {
        m: train_private(copy.deepcopy(start), x, y, **HYPER, config=config[m], accountant=PrivacyAccountant(), seed=4)
        for m in config
    }
    assert results["fused"].grad_sample_mode == "fused" and results["ew"].grad_sample_mode == "ew"
    moved = _max_diff(list(start.parameters()), list(results["fused"].model.parameters()))
    assert moved > 1e-2
    assert _max_diff(list(results["ew"].model.parameters()), list(results["fused"].model.parameters())) < 1e-5
    assert results["ew"].dp == results["fused"].dp and results["ew"].epsilon == results["fused"].epsilon
    assert math.isclose(results["ew"].train_loss, results["fused"].train_loss, rel_tol=1e-5)
    for parameter in results["fused"].model.parameters():
        assert parameter.grad is None


def test_fused_takes_noise_only_steps_on_empty_batches_like_opacus(digits, monkeypatch) -> None:
    x, y = digits
    empty = []
    original = training._noise_only_step
    monkeypatch.setattr(
        training, "_noise_only_step", lambda opt, *, ghost: (empty.append(1), original(opt, ghost=ghost))
    )
    torch.manual_seed(0)
    start = nn.Sequential(nn.Linear(64, 4), nn.ReLU(), nn.Linear(4, 10))
    results = {}
    for mode in ("ew", "fused"):
        config = DPConfig(budget=PrivacyBudget(1e4, DELTA), noise_multiplier=1.0, grad_sample_mode=mode)
        results[mode] = train_private(
            copy.deepcopy(start),
            x[:4],
            y[:4],
            epochs=5,
            batch_size=1,
            learning_rate=0.05,
            config=config,
            accountant=PrivacyAccountant(),
            seed=1,
        )
    assert empty  # the Opacus round met empty batches ...
    assert results["fused"].steps == results["ew"].steps == 20
    # ... and the fused round took the same noise-only steps.
    assert _max_diff(list(results["ew"].model.parameters()), list(results["fused"].model.parameters())) < 1e-6


class _Shared(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(64, 64)
        self.out = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.layer(torch.relu(self.layer(x))))


class _Sequence(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x.view(x.shape[0], 4, 16)).mean(dim=1)


class _Tied(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Linear(64, 64)
        self.second = nn.Linear(64, 64)
        self.second.weight = self.first.weight
        self.out = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.second(torch.relu(self.first(x)))))


@pytest.mark.parametrize(
    ("build", "reason"),
    [
        (
            lambda: nn.Sequential(nn.Linear(64, 8), nn.LayerNorm(8), nn.Linear(8, 10)),
            "1 (LayerNorm) has trainable parameters and is not nn.Linear",
        ),
        (_Shared, "a Linear layer ran 2 times in one forward pass"),
        (_Sequence, "got input of shape (2, 4, 16); the fused step needs (batch, features)"),
        (
            lambda: nn.Sequential(nn.Linear(64, 16), nn.ReLU(inplace=True), nn.Linear(16, 10)),
            "output was modified in place",
        ),
        (_Tied, "layers first, second share a trainable parameter"),
    ],
    ids=["layernorm", "shared-layer", "sequence-input", "inplace-relu", "tied-weights"],
)
def test_models_the_fused_step_cannot_train(member_data, build, reason: str) -> None:
    x, y = member_data
    torch.manual_seed(0)
    model = build()
    assert any(reason in problem for problem in fused_incompatibilities(model, torch.tensor(x[:2])))
    with pytest.raises(PrivacyError, match=r"grad_sample_mode 'fused'\) cannot train this model") as info:
        train_private(
            copy.deepcopy(model),
            x,
            y,
            **HYPER,
            accountant=PrivacyAccountant(),
            seed=0,
            config=DPConfig(budget=PrivacyBudget(8.0, DELTA), noise_multiplier=1.0, grad_sample_mode="fused"),
        )
    assert reason in str(info.value) and "'ew'" in str(info.value)
    # "auto" trains it with Opacus instead.
    auto = train_private(
        model,
        x,
        y,
        **HYPER,
        accountant=PrivacyAccountant(),
        seed=0,
        config=DPConfig(budget=PrivacyBudget(8.0, DELTA), noise_multiplier=1.0),
    )
    assert auto.grad_sample_mode == "ew" and auto.steps == 10


def test_auto_picks_fused_for_the_demo_mlp(member_data, make_mlp, config) -> None:
    x, y = member_data
    result = train_private(make_mlp(), x, y, **HYPER, config=config, accountant=PrivacyAccountant(), seed=0)
    assert config.grad_sample_mode == "auto" and result.grad_sample_mode == "fused"


def test_probe_draws_no_randomness_and_keeps_the_mode(make_mlp) -> None:
    model = nn.Sequential(nn.Linear(64, 8), nn.Dropout(0.5), nn.Linear(8, 10)).train()
    torch.manual_seed(9)
    expected = torch.rand(2)
    torch.manual_seed(9)
    assert fused_incompatibilities(model, torch.zeros((2, 64))) == []
    assert torch.equal(torch.rand(2), expected) and model.training


def test_expected_batch_size_is_opacus_and_never_zero() -> None:
    assert expected_batch_size(150, 0.2) == int(150 * 0.2) == 30
    assert expected_batch_size(1437, 1 / 45) == 31  # Opacus floors n * q
    assert 49 * (1 / 49) < 1 and expected_batch_size(49, 1 / 49) == 1
    assert expected_batch_size(1, 1.0) == 1
