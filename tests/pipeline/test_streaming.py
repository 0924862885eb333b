"""The round takes its replies as they arrive: each is validated and folded into the aggregate at once.

Real TenSEAL ciphertexts, real signatures; the replies come from a generator, as the coordinator's
``Exchange`` hands them over. The committee's ciphertexts wait in a spool file that is gone after
the round, also when the round fails.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fedchain import crypto
from fedchain.config import FedChainConfig
from fedchain.contribution import create_scorer
from fedchain.contribution.committee import CommitteeRequest
from fedchain.errors import IntegrityError
from fedchain.identity.signing import sign_digest, update_digest
from fedchain.pipeline import (
    AcceptedUpdate,
    CommitteeReply,
    EncryptedAggregation,
    RoundPipeline,
    TrainReply,
    validate,
)
from fedchain.pipeline.spool import SPOOL_SUFFIX, CiphertextSpool
from fedchain.types import ZERO_HASH

from .test_pipeline_he import DOMAIN, KEYS, SIZE, Committee, Members, _reply

ADDRESSES = list(KEYS)
MODEL = {"w": np.zeros(SIZE, np.float32)}
COUNTS = (10, 20, 5)


def _deltas() -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    return [rng.normal(0, 0.1, SIZE) for _ in COUNTS]


def _replies(secret: Any) -> list[TrainReply]:
    return [_reply(secret, ADDRESSES[i], delta, COUNTS[i], i) for i, delta in enumerate(_deltas())]


def _pipeline(
    config: FedChainConfig, public: Any, committee: Any = None, spool_dir: Path | None = None
) -> RoundPipeline:
    scorer = create_scorer(config.scorer)
    aggregation = EncryptedAggregation(
        config,
        public,
        SIZE,
        domain=DOMAIN,
        committee=committee,
        want_dots=scorer.needs_scalars,
        spool_dir=str(spool_dir) if spool_dir is not None else None,
    )
    return RoundPipeline(config=config, scorer=scorer, aggregation=aggregation, domain=DOMAIN)


def test_each_reply_is_folded_in_before_the_next_one_is_received(agg_member: Any) -> None:
    replies = _replies(agg_member)
    folded: list[str] = []

    def fold(update: AcceptedUpdate) -> AcceptedUpdate:
        folded.append(update.member.address)
        return update

    def arriving() -> Iterator[TrainReply]:
        for index, reply in enumerate(replies):
            assert len(folded) == index  # the previous reply is in the aggregate already
            yield reply

    accepted, rejected = validate(arriving(), server_round=1, model=MODEL, domain=DOMAIN, registered=None, fold=fold)
    assert folded == ADDRESSES and len(accepted) == 3 and rejected == {}


def test_the_running_sum_equals_the_all_at_once_sum(agg_member: Any, agg_coordinator: Any) -> None:
    replies = _replies(agg_member)
    config = FedChainConfig(members=3, he=True, dp=False, chain="none", norm_bound=0)
    members = Members(agg_member)
    done = _pipeline(config, agg_coordinator).run(
        1, model=MODEL, previous_hash=ZERO_HASH, replies=iter(replies), evaluation=members
    )
    aggregation = done.outcome.aggregation
    assert aggregation is not None and aggregation.aggregate is not None
    at_once = crypto.sum_encrypted(agg_coordinator, [list(r.chunks or ()) for r in replies], expected_chunks=1)
    assert aggregation.aggregate.digest == crypto.ciphertext_digest(at_once)
    expected = sum(n * d for n, d in zip(COUNTS, _deltas(), strict=True))
    assert np.allclose(members.sums[0], expected, atol=1e-3)
    assert all(u.chunks is None for u in done.outcome.trained)  # the round kept no member's ciphertext


def test_a_malformed_ciphertext_does_not_stop_the_round(agg_member: Any, agg_coordinator: Any) -> None:
    replies = _replies(agg_member)
    # member 1 signs bytes that are no ciphertext: the reply passes validation and the sum refuses it
    chunks = (b"\x00" * 64,)
    digest = update_digest(
        domain=DOMAIN,
        server_round=1,
        address=ADDRESSES[1],
        payload_hash=crypto.ciphertext_digest(chunks),
        num_examples=COUNTS[1],
        dp=None,
    )
    replies[1] = replace(replies[1], chunks=chunks, signature=sign_digest(KEYS[ADDRESSES[1]], digest))
    config = FedChainConfig(members=3, he=True, dp=False, chain="none", norm_bound=0, min_members=2)
    members = Members(agg_member)
    done = _pipeline(config, agg_coordinator).run(
        1, model=MODEL, previous_hash=ZERO_HASH, replies=iter(replies), evaluation=members
    )
    assert done.outcome.status == "completed" and done.outcome.rejections == {"invalid": 1}
    assert [(m.address, m.status) for m in done.record.members] == [
        (ADDRESSES[0], "accepted"),
        (ADDRESSES[2], "accepted"),
        (ADDRESSES[1], "rejected"),
    ]
    deltas = _deltas()
    assert np.allclose(members.sums[0], COUNTS[0] * deltas[0] + COUNTS[2] * deltas[2], atol=1e-3)


class _SpoolWatcher(Committee):
    """The committee port, looking at the spool directory while the committee is asked."""

    def __init__(self, contexts: Mapping[str, Any], directory: Path, *, fail: bool = False) -> None:
        super().__init__(contexts)
        self.directory, self.fail = directory, fail
        self.spooled: list[list[str]] = []

    def ask(self, request: CommitteeRequest, nodes: Mapping[str, int]) -> dict[str, CommitteeReply]:
        self.spooled.append(sorted(p.name for p in self.directory.iterdir()))
        if self.fail:
            raise RuntimeError("the network went away")
        return super().ask(request, nodes)


def test_the_committee_reads_a_spool_that_is_gone_after_the_round(
    scoring_member: Any, scoring_coordinator: Any, tmp_path: Path
) -> None:
    config = FedChainConfig(members=3, he=True, dp=False, chain="none", scorer="cosine", norm_bound=20.0)
    committee = _SpoolWatcher(dict.fromkeys(ADDRESSES, scoring_member), tmp_path)
    members = Members(scoring_member)
    done = _pipeline(config, scoring_coordinator, committee, tmp_path).run(
        1, model=MODEL, previous_hash=ZERO_HASH, replies=iter(_replies(scoring_member)), evaluation=members
    )
    assert done.outcome.status == "completed" and done.outcome.flagged == ""
    assert len(committee.spooled) == 2  # norms, then dots against the kept sum
    assert all(len(names) == 1 and names[0].endswith(SPOOL_SUFFIX) for names in committee.spooled)
    assert list(tmp_path.iterdir()) == []

    failing = _SpoolWatcher(dict.fromkeys(ADDRESSES, scoring_member), tmp_path, fail=True)
    with pytest.raises(RuntimeError, match="went away"):
        _pipeline(config, scoring_coordinator, failing, tmp_path).run(
            1, model=MODEL, previous_hash=ZERO_HASH, replies=_replies(scoring_member), evaluation=members
        )
    assert failing.spooled and list(tmp_path.iterdir()) == []  # removed on failure too


def test_a_spool_altered_on_disk_is_refused(tmp_path: Path) -> None:
    with CiphertextSpool(tmp_path, prefix="round-1-") as spool:
        spool.write("0xaa", [b"first chunk", b"second"])
        spool.write("0xbb", [b"other"])
        assert spool["0xaa"] == [b"first chunk", b"second"] and list(spool.subset(["0xbb"])) == ["0xbb"]
        with spool.path.open("r+b") as f:
            f.write(b"F")  # one byte of 0xaa's first chunk
        assert spool["0xbb"] == [b"other"]
        with pytest.raises(IntegrityError, match="0xaa"):
            spool["0xaa"]
    assert list(tmp_path.iterdir()) == []
