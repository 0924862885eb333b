"""The bundled tasks' PyTorch models. Every layer is one DP-SGD can train (no BatchNorm).

* :func:`digits_mlp`: ``Linear -> ReLU -> Linear`` (the demo MLP; 4,810 parameters at 64 hidden units).
* :class:`MnistCNN`: two ``Conv2d(3x3) -> GroupNorm -> ReLU -> MaxPool`` blocks and a ``Linear``
  head on 28x28 images: 20,586 parameters. GroupNorm, not BatchNorm: BatchNorm mixes the examples
  of a batch, so per-example gradients (and DP-SGD) are undefined for it and Opacus refuses it.
* :func:`wide_mlp`: ``784 -> w -> w -> 10``, ``w**2 + 796 w + 10`` parameters: a model whose size a
  benchmark sets (:func:`wide_mlp_parameters`, :func:`width_for_params`).

Example:
    >>> import torch
    >>> MnistCNN()(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 10])
    >>> wide_mlp_parameters(64), width_for_params(1_000_000)
    (55050, 679)
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["MnistCNN", "digits_mlp", "wide_mlp", "wide_mlp_parameters", "width_for_params"]


def digits_mlp(*, num_features: int, hidden_units: int, num_classes: int) -> nn.Sequential:
    """The demo MLP: one hidden ReLU layer (parameter names ``0.weight``, ``0.bias``, ``2.weight``, ``2.bias``)."""
    return nn.Sequential(nn.Linear(num_features, hidden_units), nn.ReLU(), nn.Linear(hidden_units, num_classes))


class MnistCNN(nn.Module):
    """A small DP-friendly CNN for (batch, 1, 28, 28) images in [0, 1]; 20,586 parameters at the defaults.

    Args:
        channels: channels of the first block (the second has twice as many); a multiple of 4.
        num_classes: outputs (logits).
    """

    def __init__(self, *, channels: int = 16, num_classes: int = 10) -> None:
        super().__init__()
        wide = 2 * channels
        self.features = nn.Sequential(
            nn.Conv2d(1, channels, kernel_size=3, padding=1),
            nn.GroupNorm(channels // 4, channels),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(channels, wide, kernel_size=3, padding=1),
            nn.GroupNorm(wide // 4, wide),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.head = nn.Linear(wide * 7 * 7, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits, shape (batch, num_classes)."""
        return self.head(self.features(x).flatten(1))


def wide_mlp(*, width: int, num_features: int = 784, num_classes: int = 10) -> nn.Sequential:
    """``num_features -> width -> width -> num_classes`` with ReLUs: :func:`wide_mlp_parameters` parameters."""
    return nn.Sequential(
        nn.Linear(num_features, width),
        nn.ReLU(),
        nn.Linear(width, width),
        nn.ReLU(),
        nn.Linear(width, num_classes),
    )


def wide_mlp_parameters(width: int, *, num_features: int = 784, num_classes: int = 10) -> int:
    """Parameters of :func:`wide_mlp`: ``width**2 + (num_features + num_classes + 2) * width + num_classes``."""
    return width * width + (num_features + num_classes + 2) * width + num_classes


def width_for_params(n: int, *, num_features: int = 784, num_classes: int = 10) -> int:
    """The smallest width whose :func:`wide_mlp` has at least ``n`` parameters (at least 1).

    On MNIST: 679 for 1M parameters (1,001,535), 2,790 for 10M (10,004,950).
    """
    b = num_features + num_classes + 2
    width = max(1, math.ceil((-b + math.sqrt(b * b + 4 * max(0, n - num_classes))) / 2))
    while width > 1 and wide_mlp_parameters(width - 1, num_features=num_features, num_classes=num_classes) >= n:
        width -= 1
    while wide_mlp_parameters(width, num_features=num_features, num_classes=num_classes) < n:
        width += 1
    return width
