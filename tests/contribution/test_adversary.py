from __future__ import annotations

import numpy as np
import pytest

from clients.adversary import (
    FREE_RIDER_CLAIM_FACTOR,
    SCALE_FACTOR,
    adversarial_labels,
    adversarial_update,
    adversary_rng,
    claimed_examples,
    trains,
)
from fedchain.config import ADVERSARY_KINDS
from fedchain.errors import ConfigError


def test_each_kind_departs_from_honest_as_documented() -> None:
    rng = adversary_rng(seed=0, member_id=7, server_round=2)
    delta = np.random.default_rng(1).normal(size=100)
    assert np.array_equal(adversarial_update("honest", delta, rng=rng), delta)
    assert np.array_equal(adversarial_update("label_flip", delta, rng=rng), delta)
    assert not adversarial_update("free_rider", delta, rng=rng).any()
    assert np.allclose(adversarial_update("scaled", delta, rng=rng), SCALE_FACTOR * delta)
    noise = adversarial_update("noise", delta, rng=rng)
    assert np.linalg.norm(noise) == pytest.approx(np.linalg.norm(delta))
    assert abs(noise @ delta) / np.linalg.norm(delta) ** 2 < 0.5  # unrelated to the honest update


def test_noise_is_deterministic_per_member_round() -> None:
    delta = np.ones(10)
    a = adversarial_update("noise", delta, rng=adversary_rng(seed=0, member_id=1, server_round=1))
    b = adversarial_update("noise", delta, rng=adversary_rng(seed=0, member_id=1, server_round=1))
    c = adversarial_update("noise", delta, rng=adversary_rng(seed=0, member_id=1, server_round=2))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_labels_and_claims() -> None:
    y = np.array([0, 1, 9, 4])
    assert adversarial_labels("label_flip", y, 10).tolist() == [9, 8, 0, 5]
    assert adversarial_labels("noise", y, 10) is y
    assert claimed_examples("free_rider", 30) == 30 * FREE_RIDER_CLAIM_FACTOR
    assert [claimed_examples(k, 30) for k in ("honest", "noise", "label_flip", "scaled")] == [30] * 4
    assert [trains(k) for k in ADVERSARY_KINDS] == [False, True, True, True]
    with pytest.raises(ConfigError, match="labels in"):
        adversarial_labels("label_flip", np.array([10]), 10)


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ConfigError, match="The 'adversary' parameter must be one of 'honest', 'free_rider'"):
        claimed_examples("thief", 1)
