"""The demo task's functions, as they were before tasks became a plug-in (:mod:`fedchain.tasks`).

The model is the ``digits-mlp`` task's (:class:`fedchain.tasks.builtin.DigitsMLP`); evaluation,
``get_weights`` and ``set_weights`` are every task's defaults (:class:`fedchain.tasks.Task`).
Kept so that ``from fedchain import task`` and ``from clients import task`` go on working; new
code asks the run's task: ``fedchain.tasks.create_task(config=config)``.

Example:
    >>> model = build_model(num_features=64, num_classes=10, hidden_units=16, seed=0)
    >>> sorted(get_weights(model))
    ['0.bias', '0.weight', '2.bias', '2.weight']
"""

from __future__ import annotations

from torch import nn

from fedchain.tasks.base import Task, evaluate_classifier

__all__ = ["build_model", "evaluate", "get_weights", "set_weights"]

#: Named float32 arrays of a model (copies), in ``state_dict`` order.
get_weights = Task.get_weights
#: Load named arrays into a model (strict: names and shapes must match).
set_weights = Task.set_weights
#: ``(loss, accuracy)`` of a classifier on ``(x, y)``.
evaluate = evaluate_classifier


def build_model(*, num_features: int, num_classes: int, hidden_units: int = 64, seed: int = 0) -> nn.Module:
    """The ``digits-mlp`` model, whose initial weights depend only on ``seed`` (the global RNG is left as it was)."""
    from fedchain.config import FedChainConfig
    from fedchain.tasks.builtin import DigitsMLP

    config = FedChainConfig(num_features=num_features, num_classes=num_classes, hidden_units=hidden_units, seed=seed)
    return DigitsMLP(config).build_model()
