"""A whole HE round through ``fedchain.pipeline``: real TenSEAL, a committee port answered by real members.

The coordinator's side holds the public SCORING context only; each committee member decrypts its
scalars with its own copy of the federation's secret context and signs them with its chain key, as
``clients/node.py`` does. No Flower: the ports are plain objects.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from fedchain import crypto
from fedchain.config import FedChainConfig
from fedchain.contribution import create_scorer, select_committee
from fedchain.contribution.committee import CommitteeRequest
from fedchain.crypto import answer_scalar_requests
from fedchain.identity import address_of, simulated_member_key
from fedchain.identity.signing import SigningDomain, scalars_digest, sign_digest, update_digest
from fedchain.pipeline import (
    CommitteeReply,
    EncryptedAggregation,
    EvaluationReport,
    RoundOutcome,
    RoundPipeline,
    TrainReply,
)
from fedchain.types import ZERO_HASH, MemberRound

SIZE = 100
DOMAIN = SigningDomain(chain_id=1337, ledger_address="0x" + "22" * 20, run_id=7)
KEYS = {address_of(k): k for k in (simulated_member_key(seed=0, member_id=i) for i in range(3))}
MODEL_HASH = "0x" + "ab" * 32


class Committee:
    """The committee port: each member asked answers with its own secret context and key."""

    def __init__(self, contexts: Mapping[str, Any], *, liar: str | None = None) -> None:
        self.contexts, self.liar, self.asked = contexts, liar, []

    def ask(self, request: CommitteeRequest, nodes: Mapping[str, int]) -> dict[str, CommitteeReply]:
        self.asked.append((request.exchange, sorted(nodes)))
        replies = {}
        for address in nodes:
            values = answer_scalar_requests(self.contexts[address], request.requests)
            if address == self.liar:
                values = [[v * 2 for v in row] for row in values]
            digest = scalars_digest(
                domain=DOMAIN,
                server_round=request.server_round,
                exchange=request.exchange,
                request_hash=request.request_hash,
                values=values,
            )
            flat = tuple(v for row in values for v in row)
            replies[address] = CommitteeReply(values=flat, signature=sign_digest(KEYS[address], digest))
        return replies


class Members:
    """The evaluation port: members decrypt the aggregate and report the model hash."""

    def __init__(self, secret: Any) -> None:
        self.secret, self.sums = secret, []

    def evaluate(self, outcome: RoundOutcome) -> list[EvaluationReport]:
        assert outcome.aggregation is not None and outcome.aggregation.aggregate is not None
        chunks = list(outcome.aggregation.aggregate.ciphertext or ())
        self.sums.append(crypto.decrypt_update(self.secret, chunks, SIZE))
        return [EvaluationReport(MODEL_HASH, num_examples=10, accuracy=0.5, loss=1.0)]


def _reply(secret: Any, address: str, delta: np.ndarray, n: int, node_id: int) -> TrainReply:
    chunks = tuple(crypto.encrypt_update(secret, n * delta))
    digest = update_digest(
        domain=DOMAIN,
        server_round=1,
        address=address,
        payload_hash=crypto.ciphertext_digest(chunks),
        num_examples=n,
        dp=None,
    )
    member = MemberRound(member_id=node_id, address=address, kind="honest", num_examples=n, status="accepted")
    return TrainReply(node_id, member, model_round=0, signature=sign_digest(KEYS[address], digest), chunks=chunks)


def _round(scoring_member: Any, scoring_coordinator: Any, committee: Committee) -> tuple[Any, Members, list[str]]:
    config = FedChainConfig(members=3, he=True, dp=False, chain="none", scorer="cosine", norm_bound=20.0)
    rng = np.random.default_rng(1)
    addresses = list(KEYS)
    common = rng.normal(0, 0.1, SIZE)  # members that learn the same task move the model alike
    deltas = [common + rng.normal(0, 0.02, SIZE), common + rng.normal(0, 0.02, SIZE), np.full(SIZE, 50.0)]
    counts = (10, 20, 5)
    replies = [_reply(scoring_member, addresses[i], deltas[i], counts[i], i) for i in range(3)]
    scorer = create_scorer(config.scorer)
    aggregation = EncryptedAggregation(
        config, scoring_coordinator, SIZE, domain=DOMAIN, committee=committee, want_dots=scorer.needs_scalars
    )
    pipeline = RoundPipeline(config=config, scorer=scorer, aggregation=aggregation, domain=DOMAIN)
    members = Members(scoring_member)
    done = pipeline.run(
        1, model={"w": np.zeros(SIZE, np.float32)}, previous_hash=ZERO_HASH, replies=replies, evaluation=members
    )
    expected = counts[0] * deltas[0] + counts[1] * deltas[1]
    assert members.sums and np.allclose(members.sums[0], expected, atol=1e-3)  # the bound's re-summed aggregate
    return done, members, addresses


def test_an_encrypted_round_with_the_committee_from_replies_to_the_record(
    scoring_member: Any, scoring_other_member: Any, scoring_coordinator: Any
) -> None:
    addresses = list(KEYS)
    contexts = {addresses[0]: scoring_member, addresses[1]: scoring_other_member, addresses[2]: scoring_member}
    committee = Committee(contexts)
    done, _, _ = _round(scoring_member, scoring_coordinator, committee)
    outcome, record = done.outcome, done.record

    assert outcome.status == "completed" and outcome.flagged == ""
    assert [exchange for exchange, _ in committee.asked] == [1, 2]  # norms first, then dots on the kept sum
    assert outcome.rejections == {"norm-bound": 1}
    assert [(m.address, m.status) for m in record.members] == [
        (addresses[0], "accepted"),
        (addresses[1], "accepted"),
        (addresses[2], "rejected"),
    ]
    assert all(m.score > 0 for m in record.members[:2]) and record.members[2].score == 0.0
    assert outcome.aggregation is not None and outcome.aggregation.aggregate is not None
    assert outcome.aggregation.aggregate.total_weight == 30 and outcome.aggregation.aggregate.members == 2
    assert record.aggregate_hash == outcome.aggregation.aggregate.digest
    assert record.model_hash == MODEL_HASH  # under HE, the members' report
    revealed = outcome.revealed
    assert revealed is not None and len(revealed.exchanges) == 2
    assert record.scalars_commitment == revealed.commitment
    assert all(len(exchange.answers) == 2 for exchange in revealed.exchanges)


def test_a_lying_committee_member_flags_the_round_and_nobody_is_paid(
    scoring_member: Any, scoring_other_member: Any, scoring_coordinator: Any
) -> None:
    addresses = list(KEYS)
    contexts = {addresses[0]: scoring_member, addresses[1]: scoring_other_member, addresses[2]: scoring_member}
    liar = select_committee(addresses, 2, seed=0, server_round=1)[0]  # drawn for the committee
    committee = Committee(contexts, liar=liar)
    done, _, _ = _round(scoring_member, scoring_coordinator, committee)
    assert "disagree" in done.outcome.flagged
    assert all(m.score == 0.0 for m in done.record.members)
