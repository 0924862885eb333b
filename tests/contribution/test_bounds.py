from __future__ import annotations

import numpy as np
import pytest

from fedchain.contribution import DEFAULT_NORM_BOUND, InnerProducts, norm_bound_filter, update_norms
from fedchain.errors import ConfigError


def test_bound_applies_to_the_model_change_not_the_weighted_update() -> None:
    deltas = {"small": np.full(4, 0.5), "big_n": np.full(4, 0.5), "big_delta": np.full(4, 50.0)}
    counts = {"small": 1, "big_n": 10_000, "big_delta": 1}
    sq_norms = InnerProducts.from_deltas(counts, deltas).sq_norms
    assert update_norms(sq_norms, counts) == pytest.approx({"small": 1.0, "big_n": 1.0, "big_delta": 100.0})
    assert norm_bound_filter(sq_norms, counts, bound=20.0) == ["big_delta"]
    assert norm_bound_filter(sq_norms, counts, bound=100.5) == []
    assert norm_bound_filter(sq_norms, counts, bound=0.0) == []  # off


def test_ckks_noise_below_zero_reads_as_a_zero_norm() -> None:
    assert update_norms({"free": -3e-6}, {"free": 10}) == {"free": 0.0}


def test_bound_is_validated() -> None:
    with pytest.raises(ConfigError, match=r"The 'norm_bound' parameter must be a float in \[0, inf\). Got -1.0."):
        norm_bound_filter({}, {}, bound=-1.0)
    assert DEFAULT_NORM_BOUND > 0
