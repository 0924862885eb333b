"""``fedchain tasks`` lists every registered task; ``fedchain run --task`` refuses an unknown one by listing them."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from fedchain.cli import app
from fedchain.tasks import available_tasks


def test_tasks_lists_every_registered_task_with_size_data_and_dp_path():
    done = CliRunner().invoke(app, ["tasks", "--json", "--model-width", "8"])
    assert done.exit_code == 0, done.output
    rows = {row["name"]: row for row in json.loads(done.output)}
    assert set(rows) == set(available_tasks())
    assert rows["mnist-cnn"]["parameters"] == 20586 and rows["mnist-cnn"]["input_shape"] == [1, 28, 28]
    assert rows["mnist-cnn"]["dp_path"] == "ew" and rows["digits-mlp"]["dp_path"] == "fused"
    assert rows["mnist-wide"]["parameters"] == 8 * 8 + 796 * 8 + 10
    assert rows["mnist-cnn"]["data"] == "MNIST 28x28, 5,000"
    assert rows["mnist-cnn"]["defaults"]["dp_learning_rate"] == 0.5


def test_run_refuses_an_unknown_task_naming_the_known_ones(tmp_path):
    done = CliRunner().invoke(app, ["run", "--task", "imagenet", "--out", str(tmp_path)])
    assert done.exit_code == 2
    assert "The '--task' option must be one of 'digits-mlp', 'mnist-cnn', 'mnist-wide'" in done.output
