"""Split example indices across members, IID or Dirichlet non-IID, with Flower Datasets.

Flower Datasets' partitioners are the reference implementation the Flower community uses; we
feed them an in-memory table of (index, label) so they work offline on any array data.

Example:
    >>> import numpy as np
    >>> parts = partition_indices(np.arange(100) % 10, 4, partitioner="iid", seed=0)
    >>> sorted(len(p) for p in parts)
    [25, 25, 25, 25]
"""

from __future__ import annotations

import logging
import warnings
from typing import Literal

import numpy as np

from fedchain._validation import Interval, OneOf
from fedchain.errors import DataError

__all__ = ["partition_indices"]

log = logging.getLogger(__name__)


def partition_indices(
    labels: np.ndarray,
    num_partitions: int,
    *,
    partitioner: Literal["iid", "dirichlet"] | str = "iid",
    alpha: float = 0.5,
    seed: int = 0,
    min_partition_size: int = 10,
) -> list[np.ndarray]:
    """Return one sorted index array per member.

    Args:
        labels: the label of every example (Dirichlet partitioning is by label).
        num_partitions: number of members.
        partitioner: ``"iid"`` (equal random shards) or ``"dirichlet"`` (label skew).
        alpha: Dirichlet concentration; smaller is more skewed.
        seed: seed of the partitioner; the same seed gives the same split.
        min_partition_size: Dirichlet only: resample until every member has this many examples.

    Raises:
        ConfigError: on an invalid option.
        DataError: when there are fewer examples than members.
    """
    from datasets import Dataset
    from flwr_datasets.partitioner import DirichletPartitioner, IidPartitioner

    num_partitions = Interval(int, 1, None, closed="left").check("num_partitions", num_partitions)
    partitioner = OneOf(("iid", "dirichlet")).check("partitioner", partitioner)
    labels = np.asarray(labels)
    if len(labels) < num_partitions:
        raise DataError(
            f"cannot split {len(labels)} examples across {num_partitions} members: use fewer members or more data"
        )
    table = Dataset.from_dict({"index": np.arange(len(labels)), "label": labels.astype(np.int64)})
    if partitioner == "iid":
        splitter = IidPartitioner(num_partitions=num_partitions)
        splitter.dataset = table.shuffle(seed=seed)
        return [_indices(splitter, i) for i in range(num_partitions)]
    alpha = Interval(float, 0, None, closed="neither").check("dirichlet_alpha", alpha)
    # Many members on little data: Flower Datasets resamples until every member has the minimum
    # size and gives up after 10 tries, so relax the minimum step by step (down to 1 example).
    min_size = min(min_partition_size, len(labels) // num_partitions)
    while True:
        splitter = DirichletPartitioner(
            num_partitions=num_partitions,
            partition_by="label",
            alpha=alpha,
            min_partition_size=min_size,
            self_balancing=False,
            shuffle=True,
            seed=seed,
        )
        splitter.dataset = table
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                return [_indices(splitter, i) for i in range(num_partitions)]
        except ValueError as exc:
            if min_size <= 1:
                raise DataError(
                    f"cannot split {len(labels)} examples across {num_partitions} members with Dirichlet "
                    f"alpha {alpha}: use fewer members, a larger alpha, or the iid partitioner"
                ) from exc
            min_size = max(1, min_size // 2)
            log.info("Dirichlet partitioning: relaxing the minimum member size to %d", min_size)


def _indices(splitter: object, partition_id: int) -> np.ndarray:
    return np.sort(np.asarray(splitter.load_partition(partition_id)["index"], dtype=np.int64))  # type: ignore[attr-defined]
