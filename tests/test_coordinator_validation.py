"""The coordinator's validation stage on real Flower messages: every bad reply is rejected by reason."""

from __future__ import annotations

import numpy as np
import pytest
from flwr.app import Error, Message, RecordDict

from fedchain.config import FedChainConfig
from fedchain.coordinator import Coordinator
from fedchain.identity import address_of, simulated_member_key
from fedchain.identity.signing import SigningDomain, sign_digest, update_digest
from fedchain.pipeline import validate
from fedchain.protocol import (
    ERROR_BUDGET_EXHAUSTED,
    ERROR_POLICY_REFUSED,
    ERROR_PRIVACY_STATE_MISSING,
    MemberIdentity,
    TrainRes,
    encode,
)
from fedchain.serialization import model_hash
from strategies.registry import create_strategy

TEMPLATE = {"w": np.zeros((2, 3), np.float32), "b": np.zeros(3, np.float32)}
LEDGER = "0x" + "22" * 20
DOMAIN = SigningDomain(chain_id=1337, ledger_address=LEDGER, run_id=7)


pytestmark = pytest.mark.usefixtures("flower_task_identity")


def _key(member_id: int) -> bytes:
    return simulated_member_key(seed=0, member_id=member_id)


@pytest.fixture
def coordinator() -> Coordinator:
    config = FedChainConfig(members=3, he=False, dp=False, chain="none")
    registered = frozenset(address_of(_key(i)) for i in range(3))
    return Coordinator(
        config=config,
        strategy=create_strategy(config),
        initial_weights=TEMPLATE,
        registered=registered,
        ledger_address=LEDGER,
        chain_id=1337,
        run_id=7,
    )


def _reply(
    member_id: int,
    *,
    weights=None,
    n: int = 10,
    server_round: int = 1,
    sign_round: int | None = None,
    sign_key: bytes | None = None,
    signed_weights=None,
    signature: str | None = "auto",
    claimed_address: str | None = None,
    domain: SigningDomain = DOMAIN,
    claimed_id: int | None = None,
) -> Message:
    weights = {k: v + member_id for k, v in TEMPLATE.items()} if weights is None else weights
    address = claimed_address or address_of(_key(member_id))
    digest = update_digest(
        domain=domain,
        server_round=server_round if sign_round is None else sign_round,
        address=address,
        payload_hash=model_hash(signed_weights if signed_weights is not None else weights),
        num_examples=n,
        dp=None,
    )
    if signature == "auto":
        signature = sign_digest(sign_key or _key(member_id), digest)
    identity = MemberIdentity(
        member_id=member_id if claimed_id is None else claimed_id,
        address=address,
        kind="honest",
        model_round=server_round - 1,
        signature=signature,
    )
    content = encode(TrainRes(member=identity, num_examples=n, train_loss=0.1, arrays=weights))
    return Message(content, dst_node_id=100 + member_id, message_type="train")


def _validate(coordinator: Coordinator, replies: list[Message]) -> tuple[list[int], dict[str, int]]:
    decoded = [coordinator.decode_train_reply(1, reply) for reply in replies]
    accepted, rejections = validate(
        decoded, server_round=1, model=coordinator.weights, domain=coordinator.domain, registered=coordinator.registered
    )
    return [u.member.member_id for u in accepted], rejections


def test_honest_signed_updates_are_accepted(coordinator):
    ids, rejections = _validate(coordinator, [_reply(0), _reply(1), _reply(2)])
    assert ids == [0, 1, 2] and rejections == {}


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (dict(signature=None), "unsigned"),
        (dict(signature="0x1234"), "bad-signature"),
        (dict(sign_key=simulated_member_key(seed=0, member_id=2)), "bad-signature"),  # signed by someone else
        (dict(sign_round=0), "bad-signature"),  # replay of a signature from another round
        (dict(signed_weights={k: v * 0 for k, v in TEMPLATE.items()}), "bad-signature"),  # payload swapped
        # replays of a signed update from another run, ledger or chain (domain separation)
        (dict(domain=SigningDomain(chain_id=1337, ledger_address=LEDGER, run_id=8)), "bad-signature"),
        (dict(domain=SigningDomain(chain_id=1337, ledger_address="0x" + "33" * 20, run_id=7)), "bad-signature"),
        (dict(domain=SigningDomain(chain_id=1, ledger_address=LEDGER, run_id=7)), "bad-signature"),
        (dict(claimed_address=address_of(simulated_member_key(seed=9, member_id=9))), "unregistered"),
        (dict(n=0), "invalid"),
        (dict(n=10**12), "invalid"),
        (dict(weights={"w": np.full((2, 3), np.nan, np.float32), "b": TEMPLATE["b"]}), "invalid"),
        (dict(weights={"w": np.zeros((3, 2), np.float32), "b": TEMPLATE["b"]}), "invalid"),
        (dict(weights={"w": np.zeros((2, 3), np.float64), "b": TEMPLATE["b"]}), "invalid"),
        (dict(server_round=2), "invalid"),  # trained on a stale model
    ],
)
def test_bad_updates_are_rejected_by_reason_and_the_rest_kept(coordinator, bad, reason):
    ids, rejections = _validate(coordinator, [_reply(0), _reply(1, **bad), _reply(2)])
    assert ids == [0, 2]
    assert rejections == {reason: 1}


def test_duplicate_and_failed_replies_are_counted(coordinator):
    declined = Message(Error(code=ERROR_BUDGET_EXHAUSTED, reason="budget"), reply_to=_reply(2))
    crashed = Message(Error(code=2, reason="boom"), reply_to=_reply(2))
    ids, rejections = _validate(coordinator, [_reply(0), _reply(0), declined, crashed])
    assert ids == [0]
    assert rejections == {"duplicate": 1, "declined": 1, "failed": 1}


def test_refusals_by_a_members_own_policy_are_counted_under_their_own_reason(coordinator):
    refused = Message(Error(code=ERROR_POLICY_REFUSED, reason="policy refused: he = False"), reply_to=_reply(1))
    no_state = Message(Error(code=ERROR_PRIVACY_STATE_MISSING, reason="no privacy state"), reply_to=_reply(2))
    ids, rejections = _validate(coordinator, [_reply(0), refused, no_state])
    assert ids == [0]
    assert rejections == {"refused-policy": 1, "refused-no-privacy-state": 1}


def test_a_repeated_address_under_another_member_id_is_a_duplicate(coordinator):
    # The same member (same key, same address) answering as two member ids: counted once; a
    # repeated address would make recordRound revert (DuplicateMember) and abort the run.
    ids, rejections = _validate(coordinator, [_reply(0), _reply(0, claimed_id=5)])
    assert ids == [0]
    assert rejections == {"duplicate": 1}


def test_missing_records_do_not_crash(coordinator):
    empty = Message(RecordDict({}), dst_node_id=5, message_type="train")
    ids, rejections = _validate(coordinator, [empty, _reply(1)])
    assert ids == [1] and rejections == {"invalid": 1}
