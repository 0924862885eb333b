"""The strategies benchmark: HE on vs off per strategy, skipping modes the member node cannot run yet."""

import json

import pytest

from bench import bench_strategies


def test_modes_needing_unwired_member_features_are_detected():
    assert bench_strategies.missing_features("fedavg", he=True, available=()) == []
    assert bench_strategies.missing_features("fedprox", he=False, available=()) == ["proximal"]
    assert bench_strategies.missing_features("fedprox", he=True, available={"proximal"}) == []
    assert bench_strategies.missing_features("fedadam", he=True, available=()) == ["server-optimizer"]
    assert bench_strategies.missing_features("fedadam", he=False, available=()) == []


@pytest.mark.slow
@pytest.mark.integration
def test_fedavg_accuracy_with_and_without_he(tmp_path):
    figures = bench_strategies.run(tmp_path, strategies=("fedavg",), members=2, rounds=1)
    written = json.loads((tmp_path / "strategies.json").read_text())
    assert written == figures
    row = figures["strategies"]["fedavg"]
    assert 0.0 < row["accuracy_plain"] <= 1.0 and 0.0 < row["accuracy_he"] <= 1.0
    assert row["difference_points"] == pytest.approx(abs(row["accuracy_he"] - row["accuracy_plain"]) * 100)
    assert row["meets_target"] is True and figures["meets_target"] is True and figures["skipped"] == []
