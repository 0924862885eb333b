"""The demo task's data: scikit-learn's bundled handwritten digits (8x8, 10 classes), offline.

The held-out test split is fixed (stratified, its own seed) so every run is evaluated on the
same 20% of the data; members' training shards come from the rest, and each member evaluates
on a disjoint equal shard of the test split, so the example-weighted mean of their accuracies
is the accuracy on the whole test split.

Example:
    >>> x_train, y_train, x_test, y_test = load_digits_split(test_fraction=0.2)
    >>> x_train.shape[1], len(x_test)
    (64, 360)
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from fedchain.data.partition import partition_indices
from fedchain.errors import DataError
from fedchain.types import LocalDataset

__all__ = ["DIGITS_NUM_CLASSES", "DIGITS_NUM_FEATURES", "load_demo_partition", "load_digits_split"]

DIGITS_NUM_FEATURES = 64
DIGITS_NUM_CLASSES = 10
#: The test split does not move with the run's seed.
_SPLIT_SEED = 20260101


@lru_cache(maxsize=4)
def load_digits_split(test_fraction: float = 0.2) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Digits scaled to [0, 1] as (x_train, y_train, x_test, y_test); the split is fixed."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=test_fraction, stratify=y, random_state=_SPLIT_SEED
    )
    for array in (x_train, y_train, x_test, y_test):
        array.setflags(write=False)
    return x_train, y_train, x_test, y_test


@lru_cache(maxsize=16)
def _train_partitions(
    num_partitions: int, partitioner: str, alpha: float, test_fraction: float, seed: int
) -> tuple[np.ndarray, ...]:
    _, y_train, _, _ = load_digits_split(test_fraction)
    return tuple(partition_indices(y_train, num_partitions, partitioner=partitioner, alpha=alpha, seed=seed))


def load_demo_partition(
    partition_id: int,
    num_partitions: int,
    *,
    partitioner: str = "dirichlet",
    alpha: float = 0.5,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> LocalDataset:
    """One member's shard of the digits data set.

    Raises:
        DataError: if ``partition_id`` is not in ``[0, num_partitions)``.
    """
    if not 0 <= partition_id < num_partitions:
        raise DataError(f"partition-id {partition_id} is outside [0, {num_partitions}): check the node config")
    x_train, y_train, x_test, y_test = load_digits_split(test_fraction)
    train_index = _train_partitions(num_partitions, partitioner, alpha, test_fraction, seed)[partition_id]
    test_index = np.array_split(np.arange(len(y_test)), num_partitions)[partition_id]
    return LocalDataset(
        x_train=x_train[train_index],
        y_train=y_train[train_index],
        x_test=x_test[test_index],
        y_test=y_test[test_index],
        num_classes=DIGITS_NUM_CLASSES,
    )
