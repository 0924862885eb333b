"""The message protocol between coordinator and members, as Flower records.

Every payload is a Flower ``RecordDict`` of ``ArrayRecord`` / ``ConfigRecord`` / ``MetricRecord``:
arrays travel as arrays (ciphertexts as uint8 arrays), never pickled.

Instruction (coordinator -> member):
    ``config``  ConfigRecord: ``server-round``, ``model-round`` (round of the model in ``model``),
                ``cohort`` (train: how many members were sampled; members refuse a cohort below
                their policy's smallest).
    ``model``   ArrayRecord: the global weights (plaintext mode), or the initial weights for a
                member that has no model yet (HE mode).
    ``agg.<k>`` ArrayRecord (HE mode): ciphertext chunks of round k's aggregate, with
                ``agg.<k>.weight``, ``agg.<k>.members`` (how many members it sums) and
                ``agg.<k>.digest`` in ``config`` and the list of rounds in ``agg-rounds``; members
                apply them in order and refuse one that sums fewer members than their policy allows.

Reply (member -> coordinator):
    ``metrics`` MetricRecord: ``num-examples``, ``train-loss``, ``model-round``, DP figures
                (``epsilon``, ``noise-multiplier``, ``sample-rate``, ``steps``, ``max-grad-norm``,
                ``delta``) when DP is on; ``loss`` and ``accuracy`` for evaluation.
    ``member``  ConfigRecord: ``member-id``, ``address``, ``kind``, ``model-hash`` (hash of the
                global model the member trained from or evaluated).
    ``arrays``  ArrayRecord (plaintext): the member's weights after local training.
    ``update``  ArrayRecord (HE): ciphertext chunks of ``n_i * delta_i``.

A member that declines (privacy budget spent) answers with a Flower ``Error`` whose code is
:data:`ERROR_BUDGET_EXHAUSTED`; one whose own privacy policy refuses the instruction, with
:data:`ERROR_POLICY_REFUSED`; a deployed member without its accountant state, with
:data:`ERROR_PRIVACY_STATE_MISSING`. :data:`TRAIN_ERROR_REASONS` says how the coordinator counts them.

Example:
    >>> record = weights_to_record({"w": __import__("numpy").zeros(2, "float32")})
    >>> list(record_to_weights(record))
    ['w']
"""

from __future__ import annotations

import numpy as np
from flwr.app import Array, ArrayRecord

from fedchain.errors import SerializationError
from fedchain.serialization import Weights

__all__ = [
    "ERROR_BUDGET_EXHAUSTED",
    "ERROR_COMMITTEE_REFUSED",
    "ERROR_INVALID_INSTRUCTION",
    "ERROR_POLICY_REFUSED",
    "ERROR_PRIVACY_STATE_MISSING",
    "TRAIN_ERROR_REASONS",
    "chunks_to_record",
    "record_to_chunks",
    "record_to_weights",
    "weights_to_record",
]

#: Flower ``Error.code`` of a member that declines a round because its privacy budget is spent.
ERROR_BUDGET_EXHAUSTED = 1001
#: Flower ``Error.code`` of a member that refused an instruction (bad hash, bad payload).
ERROR_INVALID_INSTRUCTION = 1002
#: Flower ``Error.code`` of a committee member that refused a scalar request: malformed, not of the
#: current round, or beyond the quota (``fedchain.contribution.committee.check_request``).
ERROR_COMMITTEE_REFUSED = 1003
#: Flower ``Error.code`` of a member whose own privacy policy refuses the instruction (HE or DP off,
#: DP parameters, budget or cohort outside its policy, testing hooks outside a simulation); the
#: reason names the field, the proposed value and what the member accepts (``fedchain.policy``).
ERROR_POLICY_REFUSED = 1004
#: Flower ``Error.code`` of a deployed member that has no privacy accountant state and was not told
#: it is new (``new-member = true``): it refuses to train rather than restart its epsilon at 0.
ERROR_PRIVACY_STATE_MISSING = 1005

#: How the coordinator counts a train reply's error code (any other code counts as ``"failed"``).
TRAIN_ERROR_REASONS = {
    ERROR_BUDGET_EXHAUSTED: "declined",
    ERROR_POLICY_REFUSED: "refused-policy",
    ERROR_PRIVACY_STATE_MISSING: "refused-no-privacy-state",
}


def weights_to_record(weights: Weights) -> ArrayRecord:
    """Named arrays -> ArrayRecord (order kept)."""
    return ArrayRecord({name: Array(np.ascontiguousarray(array)) for name, array in weights.items()})


def record_to_weights(record: ArrayRecord) -> Weights:
    """ArrayRecord -> named arrays. Raises SerializationError on undecodable content."""
    try:
        return {name: array.numpy() for name, array in record.items()}
    except Exception as exc:  # Flower raises plain exceptions on malformed arrays
        raise SerializationError(f"cannot decode arrays: {exc}") from exc


def chunks_to_record(chunks: list[bytes] | tuple[bytes, ...]) -> ArrayRecord:
    """Serialized ciphertext chunks -> ArrayRecord of uint8 arrays ``c0``, ``c1``, ..."""
    return ArrayRecord({f"c{i}": Array(np.frombuffer(chunk, dtype=np.uint8)) for i, chunk in enumerate(chunks)})


def record_to_chunks(record: ArrayRecord) -> list[bytes]:
    """Inverse of :func:`chunks_to_record`, validating names and dtypes."""
    chunks: list[bytes] = []
    for index, (name, array) in enumerate(record.items()):
        if name != f"c{index}":
            raise SerializationError(f"ciphertext chunk {index} is named {name!r}, expected 'c{index}'")
        values = array.numpy()
        if values.dtype != np.uint8 or values.ndim != 1:
            raise SerializationError(f"ciphertext chunk {name!r} must be a 1-D uint8 array, got {values.dtype}")
        chunks.append(values.tobytes())
    return chunks
