"""An organization's own data: a CSV, Parquet or NPZ file with a label column.

Validation is strict and says what to fix: a missing file, an unknown format, a missing label
column, non-numeric or non-finite features, non-integer labels and empty data are all refused.
NPZ files are read with ``allow_pickle=False``: object arrays are rejected, never unpickled.

Example:
    >>> import numpy as np, tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "data.npz"
    >>> np.savez(path, x=np.eye(20, 4, dtype=np.float32), label=np.arange(20) % 2)
    >>> data = load_local_dataset(path, label_column="label", test_fraction=0.25, seed=0)
    >>> data.num_train, len(data.y_test), data.num_classes
    (15, 5, 2)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fedchain.errors import DataError
from fedchain.types import LocalDataset

__all__ = ["load_local_dataset", "read_table"]

_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".npz": "npz"}


def read_table(path: str | Path, label_column: str = "label") -> tuple[np.ndarray, np.ndarray]:
    """Read features (float32) and integer labels (int64) from a CSV, Parquet or NPZ file.

    CSV and Parquet: every column except ``label_column`` is a feature. NPZ: the file holds an
    array named ``label_column`` and one 2-D feature array named ``x`` (or exactly one other array).

    Raises:
        DataError: with what is wrong and what to do.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file {str(path)!r} does not exist: check the node's data-path")
    kind = _FORMATS.get(path.suffix.lower())
    if kind is None:
        raise DataError(
            f"data file {str(path)!r} has unsupported extension {path.suffix!r}: use one of "
            + ", ".join(sorted(_FORMATS))
        )
    columns = _read_columns(path, kind)
    if label_column not in columns:
        raise DataError(
            f"data file {str(path)!r} has no label column {label_column!r}; its columns are "
            f"{sorted(columns)}: set label-column to the column that holds the labels"
        )
    labels = np.asarray(columns.pop(label_column))
    if len(labels) == 0:
        raise DataError(f"data file {str(path)!r} holds no rows: a member needs at least one example")
    features = _npz_features(path, columns) if kind == "npz" else _stack_features(path, columns)
    if features.shape[0] != len(labels):
        raise DataError(f"data file {str(path)!r}: {features.shape[0]} feature rows but {len(labels)} labels")
    return features, _integer_labels(path, label_column, labels)


def load_local_dataset(
    path: str | Path,
    *,
    label_column: str = "label",
    test_fraction: float = 0.2,
    seed: int = 0,
    num_classes: int | None = None,
) -> LocalDataset:
    """Read a local file and split it into the member's train and evaluation parts.

    Args:
        path: CSV, Parquet or NPZ file.
        label_column: name of the label column (or NPZ array).
        test_fraction: share held out for federated evaluation.
        seed: seed of the split.
        num_classes: the federation's number of classes; labels must lie in ``[0, num_classes)``.
            Defaults to ``max(label) + 1``.

    Raises:
        DataError: if the file is unusable or has too few rows to split.
    """
    x, y = read_table(path, label_column)
    classes = int(y.max()) + 1 if num_classes is None else num_classes
    if y.max() >= classes:
        raise DataError(
            f"data file {str(path)!r}: label {int(y.max())} is outside [0, {classes}) (the federation's classes)"
        )
    if len(y) < 2:
        raise DataError(f"data file {str(path)!r} has {len(y)} row: at least 2 are needed (train and test)")
    order = np.random.default_rng(seed).permutation(len(y))
    n_test = min(max(1, round(len(y) * test_fraction)), len(y) - 1)
    test, train = order[:n_test], order[n_test:]
    return LocalDataset(x_train=x[train], y_train=y[train], x_test=x[test], y_test=y[test], num_classes=classes)


def _read_columns(path: Path, kind: str) -> dict[str, np.ndarray]:
    if kind == "npz":
        try:
            with np.load(path, allow_pickle=False) as archive:
                return {name: archive[name] for name in archive.files}
        except ValueError as exc:  # object arrays need pickle: refused
            raise DataError(f"data file {str(path)!r} could not be read safely: {exc}") from exc
        except Exception as exc:
            raise DataError(f"data file {str(path)!r} is not a valid npz file: {exc}") from exc
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    try:
        table = pa_csv.read_csv(path) if kind == "csv" else pq.read_table(path)
        return {name: table.column(name).to_numpy(zero_copy_only=False) for name in table.column_names}
    except Exception as exc:  # pyarrow's ArrowInvalid / OSError family, and undecodable text
        raise DataError(f"data file {str(path)!r} is not a valid {kind} file: {exc}") from exc


def _stack_features(path: Path, columns: dict[str, np.ndarray]) -> np.ndarray:
    if not columns:
        raise DataError(f"data file {str(path)!r} has a label column but no feature columns")
    bad = [name for name, values in columns.items() if not np.issubdtype(np.asarray(values).dtype, np.number)]
    if bad:
        raise DataError(f"data file {str(path)!r}: feature columns {bad} are not numeric: encode them as numbers first")
    features = np.column_stack([np.asarray(values, dtype=np.float64) for values in columns.values()])
    return _finite(path, features)


def _npz_features(path: Path, arrays: dict[str, np.ndarray]) -> np.ndarray:
    if "x" in arrays:
        features = arrays["x"]
    elif len(arrays) == 1:
        features = next(iter(arrays.values()))
    else:
        raise DataError(f"NPZ file {str(path)!r} must hold the features as an array named 'x'; it has {sorted(arrays)}")
    if not np.issubdtype(features.dtype, np.number):
        raise DataError(f"NPZ file {str(path)!r}: features have dtype {features.dtype}, which is not numeric")
    if features.ndim != 2:
        raise DataError(f"NPZ file {str(path)!r}: features must be 2-D (rows, features), got shape {features.shape}")
    return _finite(path, features.astype(np.float64))


def _finite(path: Path, features: np.ndarray) -> np.ndarray:
    if not np.all(np.isfinite(features)):
        rows = np.unique(np.nonzero(~np.isfinite(features))[0])[:5].tolist()
        raise DataError(f"data file {str(path)!r} has missing or infinite feature values (rows {rows}...)")
    return features.astype(np.float32)


def _integer_labels(path: Path, name: str, labels: np.ndarray) -> np.ndarray:
    if not np.issubdtype(labels.dtype, np.number):
        raise DataError(
            f"data file {str(path)!r}: label column {name!r} is not numeric: encode classes as integers 0..K-1"
        )
    if not np.all(np.isfinite(labels)) or not np.all(labels == np.round(labels)) or labels.min() < 0:
        raise DataError(f"data file {str(path)!r}: label column {name!r} must hold non-negative integers 0..K-1")
    return labels.astype(np.int64)
