"""The decrypt-committee protocol with real TenSEAL SCORING contexts."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from fedchain import crypto
from fedchain.contribution import (
    CosineScorer,
    InnerProducts,
    ScoringInputs,
    norm_bound_filter,
    reconcile,
    select_committee,
    withheld_scores,
)
from fedchain.crypto import answer_scalar_requests, build_scalar_requests
from fedchain.errors import ConfigError, CryptoError

LENGTH = 5000  # two chunks


@pytest.fixture(scope="module")
def round_data(scoring_member: Any, scoring_coordinator: Any) -> dict[str, Any]:
    """Three honest-ish members, one free rider (zero update) and one scaled update, encrypted."""
    rng = np.random.default_rng(0)
    direction = rng.normal(size=LENGTH) * 0.01
    deltas = {
        "h0": direction + rng.normal(size=LENGTH) * 0.005,
        "h1": direction + rng.normal(size=LENGTH) * 0.005,
        "h2": direction + rng.normal(size=LENGTH) * 0.005,
        "free": np.zeros(LENGTH),
        "scaled": 100 * (direction + rng.normal(size=LENGTH) * 0.005),
    }
    counts = {"h0": 120, "h1": 80, "h2": 200, "free": 1000, "scaled": 100}
    chunks = {m: crypto.encrypt_update(scoring_member, counts[m] * d) for m, d in deltas.items()}
    total = crypto.sum_encrypted(scoring_coordinator, list(chunks.values()), expected_chunks=2)
    requests = build_scalar_requests(scoring_coordinator, chunks, total)
    return {"deltas": deltas, "counts": counts, "chunks": chunks, "total": total, "requests": requests}


def test_requests_are_in_the_documented_order(round_data: dict[str, Any]) -> None:
    requests = round_data["requests"]
    assert [(r.kind, r.addresses) for r in requests] == [
        ("sq_norms", ("h0", "h1", "h2", "free", "scaled")),
        ("dots", ("h0", "h1", "h2", "free", "scaled")),
        ("agg_sq_norm", ()),
    ]
    assert [r.count for r in requests] == [5, 5, 1]


def test_honest_committee_agrees_on_the_plaintext_inner_products(
    round_data: dict[str, Any], scoring_member: Any, scoring_other_member: Any
) -> None:
    requests = round_data["requests"]
    answers = {
        "m1": answer_scalar_requests(scoring_member, requests),
        "m2": answer_scalar_requests(scoring_other_member, requests),
    }
    assert answers["m1"] == answers["m2"]  # same ciphertext, same key: deterministic decryption
    verdict = reconcile(requests, answers)
    assert not verdict.disagreement and verdict.reason == ""
    assert verdict.products is not None
    expected = InnerProducts.from_deltas(round_data["counts"], round_data["deltas"])
    largest_sq = max(expected.sq_norms.values())
    for member in round_data["counts"]:
        # documented CKKS budget: 1e-4 relative plus packing cross-talk of 1e-9 x the largest packed scalar
        assert verdict.products.sq_norms[member] == pytest.approx(
            expected.sq_norms[member], rel=1e-4, abs=1e-9 * largest_sq + 1e-3
        )
        assert verdict.products.dots[member] == pytest.approx(
            expected.dots[member], rel=1e-4, abs=1e-9 * largest_sq + 1e-3
        )
    assert verdict.products.agg_sq_norm == pytest.approx(expected.agg_sq_norm, rel=1e-4)


def test_cosine_under_he_matches_plaintext_and_norm_bound_catches_the_scaled_update(
    round_data: dict[str, Any], scoring_member: Any, scoring_coordinator: Any
) -> None:
    counts, deltas, chunks = round_data["counts"], round_data["deltas"], round_data["chunks"]
    requests = round_data["requests"]
    verdict = reconcile(requests, {"m1": answer_scalar_requests(scoring_member, requests)})
    excluded = verdict.excluded(counts, bound=1.0)
    assert excluded == ["scaled"]
    assert excluded == norm_bound_filter(InnerProducts.from_deltas(counts, deltas).sq_norms, counts, 1.0)
    # the coordinator sums again without the excluded update and asks for the kept members' scalars
    kept = {m: c for m, c in chunks.items() if m not in excluded}
    kept_total = crypto.sum_encrypted(scoring_coordinator, list(kept.values()), expected_chunks=2)
    second = build_scalar_requests(scoring_coordinator, kept, kept_total, sq_norms=False)
    assert [r.kind for r in second] == ["dots", "agg_sq_norm"]
    again = reconcile(second, {"m1": answer_scalar_requests(scoring_member, second)})
    assert again.products is not None
    kept_counts = {m: counts[m] for m in kept}
    products = InnerProducts(
        sq_norms={m: verdict.products.sq_norms[m] for m in kept},  # type: ignore[union-attr]
        dots=again.products.dots,
        agg_sq_norm=again.products.agg_sq_norm,
    )
    he_scores = CosineScorer()(ScoringInputs(num_examples=kept_counts, products=products))
    plain_scores = CosineScorer()(ScoringInputs(num_examples=kept_counts, deltas={m: deltas[m] for m in kept}))
    assert he_scores == pytest.approx(plain_scores, rel=1e-3, abs=1e-6)
    assert he_scores["free"] == 0.0
    assert min(he_scores[m] for m in ("h0", "h1", "h2")) > 0.5 * 80


def test_a_lying_committee_member_flags_the_round(
    round_data: dict[str, Any], scoring_member: Any, scoring_other_member: Any
) -> None:
    requests, counts = round_data["requests"], round_data["counts"]
    honest = answer_scalar_requests(scoring_member, requests)
    lie = [list(values) for values in answer_scalar_requests(scoring_other_member, requests)]
    lie[0][4] = lie[0][4] * 1e-6  # hides the scaled update's norm
    lie[1][3] = abs(lie[1][1]) * 5  # and makes the free rider look aligned
    verdict = reconcile(requests, {"honest": honest, "liar": lie})
    assert verdict.disagreement and verdict.products is None
    assert "committee members 'honest' and 'liar' disagree on sq_norms (scaled:" in verdict.reason
    # rewards are withheld, and the norm check keeps the honest answer's exclusion
    assert withheld_scores(counts) == dict.fromkeys(counts, 0.0)
    assert verdict.excluded(counts, bound=1.0) == ["scaled"]


def test_a_lie_within_tolerance_is_harmless_and_accepted(round_data: dict[str, Any], scoring_member: Any) -> None:
    requests = round_data["requests"]
    honest = answer_scalar_requests(scoring_member, requests)
    nudged = [[v * (1 + 1e-9) for v in values] for values in honest]
    assert not reconcile(requests, {"a": honest, "b": nudged}).disagreement


def test_missing_or_malformed_answers_flag_the_round(round_data: dict[str, Any], scoring_member: Any) -> None:
    requests = round_data["requests"]
    honest = answer_scalar_requests(scoring_member, requests)
    missing = reconcile(requests, {"a": honest, "b": None})
    assert missing.disagreement and "committee member 'b' did not answer" in missing.reason
    short = reconcile(requests, {"a": honest, "b": honest[:2]})
    assert short.disagreement and "malformed answer" in short.reason
    assert reconcile(requests, {}).disagreement


def test_the_coordinator_cannot_answer(round_data: dict[str, Any], scoring_coordinator: Any) -> None:
    with pytest.raises(CryptoError, match="holds no CKKS secret key"):
        answer_scalar_requests(scoring_coordinator, round_data["requests"])


def test_squared_norms_only(round_data: dict[str, Any], scoring_coordinator: Any) -> None:
    requests = build_scalar_requests(scoring_coordinator, round_data["chunks"], None)
    assert [r.kind for r in requests] == ["sq_norms"]
    with pytest.raises(ConfigError, match="something to request"):
        build_scalar_requests(scoring_coordinator, round_data["chunks"], None, sq_norms=False)


def test_committee_selection_is_deterministic_and_rotates() -> None:
    members = [f"0x{k:040x}" for k in range(10)]
    first = select_committee(members, 2, seed=0, server_round=1)
    assert first == select_committee(members, 2, seed=0, server_round=1)
    assert len(first) == 2 and set(first) <= set(members)
    drawn = {tuple(select_committee(members, 2, seed=0, server_round=r)) for r in range(1, 20)}
    assert len(drawn) > 5
    assert sorted(select_committee(members[:3], 5, seed=0, server_round=1)) == sorted(members[:3])
    with pytest.raises(ConfigError, match="committee_size"):
        select_committee(members, 0, seed=0, server_round=1)
