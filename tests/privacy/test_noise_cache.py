"""The noise multiplier is calibrated once per member and kept on disk (deployment: one process per message)."""

from __future__ import annotations

import json
from pathlib import Path

from fedchain.privacy import DPConfig, NoiseCache, PrivacyBudget, calibrate_noise_multiplier, plan_round

CONFIG = DPConfig(budget=PrivacyBudget(epsilon=8.0, delta=1e-5), planned_rounds=20)
ROUND = {"num_examples": 150, "epochs": 3, "batch_size": 32}


def test_calibration_is_the_same_and_saved(tmp_path: Path) -> None:
    path = tmp_path / "noise.json"
    sigma = NoiseCache(path).noise_multiplier(CONFIG, **ROUND)
    assert sigma == plan_round(CONFIG, **ROUND).noise_multiplier
    assert sigma == calibrate_noise_multiplier(budget=CONFIG.budget, sample_rate=0.2, steps_per_round=15, rounds=20)
    entries = json.loads(path.read_text())["noise_multipliers"]
    assert list(entries.values()) == [sigma]


def test_a_new_process_reads_the_file_instead_of_searching(tmp_path: Path) -> None:
    path = tmp_path / "noise.json"
    NoiseCache(path).noise_multiplier(CONFIG, **ROUND)
    document = json.loads(path.read_text())
    (key,) = document["noise_multipliers"]
    document["noise_multipliers"][key] = 3.25  # distinguishable from any calibration
    path.write_text(json.dumps(document))
    assert NoiseCache(path).noise_multiplier(CONFIG, **ROUND) == 3.25
    other = DPConfig(budget=PrivacyBudget(epsilon=3.0, delta=1e-5), planned_rounds=20)  # another key
    assert NoiseCache(path).noise_multiplier(other, **ROUND) != 3.25


def test_unreadable_or_invalid_cache_is_ignored_and_rewritten(tmp_path: Path, caplog) -> None:
    path = tmp_path / "noise.json"
    expected = plan_round(CONFIG, **ROUND).noise_multiplier
    for garbage in ("{not json", json.dumps({"version": 1, "noise_multipliers": []}), json.dumps([1, 2])):
        path.write_text(garbage)
        assert NoiseCache(path).noise_multiplier(CONFIG, **ROUND) == expected
        assert json.loads(path.read_text())["noise_multipliers"]
    path.write_text(json.dumps({"version": 1, "noise_multipliers": {}}))
    key_doc = NoiseCache(path)
    key_doc.noise_multiplier(CONFIG, **ROUND)
    document = json.loads(path.read_text())
    document["noise_multipliers"] = {k: -1.0 for k in document["noise_multipliers"]}  # not a valid sigma
    path.write_text(json.dumps(document))
    assert NoiseCache(path).noise_multiplier(CONFIG, **ROUND) == expected


def test_fixed_noise_needs_no_cache(tmp_path: Path) -> None:
    fixed = DPConfig(budget=PrivacyBudget(epsilon=8.0, delta=1e-5), noise_multiplier=1.7)
    assert NoiseCache(tmp_path / "noise.json").noise_multiplier(fixed, **ROUND) == 1.7
    assert not (tmp_path / "noise.json").exists()
