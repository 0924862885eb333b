"""A message's records as one Flower object on the wire: the envelope.

Flower 1.42 moves a message as a tree of objects (the message, its ``RecordDict``, each record,
and each array of an ``ArrayRecord`` as two more), and in a deployment every object is one HTTP
call to push and one to pull at each hop (ServerApp -> SuperLink -> SuperNode -> worker and
back). On fedchain's small messages those calls, not the bytes, are the cost: the SuperLink, one
Python process, spent most of a 10-member round answering them (docs/architecture.md, "Where the
rest of the time goes"). :func:`pack` serializes a message's records with Flower's own protobuf
serde (no pickle) into one ``ConfigRecord`` ``{"records": bytes}`` under :data:`ENVELOPE`, so
every message is three objects; :func:`unpack` restores them. Content larger than
:data:`ENVELOPE_MAX_BYTES` travels as Flower's records, which Flower splits into 5 MB pieces.

Both ends apply it: the coordinator's :class:`~fedchain.coordinator.Exchange` packs what it
pushes and unpacks what it pulls; the member's ClientApp does the same in its outermost mod
(:func:`clients.mods.envelope_mod`). Content without an envelope passes through unchanged, so an
app that does not pack still works. An envelope is parsed only after its size and shape are
checked; a malformed one raises :class:`~fedchain.errors.SerializationError`.

Example:
    >>> from flwr.app import ConfigRecord, MetricRecord, RecordDict
    >>> content = RecordDict({"config": ConfigRecord({"round": 2}), "metrics": MetricRecord({"loss": 0.5})})
    >>> packed = pack(content)
    >>> list(packed.keys())
    ['fedchain-envelope']
    >>> dict(unpack(packed)["config"])
    {'round': 2}
"""

from __future__ import annotations

from flwr.app import ArrayRecord, ConfigRecord, RecordDict

from fedchain.errors import SerializationError

__all__ = ["ENVELOPE", "ENVELOPE_MAX_BYTES", "pack", "unpack"]

#: The one record of a packed message.
ENVELOPE = "fedchain-envelope"
_RECORDS = "records"
#: Content up to this size (its records serialized) travels packed; larger content as Flower's records.
ENVELOPE_MAX_BYTES = 4 * 1024 * 1024


def pack(content: RecordDict) -> RecordDict:
    """``content`` as one envelope record, or unchanged when it is larger than :data:`ENVELOPE_MAX_BYTES`."""
    from flwr.common.serde import recorddict_to_proto

    if ENVELOPE in content or _payload_bytes(content) > ENVELOPE_MAX_BYTES:
        return content
    data = recorddict_to_proto(content).SerializeToString()
    if len(data) > ENVELOPE_MAX_BYTES:
        return content
    return RecordDict({ENVELOPE: ConfigRecord({_RECORDS: data})})


def unpack(content: RecordDict) -> RecordDict:
    """The records an envelope holds; content without an envelope unchanged.

    Raises:
        SerializationError: the envelope has other records or keys beside it, is larger than
            :data:`ENVELOPE_MAX_BYTES`, or does not parse as Flower records.
    """
    from flwr.common.serde import recorddict_from_proto
    from flwr.proto.recorddict_pb2 import RecordDict as RecordDictProto

    if ENVELOPE not in content:
        return content
    if len(content) != 1:
        raise SerializationError(f"a message with an {ENVELOPE!r} record has no other record, got {sorted(content)}")
    record = content[ENVELOPE]
    if not isinstance(record, ConfigRecord) or set(record.keys()) != {_RECORDS}:
        raise SerializationError(f"the {ENVELOPE!r} record must be a ConfigRecord holding only {_RECORDS!r}")
    data = record[_RECORDS]
    if not isinstance(data, bytes):
        raise SerializationError(f"the {ENVELOPE!r} record's {_RECORDS!r} must be bytes, got {type(data).__name__}")
    if len(data) > ENVELOPE_MAX_BYTES:
        raise SerializationError(f"an envelope of {len(data)} bytes is over the {ENVELOPE_MAX_BYTES}-byte limit")
    proto = RecordDictProto()
    try:
        proto.ParseFromString(data)
        records = recorddict_from_proto(proto)
    except Exception as exc:  # protobuf's DecodeError, or Flower refusing a malformed record
        raise SerializationError(f"the envelope does not hold Flower records: {type(exc).__name__}: {exc}") from exc
    if ENVELOPE in records:
        raise SerializationError("an envelope inside an envelope")
    return records


def _payload_bytes(content: RecordDict) -> int:
    """A lower bound of ``content``'s serialized size: its arrays' bytes (cheap; nothing is copied)."""
    arrays = (record.values() for record in content.values() if isinstance(record, ArrayRecord))
    return sum(len(array.data) for record in arrays for array in record)
