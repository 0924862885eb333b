"""Safe model and array serialization: safetensors on disk, Flower ArrayRecords on the wire.

Nothing here unpickles. A model's identity is the SHA-256 of its *canonical* safetensors bytes
(tensors in name order, no metadata), so the same weights always hash the same, and
:func:`load_model` checks a file against the hash recorded on chain before returning weights.

Example:
    >>> import numpy as np
    >>> weights = {"fc.weight": np.ones((2, 2), np.float32)}
    >>> h = model_hash(weights)
    >>> h == model_hash({"fc.weight": np.ones((2, 2), np.float32)}), h[:2]
    (True, '0x')
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from fedchain._io import atomic_write_bytes
from fedchain.errors import IntegrityError, SerializationError

__all__ = [
    "Weights",
    "check_weights",
    "flatten",
    "load_model",
    "model_bytes",
    "model_hash",
    "save_model",
    "sha256_hex",
    "unflatten",
]

#: Named float arrays, in a fixed order: the model's state.
Weights = dict[str, np.ndarray]

#: Refuse model files larger than this before reading them (1 GiB).
MAX_MODEL_BYTES = 1 << 30


def sha256_hex(data: bytes) -> str:
    """``"0x"`` + the SHA-256 of ``data`` in hex (the form recorded on chain as bytes32)."""
    return "0x" + hashlib.sha256(data).hexdigest()


def model_bytes(weights: Mapping[str, np.ndarray]) -> bytes:
    """Canonical safetensors bytes of ``weights``: tensors sorted by name, C-contiguous, no metadata."""
    from safetensors.numpy import save

    if not weights:
        raise SerializationError("a model needs at least one tensor")
    # reshape: np.ascontiguousarray makes a 0-d buffer (BatchNorm's num_batches_tracked) 1-d
    canonical = {name: np.ascontiguousarray(weights[name]).reshape(np.shape(weights[name])) for name in sorted(weights)}
    return save(canonical)


def model_hash(weights: Mapping[str, np.ndarray]) -> str:
    """The model's identity: SHA-256 of :func:`model_bytes`."""
    return sha256_hex(model_bytes(weights))


def save_model(path: str | Path, weights: Mapping[str, np.ndarray]) -> str:
    """Write ``weights`` as canonical safetensors, atomically; return the model hash."""
    data = model_bytes(weights)
    atomic_write_bytes(path, data)
    return sha256_hex(data)


def load_model(path: str | Path, *, expected_hash: str | None = None) -> Weights:
    """Read a safetensors model file, verifying it against ``expected_hash`` when given.

    Raises:
        SerializationError: the file is missing, too large or not valid safetensors.
        IntegrityError: the file's hash differs from ``expected_hash``.
    """
    from safetensors.numpy import load

    path = Path(path)
    if not path.is_file():
        raise SerializationError(f"model file {str(path)!r} does not exist")
    if path.stat().st_size > MAX_MODEL_BYTES:
        raise SerializationError(f"model file {str(path)!r} is larger than {MAX_MODEL_BYTES} bytes")
    data = path.read_bytes()
    if expected_hash is not None:
        actual = sha256_hex(data)
        if actual.lower() != expected_hash.lower():
            raise IntegrityError(f"model file {str(path)!r}", expected_hash, actual)
    try:
        weights = load(data)
    except Exception as exc:  # safetensors raises its own SafetensorError
        raise SerializationError(f"model file {str(path)!r} is not valid safetensors: {exc}") from exc
    return {name: weights[name] for name in sorted(weights)}


def check_weights(received: Mapping[str, np.ndarray], template: Mapping[str, np.ndarray]) -> Weights:
    """Validate arrays from the network against the model's template.

    Checks the names, shapes and dtypes match and every value is finite; returns the arrays in
    the template's order.

    Raises:
        SerializationError: naming the first mismatch.
    """
    if list(received) != list(template) and sorted(received) != sorted(template):
        raise SerializationError(f"expected arrays {sorted(template)}, got {sorted(received)}")
    checked: Weights = {}
    for name, expected in template.items():
        array = np.asarray(received[name])
        if array.shape != expected.shape:
            raise SerializationError(f"array {name!r} has shape {array.shape}, expected {expected.shape}")
        if array.dtype != expected.dtype:
            raise SerializationError(f"array {name!r} has dtype {array.dtype}, expected {expected.dtype}")
        if not np.all(np.isfinite(array)):
            raise SerializationError(f"array {name!r} holds NaN or infinite values")
        checked[name] = array
    return checked


def flatten(weights: Mapping[str, np.ndarray]) -> np.ndarray:
    """Concatenate arrays (in their order) into one float64 vector."""
    return np.concatenate([np.asarray(array, dtype=np.float64).ravel() for array in weights.values()])


def unflatten(vector: np.ndarray, template: Mapping[str, np.ndarray]) -> Weights:
    """Inverse of :func:`flatten`: cut ``vector`` into arrays shaped and typed like ``template``."""
    size = sum(array.size for array in template.values())
    if vector.shape != (size,):
        raise SerializationError(f"flat vector has shape {vector.shape}, expected ({size},)")
    out: Weights = {}
    offset = 0
    for name, array in template.items():
        out[name] = vector[offset : offset + array.size].reshape(array.shape).astype(array.dtype)
        offset += array.size
    return out
