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
    from fedchain.data.bundled import load_bundled_partition

    return load_bundled_partition(
        "digits",
        partition_id,
        num_partitions,
        partitioner=partitioner,
        alpha=alpha,
        test_fraction=test_fraction,
        seed=seed,
    )
