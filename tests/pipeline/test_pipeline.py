"""A whole plaintext round through ``fedchain.pipeline``, with no Flower at all.

The replies are the decoded values the coordinator would hand over; the strategy's aggregation is a
plain weighted mean; the evaluation port is a function. What comes out is the round's frozen outcome
and the record the chain would get.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from fedchain.config import FedChainConfig
from fedchain.contribution import create_scorer
from fedchain.identity import address_of, simulated_member_key
from fedchain.identity.signing import SigningDomain, sign_digest, update_digest
from fedchain.pipeline import (
    EvaluationReport,
    FailedReply,
    PlainAggregation,
    RoundOutcome,
    RoundPipeline,
    TrainReply,
    tally,
    update_root,
)
from fedchain.serialization import Weights, model_hash
from fedchain.types import ZERO_HASH, MemberRound
from tests.conftest import ROOT

MODEL = {"w": np.zeros(4, np.float32)}
DOMAIN = SigningDomain(chain_id=1337, ledger_address="0x" + "22" * 20, run_id=7)


def _key(member_id: int) -> bytes:
    return simulated_member_key(seed=0, member_id=member_id)


def _reply(member_id: int, delta: float, n: int, *, sign_key: bytes | None = None) -> TrainReply:
    weights = {"w": MODEL["w"] + np.float32(delta)}
    address = address_of(_key(member_id))
    digest = update_digest(
        domain=DOMAIN, server_round=1, address=address, payload_hash=model_hash(weights), num_examples=n, dp=None
    )
    member = MemberRound(member_id=member_id, address=address, kind="honest", num_examples=n, status="accepted")
    return TrainReply(
        100 + member_id,
        member,
        model_round=0,
        signature=sign_digest(sign_key or _key(member_id), digest),
        weights=weights,
    )


def _mean(server_round: int, updates: list[tuple[Weights, int]]) -> Weights:
    """FedAvg without Flower: the example-weighted mean of the members' weights."""
    total = sum(n for _, n in updates)
    return {"w": (sum(w["w"].astype(np.float64) * n for w, n in updates) / total).astype(np.float32)}


class Members:
    """The evaluation port: every member holds the round's model and reports its hash."""

    def __init__(self) -> None:
        self.asked: list[RoundOutcome] = []

    def evaluate(self, outcome: RoundOutcome) -> list[EvaluationReport]:
        self.asked.append(outcome)
        assert outcome.model_hash is not None
        return [
            EvaluationReport(outcome.model_hash, num_examples=30, accuracy=0.8, loss=0.4),
            EvaluationReport(outcome.model_hash, num_examples=10, accuracy=0.6, loss=0.8),
            EvaluationReport("0x" + "99" * 32, num_examples=50, accuracy=0.1, loss=9.0),  # holds another model
        ]


def _pipeline(config: FedChainConfig) -> RoundPipeline:
    return RoundPipeline(
        config=config,
        scorer=create_scorer(config.scorer),
        aggregation=PlainAggregation(config, MODEL, _mean),
        domain=DOMAIN,
        registered=frozenset(address_of(_key(i)) for i in range(5)),
    )


def test_a_plaintext_round_from_replies_to_the_record() -> None:
    config = FedChainConfig(members=5, he=False, dp=False, chain="none", min_members=2, norm_bound=20.0)
    members = Members()
    replies = [
        _reply(0, 1.0, 10),
        _reply(1, 2.0, 30),
        _reply(2, 3.0, 10, sign_key=_key(4)),  # signed by someone else
        FailedReply(103, "declined", "budget spent"),
        _reply(4, 500.0, 10),  # far above the norm bound
    ]
    done = _pipeline(config).run(1, model=MODEL, previous_hash=ZERO_HASH, replies=replies, evaluation=members)
    outcome, record = done.outcome, done.record

    expected = {"w": np.full(4, (1.0 * 10 + 2.0 * 30) / 40, np.float32)}
    assert outcome.aggregation is not None and outcome.aggregation.weights is not None
    np.testing.assert_allclose(outcome.aggregation.weights["w"], expected["w"], rtol=1e-6)
    assert outcome.status == "completed" and outcome.flagged == ""
    assert outcome.model_hash == model_hash(outcome.aggregation.weights) == record.model_hash
    assert outcome.rejections == {"bad-signature": 1, "declined": 1, "norm-bound": 1}
    assert outcome.accuracy == pytest.approx(0.75) and outcome.loss == pytest.approx(0.5)  # weighted by examples
    assert [o.server_round for o in members.asked] == [1]  # evaluated once, after scoring

    addresses = [address_of(_key(i)) for i in (0, 1, 4)]
    assert [(m.address, m.status) for m in record.members] == list(
        zip(addresses, ["accepted", "accepted", "rejected"], strict=True)
    )
    scores = [m.score for m in record.members]
    assert scores[1] == pytest.approx(3 * scores[0]) and scores[2] == 0.0  # data_size: 10 vs 30 examples
    assert record.previous_model_hash == ZERO_HASH
    assert record.reward_pool_wei == config.reward_pool_wei
    assert record.update_merkle_root == update_root(1, outcome.members) != ZERO_HASH
    assert record.scalars_commitment == ZERO_HASH  # no committee in plaintext mode
    assert {u.member.address for u in outcome.trained} == set(addresses)  # every spend is recorded


def test_too_few_updates_skip_the_round_and_pay_nobody() -> None:
    config = FedChainConfig(members=5, he=False, dp=False, chain="none", min_members=3)
    members = Members()
    replies = [_reply(0, 1.0, 10), _reply(1, 2.0, 10), FailedReply(102, "failed", "crashed")]
    done = _pipeline(config).run(1, model=MODEL, previous_hash=ZERO_HASH, replies=replies, evaluation=members)
    assert done.outcome.status == "skipped" and not members.asked
    assert done.record.reward_pool_wei == 0 and done.record.aggregate_hash == ZERO_HASH
    assert done.record.model_hash == ZERO_HASH  # the model stays the previous one
    assert [(m.status, m.score) for m in done.record.members] == [("skipped", 0.0), ("skipped", 0.0)]


def test_the_round_is_the_model_most_members_hold() -> None:
    """Under HE the coordinator learns the model only from the members: the majority hash wins."""
    good, other = "0x" + "aa" * 32, "0x" + "bb" * 32
    reports = [
        EvaluationReport(good, num_examples=10, accuracy=0.9, loss=0.1),
        EvaluationReport(good, num_examples=30, accuracy=0.5, loss=0.3),
        EvaluationReport(other, num_examples=100, accuracy=0.0, loss=5.0),
    ]
    evaluation = tally(1, reports, model_hash=None)
    assert evaluation.model_hash == good and evaluation.accuracy == pytest.approx(0.6)
    # plaintext: the coordinator knows the model; when most members hold another, there is no accuracy
    assert tally(1, reports, model_hash=other).accuracy is None
    assert tally(1, [], model_hash=None) == tally(1, [], model_hash=good)


def test_the_pipeline_imports_no_flower_torch_or_web3() -> None:
    code = (
        "import sys, fedchain.pipeline, fedchain.recording; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'flwr', 'torch', 'opacus', 'tenseal', 'web3', 'ray'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"
