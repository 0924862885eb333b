"""The bundled tasks: the digits MLP (default), a small CNN on real MNIST, a benchmark MLP whose width sets its size.

============  ==========  =============  ============================================  ==========
name          input       parameters     model                                         data
============  ==========  =============  ============================================  ==========
digits-mlp    (64,)       4,810          Linear-ReLU-Linear (``hidden-units`` 64)       digits 8x8
mnist-cnn     (1, 28, 28) 20,586         2 x (Conv3x3-GroupNorm-ReLU-MaxPool), Linear  MNIST 5k
mnist-wide    (784,)      55,050 at 64   784-w-w-10 MLP, ``w = model-width``            MNIST 5k
============  ==========  =============  ============================================  ==========

This module imports no torch: the models (:mod:`fedchain.tasks.models`) load when built.

Example:
    >>> from fedchain.config import FedChainConfig
    >>> task = MnistWide(FedChainConfig(task="mnist-wide", model_width=679))
    >>> task.parameter_count(task.build_model())
    1001535
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fedchain.data.mnist import MNIST_IMAGE_SHAPE, MNIST_NUM_CLASSES, MNIST_NUM_FEATURES
from fedchain.errors import ConfigError
from fedchain.tasks.base import Task, TrainingDefaults
from fedchain.tasks.registry import register_task

if TYPE_CHECKING:
    from torch import nn

    from fedchain.config import FedChainConfig

__all__ = ["DigitsMLP", "MnistCNN", "MnistWide", "width_for_params"]


@register_task
class DigitsMLP(Task):
    """An MLP with one hidden layer on tabular rows: scikit-learn's 8x8 digits in demos, any member CSV in deployment.

    Options: ``hidden-units`` (64), ``num-features`` (64: the rows' length), ``num-classes`` (10).
    """

    name = "digits-mlp"
    dataset = "digits"
    defaults = TrainingDefaults(
        local_epochs=3, batch_size=32, learning_rate=0.05, momentum=0.9, dp_local_epochs=5, dp_batch_size=96,
        dp_learning_rate=0.3,
    )  # fmt: skip

    @property
    def input_shape(self) -> tuple[int, ...]:
        """``(num-features,)``."""
        return (self.config.num_features,)

    def make_model(self) -> nn.Module:
        """``Linear(num_features, hidden_units) -> ReLU -> Linear(hidden_units, num_classes)``."""
        from fedchain.tasks.models import digits_mlp

        return digits_mlp(
            num_features=self.config.num_features,
            hidden_units=self.config.hidden_units,
            num_classes=self.num_classes,
        )


class _Mnist(Task):
    """MNIST's 28x28 digits: 10 classes, whatever ``num-classes`` says."""

    dataset = "mnist"

    def __init__(self, config: FedChainConfig | None = None) -> None:
        super().__init__(config)
        if self.config.num_classes != MNIST_NUM_CLASSES:
            raise ConfigError(
                "num_classes", f"{MNIST_NUM_CLASSES} for task {self.label!r} (MNIST digits)", self.config.num_classes
            )


@register_task
class MnistCNN(_Mnist):
    """A small DP-friendly CNN (Conv-GroupNorm-ReLU-MaxPool x 2, Linear; 20,586 parameters) on real 28x28 MNIST digits.

    Members hold images as ``(n, 1, 28, 28)`` float32 in [0, 1]; a member's file holds flat rows of
    784 pixels (row-major) and a label. DP-SGD trains it through Opacus (``grad_sample_mode`` "ew").
    """

    name = "mnist-cnn"
    # DP: Poisson batches of 128 (a quarter of a 400-example member per step) beat 64 on 10 members x 10
    # rounds at epsilon 8 (bench/bench_tasks.py): fewer, less noisy steps for the same budget
    defaults = TrainingDefaults(
        local_epochs=2, batch_size=32, learning_rate=0.05, momentum=0.9, dp_local_epochs=3, dp_batch_size=128,
        dp_learning_rate=0.5,
    )  # fmt: skip

    @property
    def input_shape(self) -> tuple[int, ...]:
        """``(1, 28, 28)``."""
        return MNIST_IMAGE_SHAPE

    def make_model(self) -> nn.Module:
        """:class:`fedchain.tasks.models.MnistCNN`."""
        from fedchain.tasks.models import MnistCNN as Model

        return Model(num_classes=self.num_classes)


@register_task
class MnistWide(_Mnist):
    """For benchmarks: a 784-w-w-10 ReLU MLP on MNIST whose width ``model-width`` sets the size.

    ``w**2 + 796 w + 10`` parameters: 55,050 at the default width 64; width 679 gives 1,001,535
    (about 1M) and width 2,790 gives 10,004,950 (about 10M). :func:`width_for_params` finds the
    width for a parameter count. All layers are ``nn.Linear``: DP-SGD uses fedchain's fused step.
    """

    name = "mnist-wide"
    defaults = TrainingDefaults(
        local_epochs=2, batch_size=32, learning_rate=0.05, momentum=0.9, dp_local_epochs=3, dp_batch_size=64,
        dp_learning_rate=0.3,
    )  # fmt: skip

    @property
    def input_shape(self) -> tuple[int, ...]:
        """``(784,)``: flat pixel rows."""
        return (MNIST_NUM_FEATURES,)

    def make_model(self) -> nn.Module:
        """:func:`fedchain.tasks.models.wide_mlp` at ``model-width``."""
        from fedchain.tasks.models import wide_mlp

        return wide_mlp(width=self.config.model_width, num_features=MNIST_NUM_FEATURES, num_classes=self.num_classes)


def width_for_params(n: int) -> int:
    """The smallest ``model-width`` whose ``mnist-wide`` model has at least ``n`` parameters.

    Example:
        >>> width_for_params(1_000_000), width_for_params(10_000_000)
        (679, 2790)
    """
    from fedchain.tasks.models import width_for_params as solve

    return solve(n, num_features=MNIST_NUM_FEATURES, num_classes=MNIST_NUM_CLASSES)
