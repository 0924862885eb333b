"""The envelope: a message's records in one Flower object, both ways, and a malformed one refused without harm."""

from __future__ import annotations

import threading
import time
from uuid import uuid4

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MessageType, RecordDict

from fedchain.coordinator import Exchange
from fedchain.envelope import ENVELOPE, ENVELOPE_MAX_BYTES, pack, unpack
from fedchain.errors import SerializationError
from fedchain.protocol import MemberIdentity, TrainIns, TrainRes, decode_train_ins, decode_train_res, encode
from tests.test_coordinator_deadline import _grid

MEMBER = MemberIdentity(member_id=1, address="0x" + "12" * 20, kind="member", model_hash="ab" * 32, model_round=1)


def test_a_train_reply_crosses_as_one_record_and_decodes_unchanged() -> None:
    reply = TrainRes(member=MEMBER, num_examples=7, update=(b"\x01" * 1000, b"\x02" * 10))
    packed = pack(encode(reply))
    assert list(packed.keys()) == [ENVELOPE] and isinstance(packed[ENVELOPE], ConfigRecord)
    assert decode_train_res(unpack(packed)) == decode_train_res(encode(reply))


def test_a_model_record_keeps_names_shapes_and_dtypes() -> None:
    model = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.float32(0.5) * np.ones((), np.float32)}
    back = decode_train_ins(unpack(pack(encode(TrainIns(2, 1, model=model)))))
    assert back.model is not None
    assert {name: (array.shape, array.dtype) for name, array in back.model.items()} == {
        "w": ((2, 3), np.float32),
        "b": ((), np.float32),
    }
    np.testing.assert_array_equal(back.model["w"], model["w"])


def test_content_over_the_limit_travels_as_flowers_records() -> None:
    big = RecordDict({"model": ArrayRecord({"w": Array(np.zeros(ENVELOPE_MAX_BYTES // 4 + 1, np.float32))})})
    assert pack(big) is big
    plain = RecordDict({"config": ConfigRecord({"a": 1})})
    assert unpack(plain) is plain  # no envelope: as it came


def _wrapped(content: RecordDict) -> RecordDict:
    """``content`` in an envelope, whatever it holds (``pack`` leaves an envelope as it is)."""
    from flwr.common.serde import recorddict_to_proto

    return RecordDict({ENVELOPE: ConfigRecord({"records": recorddict_to_proto(content).SerializeToString()})})


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (RecordDict({ENVELOPE: ConfigRecord({"records": b""}), "x": ConfigRecord({})}), "has no other record"),
        (RecordDict({ENVELOPE: ConfigRecord({"records": b"", "more": 1})}), "holding only 'records'"),
        (RecordDict({ENVELOPE: ConfigRecord({"records": "text"})}), "must be bytes"),
        (RecordDict({ENVELOPE: ConfigRecord({"records": b"\xff" * 64})}), "does not hold Flower records"),
        (RecordDict({ENVELOPE: ConfigRecord({"records": bytes(ENVELOPE_MAX_BYTES + 1)})}), "over the"),
        (_wrapped(RecordDict({ENVELOPE: ConfigRecord({"records": b""})})), "inside an envelope"),
    ],
)
def test_a_malformed_envelope_is_refused_by_what_is_wrong(content: RecordDict, message: str) -> None:
    with pytest.raises(SerializationError, match=message):
        unpack(content)


@pytest.mark.usefixtures("flower_task_identity")
def test_the_coordinator_packs_what_it_sends_and_survives_a_member_s_malformed_envelope() -> None:
    grid, nodes = _grid(2)
    seen: dict[int, RecordDict] = {}
    replies = {
        nodes[0]: pack(RecordDict({"metrics": ConfigRecord({"ok": 1})})),
        nodes[1]: RecordDict({ENVELOPE: ConfigRecord({"records": b"\xff" * 64})}),  # what a malicious member sends
    }

    def member(node_id: int) -> None:
        deadline = time.monotonic() + 5.0
        while not (instructions := grid.state.get_message_ins(node_id=node_id, limit=1)):
            assert time.monotonic() < deadline, "the instruction was never pushed"
            time.sleep(0.01)
        (instruction,) = instructions
        seen[node_id] = instruction.content
        reply = Message(replies[node_id], reply_to=instruction)
        reply.metadata.__dict__["_message_id"] = str(uuid4())
        grid.state.store_message_res(reply)

    threads = [threading.Thread(target=member, args=(node,)) for node in nodes]
    for thread in threads:
        thread.start()
    messages = [
        Message(RecordDict({"config": ConfigRecord({"round": 3})}), dst_node_id=n, message_type=MessageType.TRAIN)
        for n in nodes
    ]
    got = {reply.metadata.src_node_id: reply.content for reply in Exchange(grid, messages, timeout_s=5.0)}
    for thread in threads:
        thread.join()
    assert all(list(content.keys()) == [ENVELOPE] for content in seen.values())  # one object per instruction
    assert dict(unpack(seen[nodes[0]])["config"]) == {"round": 3}
    assert dict(got[nodes[0]]["metrics"]) == {"ok": 1}  # opened for the decoders
    assert len(got[nodes[1]]) == 0  # no records: decoding refuses it as malformed, the exchange goes on


def test_a_member_answers_a_malformed_envelope_with_an_error_and_does_no_work() -> None:
    """A malicious coordinator's malformed envelope reaches no mod inside: nothing trains, nothing is spent."""
    from flwr.app import Context

    from clients.mods import envelope_mod
    from fedchain.protocol import ERROR_INVALID_INSTRUCTION

    called: list[Message] = []

    def inner(msg: Message, context: Context) -> Message:
        called.append(msg)
        return Message(RecordDict(), reply_to=msg)

    instruction = Message(
        RecordDict({ENVELOPE: ConfigRecord({"records": b"\xff" * 64})}), dst_node_id=1, message_type=MessageType.TRAIN
    )
    instruction.metadata.__dict__["_message_id"] = str(uuid4())
    reply = envelope_mod(
        instruction, Context(run_id=1, node_id=1, node_config={}, state=RecordDict(), run_config={}), inner
    )

    assert called == []
    assert reply.has_error() and reply.error.code == ERROR_INVALID_INSTRUCTION
    assert "does not hold Flower records" in reply.error.reason
