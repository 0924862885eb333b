"""A custom fedchain task: a tiny CNN on scikit-learn's 8x8 digits, read as 1x8x8 images (docs/tasks.md)."""

from __future__ import annotations

from torch import nn

from fedchain.tasks import Task, TrainingDefaults


class DigitsCNN(Task):
    """A tiny CNN (Conv-GroupNorm-ReLU-MaxPool, Linear; 1,386 parameters) on the 8x8 digits as images."""

    name = "digits-cnn"
    dataset = "digits"  # simulated members get shards of the bundled digits; deployed ones bring files
    defaults = TrainingDefaults(
        local_epochs=2, batch_size=32, learning_rate=0.05, momentum=0.9,
        dp_local_epochs=3, dp_batch_size=64, dp_learning_rate=0.5,
    )  # fmt: skip

    @property
    def input_shape(self) -> tuple[int, ...]:
        """One example: a 1-channel 8x8 image (a member file's 64 columns, row-major)."""
        return (1, 8, 8)

    def make_model(self) -> nn.Module:
        """Built after fedchain seeds torch's generator with the run seed: every member gets the same weights."""
        return nn.Sequential(
            nn.Conv2d(1, 8, kernel_size=3, padding=1),
            nn.GroupNorm(2, 8),  # not BatchNorm: DP-SGD needs per-example gradients
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(8 * 4 * 4, self.num_classes),
        )
