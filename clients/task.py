"""The demo task: a small MLP on the member's tabular data. This is the part an organization replaces.

A task provides: a model factory, plain local training, and evaluation. Weights cross the
boundary as named NumPy arrays (see :mod:`fedchain.serialization`), never as pickles.

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

__all__ = ["build_model", "evaluate", "get_weights", "set_weights", "train_plain"]


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


def train_plain(
    model: nn.Module,
    x_train: np.ndarray,
    y_train: np.ndarray,
    *,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    momentum: float,
    seed: int,
    proximal_mu: float = 0.0,
) -> float:
    """Train ``model`` in place with mini-batch SGD; return the mean training loss of the last epoch.

    ``proximal_mu > 0`` adds FedProx's ``mu / 2 * ||w - w_start||^2`` (its gradient) to every step.
    """
    from fedchain.aggregation.proximal import ProximalTerm

    x = torch.from_numpy(np.ascontiguousarray(x_train, dtype=np.float32))
    y = torch.from_numpy(np.ascontiguousarray(y_train, dtype=np.int64))
    optimizer = torch.optim.SGD(model.parameters(), lr=learning_rate, momentum=momentum)
    if proximal_mu > 0:
        ProximalTerm(model, mu=proximal_mu).attach(optimizer)  # adds mu * (w - w_global) before each step
    loss_fn = nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(seed)
    model.train()
    last_loss = 0.0
    for _ in range(epochs):
        order = torch.randperm(len(y), generator=generator)
        total, count = 0.0, 0
        for start in range(0, len(y), batch_size):
            index = order[start : start + batch_size]
            optimizer.zero_grad()
            loss = loss_fn(model(x[index]), y[index])
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(index)
            count += len(index)
        last_loss = total / max(count, 1)
    return last_loss


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
