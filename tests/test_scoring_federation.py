"""Contribution scoring inside a real simulated federation (Flower runtime, TenSEAL, embedded EVM)."""

from __future__ import annotations

import pytest

from fedchain.config import FedChainConfig
from fedchain.errors import ConfigError

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def _by_kind(row):
    return {m["kind"]: m for m in row["members"]}


def test_encrypted_cosine_starves_free_riders_and_excludes_scaled_updates(tmp_path):
    from fedchain.runner import run_simulation

    config = FedChainConfig(
        members=4,
        adversaries=("free_rider", "scaled"),
        rounds=2,
        dp=False,
        he=True,
        he_scoring=True,
        scorer="cosine",
        out_dir=str(tmp_path),
    )
    result = run_simulation(config)
    assert result["audit"]["ok"], result["audit"]
    for row in result["rounds"]:
        assert row["status"] == "completed" and row["flagged"] == ""
        kinds = _by_kind(row)
        assert kinds["scaled"]["status"] == "rejected:norm-bound" and kinds["scaled"]["score"] == 0.0
        assert row["rejections"].get("norm-bound") == 1
        assert kinds["free_rider"]["score"] == 0.0 and int(kinds["free_rider"]["reward_wei"]) == 0
        honest = [m for m in row["members"] if m["kind"] == "honest"]
        assert len(honest) == 4 and all(m["score"] > 0 and int(m["reward_wei"]) > 0 for m in honest)
    assert result["final_accuracy"] > 0.5  # the scaled update (norm x100) never reached the model


def test_gtg_shapley_scores_in_plaintext(tmp_path):
    from fedchain.runner import run_simulation

    config = FedChainConfig(
        members=3, adversaries=("noise",), rounds=1, dp=False, he=False, scorer="gtg_shapley", out_dir=str(tmp_path)
    )
    result = run_simulation(config)
    row = result["rounds"][0]
    scores = {m["kind"] + str(m["member_id"]): m["score"] for m in row["members"]}
    assert all(score >= 0 for score in scores.values())
    honest = [m["score"] for m in row["members"] if m["kind"] == "honest"]
    assert sum(honest) > 0
    assert _by_kind(row)["noise"]["score"] < sum(honest) / len(honest)


def test_plaintext_scorers_are_refused_under_he():
    with pytest.raises(ConfigError, match="'loo' needs individual plaintext updates"):
        FedChainConfig(scorer="loo", he=True)
    with pytest.raises(ConfigError, match="drop --no-he-scoring"):
        FedChainConfig(scorer="cosine", he=True, he_scoring=False, norm_bound=0)


def test_the_default_configuration_checks_the_norm_bound_under_he():
    config = FedChainConfig(scorer="cosine")  # --scorer cosine --he just works
    assert config.he and config.he_scoring and config.norm_bound == 20
    assert FedChainConfig().he_scoring is True
    assert FedChainConfig(norm_bound=0).he_scoring is False  # nothing to decrypt: the cheaper keys
    with pytest.raises(ConfigError) as caught:
        FedChainConfig(he=True, he_scoring=False, norm_bound=20)
    assert str(caught.value) == (
        "The 'he_scoring' parameter must be true (or 'auto') under HE with norm bound 20. Got False. Under HE "
        "the norm bound is checked on encrypted norms that the decrypt committee decrypts, which needs the "
        "SCORING CKKS parameters; without them no norm would be checked. Drop --no-he-scoring (it is "
        "automatic), or turn the bound off with --norm-bound 0."
    )
