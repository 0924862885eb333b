"""Values handed from one stage of the round to the next.

Each stage of the pipeline (DESIGN.md section 1) consumes and produces one of these frozen
dataclasses. They hold plain Python and NumPy values only, so every stage can be tested alone.

Example:
    >>> from fedchain.types import DPParams
    >>> DPParams(noise_multiplier=1.1, sample_rate=0.02, steps=150, max_grad_norm=1.0, delta=1e-5).steps
    150
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fedchain.errors import SerializationError

__all__ = [
    "MEMBER_STATUSES",
    "ZERO_HASH",
    "Aggregate",
    "DPParams",
    "Dispute",
    "LocalDataset",
    "MemberRound",
    "MemberRoundRecord",
    "Receipt",
    "RoundRecord",
    "ScalarRequest",
    "record_from_json",
    "record_to_json",
]

#: 32 zero bytes as hex: the "previous model hash" of round 1 and the hash of nothing.
ZERO_HASH = "0x" + "00" * 32

#: What became of a member-round whose member trained (and so spent privacy), in on-chain code
#: order: only ``"accepted"`` can earn; the others are recorded with their DP parameters so that
#: an auditor's epsilon recomputation includes every spend. ``"rejected"``: the update was refused
#: (norm bound, bad ciphertext, ...); ``"late"``: the reply came after the round's deadline;
#: ``"skipped"``: the round had too few usable updates; ``"replayed"``: the member trained in a
#: round lost to a coordinator crash that was run again after ``--resume``.
MEMBER_STATUSES = ("accepted", "rejected", "late", "skipped", "replayed")


@dataclass(frozen=True)
class LocalDataset:
    """A member's private data, split into a training and a held-out test part.

    Attributes:
        x_train: float32 features, shape (n_train, n_features) or (n_train, *input_shape) (images).
        y_train: int64 labels, shape (n_train,).
        x_test: float32 features of the member's evaluation split.
        y_test: int64 labels of the member's evaluation split.
        num_classes: number of label values the model must predict.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int

    @property
    def num_features(self) -> int:
        """Number of input features per example (all of an image's pixels: ``prod(input_shape)``)."""
        return int(np.prod(self.x_train.shape[1:], dtype=np.int64))

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one example: ``(n_features,)`` for rows, ``(1, 28, 28)`` for MNIST images."""
        return tuple(int(d) for d in self.x_train.shape[1:])

    @property
    def num_train(self) -> int:
        """Number of training examples (the member's weight ``n_i``)."""
        return int(self.x_train.shape[0])


@dataclass(frozen=True)
class DPParams:
    """The DP-SGD parameters of one member-round, enough to recompute epsilon.

    Attributes:
        noise_multiplier: Gaussian noise std divided by the clipping norm.
        sample_rate: Poisson sampling probability of each example per step.
        steps: optimizer steps taken in the round.
        max_grad_norm: per-sample gradient clipping norm.
        delta: the member's target delta.
    """

    noise_multiplier: float
    sample_rate: float
    steps: int
    max_grad_norm: float
    delta: float


@dataclass(frozen=True)
class MemberRound:
    """What the coordinator knows of one member in one round (one row of ``result.json``).

    Attributes:
        member_id: the member's stable id (its partition id in simulation, node name in deployment).
        address: the member's chain address (checksummed hex).
        kind: ``"honest"`` or the adversary kind used in simulation.
        num_examples: the example count the member reported.
        status: ``"accepted"``, ``"declined"`` (budget) or ``"rejected:<reason>"``.
        score: the member's contribution score for the round (non-negative).
        reward_wei: tokens paid, in wei; None until recorded on chain.
        epsilon: the member's cumulative epsilon after the round; None without DP.
        dp: the DP parameters of the round; None without DP.
        train_loss: mean training loss the member reported.
        update_digest: the signed digest of the member's update (see ``fedchain.identity.signing``).
        noise: where the member's DP sampling and noise came from: ``"secure"`` (a CSPRNG) or
            ``"seeded"`` (a fixed noise seed a simulation asked for: replayable, testing only);
            None without DP.
    """

    member_id: int
    address: str
    kind: str
    num_examples: int
    status: str
    score: float = 0.0
    reward_wei: int | None = None
    epsilon: float | None = None
    dp: DPParams | None = None
    train_loss: float | None = None
    update_digest: str | None = None
    noise: str | None = None


@dataclass(frozen=True)
class Aggregate:
    """The weighted sum of one round's accepted updates.

    Exactly one of ``plain`` and ``ciphertext`` is set.

    Attributes:
        total_weight: sum of the accepted members' example counts.
        plain: the weighted sum ``sum_i n_i * delta_i`` as flat float64 (plaintext mode).
        ciphertext: serialized CKKS chunks of the same sum (HE mode).
        digest: hex sha256 of the aggregate as sent to members.
        members: how many members' updates it sums (announced to members under HE, who refuse
            to decrypt an aggregate of fewer than their policy's smallest cohort).
    """

    total_weight: int
    digest: str
    plain: np.ndarray | None = None
    ciphertext: tuple[bytes, ...] | None = None
    members: int = 0


@dataclass(frozen=True)
class MemberRoundRecord:
    """One member's entry in a round record on chain.

    Attributes:
        address: checksummed chain address (must be registered).
        score: non-negative contribution score.
        dp: the member's DP parameters for the round, or None when DP is off.
        epsilon: the member's reported cumulative epsilon, or None when DP is off.
        status: one of :data:`MEMBER_STATUSES`; a member-round that is not ``"accepted"`` must
            have score 0 (the contract refuses to pay it).
    """

    address: str
    score: float
    dp: DPParams | None = None
    epsilon: float | None = None
    status: str = "accepted"


@dataclass(frozen=True)
class RoundRecord:
    """Everything recorded on chain for one round.

    Attributes:
        server_round: round number, exactly one more than the last recorded round.
        aggregate_hash: hex sha256 of the aggregate the coordinator sent.
        model_hash: hex sha256 of the canonical safetensors bytes of the round's global model.
        previous_model_hash: ``model_hash`` of the previous round (``ZERO_HASH`` for round 1).
        members: per-member scores and privacy records, in a fixed order.
        update_merkle_root: Merkle root of the accepted signed update digests (``ZERO_HASH``
            when updates are not signed).
        reward_pool_wei: tokens to split among the members this round.
        scalars_commitment: keccak256 commitment to the scalars the decrypt committee revealed
            this round (``ZERO_HASH`` when none were; see ``fedchain.contribution.committee``).
    """

    server_round: int
    aggregate_hash: str
    model_hash: str
    previous_model_hash: str
    members: tuple[MemberRoundRecord, ...]
    reward_pool_wei: int
    update_merkle_root: str = ZERO_HASH
    scalars_commitment: str = ZERO_HASH


@dataclass(frozen=True)
class Dispute:
    """A member's signed claim that the scalars revealed about it in a round are wrong.

    Anyone may submit it on chain (``Ledger.file_dispute``); the contract checks that
    ``signature`` is the registered ``member``'s over
    :func:`fedchain.identity.signing.dispute_digest`, flags the round and withholds its rewards.

    Attributes:
        server_round: the disputed round.
        member: the disputing member's checksummed address.
        scalars_commitment: the commitment of the revealed scalars the member was shown.
        signature: EIP-191 signature (``0x``-hex) of the dispute digest by ``member``.
    """

    server_round: int
    member: str
    scalars_commitment: str
    signature: str


@dataclass(frozen=True)
class Receipt:
    """Proof that a round was recorded.

    Attributes:
        tx_hash: hex hash of the transaction.
        block_number: block that includes it.
        gas_used: gas the transaction used.
        rewards_wei: reward paid to each member address, read from the emitted events.
        treasury_wei: remainder of the pool paid to the treasury.
    """

    tx_hash: str
    block_number: int
    gas_used: int
    rewards_wei: dict[str, int] = field(default_factory=dict)
    treasury_wei: int = 0


def record_to_json(record: RoundRecord) -> dict[str, Any]:
    """A :class:`RoundRecord` as JSON-safe data (money as a decimal string)."""
    data = dataclasses.asdict(record)
    data["reward_pool_wei"] = str(record.reward_pool_wei)
    return data


def record_from_json(data: dict[str, Any]) -> RoundRecord:
    """Inverse of :func:`record_to_json`; raises ``SerializationError`` on malformed data.

    Example:
        >>> record = RoundRecord(1, ZERO_HASH, ZERO_HASH, ZERO_HASH, (MemberRoundRecord("0x" + "11" * 20, 1.0),), 5)
        >>> record_from_json(record_to_json(record)) == record
        True
    """
    try:
        members = tuple(
            MemberRoundRecord(
                address=str(m["address"]),
                score=float(m["score"]),
                dp=DPParams(**m["dp"]) if m.get("dp") else None,
                epsilon=None if m.get("epsilon") is None else float(m["epsilon"]),
                status=str(m.get("status", "accepted")),
            )
            for m in data["members"]
        )
        return RoundRecord(
            server_round=int(data["server_round"]),
            aggregate_hash=str(data["aggregate_hash"]),
            model_hash=str(data["model_hash"]),
            previous_model_hash=str(data["previous_model_hash"]),
            members=members,
            reward_pool_wei=int(data["reward_pool_wei"]),
            update_merkle_root=str(data["update_merkle_root"]),
            scalars_commitment=str(data.get("scalars_commitment", ZERO_HASH)),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise SerializationError(f"malformed round record: {type(exc).__name__}: {exc}") from exc


@dataclass(frozen=True)
class ScalarRequest:
    """One ciphertext for the committee to decrypt.

    Attributes:
        kind: ``"sq_norms"``, ``"dots"`` or ``"agg_sq_norm"``.
        addresses: whose scalars, in slot order (empty for ``agg_sq_norm``).
        ciphertext: the packed (or, for ``agg_sq_norm``, single inner-product) ciphertext.
    """

    kind: str
    addresses: tuple[str, ...]
    ciphertext: bytes = field(repr=False)

    @property
    def count(self) -> int:
        """Scalars the ciphertext holds (what :func:`fedchain.crypto.answer_scalar_request` must be told)."""
        return len(self.addresses) or 1
