"""Member data: the bundled data sets (sklearn digits, MNIST) and organizations' local files.

Example:
    >>> from fedchain.data import load_demo_partition
    >>> part = load_demo_partition(0, 3, partitioner="iid", alpha=0.5, test_fraction=0.2, seed=0)
    >>> part.num_features, part.num_classes
    (64, 10)
"""

from fedchain.data.bundled import BUNDLED_DATASETS, BundledDataset, load_bundled_partition, load_bundled_split
from fedchain.data.digits import (
    DIGITS_NUM_CLASSES,
    DIGITS_NUM_FEATURES,
    load_demo_partition,
    load_digits_split,
)
from fedchain.data.files import load_local_dataset, read_table
from fedchain.data.mnist import MNIST_IMAGE_SHAPE, MNIST_NUM_CLASSES, MNIST_NUM_FEATURES, load_mnist_split
from fedchain.data.partition import partition_indices

__all__ = [
    "BUNDLED_DATASETS",
    "DIGITS_NUM_CLASSES",
    "DIGITS_NUM_FEATURES",
    "MNIST_IMAGE_SHAPE",
    "MNIST_NUM_CLASSES",
    "MNIST_NUM_FEATURES",
    "BundledDataset",
    "load_bundled_partition",
    "load_bundled_split",
    "load_demo_partition",
    "load_digits_split",
    "load_local_dataset",
    "load_mnist_split",
    "partition_indices",
    "read_table",
]
