"""The bundled MNIST digits and the tasks' data shapes (bundled shards and members' own files)."""

from __future__ import annotations

import numpy as np
import pytest

from fedchain.config import FedChainConfig
from fedchain.data import load_bundled_partition, load_mnist_split
from fedchain.data.mnist import mnist_path
from fedchain.errors import ConfigError, DataError
from fedchain.tasks import create_task


def test_mnist_split_is_5000_real_images_stratified_and_fixed():
    x_train, y_train, x_test, y_test = load_mnist_split(0.2)
    assert x_train.shape == (4000, 784) and x_test.shape == (1000, 784)
    assert x_train.dtype == np.float32 and x_train.min() == 0.0 and x_train.max() == 1.0
    assert np.array_equal(np.bincount(y_train), [400] * 10) and np.array_equal(np.bincount(y_test), [100] * 10)
    assert y_train.dtype == np.int64
    # real digits: most pixels are background, and a digit covers a good share of the image
    ink = (x_train > 0.5).mean(axis=1)
    assert 0.05 < float(np.median(ink)) < 0.3
    assert not x_train.flags.writeable
    again = load_mnist_split(0.2)
    assert again[0] is x_train  # cached
    assert mnist_path().name == "mnist_5k.csv.gz"


def test_mnist_cnn_members_hold_images():
    task = create_task(config=FedChainConfig(task="mnist-cnn", partitioner="iid"))
    shards = [task.load_demo(i, 4) for i in range(4)]
    for shard in shards:
        assert shard.x_train.shape == (1000, 1, 28, 28) and shard.x_train.dtype == np.float32
        assert shard.x_test.shape == (250, 1, 28, 28)
        assert shard.input_shape == (1, 28, 28) and shard.num_features == 784 and shard.num_classes == 10
    assert sum(s.num_train for s in shards) == 4000


def test_dirichlet_shards_are_skewed_and_cover_the_training_split():
    shards = [load_bundled_partition("mnist", i, 10, partitioner="dirichlet", alpha=0.5, seed=0) for i in range(10)]
    assert sum(s.num_train for s in shards) == 4000
    dominant = [np.bincount(s.y_train, minlength=10).max() / s.num_train for s in shards]
    assert max(dominant) > 0.3  # label skew (IID would be about 0.1)


def test_unknown_bundled_dataset_is_refused_by_name():
    with pytest.raises(ConfigError, match="'dataset' parameter must be one of 'digits', 'mnist'"):
        load_bundled_partition("cifar", 0, 2)


def test_a_member_file_of_flat_pixel_rows_is_reshaped(tmp_path):
    x_train, y_train, _, _ = load_mnist_split(0.2)
    path = tmp_path / "member.npz"
    np.savez(path, x=x_train[:50], label=y_train[:50])
    data = create_task("mnist-cnn").load_file(path, seed=0)
    assert data.x_train.shape == (40, 1, 28, 28) and data.x_test.shape == (10, 1, 28, 28)
    assert create_task("mnist-wide").load_file(path, seed=0).x_train.shape == (40, 784)


def test_a_member_file_of_the_wrong_width_is_refused_with_the_fix(tmp_path):
    path = tmp_path / "member.npz"
    np.savez(path, x=np.zeros((20, 64), np.float32), label=np.arange(20) % 10)
    with pytest.raises(DataError, match=r"64 features per example but task 'mnist-cnn' takes 784 \(input shape"):
        create_task("mnist-cnn").load_file(path, seed=0)


def test_a_task_without_bundled_data_asks_for_files():
    from tests.tasks.guide_task import DigitsCNN

    class FilesOnly(DigitsCNN):
        dataset = ""

    with pytest.raises(DataError, match="bundles no data set: give each member a data file"):
        FilesOnly().load_demo(0, 2)


def test_demo_files_for_an_mnist_task_are_npz_rows_the_task_reshapes(tmp_path):
    from fedchain.deployment.launcher import write_demo_data

    paths = write_demo_data(tmp_path / "data", 2, task="mnist-cnn")
    assert [p.name for p in paths] == ["member-0.npz", "member-1.npz"]
    with np.load(paths[0], allow_pickle=False) as archive:
        assert archive["x"].shape == (2500, 784) and archive["label"].shape == (2500,)
    data = create_task("mnist-cnn").load_file(paths[0], seed=0)
    assert data.x_train.shape == (2000, 1, 28, 28) and data.num_classes == 10
    assert [p.name for p in write_demo_data(tmp_path / "digits", 2)] == ["member-0.csv", "member-1.csv"]
