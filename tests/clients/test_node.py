"""The member node on real Flower messages: what it accepts, what it refuses, and its durable state."""

from __future__ import annotations

import numpy as np
import pytest
from flwr.app import Context, Message, RecordDict
from torch import nn

from clients.node import MemberNode
from fedchain.config import FedChainConfig
from fedchain.protocol import ERROR_INVALID_INSTRUCTION, ERROR_POLICY_REFUSED, TrainIns, decode_train_res, encode
from fedchain.serialization import model_hash
from tests.tasks.guide_task import DigitsCNN

pytestmark = pytest.mark.usefixtures("flower_task_identity", "simulated_member")


_run_ids = iter(range(1000, 10**6))


def _node(tmp_path, **options) -> MemberNode:
    options = {"members": 2, "he": False, "chain": "none", "out_dir": str(tmp_path), **options}
    config = FedChainConfig(**options)
    context = Context(
        run_id=next(_run_ids),
        node_id=1,
        node_config={"partition-id": 0, "num-partitions": 2, "state-dir": str(tmp_path / "member")},
        state=RecordDict(),
        run_config=dict(config.to_run_config()),
    )
    return MemberNode.from_context(context)


def _train_message(node: MemberNode, server_round: int, weights=None, ledger_address: str = "") -> Message:
    weights = node.template() if weights is None else weights
    ins = TrainIns(server_round, server_round - 1, cohort=2, ledger_address=ledger_address, model=weights)
    return Message(encode(ins), dst_node_id=1, message_type="train")


def test_dp_member_reports_growing_cumulative_epsilon(tmp_path):
    node = _node(tmp_path, dp=True, rounds=3)
    epsilons = []
    for server_round in (1, 2, 3):
        reply = node.train(_train_message(node, server_round))
        assert not reply.has_error(), reply.error.reason if reply.has_error() else ""
        epsilons.append(decode_train_res(reply.content).dp.epsilon)
    assert epsilons == sorted(epsilons) and epsilons[-1] <= 8.0


def test_corrupted_privacy_state_is_refused_and_never_reset(tmp_path):
    node = _node(tmp_path, dp=True, rounds=3)
    assert not node.train(_train_message(node, 1)).has_error()
    state = tmp_path / "member" / "privacy.json"
    state.write_text(state.read_text()[:-20])  # a torn write / disk corruption
    damaged = state.read_text()
    reply = node.train(_train_message(node, 2))
    assert reply.has_error() and reply.error.code == ERROR_INVALID_INSTRUCTION
    assert "privacy" in reply.error.reason.lower() and str(state) in reply.error.reason
    assert state.read_text() == damaged  # not replaced by a fresh (zero-epsilon) ledger


def test_wrong_shaped_model_is_refused_with_a_reason(tmp_path):
    node = _node(tmp_path, dp=False)
    bad = {name: np.zeros((1, *array.shape), array.dtype) for name, array in node.template().items()}
    reply = node.train(_train_message(node, 1, weights=bad))
    assert reply.has_error() and "shape" in reply.error.reason


@pytest.mark.integration
def test_model_that_differs_from_the_chain_record_is_refused(tmp_path):
    from fedchain.ledger import Web3Ledger, connect
    from fedchain.types import ZERO_HASH, MemberRoundRecord, RoundRecord
    from tests.anvil import ANVIL_KEY_0, running_anvil

    with running_anvil() as url:
        node = _node(tmp_path, dp=False, chain=url)
        ledger = Web3Ledger.deploy(connect(url, private_key=ANVIL_KEY_0), timeout_s=30)
        ledger.register_members([node.address])
        honest = node.template()
        ledger.record_round(
            RoundRecord(1, ZERO_HASH, model_hash(honest), ZERO_HASH, (MemberRoundRecord(node.address, 1.0),), 10)
        )
        tampered = {name: array + 0.001 for name, array in honest.items()}
        refused = node.train(_train_message(node, 2, weights=tampered, ledger_address=ledger.address))
        assert refused.has_error()
        assert f"does not match the recorded {model_hash(honest)}" in refused.error.reason
        accepted = node.train(_train_message(node, 2, weights=honest, ledger_address=ledger.address))
        assert not accepted.has_error(), accepted.error.reason if accepted.has_error() else ""


def test_a_member_app_without_its_seal_mod_sends_nothing_the_coordinator_accepts(tmp_path):
    """The seal mod attaches the payload: an app that leaves it out sends no weights and no ciphertext."""
    from flwr.clientapp import ClientApp

    from clients.mods import member_mod, privacy_mod, refusal_mod
    from clients.training import train_app
    from fedchain.errors import SerializationError

    node = _node(tmp_path, dp=False)
    unsealed = ClientApp(mods=[member_mod])
    unsealed.train(mods=[refusal_mod, privacy_mod])(train_app)
    reply = unsealed(_train_message(node, 1), node.flower_context())
    assert not reply.has_error() and not reply.content.array_records
    with pytest.raises(SerializationError, match="must carry exactly one payload"):
        decode_train_res(reply.content)
    sealed = decode_train_res(node.train(_train_message(node, 1)).content)
    assert sealed.arrays is not None and sealed.member.signature


class BatchNormCNN(DigitsCNN):
    """The guide's CNN with a BatchNorm (no running statistics, so its weights cross the wire)."""

    def make_model(self) -> nn.Module:
        return nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1),
            nn.BatchNorm2d(4, track_running_stats=False),
            nn.Flatten(),
            nn.Linear(256, 10),
        )


def test_a_model_dp_cannot_train_is_refused_by_layer_before_any_budget_is_spent(tmp_path):
    node = _node(tmp_path, dp=True, rounds=3, task="tests.clients.test_node:BatchNormCNN")
    reply = node.train(_train_message(node, 1))
    assert reply.has_error() and reply.error.code == ERROR_POLICY_REFUSED
    assert "(BatchNorm2d)" in reply.error.reason and "GroupNorm" in reply.error.reason
    state = tmp_path / "member" / "privacy.json"
    assert not state.exists() or '"history":[]' in state.read_text()  # nothing spent
