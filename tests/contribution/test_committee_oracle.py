"""Attacks on the decrypt committee, from the coordinator's side, with only what it holds.

The coordinator holds the public SCORING context and every member's encrypted update. These tests
build each attack with real TenSEAL and send it to the real ``MemberNode.answer_scalars``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest
import tenseal as ts
from flwr.app import ConfigRecord, Context, Message, RecordDict

from clients.node import MemberNode
from fedchain import crypto
from fedchain.config import FedChainConfig
from fedchain.contribution.committee import (
    CommitteeRequest,
    CommitteeRequestError,
    RevealedExchange,
    RevealedScalars,
    ScalarRequest,
    SignedAnswer,
    canonical_json,
    check_request,
)
from fedchain.crypto import build_scalar_requests
from fedchain.identity import address_of, simulated_member_key
from fedchain.identity.signing import NO_LEDGER, SigningDomain, dispute_digest, recover_signer, scalars_digest
from fedchain.protocol import (
    ERROR_COMMITTEE_REFUSED,
    CommitteeQuery,
    EvaluateIns,
    SealedAggregate,
    TrainIns,
    chunks_to_record,
    decode_committee_answer,
    decode_evaluate_res,
    decode_train_res,
    encode,
)

pytestmark = pytest.mark.usefixtures("flower_task_identity", "simulated_member")

LENGTH = 5000  # two chunks of 4096 slots
_run_ids = iter(range(50_000, 10**6))


OTHERS = [address_of(simulated_member_key(seed=0, member_id=i)) for i in (1, 2)]


@pytest.fixture()
def committee_node(tmp_path: Any, scoring_member: Any) -> MemberNode:
    """A committee member of an HE federation with the SCORING parameters (member 0 of 3)."""
    path = tmp_path / "member.ckks"
    crypto.write_context(path, crypto.export_secret_context(scoring_member), secret=True)
    config = FedChainConfig(members=3, he=True, he_scoring=True, dp=False, chain="none", out_dir=str(tmp_path))
    context = Context(
        run_id=next(_run_ids),
        node_id=1,
        node_config={
            "partition-id": 0,
            "num-partitions": 3,
            "state-dir": str(tmp_path / "member"),
            "ckks-context": str(path),
            "policy-require-dp": False,  # a plaintext-SGD member keeps the test fast
        },
        state=RecordDict(),
        run_config=dict(config.to_run_config()),
    )
    return MemberNode.from_context(context)


def _train_reply(node: MemberNode, server_round: int = 1, cohort: int = 3) -> Message:
    """Instruct ``node`` to train ``server_round`` (announcing ``cohort``); return its reply."""
    ins = TrainIns(server_round, server_round - 1, cohort=cohort)
    return node.train(Message(encode(ins), dst_node_id=1, message_type="train"))


def _train(node: MemberNode, server_round: int = 1, cohort: int = 3) -> list[bytes]:
    """Instruct ``node`` to train ``server_round`` (announcing ``cohort``); return its encrypted update."""
    reply = _train_reply(node, server_round, cohort)
    assert not reply.has_error(), reply.error.reason
    return list(decode_train_res(reply.content).update or ())


def _query(
    requests: list[ScalarRequest], *, server_round: int = 1, exchange: int = 1, counts: tuple[int, ...] | None = None
) -> Message:
    """A committee request as the coordinator sends it (``fedchain.protocol.CommitteeQuery``)."""
    query = CommitteeQuery.of(server_round, exchange, requests, chain_id=0, ledger_address="")
    if counts is not None:  # a count that differs from the labels
        query = replace(query, counts=counts)
    return Message(encode(query), dst_node_id=1, message_type="query")


def _refusal(reply: Message) -> str:
    assert reply.has_error(), "the committee member answered"
    assert reply.error.code == ERROR_COMMITTEE_REFUSED
    return str(reply.error.reason)


def _stolen_chunk(coordinator_ctx: Any, chunk: bytes) -> bytes:
    """The coordinator's oracle ciphertext: an update chunk times plaintext ones (4096 values, one rescale)."""
    return bytes(ts.ckks_vector_from(coordinator_ctx, chunk).mul(np.ones(4096).tolist()).serialize())


def test_the_coordinator_cannot_decrypt_an_update_chunk_through_a_committee_member(
    committee_node: MemberNode, scoring_coordinator: Any
) -> None:
    """The attack of issue 14: before the fix the member returned all 4096 values (max error 7e-4 here)."""
    update = _train(committee_node)  # the member's own upload, as the coordinator holds it
    stolen = _stolen_chunk(scoring_coordinator, update[0])
    # the request of today's coordinator: a count and a ciphertext, nothing else
    legacy = Message(
        RecordDict(
            {
                "config": ConfigRecord({"scalar-counts": [4096], "server-round": 1}),
                "scalars": chunks_to_record([stolen]),
            }
        ),
        dst_node_id=1,
        message_type="query",
    )
    assert _refusal(committee_node.answer_scalars(legacy)).startswith("malformed committee request (KeyError")
    # labelled with 4096 made-up addresses: more members than the round's cohort of 3
    fake = [f"0x{i:040x}" for i in range(4096)]
    reason = _refusal(committee_node.answer_scalars(_query([ScalarRequest("sq_norms", tuple(fake), stolen)])))
    assert reason == "4096 members in the request, but the round's train instruction announced 3"
    # labelled as the 3 members' squared norms: the ciphertext holds 4096 values, not 3
    members = (committee_node.address, *OTHERS)
    reason = _refusal(committee_node.answer_scalars(_query([ScalarRequest("sq_norms", members, stolen)])))
    assert reason.startswith("ciphertext 0 (sq_norms) does not hold exactly its 3 labelled scalars: ")
    assert "vector of size 4096, expected 3" in reason
    # a count that differs from the labels
    reason = _refusal(
        committee_node.answer_scalars(_query([ScalarRequest("sq_norms", members, stolen)], counts=(4096,)))
    )
    assert reason == "a sq_norms ciphertext of 4096 scalars must be labelled by as many addresses"


def _round_updates(node: MemberNode, scoring_member: Any) -> dict[str, list[bytes]]:
    """The node's real encrypted update and two other members' (encrypted by them)."""
    rng = np.random.default_rng(7)
    size = sum(a.size for a in node.template().values())
    chunks = {node.address: _train(node)}
    for address in OTHERS:
        chunks[address] = crypto.encrypt_update(scoring_member, rng.normal(size=size) * 30.0)
    return chunks


def test_well_formed_requests_are_answered_once_and_signed(
    committee_node: MemberNode, scoring_member: Any, scoring_coordinator: Any
) -> None:
    chunks = _round_updates(committee_node, scoring_member)
    norms = build_scalar_requests(scoring_coordinator, chunks, None)
    reply = committee_node.answer_scalars(_query(norms))
    assert not reply.has_error(), reply.error.reason
    answer = decode_committee_answer(reply.content)
    values = list(answer.values)
    assert len(values) == 3
    request_hash = CommitteeRequest(1, 1, tuple(norms)).request_hash
    assert answer.request_hash == request_hash
    domain = SigningDomain(chain_id=0, ledger_address=NO_LEDGER, run_id=committee_node.run_id)
    digest = scalars_digest(domain=domain, server_round=1, exchange=1, request_hash=request_hash, values=[values])
    assert recover_signer(digest, answer.signature) == committee_node.address
    # each exchange once; a past or future round never
    assert _refusal(committee_node.answer_scalars(_query(norms))) == "exchange 1 of round 1 was already answered"
    assert _refusal(committee_node.answer_scalars(_query(norms, server_round=2))) == (
        "round 2 is not the current round (1): a committee member answers only the round it was last "
        "instructed to train in"
    )
    total = crypto.sum_encrypted(scoring_coordinator, list(chunks.values()), expected_chunks=2)
    dots = build_scalar_requests(scoring_coordinator, chunks, total, sq_norms=False)
    second = committee_node.answer_scalars(_query(dots, exchange=2))
    assert not second.has_error(), second.error.reason
    assert len(decode_committee_answer(second.content).values) == 4  # k + 1
    assert _refusal(committee_node.answer_scalars(_query(dots, exchange=3))) == "exchange 3 is not one of (1, 2)"


def test_a_repeated_instruction_keeps_the_quota_and_only_training_again_renews_it(
    committee_node: MemberNode, scoring_member: Any, scoring_coordinator: Any
) -> None:
    """A coordinator cannot reset the quota for free; a round replayed after a crash (the member trains
    again, a new update, a spend recorded as replayed) gets a fresh quota for its new scalars."""
    chunks = _round_updates(committee_node, scoring_member)
    norms = build_scalar_requests(scoring_coordinator, chunks, None)
    assert not committee_node.answer_scalars(_query(norms)).has_error()
    # the same round's train instruction again, refused before any training: the quota stands
    refused = _train_reply(committee_node, cohort=1)
    assert refused.has_error()
    assert _refusal(committee_node.answer_scalars(_query(norms))) == "exchange 1 of round 1 was already answered"
    # the round trained again (a replay): a new update, a fresh quota
    chunks[committee_node.address] = _train(committee_node)
    again = build_scalar_requests(scoring_coordinator, chunks, None)
    assert not committee_node.answer_scalars(_query(again)).has_error()


def _shape(kind: str, *addresses: str) -> ScalarRequest:
    return ScalarRequest(kind, tuple(addresses), b"")


@pytest.mark.parametrize(
    ("requests", "exchange", "answered", "message"),
    [
        ([_shape("sq_norms", "a", "a")], 1, {}, "an address repeats in the sq_norms of the request"),
        ([_shape("sq_norms", "a")], 1, {}, "1 member in the request: at least 2 are needed"),
        (
            [_shape("sq_norms", "a", "b"), _shape("dots", "a", "c"), _shape("agg_sq_norm")],
            1,
            {},
            "exchange 1 holds squared norms, optionally with the dot products of the same members and one ||S||^2",
        ),
        ([_shape("dots", "a", "b")], 2, {}, "exchange 2 holds the dot products and one ||S||^2 only"),
        (
            [_shape("dots", "a", "b"), _shape("agg_sq_norm")],
            2,
            {1: {"sq_norms": ["a", "b"], "dots": ["a", "b"]}},
            "exchange 2 follows only an exchange 1 of squared norms alone (dot products are revealed once)",
        ),
        (
            [_shape("dots", "a", "d"), _shape("agg_sq_norm")],
            2,
            {1: {"sq_norms": ["a", "b", "c"], "dots": []}},
            "exchange 2 concerns members that exchange 1 did not",
        ),
        ([_shape("agg_sq_norm", "a")], 1, {}, "agg_sq_norm concerns the sum: it names no address"),
    ],
)
def test_requests_beyond_the_quota_are_refused(
    requests: list[ScalarRequest], exchange: int, answered: dict[int, Any], message: str
) -> None:
    with pytest.raises(CommitteeRequestError) as caught:
        check_request(CommitteeRequest(1, exchange, tuple(requests)), current_round=1, cohort=3, answered=answered)
    assert str(caught.value) == message


def test_a_members_own_smallest_cohort_is_kept() -> None:
    request = CommitteeRequest(1, 1, (_shape("sq_norms", "a", "b", "c"),))
    check_request(request, current_round=1, cohort=5, answered={}, min_cohort=3)
    with pytest.raises(CommitteeRequestError, match=r"^3 members in the request: at least 4 are needed$"):
        check_request(request, current_round=1, cohort=5, answered={}, min_cohort=4)


def _evaluate(node: MemberNode, chunks: dict[str, list[bytes]], revealed: RevealedScalars, coordinator: Any) -> Message:
    """The round's evaluate instruction: its aggregate and the revealed scalars with their commitment."""
    total = crypto.sum_encrypted(coordinator, list(chunks.values()), expected_chunks=2)
    aggregate = SealedAggregate(1, tuple(total), 3 * node.data.num_train, crypto.ciphertext_digest(total), members=3)
    ins = EvaluateIns(
        server_round=1,
        model_round=1,
        aggregates=(aggregate,),
        revealed_scalars=canonical_json(revealed.to_json()).decode(),
        scalars_commitment=revealed.commitment,
    )
    return Message(encode(ins), dst_node_id=1, message_type="evaluate")


def _exchange(node: MemberNode, requests: list[ScalarRequest], exchange: int) -> RevealedExchange:
    reply = node.answer_scalars(_query(requests, exchange=exchange))
    assert not reply.has_error(), reply.error.reason
    answer = decode_committee_answer(reply.content)
    rows = [tuple(row) for row in answer.split([request.count for request in requests])]
    signed = SignedAnswer(node.address, tuple(rows), answer.signature)
    return RevealedExchange(exchange, tuple(CommitteeRequest(1, exchange, tuple(requests)).labels()), (signed,))


def test_members_check_the_revealed_scalars_and_an_honest_round_passes(
    committee_node: MemberNode, scoring_member: Any, scoring_coordinator: Any
) -> None:
    chunks = _round_updates(committee_node, scoring_member)
    total = crypto.sum_encrypted(scoring_coordinator, list(chunks.values()), expected_chunks=2)
    first = _exchange(committee_node, build_scalar_requests(scoring_coordinator, chunks, None), 1)
    second = _exchange(committee_node, build_scalar_requests(scoring_coordinator, chunks, total, sq_norms=False), 2)
    revealed = RevealedScalars(1, (first, second))
    reply = committee_node.evaluate(_evaluate(committee_node, chunks, revealed, scoring_coordinator))
    assert not reply.has_error(), reply.error.reason
    assert decode_evaluate_res(reply.content).dispute is None


def test_a_cheating_coordinator_is_disputed_by_the_member_it_concerns(
    committee_node: MemberNode, scoring_member: Any, scoring_coordinator: Any
) -> None:
    """Within the quota the coordinator swaps in another functional: <a_0, a_1> as a_0's squared norm."""
    chunks = _round_updates(committee_node, scoring_member)
    me, other = committee_node.address, OTHERS[0]
    forged = [crypto.encrypted_dot(scoring_coordinator, chunks[me], chunks[other])] + [
        crypto.encrypted_dot(scoring_coordinator, chunks[a], chunks[a]) for a in OTHERS
    ]
    cheat = [ScalarRequest("sq_norms", (me, *OTHERS), crypto.pack_scalars(scoring_coordinator, forged))]
    revealed = RevealedScalars(1, (_exchange(committee_node, cheat, 1),))  # the member cannot tell: it answers
    reply = committee_node.evaluate(_evaluate(committee_node, chunks, revealed, scoring_coordinator))
    dispute = decode_evaluate_res(reply.content).dispute
    assert dispute is not None
    assert dispute.reason.startswith(f"exchange 1: sq_norms from {me} is ")
    assert dispute.scalars_commitment == revealed.commitment
    digest = dispute_digest(
        chain_id=0, ledger_address=NO_LEDGER, server_round=1, scalars_commitment=revealed.commitment
    )
    assert recover_signer(digest, dispute.signature) == me


def test_a_committee_member_disputes_a_round_that_hides_its_answer(
    committee_node: MemberNode, scoring_member: Any, scoring_coordinator: Any
) -> None:
    chunks = _round_updates(committee_node, scoring_member)
    _exchange(committee_node, build_scalar_requests(scoring_coordinator, chunks, None), 1)
    hidden = RevealedScalars(1, ())  # the coordinator shows members nothing of what it asked
    reply = committee_node.evaluate(_evaluate(committee_node, chunks, hidden, scoring_coordinator))
    dispute = decode_evaluate_res(reply.content).dispute
    assert dispute is not None
    assert dispute.reason == "this member's committee answer to exchange 1 was not revealed"
