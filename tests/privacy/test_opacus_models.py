"""DP-SGD beyond Linear layers: a CNN (Conv2d, GroupNorm, Linear) on images and an Embedding model
on token ids, trained by fedchain's Opacus path against plain Opacus ``make_private`` with the same
seeds, and a secure-randomness (unseeded) round whose noise is checked statistically."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
import torch
from opacus import PrivacyEngine
from scipy import stats
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from fedchain.privacy import (
    DPConfig,
    PrivacyAccountant,
    PrivacyBudget,
    SeededRandomness,
    train_plain,
    train_private,
)
from fedchain.privacy._quiet import quiet_opacus

DELTA = 1e-5
SIGMA, CLIP = 1.1, 0.5
HYPER: dict[str, Any] = {"epochs": 1, "batch_size": 16, "learning_rate": 0.1, "momentum": 0.9}


class _CNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 6, kernel_size=3, padding=1), nn.GroupNorm(2, 6), nn.ReLU(), nn.MaxPool2d(2)
        )
        self.head = nn.Linear(6 * 4 * 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


class _Bag(nn.Module):
    """Token ids (batch, 64) -> mean embedding -> logits."""

    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(17, 8)
        self.head = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embedding(x).mean(dim=1))


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """Conv layers at torch's two threads on two busy shared cores ran 30x slower than at one."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _build(cls: Callable[[], nn.Module]) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return cls()


@pytest.fixture
def images(member_data) -> tuple[np.ndarray, np.ndarray]:
    """The digits shard as (n, 1, 8, 8) float32 images."""
    x, y = member_data
    return x[:64].reshape(-1, 1, 8, 8), y[:64]


@pytest.fixture
def tokens(member_data) -> tuple[np.ndarray, np.ndarray]:
    """The digits shard as (n, 64) int64 token ids: each pixel's intensity 0..16."""
    x, y = member_data
    return np.rint(x[:64] * 16).astype(np.int64), y[:64]


def _plain_opacus(model: nn.Module, x: np.ndarray, y: np.ndarray, *, mode: str, seed: int) -> tuple[nn.Module, float]:
    """The textbook Opacus loop, with the generators fedchain derives from ``seed``; returns the model and epsilon."""
    draws = SeededRandomness(seed)
    loader = DataLoader(
        TensorDataset(torch.from_numpy(x), torch.from_numpy(y)),
        batch_size=HYPER["batch_size"],
        generator=draws.sampling,
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=HYPER["learning_rate"], momentum=HYPER["momentum"])
    criterion: nn.Module = nn.CrossEntropyLoss()
    with quiet_opacus(), torch.random.fork_rng(devices=[]):
        engine = PrivacyEngine(accountant="rdp")
        torch.manual_seed(draws.global_seed)
        wrapped = engine.make_private(
            module=model,
            optimizer=optimizer,
            criterion=criterion,
            data_loader=loader,
            noise_multiplier=SIGMA,
            max_grad_norm=CLIP,
            poisson_sampling=True,
            grad_sample_mode=mode,
            noise_generator=draws.noise,
        )
        dp_model, dp_optimizer, *rest = wrapped
        dp_loader = rest[-1]
        criterion = rest[0] if mode == "ghost" else criterion
        for _ in range(HYPER["epochs"]):
            for xb, yb in dp_loader:
                assert len(yb) > 0  # sizes where an empty Poisson batch has probability < 1e-7
                dp_optimizer.zero_grad()
                criterion(dp_model(xb), yb).backward()
                dp_optimizer.step()
        epsilon = engine.accountant.get_epsilon(DELTA)
    return dp_model._module, epsilon


def _max_diff(a: nn.Module, b: nn.Module) -> float:
    return max(float((p - q).detach().abs().max()) for p, q in zip(a.parameters(), b.parameters(), strict=True))


@pytest.mark.parametrize(("build", "data", "auto"), [(_CNN, "images", "ew"), (_Bag, "tokens", "ghost")])
def test_each_opacus_mode_trains_the_plain_opacus_model(request, build, data: str, auto: str) -> None:
    x, y = request.getfixturevalue(data)
    start = _build(build)
    trained = {}
    for mode in ("ew", "hooks", "ghost"):
        config = DPConfig(
            budget=PrivacyBudget(8.0, DELTA), noise_multiplier=SIGMA, max_grad_norm=CLIP, grad_sample_mode=mode
        )
        ledger = PrivacyAccountant()
        result = train_private(copy.deepcopy(start), x, y, **HYPER, config=config, accountant=ledger, seed=7)
        assert result.grad_sample_mode == mode and result.secure_noise is False
        assert result.dp is not None and (result.dp.sample_rate, result.steps) == (0.25, 4)
        reference, epsilon = _plain_opacus(copy.deepcopy(start), x, y, mode=mode, seed=7)
        assert _max_diff(start, result.model) > 1e-2  # it trained
        assert _max_diff(reference, result.model) < 1e-5, mode  # the same batches, clipping and noise
        assert result.epsilon is not None and math.isclose(result.epsilon, epsilon, rel_tol=1e-9)
        trained[mode] = result.model
    # Opacus's three ways of computing the clipped sums agree, so the mode is a speed choice only.
    assert _max_diff(trained["ew"], trained["hooks"]) < 1e-5
    assert _max_diff(trained["ew"], trained["ghost"]) < 1e-5
    other = train_private(
        copy.deepcopy(start),
        x,
        y,
        **HYPER,
        config=DPConfig(budget=PrivacyBudget(8.0, DELTA), noise_multiplier=SIGMA, max_grad_norm=CLIP),
        accountant=PrivacyAccountant(),
        seed=8,
    )
    assert other.grad_sample_mode == auto  # what "auto" picks for the model (the default)
    assert _max_diff(other.model, trained["ew"]) > 1e-3  # another seed, other batches and noise


def _clip_only_step(model: nn.Module, x: np.ndarray, y: np.ndarray, *, lr: float) -> nn.Module:
    """One full-batch step of plain Opacus without noise: the clipped mean gradient, exactly."""
    loader = DataLoader(TensorDataset(torch.from_numpy(x), torch.from_numpy(y)), batch_size=len(y))
    with quiet_opacus():
        dp_model, optimizer, dp_loader = PrivacyEngine().make_private(
            module=model,
            optimizer=torch.optim.SGD(model.parameters(), lr=lr),
            data_loader=loader,
            noise_multiplier=0.0,
            max_grad_norm=CLIP,
            poisson_sampling=True,
            grad_sample_mode="ew",
        )
        (xb, yb), *more = list(dp_loader)
        assert not more and len(yb) == len(y)  # sample rate 1: every example, one step
        nn.CrossEntropyLoss()(dp_model(xb), yb).backward()
        optimizer.step()
    return dp_model._module


@pytest.mark.parametrize(
    ("build", "data", "mode", "size"), [(_CNN, "images", "ew", 1042), (_Bag, "tokens", "ghost", 226)]
)
def test_a_secure_round_adds_the_calibrated_noise(request, build, data: str, mode: str, size: int) -> None:
    x, y = request.getfixturevalue(data)
    n, lr, sigma = len(y), 1.0, 1.3
    start = _build(build)
    reference = _clip_only_step(copy.deepcopy(start), x, y, lr=lr)
    config = DPConfig(budget=PrivacyBudget(1e3, DELTA), noise_multiplier=sigma, max_grad_norm=CLIP)
    rounds = [
        train_private(
            copy.deepcopy(start),
            x,
            y,
            epochs=1,
            batch_size=n,
            learning_rate=lr,
            config=config,
            accountant=PrivacyAccountant(),
        )
        for _ in range(2)
    ]
    scale = lr * sigma * CLIP / n  # SGD step of the noise N(0, (sigma C)^2) divided by the batch
    noise = []
    for result in rounds:
        assert result.secure_noise is True and result.grad_sample_mode == mode and result.steps == 1
        step = torch.cat(
            [(q - p).detach().flatten() for p, q in zip(reference.parameters(), result.model.parameters(), strict=True)]
        )
        noise.append((step / scale).double().numpy())
    z = noise[0]
    assert z.size == sum(p.numel() for p in start.parameters()) == size
    # Standard normal: mean and standard deviation within 4.5 standard errors, and KS.
    assert abs(z.mean()) < 4.5 / math.sqrt(z.size)
    assert abs(z.std() - 1) < 4.5 / math.sqrt(2 * z.size)
    assert stats.kstest(z, "norm").pvalue > 1e-4
    # Fresh noise each round: the two rounds' noise is independent, not replayed.
    assert abs(float(np.corrcoef(z, noise[1])[0, 1])) < 4.5 / math.sqrt(z.size)


@pytest.mark.parametrize(("build", "data"), [(_CNN, "images"), (_Bag, "tokens")])
def test_plain_training_takes_images_and_token_ids(request, build, data: str) -> None:
    x, y = request.getfixturevalue(data)
    start = _build(build)
    result = train_plain(copy.deepcopy(start), x, y, **HYPER, seed=0)
    assert result.steps == 4 and math.isfinite(result.train_loss) and _max_diff(start, result.model) > 1e-3
    # Token ids given as a torch tensor (or uint8) stay integers; images as float64 become float32.
    converted = x.astype(np.uint8) if data == "tokens" else x.astype(np.float64)
    again = train_plain(copy.deepcopy(start), torch.from_numpy(converted), y, **HYPER, seed=0)
    assert _max_diff(again.model, result.model) < 1e-6


def test_a_linear_model_on_images_still_takes_the_fused_path(images) -> None:
    x, y = images
    start = _build(lambda: nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10)))
    results = {
        mode: train_private(
            copy.deepcopy(start),
            x,
            y,
            **HYPER,
            config=DPConfig(budget=PrivacyBudget(8.0, DELTA), noise_multiplier=SIGMA, grad_sample_mode=mode),
            accountant=PrivacyAccountant(),
            seed=3,
        )
        for mode in ("auto", "ew")
    }
    assert results["auto"].grad_sample_mode == "fused"
    assert _max_diff(start, results["auto"].model) > 1e-2
    assert _max_diff(results["auto"].model, results["ew"].model) < 1e-5
