"""Member data: the bundled demo task (sklearn digits) and organizations' local files.

Example:
    >>> from fedchain.data import load_demo_partition
    >>> part = load_demo_partition(0, 3, partitioner="iid", alpha=0.5, test_fraction=0.2, seed=0)
    >>> part.num_features, part.num_classes
    (64, 10)
"""

from fedchain.data.digits import (
    DIGITS_NUM_CLASSES,
    DIGITS_NUM_FEATURES,
    load_demo_partition,
    load_digits_split,
)
from fedchain.data.files import load_local_dataset, read_table
from fedchain.data.partition import partition_indices

__all__ = [
    "DIGITS_NUM_CLASSES",
    "DIGITS_NUM_FEATURES",
    "load_demo_partition",
    "load_digits_split",
    "load_local_dataset",
    "partition_indices",
    "read_table",
]
