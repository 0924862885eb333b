from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn

from fedchain.privacy import DPConfig, PrivacyBudget


@pytest.fixture(scope="session")
def digits() -> tuple[np.ndarray, np.ndarray]:
    """sklearn digits scaled to [0, 1]: 1,797 rows of 64 features, 10 classes."""
    x, y = load_digits(return_X_y=True)
    return (x / 16.0).astype(np.float32), y.astype(np.int64)


@pytest.fixture
def member_data(digits: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """A member-sized shard: 150 rows."""
    x, y = digits
    return x[:150], y[:150]


def _make_mlp(seed: int = 0, hidden: int = 16) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10))


@pytest.fixture
def make_mlp():
    """Factory of small MLPs whose initial weights depend only on the seed."""
    return _make_mlp


@pytest.fixture
def config() -> DPConfig:
    return DPConfig(budget=PrivacyBudget(epsilon=8.0, delta=1e-5), planned_rounds=5)
