import numpy as np
import pytest

from fedchain.data import load_demo_partition, load_digits_split, load_local_dataset, partition_indices, read_table
from fedchain.errors import ConfigError, DataError


def test_digits_split_is_fixed_and_disjoint():
    x_train, _, x_test, y_test = load_digits_split(0.2)
    assert x_train.shape == (1437, 64) and x_test.shape == (360, 64)
    assert x_train.dtype == np.float32 and x_train.min() >= 0.0 and x_train.max() <= 1.0
    assert np.bincount(y_test).min() >= 35  # stratified
    again = load_digits_split(0.2)
    assert np.array_equal(again[3], y_test)


@pytest.mark.parametrize("kind", ["iid", "dirichlet"])
def test_partitions_cover_every_example_once_and_are_seeded(kind):
    labels = np.arange(1000) % 10
    parts = partition_indices(labels, 7, partitioner=kind, alpha=0.5, seed=3)
    merged = np.concatenate(parts)
    assert sorted(merged.tolist()) == list(range(1000))
    assert all(len(part) >= 10 for part in parts)
    same = partition_indices(labels, 7, partitioner=kind, alpha=0.5, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(parts, same, strict=True))
    other = partition_indices(labels, 7, partitioner=kind, alpha=0.5, seed=4)
    assert any(not np.array_equal(a, b) for a, b in zip(parts, other, strict=True))


def test_dirichlet_small_alpha_skews_labels():
    labels = np.arange(2000) % 10
    parts = partition_indices(labels, 5, partitioner="dirichlet", alpha=0.1, seed=0)
    dominant = [np.bincount(labels[p], minlength=10).max() / len(p) for p in parts]
    iid = partition_indices(labels, 5, partitioner="iid", seed=0)
    iid_dominant = [np.bincount(labels[p], minlength=10).max() / len(p) for p in iid]
    assert np.mean(dominant) > 2 * np.mean(iid_dominant)


def test_partition_errors():
    with pytest.raises(DataError, match="cannot split 3 examples across 5 members"):
        partition_indices(np.arange(3), 5)
    with pytest.raises(ConfigError, match="'partitioner' parameter"):
        partition_indices(np.arange(30), 2, partitioner="zipf")
    with pytest.raises(ConfigError, match="'dirichlet_alpha' parameter must be a float in \\(0, inf\\)"):
        partition_indices(np.arange(30), 2, partitioner="dirichlet", alpha=0.0)


def test_demo_partition_test_shards_tile_the_test_split():
    parts = [load_demo_partition(i, 4, partitioner="iid", seed=0) for i in range(4)]
    assert sum(len(p.y_test) for p in parts) == 360
    assert sum(p.num_train for p in parts) == 1437
    with pytest.raises(DataError, match="partition-id 4 is outside"):
        load_demo_partition(4, 4)


def _write_csv(path, text):
    path.write_text(text)
    return path


def test_csv_parquet_npz_load(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    csv = _write_csv(tmp_path / "d.csv", "a,b,label\n" + "\n".join(f"{i},{i * 2},{i % 3}" for i in range(10)))
    x, y = read_table(csv)
    assert x.shape == (10, 2) and x.dtype == np.float32 and y.tolist() == [i % 3 for i in range(10)]
    pq.write_table(pa.table({"f": np.arange(8.0), "target": np.arange(8) % 2}), tmp_path / "d.parquet")
    x, y = read_table(tmp_path / "d.parquet", "target")
    assert x.shape == (8, 1)
    np.savez(tmp_path / "d.npz", x=np.ones((6, 3)), label=np.array([0, 1, 0, 1, 0, 1]))
    data = load_local_dataset(tmp_path / "d.npz", test_fraction=0.5, seed=1, num_classes=2)
    assert data.num_train == 3 and len(data.y_test) == 3 and data.num_features == 3


@pytest.mark.parametrize(
    ("name", "content", "label", "message"),
    [
        ("missing.csv", None, "label", "does not exist"),
        ("d.txt", "a,label\n1,0\n", "label", "unsupported extension '.txt'"),
        ("d.csv", "a,b\n1,0\n", "label", "has no label column 'label'; its columns are ['a', 'b']"),
        ("d.csv", "a,label\nx,0\ny,1\n", "label", "feature columns ['a'] are not numeric"),
        ("d.csv", "a,label\n", "label", "holds no rows"),
        ("d.csv", "a,label\n1,cat\n2,dog\n", "label", "label column 'label' is not numeric"),
        ("d.csv", "a,label\n1,0.5\n2,1\n", "label", "must hold non-negative integers"),
        ("d.csv", "a,label\n1,0\n,1\n", "label", "missing or infinite feature values"),
        ("d.parquet", "not parquet", "label", "is not a valid parquet file"),
    ],
)
def test_bad_files_give_clear_errors(tmp_path, name, content, label, message):
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(DataError, match=None) as info:
        read_table(path, label)
    assert message in str(info.value)


def test_npz_with_objects_is_refused_not_unpickled(tmp_path):
    np.savez(tmp_path / "evil.npz", x=np.array([object()], dtype=object), label=np.array([0]))
    with pytest.raises(DataError, match="could not be read safely"):
        read_table(tmp_path / "evil.npz")


def test_labels_outside_federation_classes(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.ones((4, 2)), label=np.array([0, 1, 2, 5]))
    with pytest.raises(DataError, match=r"label 5 is outside \[0, 3\)"):
        load_local_dataset(tmp_path / "d.npz", num_classes=3)


def test_dirichlet_with_many_members_relaxes_the_minimum_size():
    labels = np.arange(1437) % 10
    parts = partition_indices(labels, 100, partitioner="dirichlet", alpha=0.5, seed=0)
    assert sorted(np.concatenate(parts).tolist()) == list(range(1437))
    assert min(len(p) for p in parts) >= 1
