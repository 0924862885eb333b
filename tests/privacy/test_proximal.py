"""FedProx under DP-SGD: the proximal gradient is added after clipping and noise, in both training paths."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from fedchain.errors import ConfigError
from fedchain.privacy import DPConfig, PrivacyAccountant, PrivacyBudget, train_private

MU, LR, N = 0.5, 0.2, 32


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))


def _train(mode: str, *, epochs: int, mu: float) -> tuple[list[torch.Tensor], float]:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(N, 6)).astype("float32"), rng.integers(0, 3, N)
    config = DPConfig(
        budget=PrivacyBudget(epsilon=50.0, delta=1e-3), noise_multiplier=1.0, max_grad_norm=0.1, grad_sample_mode=mode
    )
    result = train_private(
        _model(),
        x,
        y,
        epochs=epochs,
        batch_size=N,
        learning_rate=LR,
        config=config,
        accountant=PrivacyAccountant(),
        seed=3,
        proximal_mu=mu,
    )
    assert result.grad_sample_mode == mode
    return [p.detach().clone() for p in result.model.parameters()], result.epsilon


@pytest.mark.parametrize("mode", ["fused", "ew"])
def test_proximal_gradient_is_added_after_noise_and_costs_no_epsilon(mode: str) -> None:
    start = [p.detach().clone() for p in _model().parameters()]
    after_one, _ = _train(mode, epochs=1, mu=0.0)  # sample rate 1: one step per epoch
    plain, eps_plain = _train(mode, epochs=2, mu=0.0)
    prox, eps_prox = _train(mode, epochs=2, mu=MU)
    # Step 1 starts at the global model (zero proximal gradient); step 2 sees the same batch and noise
    # from the same iterate, so the runs differ by exactly -lr * mu * (w1 - w0), unclipped.
    for p_plain, p_prox, w1, w0 in zip(plain, prox, after_one, start, strict=True):
        torch.testing.assert_close(p_prox - p_plain, -LR * MU * (w1 - w0), atol=1e-6, rtol=1e-5)
    assert sum(float((b - a).norm()) for a, b in zip(plain, prox, strict=True)) > 1e-3
    assert eps_prox == eps_plain


def test_negative_mu_is_refused_before_any_privacy_is_spent() -> None:
    ledger = PrivacyAccountant()
    config = DPConfig(budget=PrivacyBudget(epsilon=5.0, delta=1e-3), noise_multiplier=1.0)
    with pytest.raises(ConfigError, match="proximal_mu"):
        train_private(
            _model(),
            np.zeros((N, 6), "float32"),
            np.zeros(N, int),
            epochs=1,
            batch_size=8,
            learning_rate=0.1,
            config=config,
            accountant=ledger,
            proximal_mu=-1.0,
        )
    assert ledger.epsilon(1e-3) == 0.0
