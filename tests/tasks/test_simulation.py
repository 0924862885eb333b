"""Tasks in a real federation: mnist-cnn with HE, DP and the chain; the guide's custom task by dotted path."""

from __future__ import annotations

import pytest

from fedchain.config import FedChainConfig

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def test_mnist_cnn_trains_a_round_with_he_dp_and_the_chain(tmp_path):
    from fedchain.runner import run_simulation

    config = FedChainConfig(
        task="mnist-cnn",
        members=2,
        rounds=1,
        he=True,
        dp=True,
        chain="embedded",
        partitioner="iid",
        dp_local_epochs=1,
        out_dir=str(tmp_path),
    )
    result = run_simulation(config)
    (row,) = result["rounds"]
    assert row["status"] == "completed"
    assert [m["status"] for m in row["members"]] == ["accepted", "accepted"]
    assert all(m["epsilon"] > 0 for m in row["members"])
    assert result["config"]["task"] == "mnist-cnn"
    assert result["audit"]["ok"] is True
    assert result["final_accuracy"] is not None and 0.0 <= result["final_accuracy"] <= 1.0


def test_the_guides_custom_task_trains_a_round_by_dotted_path(tmp_path):
    from fedchain.runner import run_simulation

    config = FedChainConfig(
        task="tests.tasks.guide_task:DigitsCNN",
        members=2,
        rounds=1,
        he=False,
        dp=False,
        chain="none",
        out_dir=str(tmp_path),
    )
    result = run_simulation(config)
    (row,) = result["rounds"]
    assert row["status"] == "completed" and [m["status"] for m in row["members"]] == ["accepted", "accepted"]
    assert result["final_accuracy"] > 0.2  # 10 classes: chance is 0.1; one round of a tiny CNN beats it
