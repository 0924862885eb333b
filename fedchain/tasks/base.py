"""The task plug-in: the model a federation trains, on which data, with which local settings.

A task is a :class:`Task` subclass, registered by name (:func:`fedchain.tasks.register_task`) or
named by a dotted path (``package.module:Class``), chosen with the run config's ``task`` option
(``fedchain run --task NAME``). Every member and the coordinator build it from the same
:class:`~fedchain.config.FedChainConfig`. A task says:

* **the model**: :meth:`Task.make_model` builds it from torch's global generator, which
  :meth:`Task.build_model` seeds with the run seed (and restores afterwards), so every member
  and the coordinator start from the same weights; its input shape (:attr:`Task.input_shape`)
  and number of classes (:attr:`Task.num_classes`);
* **the data**: a member reads its own file (:meth:`Task.load_file`, flat rows reshaped to the
  input shape) or, in demos and simulations, its shard of a bundled data set
  (:attr:`Task.dataset`, :meth:`Task.load_demo`, partitioned by :mod:`fedchain.data.partition`);
* **local training**: its default hyperparameters (:attr:`Task.defaults`, what the run config's
  ``"auto"`` options become). The training loop itself is :func:`fedchain.privacy.train_private`
  or :func:`~fedchain.privacy.train_plain` (cross-entropy, SGD with momentum) for every task;
* **evaluation**: :meth:`Task.evaluate` returns ``(loss, accuracy)``.

Weights cross the wire as named float32 arrays in the order of ``state_dict()``
(:meth:`Task.get_weights`). :mod:`fedchain.tasks.conformance` checks all of this.

Example:
    >>> from fedchain.tasks import create_task
    >>> task = create_task("digits-mlp")
    >>> model = task.build_model(seed=0)
    >>> task.input_shape, task.num_classes, task.parameter_count(model)
    ((64,), 10, 4810)
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from fedchain.errors import DataError
from fedchain.serialization import Weights
from fedchain.types import LocalDataset

if TYPE_CHECKING:
    from torch import nn

    from fedchain.config import FedChainConfig

__all__ = ["TRAINING_FIELDS", "Task", "TrainingDefaults", "evaluate_classifier"]

#: Examples per forward pass in :meth:`Task.evaluate`.
EVAL_BATCH = 1024


def evaluate_classifier(model: nn.Module, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of a classifier's logits, in batches of :data:`EVAL_BATCH`.

    ``(0.0, 0.0)`` for no examples.

    Example:
        >>> import numpy as np, torch
        >>> evaluate_classifier(torch.nn.Linear(3, 2), np.zeros((0, 3), "float32"), np.zeros(0, "int64"))
        (0.0, 0.0)
    """
    import torch
    from torch import nn

    if len(y) == 0:
        return 0.0, 0.0
    model.eval()
    loss_sum, correct = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(y), EVAL_BATCH):
            inputs = torch.tensor(np.asarray(x[start : start + EVAL_BATCH], dtype=np.float32))
            target = torch.tensor(np.asarray(y[start : start + EVAL_BATCH], dtype=np.int64))
            logits = model(inputs)
            loss_sum += float(nn.functional.cross_entropy(logits, target, reduction="sum"))
            correct += int((logits.argmax(dim=1) == target).sum())
    return loss_sum / len(y), correct / len(y)


@dataclass(frozen=True)
class TrainingDefaults:
    """A task's local hyperparameters: the values of the run config's options left at ``"auto"``.

    Attributes:
        local_epochs: local epochs per round without DP.
        batch_size: batch size without DP.
        learning_rate: SGD learning rate without DP.
        momentum: SGD momentum (with DP and without).
        dp_local_epochs: local epochs per round with DP on.
        dp_batch_size: expected Poisson batch size with DP on.
        dp_learning_rate: SGD learning rate with DP on (noisy, clipped gradients want a larger one).
    """

    local_epochs: int = 3
    batch_size: int = 32
    learning_rate: float = 0.05
    momentum: float = 0.9
    dp_local_epochs: int = 5
    dp_batch_size: int = 96
    dp_learning_rate: float = 0.3


#: The :class:`~fedchain.config.FedChainConfig` fields a task's defaults fill in (same names).
TRAINING_FIELDS: tuple[str, ...] = tuple(spec.name for spec in dataclasses.fields(TrainingDefaults))


class Task(ABC):
    """What a federation trains. Subclass it, set the class attributes, implement the two abstract members.

    Class attributes:
        name: the registry name (``register_task`` uses it; a dotted-path task may leave it empty).
        dataset: the bundled data set simulated members and demos use (a key of
            :data:`fedchain.data.BUNDLED_DATASETS`), or ``""`` when members must bring files.
        defaults: the local hyperparameters (:class:`TrainingDefaults`).

    Args:
        config: the run's configuration (its seed, test fraction, partitioner and the task's own
            options such as ``hidden-units`` or ``model-width``); the defaults when omitted.
    """

    name: ClassVar[str] = ""
    dataset: ClassVar[str] = ""
    defaults: ClassVar[TrainingDefaults] = TrainingDefaults()

    def __init__(self, config: FedChainConfig | None = None) -> None:
        if config is None:
            from fedchain.config import FedChainConfig

            config = FedChainConfig()
        self.config = config

    # ------------------------------------------------------------------ spec
    @property
    @abstractmethod
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one example as the model takes it: ``(64,)`` for digits rows, ``(1, 28, 28)`` for MNIST."""

    @property
    def num_classes(self) -> int:
        """Number of classes (the model's outputs); the run config's ``num-classes`` by default."""
        return self.config.num_classes

    @property
    def label(self) -> str:
        """The name to show: the registry name, else ``module:Class``."""
        return self.name or f"{type(self).__module__}:{type(self).__qualname__}"

    @abstractmethod
    def make_model(self) -> nn.Module:
        """Build the model, drawing its initial weights from torch's global generator.

        Called by :meth:`build_model`, which seeds that generator first and restores it after;
        draw from nothing else (no ``numpy.random``, no fresh ``torch.Generator``), or members
        start from different models. Use layers DP-SGD can train: GroupNorm or LayerNorm, never
        BatchNorm (:func:`fedchain.privacy.check_dp_compatible`).
        """

    # ----------------------------------------------------------------- model
    def build_model(self, *, seed: int | None = None) -> nn.Module:
        """The model with the initial weights of ``seed`` (default: the run seed); leaves the global RNG as it was."""
        import torch

        state = torch.random.get_rng_state()
        torch.manual_seed(self.config.seed if seed is None else seed)
        try:
            return self.make_model()
        finally:
            torch.random.set_rng_state(state)

    @staticmethod
    def get_weights(model: nn.Module) -> Weights:
        """The model's parameters and buffers as named float32 arrays (copies), in ``state_dict`` order."""
        return {name: tensor.detach().cpu().numpy().copy() for name, tensor in model.state_dict().items()}

    @staticmethod
    def set_weights(model: nn.Module, weights: Weights) -> None:
        """Load named arrays into ``model`` (strict: names and shapes must match)."""
        import torch

        state = {name: torch.from_numpy(np.asarray(array)) for name, array in weights.items()}
        model.load_state_dict(state, strict=True)

    @staticmethod
    def parameter_count(model: nn.Module) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in model.parameters() if p.requires_grad)

    def evaluate(self, model: nn.Module, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
        """``(loss, accuracy)`` of ``model`` on ``x`` (shape ``(n, *input_shape)``) and labels ``y``.

        The default is :func:`evaluate_classifier`: mean cross-entropy and the share of correct
        argmax predictions.
        """
        return evaluate_classifier(model, x, y)

    # ------------------------------------------------------------------ data
    def shape_examples(self, x: np.ndarray, *, source: str = "the data") -> np.ndarray:
        """Flat rows (or arrays already in shape) to float32 ``(n, *input_shape)``.

        Raises:
            DataError: the rows do not hold ``prod(input_shape)`` values each.
        """
        x = np.asarray(x, dtype=np.float32)
        shape = tuple(self.input_shape)
        if tuple(x.shape[1:]) == shape:
            return x
        size = int(np.prod(shape, dtype=np.int64))
        per_row = int(np.prod(x.shape[1:], dtype=np.int64)) if x.ndim > 1 else 1
        if per_row != size:
            raise DataError(
                f"{source} has {per_row} features per example but task {self.label!r} takes {size} "
                f"(input shape {shape}): give each row {size} values (an image row-major), or choose the task "
                "that fits the data (fedchain tasks)"
            )
        return x.reshape((x.shape[0], *shape))

    def shape_dataset(self, data: LocalDataset, *, source: str = "the data") -> LocalDataset:
        """``data`` with its examples in the task's input shape and its classes the task's."""
        for part in (data.y_train, data.y_test):
            if part.size and int(part.max()) >= self.num_classes:
                raise DataError(
                    f"{source}: label {int(part.max())} is outside [0, {self.num_classes}) "
                    f"(task {self.label!r} has {self.num_classes} classes)"
                )
        return LocalDataset(
            x_train=self.shape_examples(data.x_train, source=source),
            y_train=data.y_train,
            x_test=self.shape_examples(data.x_test, source=source),
            y_test=data.y_test,
            num_classes=self.num_classes,
        )

    def load_split(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The bundled data set's fixed split ``(x_train, y_train, x_test, y_test)``, in the input shape.

        Raises:
            DataError: the task has no bundled data set.
        """
        from fedchain.data import load_bundled_split

        self._require_dataset()
        x_train, y_train, x_test, y_test = load_bundled_split(self.dataset, self.config.test_fraction)
        source = f"bundled data set {self.dataset!r}"
        return (
            self.shape_examples(x_train, source=source),
            y_train,
            self.shape_examples(x_test, source=source),
            y_test,
        )

    def load_demo(self, partition_id: int, num_partitions: int) -> LocalDataset:
        """A simulated member's shard of the bundled data set (the run config's partitioner, alpha and seed).

        Raises:
            DataError: the task has no bundled data set, or ``partition_id`` is out of range.
        """
        from fedchain.data import load_bundled_partition

        self._require_dataset()
        config = self.config
        data = load_bundled_partition(
            self.dataset,
            partition_id,
            num_partitions,
            partitioner=config.partitioner,
            alpha=config.dirichlet_alpha,
            test_fraction=config.test_fraction,
            seed=config.seed,
        )
        return self.shape_dataset(data, source=f"bundled data set {self.dataset!r}")

    def load_file(self, path: str | Path, *, label_column: str = "label", seed: int = 0) -> LocalDataset:
        """A member's own CSV, Parquet or NPZ file (flat rows and a label column), split and in the input shape.

        Raises:
            DataError: the file is unusable (:func:`fedchain.data.load_local_dataset`) or its rows do
                not fit the input shape.
        """
        from fedchain.data import load_local_dataset

        data = load_local_dataset(
            path,
            label_column=label_column,
            test_fraction=self.config.test_fraction,
            seed=seed,
            num_classes=self.num_classes,
        )
        return self.shape_dataset(data, source=f"data file {str(path)!r}")

    def _require_dataset(self) -> None:
        if not self.dataset:
            raise DataError(
                f"task {self.label!r} bundles no data set: give each member a data file (node config data-path)"
            )

    # -------------------------------------------------------------- describe
    def describe(self, model: nn.Module | None = None) -> dict[str, Any]:
        """Name, parameter count, input shape, classes, data source and default hyperparameters (JSON-ready)."""
        from fedchain.data import BUNDLED_DATASETS

        model = self.build_model() if model is None else model
        bundled = BUNDLED_DATASETS.get(self.dataset)
        return {
            "name": self.label,
            "summary": (type(self).__doc__ or "").strip().splitlines()[0] if type(self).__doc__ else "",
            "parameters": self.parameter_count(model),
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "data": bundled.description if bundled else "member files only",
            "defaults": dataclasses.asdict(self.defaults),
        }
