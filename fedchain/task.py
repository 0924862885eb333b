"""The demo task: a small MLP on the member's tabular data. This is the part an organization replaces.

Both apps use it: the member node trains and evaluates it, the coordinator builds the initial
model (and, in plaintext mode, a validation utility). It lives in the library so that neither app
imports the other; ``clients.task`` re-exports it for existing imports.

A task provides: a model factory and evaluation. Local training, with DP or without, is
:mod:`fedchain.privacy`'s (``train_private`` / ``train_plain``: one batch loop, so the two differ
by DP alone). Weights cross the boundary as named NumPy arrays (see :mod:`fedchain.serialization`),
never as pickles.

Example:
    >>> model = build_model(num_features=64, num_classes=10, hidden_units=16, seed=0)
    >>> sorted(get_weights(model))
    ['0.bias', '0.weight', '2.bias', '2.weight']
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from fedchain.serialization import Weights

__all__ = ["build_model", "evaluate", "get_weights", "set_weights"]


def build_model(*, num_features: int, num_classes: int, hidden_units: int = 64, seed: int = 0) -> nn.Module:
    """A one-hidden-layer MLP whose initial weights depend only on ``seed``.

    Every member and the coordinator build the same initial model from the same seed.
    """
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Linear(num_features, hidden_units),
        nn.ReLU(),
        nn.Linear(hidden_units, num_classes),
    )
    torch.random.set_rng_state(generator_state)
    return model


def get_weights(model: nn.Module) -> Weights:
    """The model's parameters as named float32 arrays (copies)."""
    return {name: tensor.detach().cpu().numpy().copy() for name, tensor in model.state_dict().items()}


def set_weights(model: nn.Module, weights: Weights) -> None:
    """Load named arrays into ``model`` (strict: names and shapes must match)."""
    model.load_state_dict({name: torch.from_numpy(np.asarray(array)) for name, array in weights.items()}, strict=True)


@torch.no_grad()
def evaluate(model: nn.Module, x_test: np.ndarray, y_test: np.ndarray) -> tuple[float, float]:
    """Return ``(loss, accuracy)`` of ``model`` on the given examples."""
    if len(y_test) == 0:
        return 0.0, 0.0
    model.eval()
    logits = model(torch.tensor(x_test, dtype=torch.float32))
    target = torch.from_numpy(np.ascontiguousarray(y_test, dtype=np.int64))
    loss = float(nn.functional.cross_entropy(logits, target))
    accuracy = float((logits.argmax(dim=1) == target).float().mean())
    return loss, accuracy
