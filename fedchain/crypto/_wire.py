"""Cheap structural checks on TenSEAL bytes, run before the bytes reach TenSEAL.

TenSEAL 0.3.18 serializes with protobuf around SEAL objects. A ``CKKSVector`` is::

    field 1 (bytes)   packed varint: the vector's logical size
    field 2 (bytes)   one SEAL ciphertext
    field 3 (fixed64) the scale, a little-endian double

and a ``Context`` is field 1 (SEAL encryption parameters), field 2 (public part: public key, flags,
scale, relinearization and Galois keys), only when the secret key was saved field 3 (private part),
and field 4 (varint), the encryption type, when it is not the default 0 (public key): 1 is symmetric.
Every SEAL object starts with a 16-byte header: magic ``0xA15E``, header size ``0x10``, version
``4.x``, compression mode (0 none, 1 zlib, 2 zstd), two reserved zero bytes and the object's total
size in bytes as a little-endian uint64.

TenSEAL itself raised clean exceptions on every truncated, bit-flipped and random input we tried,
but it *accepts* bytes it should not: the empty string and most short strings parse as a vector of size
0 with no ciphertext (protobuf skips unknown fields). These checks refuse such inputs, bound every
length by the buffer, and catch truncation before SEAL starts decompressing.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

from fedchain.errors import SerializationError

__all__ = ["VectorFrame", "check_context_frame", "check_seal_object", "parse_vector_frame", "vector_frame"]

_SEAL_MAGIC = 0xA15E
_SEAL_HEADER = struct.Struct("<HBBBBHQ")
_WIRE_VARINT, _WIRE_FIXED64, _WIRE_BYTES, _WIRE_FIXED32 = 0, 1, 2, 5
_ENCRYPTION_TYPE_FIELD = 4  # TenSEALContextProto.encryption_type: 0 public key, 1 symmetric


@dataclass(frozen=True)
class VectorFrame:
    """The fields of a serialized ``CKKSVector``, checked for shape only."""

    size: int
    ciphertext: bytes
    scale: float


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = 0
    for shift in range(0, 64, 7):
        if pos >= len(data):
            raise SerializationError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
    raise SerializationError("varint longer than 10 bytes")


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def vector_frame(size: int, ciphertext: bytes, scale: float) -> bytes:
    """Serialize a ``CKKSVector`` as TenSEAL does, around SEAL ciphertext bytes.

    The inverse of :func:`parse_vector_frame`; the ciphertext may be seeded (see :mod:`._seeded`).

    Example:
        >>> header = bytes.fromhex("5ea1100403020000") + (16).to_bytes(8, "little")  # an empty SEAL object
        >>> frame = parse_vector_frame(vector_frame(4096, header, 2.0**30))
        >>> frame.size, frame.ciphertext == header, frame.scale
        (4096, True, 1073741824.0)
    """
    packed_size = _encode_varint(size)
    return b"".join(
        (
            bytes([1 << 3 | _WIRE_BYTES]),
            _encode_varint(len(packed_size)),
            packed_size,
            bytes([2 << 3 | _WIRE_BYTES]),
            _encode_varint(len(ciphertext)),
            bytes(ciphertext),
            bytes([3 << 3 | _WIRE_FIXED64]),
            struct.pack("<d", scale),
        )
    )


def _fields(data: bytes) -> list[tuple[int, int, bytes | int]]:
    """Split one protobuf message into (field, wire type, value); every length is bounds-checked."""
    out: list[tuple[int, int, bytes | int]] = []
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        field, wire = key >> 3, key & 7
        if field == 0:
            raise SerializationError("protobuf field number 0")
        if wire == _WIRE_VARINT:
            value, pos = _varint(data, pos)
            out.append((field, wire, value))
        elif wire in (_WIRE_FIXED64, _WIRE_FIXED32):
            width = 8 if wire == _WIRE_FIXED64 else 4
            if pos + width > len(data):
                raise SerializationError(f"truncated fixed{width * 8} field {field}")
            out.append((field, wire, data[pos : pos + width]))
            pos += width
        elif wire == _WIRE_BYTES:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise SerializationError(f"field {field} declares {length} bytes but only {len(data) - pos} remain")
            out.append((field, wire, data[pos : pos + length]))
            pos += length
        else:
            raise SerializationError(f"unsupported protobuf wire type {wire} in field {field}")
    return out


def check_seal_object(blob: bytes, what: str) -> None:
    """Check a SEAL header and that the declared size is exactly the bytes present.

    Raises:
        SerializationError: on a bad magic, version, compression mode or size.
    """
    if len(blob) < _SEAL_HEADER.size:
        raise SerializationError(f"{what}: {len(blob)} bytes, shorter than a SEAL header")
    magic, header_size, major, _minor, compression, reserved, size = _SEAL_HEADER.unpack_from(blob)
    if magic != _SEAL_MAGIC or header_size != _SEAL_HEADER.size or reserved != 0:
        raise SerializationError(f"{what}: not a SEAL object (bad header)")
    if major != 4:
        raise SerializationError(f"{what}: SEAL format version {major}.x, expected 4.x")
    if compression not in (0, 1, 2):
        raise SerializationError(f"{what}: unknown SEAL compression mode {compression}")
    if size != len(blob):
        raise SerializationError(f"{what}: SEAL header declares {size} bytes, {len(blob)} present")


def parse_vector_frame(data: bytes) -> VectorFrame:
    """Check the shape of a serialized ``CKKSVector`` and return its fields.

    Raises:
        SerializationError: when the bytes are not exactly one size, one ciphertext and one scale.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise SerializationError(f"ciphertext must be bytes, got {type(data).__name__}")
    data = bytes(data)
    if not data:
        raise SerializationError("ciphertext is empty")
    fields = _fields(data)
    numbers = sorted(f for f, _, _ in fields)
    if numbers != [1, 2, 3]:
        raise SerializationError(f"not a CKKS vector: protobuf fields {numbers}, expected [1, 2, 3]")
    by_number = {f: (w, v) for f, w, v in fields}
    wire, value = by_number[1]
    if wire == _WIRE_BYTES and isinstance(value, bytes):
        size, end = _varint(value, 0)
        if end != len(value):
            raise SerializationError("not a CKKS vector: more than one size value")
    elif wire == _WIRE_VARINT and isinstance(value, int):
        size = value
    else:
        raise SerializationError("not a CKKS vector: bad size field")
    wire, ciphertext = by_number[2]
    if wire != _WIRE_BYTES or not isinstance(ciphertext, bytes):
        raise SerializationError("not a CKKS vector: bad ciphertext field")
    check_seal_object(ciphertext, "ciphertext")
    wire, raw_scale = by_number[3]
    if wire != _WIRE_FIXED64 or not isinstance(raw_scale, bytes):
        raise SerializationError("not a CKKS vector: bad scale field")
    (scale,) = struct.unpack("<d", raw_scale)
    if not math.isfinite(scale) or scale <= 0:
        raise SerializationError(f"not a CKKS vector: scale {scale!r}")
    return VectorFrame(size=size, ciphertext=ciphertext, scale=scale)


def check_context_frame(data: bytes) -> bool:
    """Check the shape of a serialized TenSEAL context; return whether it holds a secret key.

    Raises:
        SerializationError: when the bytes are not a TenSEAL context.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise SerializationError(f"context must be bytes, got {type(data).__name__}")
    data = bytes(data)
    if not data:
        raise SerializationError("context is empty")
    fields = _fields(data)
    numbers = sorted(f for f, _, _ in fields)
    if numbers not in ([1, 2], [1, 2, 3], [1, 2, 4], [1, 2, 3, 4]):
        raise SerializationError(f"not a TenSEAL context: protobuf fields {numbers}, expected [1, 2(, 3)(, 4)]")
    for field, wire, value in fields:
        if field == _ENCRYPTION_TYPE_FIELD:
            if wire != _WIRE_VARINT or value not in (0, 1):
                raise SerializationError(f"not a TenSEAL context: encryption type {value!r}, expected 0 or 1")
        elif wire != _WIRE_BYTES or not isinstance(value, bytes):
            raise SerializationError(f"not a TenSEAL context: field {field} is not a message")
    params = next(v for f, _, v in fields if f == 1)
    assert isinstance(params, bytes)
    check_seal_object(params, "context encryption parameters")
    return 3 in numbers
