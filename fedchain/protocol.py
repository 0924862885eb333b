"""The wire between coordinator and members: typed instructions and replies, and their Flower records.

This module is the only place that knows the record and key names. Each message is a frozen
dataclass; :func:`encode` turns one into a Flower ``RecordDict`` and ``decode_<message>`` reads one
back, validating as it goes (required keys, types, ranges, array dtypes and shapes where the wire
fixes them). Every decoding failure raises :class:`~fedchain.errors.SerializationError` naming the
record, the key and what was expected, raised from the builtin error of its kind (``KeyError`` for
a missing key, ``TypeError`` for a wrong type, ``ValueError`` for a value out of range). Arrays
travel as arrays (ciphertexts as uint8 arrays), never pickled.

Messages (records in brackets):

:class:`TrainIns` (coordinator -> member, ``train``)
    ``[config]`` ConfigRecord: ``server-round``, ``model-round`` (round of the model the member
    trains from), ``cohort`` (how many members were sampled; members refuse a cohort below their
    policy's smallest), ``chain-id`` and ``ledger-address`` (the signing domain), ``proximal-mu``
    (FedProx), ``agg-rounds`` and per aggregate round ``k``: ``agg.<k>.weight``,
    ``agg.<k>.members``, ``agg.<k>.digest``; any other key an inner Flower strategy adds is kept
    in :attr:`TrainIns.options`. ``[model]`` ArrayRecord: the global weights (plaintext mode).
    ``[agg.<k>]`` ciphertext record (HE mode, see below): the chunks of round ``k``'s
    aggregate (:class:`SealedAggregate`); members apply them in order and refuse one that sums
    fewer members than their policy allows.
:class:`TrainRes` (member -> coordinator)
    ``[metrics]`` MetricRecord: ``num-examples``, ``train-loss``, ``train-seconds``; with DP
    (:class:`DPReport`): ``epsilon``, ``noise-multiplier``, ``sample-rate``, ``steps``,
    ``max-grad-norm``, ``delta``, ``spend-history`` (flat ``sigma, q, steps`` triples),
    ``noise-seeded``. ``[member]`` ConfigRecord (:class:`MemberIdentity`): ``member-id``,
    ``address``, ``kind``, ``model-hash``, ``model-round``, ``signature``. ``[arrays]``
    ArrayRecord (plaintext): the trained weights; ``[update]`` ciphertext record (HE): the chunks
    of ``n_i * delta_i``.
:class:`EvaluateIns` (coordinator -> member, ``evaluate``)
    as :class:`TrainIns` without ``cohort``, plus ``revealed-scalars`` (canonical JSON of the
    round's :class:`~fedchain.contribution.committee.RevealedScalars`) and ``scalars-commitment``.
:class:`EvaluateRes` (member -> coordinator)
    ``[metrics]``: ``num-examples``, ``loss``, ``accuracy``; ``[member]``: the identity plus, when
    the member disputes the revealed scalars (:class:`DisputeClaim`), ``dispute-commitment``,
    ``dispute-signature``, ``dispute-reason``.
:class:`CommitteeQuery` (coordinator -> committee member, ``query``)
    ``[config]``: ``server-round``, ``exchange``, ``scalar-kinds``, ``scalar-counts``,
    ``scalar-addresses`` (flat, in ciphertext order), ``chain-id``, ``ledger-address``;
    ``[scalars]`` ciphertext record: one ciphertext per kind.
:class:`CommitteeAnswer` (committee member -> coordinator)
    ``[scalars]`` MetricRecord: ``values`` (flat, in request order); ``[answer]`` ConfigRecord:
    ``signer``, ``signature``, ``request-hash``, ``server-round``, ``exchange``.
:class:`StrategyReply` (inside the coordinator, to an inner Flower strategy)
    ``[model]`` ArrayRecord and ``[metrics]`` ``num-examples``: the shape Flower's strategies
    aggregate (``arrayrecord_key`` :data:`MODEL`, ``configrecord_key`` :data:`CONFIG`).

A **ciphertext record** holds serialized chunks in order (:func:`chunks_to_record`): a
ConfigRecord ``{"chunks": [bytes, ...]}`` when they total at most :data:`INLINE_CHUNKS_MAX_BYTES`,
otherwise an ArrayRecord of 1-D uint8 arrays ``c0``, ``c1``, ... that Flower splits into 5 MB
pieces. Each Flower record travels as its own object, and an array as two more (``Array`` and
its ``ArrayChunk``), each one HTTP call to push and one to pull at every hop of a deployment;
the inline form saves two objects per payload, which on a small model is a fifth of a round's
calls. Decoders take both forms.

A member that declines (privacy budget spent) answers with a Flower ``Error`` whose code is
:data:`ERROR_BUDGET_EXHAUSTED`; one whose own privacy policy refuses the instruction, with
:data:`ERROR_POLICY_REFUSED`; a deployed member without its accountant state, with
:data:`ERROR_PRIVACY_STATE_MISSING`. :data:`TRAIN_ERROR_REASONS` says how the coordinator counts them.

Example:
    >>> import numpy as np
    >>> ins = TrainIns(server_round=2, model_round=1, cohort=3, model={"w": np.zeros(2, "float32")})
    >>> decode_train_ins(encode(ins)).cohort
    3
    >>> from flwr.app import ConfigRecord, RecordDict
    >>> decode_train_ins(RecordDict({"config": ConfigRecord({"model-round": 1})}))
    Traceback (most recent call last):
    ...
    fedchain.errors.SerializationError: the 'config' record of a train instruction has no 'server-round' (an int >= 0)
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, TypeVar, cast, overload

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, MetricRecord, RecordDict

from fedchain.errors import SerializationError
from fedchain.serialization import Weights
from fedchain.types import DPParams

__all__ = [
    "ARRAYS",
    "CONFIG",
    "ERROR_BUDGET_EXHAUSTED",
    "ERROR_COMMITTEE_REFUSED",
    "ERROR_INVALID_INSTRUCTION",
    "ERROR_POLICY_REFUSED",
    "ERROR_PRIVACY_STATE_MISSING",
    "INLINE_CHUNKS_MAX_BYTES",
    "MODEL",
    "TRAIN_ERROR_REASONS",
    "CommitteeAnswer",
    "CommitteeQuery",
    "DPReport",
    "DisputeClaim",
    "EvaluateIns",
    "EvaluateRes",
    "MemberIdentity",
    "SealedAggregate",
    "StrategyReply",
    "TrainIns",
    "TrainRes",
    "WireMessage",
    "chunks_to_record",
    "config_record",
    "decode_committee_answer",
    "decode_committee_query",
    "decode_evaluate_ins",
    "decode_evaluate_res",
    "decode_strategy_reply",
    "decode_train_ins",
    "decode_train_res",
    "encode",
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

#: Record names. :data:`MODEL` and :data:`CONFIG` are also the keys fedchain's inner Flower
#: strategies use (``arrayrecord_key`` / ``configrecord_key``).
MODEL = "model"
CONFIG = "config"
ARRAYS = "arrays"
_METRICS = "metrics"
_MEMBER = "member"
_UPDATE = "update"
_SCALARS = "scalars"
_ANSWER = "answer"
_INLINE_CHUNKS = "chunks"
#: Ciphertext chunks totalling at most this travel inline in a ConfigRecord (one Flower object
#: instead of three per payload); Flower's own array pieces are 5 MB (FLWR_PRIVATE_MAX_ARRAY_CHUNK_SIZE).
INLINE_CHUNKS_MAX_BYTES = 4 * 1024 * 1024

#: Config keys a train or evaluate instruction reads itself; anything else is an inner strategy's option.
_INSTRUCTION_KEYS = frozenset(
    {
        "server-round",
        "model-round",
        "cohort",
        "chain-id",
        "ledger-address",
        "proximal-mu",
        "agg-rounds",
        "revealed-scalars",
        "scalars-commitment",
    }
)

ConfigScalar = int | float | str | bytes | bool | list[int] | list[float] | list[str] | list[bytes] | list[bool]
T = TypeVar("T")
_MISSING: Any = object()


# --------------------------------------------------------------------------- messages
@dataclass(frozen=True)
class SealedAggregate:
    """One round's encrypted aggregate as members receive it (HE).

    Attributes:
        server_round: the round it aggregates.
        chunks: its CKKS ciphertext chunks.
        total_weight: the sum of the members' example counts (> 0): members divide by it.
        digest: the hash of ``chunks`` the coordinator announces (members verify it).
        members: how many members it sums; None when the coordinator did not say.
        update: the strategy's member-side update members apply to it (a
            ``fedchain.aggregation`` server-optimizer name: ``"avg"`` is ``w + S / W``).
        update_options: that update's options (e.g. FedAdam's ``eta``), as ``(name, value)`` pairs.
    """

    server_round: int
    chunks: tuple[bytes, ...] = field(repr=False)
    total_weight: int
    digest: str
    members: int | None = None
    update: str = "avg"
    update_options: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class TrainIns:
    """A train instruction: which round, under which domain, from which model.

    Attributes:
        server_round: the round to train (>= 1).
        model_round: the round of the model to train from (>= 0).
        cohort: how many members were sampled; None when not announced.
        chain_id: the chain of the signing domain (0: none).
        ledger_address: the ledger of the signing domain (``""``: none).
        proximal_mu: FedProx's proximal term (0: none).
        model: the global weights (plaintext mode).
        aggregates: the encrypted aggregates the member lacks (HE mode), in round order.
        options: any other config key an inner Flower strategy sets, kept as sent.
    """

    server_round: int
    model_round: int
    cohort: int | None = None
    chain_id: int = 0
    ledger_address: str = ""
    proximal_mu: float = 0.0
    model: Weights | None = field(default=None, repr=False)
    aggregates: tuple[SealedAggregate, ...] = ()
    options: Mapping[str, ConfigScalar] = field(default_factory=dict)


@dataclass(frozen=True)
class EvaluateIns:
    """An evaluate instruction: evaluate the model of ``model_round``, check the round's revealed scalars.

    Attributes:
        server_round: the round being evaluated.
        model_round: the round of the model to evaluate.
        chain_id: the chain of the signing domain (0: none).
        ledger_address: the ledger of the signing domain (``""``: none).
        model: the global weights (plaintext mode).
        aggregates: the encrypted aggregates the member lacks (HE mode), in round order.
        revealed_scalars: canonical JSON of the round's ``RevealedScalars`` (HE scoring), or None;
            kept as text: a member disputes an unreadable one rather than refusing the instruction.
        scalars_commitment: the commitment to ``revealed_scalars`` recorded on chain, or None.
        options: any other config key an inner Flower strategy sets, kept as sent.
    """

    server_round: int
    model_round: int
    chain_id: int = 0
    ledger_address: str = ""
    model: Weights | None = field(default=None, repr=False)
    aggregates: tuple[SealedAggregate, ...] = ()
    revealed_scalars: str | None = field(default=None, repr=False)
    scalars_commitment: str | None = None
    options: Mapping[str, ConfigScalar] = field(default_factory=dict)


@dataclass(frozen=True)
class MemberIdentity:
    """Who answers and from which model (the reply's ``member`` record).

    Attributes:
        member_id: the member's number (a claim; the coordinator identifies members by address).
        address: the member's chain address.
        kind: ``"honest"``, or a simulated adversary's kind.
        model_hash: hash of the global model the member trained from or evaluated (``""``: not said).
        model_round: the round of that model; None when not said.
        signature: the member's EIP-191 signature over its update digest (train replies).
    """

    member_id: int
    address: str
    kind: str = "honest"
    model_hash: str = ""
    model_round: int | None = None
    signature: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class DPReport:
    """The DP figures of a train reply.

    Attributes:
        epsilon: the member's cumulative epsilon after this round.
        params: the round's DP-SGD parameters.
        spend_history: every round the member's accountant charged, as ``(sigma, q, steps)``.
        noise_seeded: the noise came from a seed (a simulation's ``dp-noise-seed``), not a CSPRNG.
    """

    epsilon: float
    params: DPParams
    spend_history: tuple[tuple[float, float, int], ...] = ()
    noise_seeded: bool = False


@dataclass(frozen=True)
class TrainRes:
    """A member's train reply: its identity, figures and the sealed payload (exactly one of the two).

    Attributes:
        member: who answers, signed.
        num_examples: the example count the update is weighted by (a claim, >= 0).
        train_loss: the last epoch's mean training loss.
        train_seconds: local training time, when measured.
        dp: the DP figures, when DP is on.
        arrays: the trained weights (plaintext mode).
        update: ciphertext chunks of ``n * delta`` (HE mode).
    """

    member: MemberIdentity
    num_examples: int
    train_loss: float = 0.0
    train_seconds: float | None = None
    dp: DPReport | None = None
    arrays: Weights | None = field(default=None, repr=False)
    update: tuple[bytes, ...] | None = field(default=None, repr=False)


@dataclass(frozen=True)
class DisputeClaim:
    """A member's dispute of the round's revealed scalars, carried by its evaluate reply.

    Attributes:
        scalars_commitment: the commitment the member disputes.
        signature: its signature over :func:`fedchain.identity.signing.dispute_digest`.
        reason: what the member found wrong.
    """

    scalars_commitment: str
    signature: str = field(repr=False)
    reason: str = ""


@dataclass(frozen=True)
class EvaluateRes:
    """A member's evaluate reply.

    Attributes:
        member: who answers and which model it evaluated.
        num_examples: local test examples (>= 0).
        loss: mean loss on them.
        accuracy: accuracy on them, in [0, 1].
        dispute: the member's dispute of the round's revealed scalars, if any.
    """

    member: MemberIdentity
    num_examples: int
    loss: float
    accuracy: float
    dispute: DisputeClaim | None = None


@dataclass(frozen=True)
class CommitteeQuery:
    """A committee request as it travels: one ciphertext per kind, labelled by count and addresses.

    The wire keeps the labels flat; the committee member labels each ciphertext and checks the
    request (:mod:`fedchain.contribution.committee`), so a count that differs from its labels is
    well-formed here and refused there.

    Attributes:
        server_round: the round whose scalars are asked for.
        exchange: the exchange of the round (1 or 2).
        kinds: each ciphertext's kind.
        counts: each ciphertext's scalar count.
        addresses: the labels, flat, in ciphertext order.
        ciphertexts: the ciphertexts.
        chain_id: the chain of the signing domain (0: none).
        ledger_address: the ledger of the signing domain (``""``: none).
    """

    server_round: int
    exchange: int
    kinds: tuple[str, ...]
    counts: tuple[int, ...]
    addresses: tuple[str, ...]
    ciphertexts: tuple[bytes, ...] = field(repr=False)
    chain_id: int = 0
    ledger_address: str = ""

    @classmethod
    def of(
        cls, server_round: int, exchange: int, requests: Sequence[_Labelled], *, chain_id: int, ledger_address: str
    ) -> CommitteeQuery:
        """The query of labelled requests (``ScalarRequest``: ``kind``, ``addresses``, ``ciphertext``, ``count``)."""
        return cls(
            server_round=server_round,
            exchange=exchange,
            kinds=tuple(r.kind for r in requests),
            counts=tuple(r.count for r in requests),
            addresses=tuple(a for r in requests for a in r.addresses),
            ciphertexts=tuple(r.ciphertext for r in requests),
            chain_id=chain_id,
            ledger_address=ledger_address,
        )


@dataclass(frozen=True)
class CommitteeAnswer:
    """A committee member's signed answer: the decrypted scalars of every ciphertext, flat.

    Attributes:
        values: the scalars, flat, in request order.
        signer: the committee member's address.
        signature: its signature over :func:`fedchain.identity.signing.scalars_digest`.
        request_hash: the hash of the request it answers.
        server_round: the request's round.
        exchange: the request's exchange.
    """

    values: tuple[float, ...]
    signer: str
    signature: str = field(repr=False)
    request_hash: str = ""
    server_round: int = 0
    exchange: int = 0

    def split(self, counts: Sequence[int]) -> list[list[float]]:
        """The values as one row per ciphertext of ``counts`` scalars.

        Raises:
            SerializationError: the answer holds more or fewer values than the counts add up to.
        """
        rows, offset = [], 0
        for count in counts:
            rows.append(list(self.values[offset : offset + count]))
            offset += count
        if offset != len(self.values):
            raise _error(ValueError, _SCALARS, "values", f"{offset} scalars", f"{len(self.values)} scalars")
        return rows


@dataclass(frozen=True)
class StrategyReply:
    """What an inner Flower strategy aggregates: one model and its example count.

    Attributes:
        weights: the model.
        num_examples: its weight (>= 0).
    """

    weights: Weights = field(repr=False)
    num_examples: int


class _Labelled(Protocol):
    """A labelled committee request (``fedchain.contribution.committee.ScalarRequest``)."""

    @property
    def kind(self) -> str: ...
    @property
    def addresses(self) -> tuple[str, ...]: ...
    @property
    def ciphertext(self) -> bytes: ...
    @property
    def count(self) -> int: ...


#: Any message :func:`encode` takes.
WireMessage = TrainIns | EvaluateIns | TrainRes | EvaluateRes | CommitteeQuery | CommitteeAnswer | StrategyReply


# --------------------------------------------------------------------------- encode
def encode(message: WireMessage) -> RecordDict:
    """The Flower records of ``message`` (see the module docstring for each message's keys).

    Example:
        >>> sorted(encode(CommitteeAnswer((1.0, 2.0), "0xabc", "0xsig")).keys())
        ['answer', 'scalars']
    """
    if isinstance(message, TrainIns | EvaluateIns):
        return _encode_instruction(message)
    if isinstance(message, TrainRes):
        return _encode_train_res(message)
    if isinstance(message, EvaluateRes):
        metrics = MetricRecord(
            {"num-examples": message.num_examples, "loss": float(message.loss), "accuracy": float(message.accuracy)}
        )
        member = _identity_record(message.member)
        if message.dispute is not None:
            member["dispute-commitment"] = message.dispute.scalars_commitment
            member["dispute-signature"] = message.dispute.signature
            member["dispute-reason"] = message.dispute.reason
        return RecordDict({_METRICS: metrics, _MEMBER: member})
    if isinstance(message, CommitteeQuery):
        config = ConfigRecord(
            {
                "server-round": message.server_round,
                "exchange": message.exchange,
                "scalar-kinds": list(message.kinds),
                "scalar-counts": list(message.counts),
                "scalar-addresses": list(message.addresses),
                "chain-id": message.chain_id,
                "ledger-address": message.ledger_address,
            }
        )
        return RecordDict({CONFIG: config, _SCALARS: chunks_to_record(message.ciphertexts)})
    if isinstance(message, CommitteeAnswer):
        answer = ConfigRecord(
            {
                "signer": message.signer,
                "signature": message.signature,
                "request-hash": message.request_hash,
                "server-round": message.server_round,
                "exchange": message.exchange,
            }
        )
        return RecordDict({_SCALARS: MetricRecord({"values": [float(v) for v in message.values]}), _ANSWER: answer})
    if isinstance(message, StrategyReply):
        return RecordDict(
            {MODEL: weights_to_record(message.weights), _METRICS: MetricRecord({"num-examples": message.num_examples})}
        )
    raise TypeError(f"not a fedchain protocol message: {type(message).__name__}")


def _encode_instruction(ins: TrainIns | EvaluateIns) -> RecordDict:
    config = ConfigRecord(dict(ins.options))
    config["server-round"] = ins.server_round
    config["model-round"] = ins.model_round
    config["chain-id"] = ins.chain_id
    config["ledger-address"] = ins.ledger_address
    if isinstance(ins, TrainIns):
        if ins.cohort is not None:
            config["cohort"] = ins.cohort
        if ins.proximal_mu:
            config["proximal-mu"] = float(ins.proximal_mu)
    else:
        if ins.revealed_scalars is not None:
            config["revealed-scalars"] = ins.revealed_scalars
        if ins.scalars_commitment is not None:
            config["scalars-commitment"] = ins.scalars_commitment
    content = RecordDict({CONFIG: config})
    if ins.model is not None:
        content[MODEL] = weights_to_record(ins.model)
    if ins.aggregates:
        config["agg-rounds"] = [aggregate.server_round for aggregate in ins.aggregates]
        for aggregate in ins.aggregates:
            k = aggregate.server_round
            config[f"agg.{k}.weight"] = aggregate.total_weight
            if aggregate.members is not None:
                config[f"agg.{k}.members"] = aggregate.members
            config[f"agg.{k}.digest"] = aggregate.digest
            config[f"agg.{k}.update"] = aggregate.update
            config[f"agg.{k}.update-option-names"] = [name for name, _ in aggregate.update_options]
            config[f"agg.{k}.update-option-values"] = [float(value) for _, value in aggregate.update_options]
            content[f"agg.{k}"] = _aggregate_record(aggregate.chunks)
    elif ins.model is None:
        config["agg-rounds"] = []
    return content


@functools.lru_cache(maxsize=2)
def _aggregate_record(chunks: tuple[bytes, ...]) -> ArrayRecord | ConfigRecord:
    """An aggregate's record, built once and shared by every member's instruction of the round.

    Two are kept (the round's, and the one before for members that missed it): each is a copy of
    its aggregate (Flower's ``Array`` holds its own bytes), 520 MB at 10M parameters under SCORING keys.
    """
    return chunks_to_record(chunks)


def _identity_record(member: MemberIdentity) -> ConfigRecord:
    record = ConfigRecord(
        {"member-id": member.member_id, "address": member.address, "kind": member.kind, "model-hash": member.model_hash}
    )
    if member.model_round is not None:
        record["model-round"] = member.model_round
    if member.signature is not None:
        record["signature"] = member.signature
    return record


def _encode_train_res(res: TrainRes) -> RecordDict:
    metrics: dict[str, Any] = {"num-examples": res.num_examples, "train-loss": float(res.train_loss)}
    if res.train_seconds is not None:
        metrics["train-seconds"] = float(res.train_seconds)
    if res.dp is not None:
        dp = res.dp.params
        metrics.update(
            {
                "epsilon": float(res.dp.epsilon),
                "noise-multiplier": float(dp.noise_multiplier),
                "sample-rate": float(dp.sample_rate),
                "steps": int(dp.steps),
                "max-grad-norm": float(dp.max_grad_norm),
                "delta": float(dp.delta),
                "spend-history": [float(v) for entry in res.dp.spend_history for v in entry],
                "noise-seeded": int(res.dp.noise_seeded),
            }
        )
    content = RecordDict({_METRICS: MetricRecord(metrics), _MEMBER: _identity_record(res.member)})
    if res.update is not None:
        content[_UPDATE] = chunks_to_record(res.update)
    if res.arrays is not None:
        content[ARRAYS] = weights_to_record(res.arrays)
    return content


# --------------------------------------------------------------------------- decode
def _error(kind: type[Exception], record: str, key: str, expected: str, got: Any) -> SerializationError:
    """``SerializationError`` naming record, key, expectation and what came, raised from ``kind``."""
    error = SerializationError(f"the {record!r} record's {key!r} must be {expected}, got {got!r}")
    error.__cause__ = kind(key)
    return error


def _missing(record: str, what: str, key: str, expected: str) -> SerializationError:
    error = SerializationError(f"the {record!r} record of {what} has no {key!r} ({expected})")
    error.__cause__ = KeyError(key)
    return error


def _ciphertext_chunks(content: RecordDict, name: str, what: str) -> list[bytes]:
    """The chunks of the ciphertext record ``name`` (inline ConfigRecord or ArrayRecord)."""
    record = content[name] if isinstance(content, RecordDict) and name in content else None
    if isinstance(record, ConfigRecord):
        return record_to_chunks(record)
    return record_to_chunks(_record(content, name, ArrayRecord, what))


def _record(content: RecordDict, name: str, kind: type[T], what: str) -> T:
    """The record ``name`` of ``content``, of the given record type."""
    if not isinstance(content, RecordDict):
        raise SerializationError(f"{what} must be a RecordDict, got {type(content).__name__}")
    if name not in content:
        error = SerializationError(f"{what} has no {name!r} record ({kind.__name__})")
        error.__cause__ = KeyError(name)
        raise error
    record = content[name]
    if not isinstance(record, kind):
        error = SerializationError(f"{what}'s {name!r} record must be a {kind.__name__}, got {type(record).__name__}")
        error.__cause__ = TypeError(name)
        raise error
    return record


class _Reader:
    """Typed, validated reads from one config or metric record."""

    def __init__(self, record: Mapping[str, Any], name: str, what: str) -> None:
        self.record, self.name, self.what = record, name, what

    def _raw(self, key: str, expected: str, default: Any) -> Any:
        if key not in self.record:
            if default is _MISSING:
                raise _missing(self.name, self.what, key, expected)
            return default
        return self.record[key]

    def _bad(self, key: str, expected: str, value: Any, kind: type[Exception] = TypeError) -> SerializationError:
        return _error(kind, self.name, key, expected, value)

    @overload
    def int_(self, key: str, *, low: int = ..., high: int | None = ...) -> int: ...
    @overload
    def int_(self, key: str, *, low: int = ..., high: int | None = ..., default: T) -> int | T: ...
    def int_(self, key: str, *, low: int = 0, high: int | None = None, default: Any = _MISSING) -> Any:
        expected = f"an int >= {low}" if high is None else f"an int in [{low}, {high}]"
        value = self._raw(key, expected, default)
        if value is default and default is not _MISSING:
            return value
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._bad(key, expected, value)
        if value < low or (high is not None and value > high):
            raise self._bad(key, expected, value, ValueError)
        return value

    @overload
    def float_(self, key: str, *, check: Any = ..., expected: str = ...) -> float: ...
    @overload
    def float_(self, key: str, *, check: Any = ..., expected: str = ..., default: T) -> float | T: ...
    def float_(
        self, key: str, *, check: Any = math.isfinite, expected: str = "a finite float", default: Any = _MISSING
    ) -> Any:
        value = self._raw(key, expected, default)
        if value is default and default is not _MISSING:
            return value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self._bad(key, expected, value)
        if not check(float(value)):
            raise self._bad(key, expected, value, ValueError)
        return float(value)

    @overload
    def str_(self, key: str) -> str: ...
    @overload
    def str_(self, key: str, *, default: T) -> str | T: ...
    def str_(self, key: str, *, default: Any = _MISSING) -> Any:
        value = self._raw(key, "a str", default)
        if value is default and default is not _MISSING:
            return value
        if not isinstance(value, str):
            raise self._bad(key, "a str", value)
        return value

    def list_(self, key: str, item: Any, expected: str, *, default: Any = _MISSING) -> list[Any]:
        value = self._raw(key, expected, default)
        if value is default and default is not _MISSING:
            return list(value)
        if not isinstance(value, list) or any(
            isinstance(v, bool) or not isinstance(v, item)
            for v in value  # bool is an int, never a count
        ):
            raise self._bad(key, expected, value)
        return value


def _decode_aggregates(content: RecordDict, config: _Reader) -> tuple[SealedAggregate, ...]:
    rounds = config.list_("agg-rounds", int, "a list of ints (the aggregate rounds)", default=[])
    if rounds != sorted(set(rounds)) or any(k < 1 for k in rounds):
        raise config._bad("agg-rounds", "increasing rounds >= 1", rounds, ValueError)
    aggregates = []
    for k in rounds:
        chunks = _ciphertext_chunks(content, f"agg.{k}", config.what)
        aggregates.append(
            SealedAggregate(
                server_round=k,
                chunks=tuple(chunks),
                total_weight=config.int_(f"agg.{k}.weight", low=1),
                digest=config.str_(f"agg.{k}.digest"),
                members=config.int_(f"agg.{k}.members", low=0, default=None),
                update=config.str_(f"agg.{k}.update", default="avg"),
                update_options=_update_options(config, k),
            )
        )
    return tuple(aggregates)


def _update_options(config: _Reader, k: int) -> tuple[tuple[str, float], ...]:
    names = config.list_(f"agg.{k}.update-option-names", str, "a list of option names", default=[])
    values = config.list_(f"agg.{k}.update-option-values", float, "a list of floats", default=[])
    if len(names) != len(values) or len(set(names)) != len(names) or not all(map(math.isfinite, values)):
        raise config._bad(
            f"agg.{k}.update-option-names",
            "distinct names, one finite value each",
            {"names": names, "values": values},
            ValueError,
        )
    return tuple(zip(names, values, strict=True))


def _options(config: ConfigRecord) -> dict[str, ConfigScalar]:
    return {
        key: value
        for key, value in config.items()
        if key not in _INSTRUCTION_KEYS and not (key.startswith("agg.") and key[4:].split(".")[0].isdigit())
    }


def _model(content: RecordDict, what: str) -> Weights | None:
    return record_to_weights(_record(content, MODEL, ArrayRecord, what)) if MODEL in content else None


def decode_train_ins(content: RecordDict) -> TrainIns:
    """A train instruction from its records.

    Raises:
        SerializationError: a record or key is missing, of the wrong type or out of range.
    """
    what = "a train instruction"
    record = _record(content, CONFIG, ConfigRecord, what)
    config = _Reader(record, CONFIG, what)
    return TrainIns(
        server_round=config.int_("server-round"),
        model_round=config.int_("model-round", default=0),
        cohort=config.int_("cohort", default=None),
        chain_id=config.int_("chain-id", default=0),
        ledger_address=config.str_("ledger-address", default=""),
        proximal_mu=config.float_(
            "proximal-mu", check=lambda v: math.isfinite(v) and v >= 0, expected="a float >= 0", default=0.0
        ),
        model=_model(content, what),
        aggregates=_decode_aggregates(content, config),
        options=_options(record),
    )


def decode_evaluate_ins(content: RecordDict) -> EvaluateIns:
    """An evaluate instruction from its records.

    Raises:
        SerializationError: a record or key is missing, of the wrong type or out of range.
    """
    what = "an evaluate instruction"
    record = _record(content, CONFIG, ConfigRecord, what)
    config = _Reader(record, CONFIG, what)
    revealed = config.str_("revealed-scalars", default=None)
    return EvaluateIns(
        server_round=config.int_("server-round", default=0),
        model_round=config.int_("model-round", default=0),
        chain_id=config.int_("chain-id", default=0),
        ledger_address=config.str_("ledger-address", default=""),
        model=_model(content, what),
        aggregates=_decode_aggregates(content, config),
        revealed_scalars=revealed or None,
        scalars_commitment=config.str_("scalars-commitment", default=None) or None,
        options=_options(record),
    )


def _decode_identity(content: RecordDict, what: str) -> tuple[MemberIdentity, _Reader]:
    member = _Reader(_record(content, _MEMBER, ConfigRecord, what), _MEMBER, what)
    identity = MemberIdentity(
        member_id=member.int_("member-id"),
        address=member.str_("address"),
        kind=member.str_("kind", default="honest"),
        model_hash=member.str_("model-hash", default=""),
        model_round=member.int_("model-round", default=None),
        signature=member.str_("signature", default=None),
    )
    return identity, member


def _decode_spend_history(metrics: _Reader) -> tuple[tuple[float, float, int], ...]:
    values = [float(v) for v in metrics.list_("spend-history", int | float, "a list of floats", default=[])]
    if len(values) % 3:
        raise metrics._bad("spend-history", "(sigma, q, steps) triples", f"{len(values)} values", ValueError)
    entries = []
    for sigma, sample_rate, steps in zip(values[0::3], values[1::3], values[2::3], strict=True):
        if not (sigma > 0 and 0 < sample_rate <= 1 and steps >= 1 and steps == int(steps)):
            raise metrics._bad("spend-history", "DP-SGD rounds", (sigma, sample_rate, steps), ValueError)
        entries.append((sigma, sample_rate, int(steps)))
    return tuple(entries)


def _positive(value: float) -> bool:
    return math.isfinite(value) and value > 0


def decode_train_res(content: RecordDict, *, sealed: bool = True) -> TrainRes:
    """A member's train reply from its records.

    ``sealed=False`` reads the member's own reply before its seal mod adds the payload and the
    signature (``clients.mods.seal_mod``): it may carry no payload.

    Raises:
        SerializationError: a record or key is missing, of the wrong type or out of range, the
            reply carries neither or both payloads, or an array or chunk is malformed.
    """
    what = "a train reply"
    identity, _ = _decode_identity(content, what)
    metrics = _Reader(_record(content, _METRICS, MetricRecord, what), _METRICS, what)
    dp = None
    if "epsilon" in metrics.record:
        params = DPParams(
            noise_multiplier=metrics.float_("noise-multiplier", check=_positive, expected="a float > 0"),
            sample_rate=metrics.float_("sample-rate", check=lambda v: 0 < v <= 1, expected="a float in (0, 1]"),
            steps=metrics.int_("steps", low=1),
            max_grad_norm=metrics.float_("max-grad-norm", check=_positive, expected="a float > 0"),
            delta=metrics.float_("delta", check=lambda v: 0 < v < 1, expected="a float in (0, 1)"),
        )
        dp = DPReport(
            epsilon=metrics.float_("epsilon", check=lambda v: v >= 0 and not math.isnan(v), expected="a float >= 0"),
            params=params,
            spend_history=_decode_spend_history(metrics),
            noise_seeded=bool(metrics.int_("noise-seeded", high=1, default=0)),
        )
    update = arrays = None
    if _UPDATE in content:
        update = tuple(_ciphertext_chunks(content, _UPDATE, what))
    if ARRAYS in content:
        arrays = record_to_weights(_record(content, ARRAYS, ArrayRecord, what))
    if (update is None) == (arrays is None) and (sealed or update is not None):
        raise SerializationError(
            f"{what} must carry exactly one payload, {ARRAYS!r} (plaintext) or {_UPDATE!r} (HE), "
            f"got {'both' if update is not None else 'neither'}"
        )
    return TrainRes(
        member=identity,
        num_examples=metrics.int_("num-examples"),
        train_loss=metrics.float_("train-loss", default=0.0),
        train_seconds=metrics.float_("train-seconds", default=None),
        dp=dp,
        arrays=arrays,
        update=update,
    )


def decode_evaluate_res(content: RecordDict) -> EvaluateRes:
    """A member's evaluate reply from its records.

    Raises:
        SerializationError: a record or key is missing, of the wrong type or out of range.
    """
    what = "an evaluate reply"
    identity, member = _decode_identity(content, what)
    metrics = _Reader(_record(content, _METRICS, MetricRecord, what), _METRICS, what)
    dispute = None
    if "dispute-signature" in member.record:
        dispute = DisputeClaim(
            scalars_commitment=member.str_("dispute-commitment", default=""),
            signature=member.str_("dispute-signature"),
            reason=member.str_("dispute-reason", default=""),
        )
    return EvaluateRes(
        member=identity,
        num_examples=metrics.int_("num-examples"),
        loss=metrics.float_("loss"),
        accuracy=metrics.float_("accuracy", check=lambda v: 0 <= v <= 1, expected="a float in [0, 1]"),
        dispute=dispute,
    )


def decode_committee_query(content: RecordDict) -> CommitteeQuery:
    """A committee request from its records (one kind and count per ciphertext).

    Raises:
        SerializationError: a record or key is missing or of the wrong type, or the kinds,
            counts and ciphertexts are not one of each.
    """
    what = "a committee query"
    config = _Reader(_record(content, CONFIG, ConfigRecord, what), CONFIG, what)
    kinds = config.list_("scalar-kinds", str, "a list of str")
    counts = config.list_("scalar-counts", int, "a list of ints")
    addresses = config.list_("scalar-addresses", str, "a list of str")
    ciphertexts = _ciphertext_chunks(content, _SCALARS, what)
    query = CommitteeQuery(
        server_round=config.int_("server-round"),
        exchange=config.int_("exchange"),
        kinds=tuple(kinds),
        counts=tuple(counts),
        addresses=tuple(addresses),
        ciphertexts=tuple(ciphertexts),
        chain_id=config.int_("chain-id", default=0),
        ledger_address=config.str_("ledger-address", default=""),
    )
    if not len(kinds) == len(counts) == len(ciphertexts):
        error = SerializationError(
            f"{len(ciphertexts)} ciphertexts, {len(kinds)} kinds and {len(counts)} counts: one of each"
        )
        error.__cause__ = ValueError("scalar-kinds")
        raise error
    return query


def decode_committee_answer(content: RecordDict) -> CommitteeAnswer:
    """A committee member's answer from its records.

    Raises:
        SerializationError: a record or key is missing, or of the wrong type.
    """
    what = "a committee answer"
    scalars = _Reader(_record(content, _SCALARS, MetricRecord, what), _SCALARS, what)
    answer = _Reader(_record(content, _ANSWER, ConfigRecord, what), _ANSWER, what)
    values = scalars.list_("values", int | float, "a list of floats", default=[])
    return CommitteeAnswer(
        values=tuple(float(v) for v in values),
        signer=answer.str_("signer", default=""),
        signature=answer.str_("signature"),
        request_hash=answer.str_("request-hash", default=""),
        server_round=answer.int_("server-round", default=0),
        exchange=answer.int_("exchange", default=0),
    )


def decode_strategy_reply(content: RecordDict) -> StrategyReply:
    """One model and its example count, as an inner Flower strategy's reply holds them.

    Any single ArrayRecord counts as the model (Flower's strategies name it by ``arrayrecord_key``).
    The count's range is the strategy's to judge (``FedChainStrategy.aggregate_plain`` refuses a
    negative one for the whole round).

    Raises:
        SerializationError: not exactly one ArrayRecord, or no int ``num-examples``.
    """
    what = "a strategy reply"
    records = list(content.array_records.values())
    if len(records) != 1:
        error = SerializationError(f"{what} must hold one ArrayRecord (the model), got {len(records)}")
        error.__cause__ = ValueError(MODEL)
        raise error
    metrics = _Reader(_record(content, _METRICS, MetricRecord, what), _METRICS, what)
    n = metrics.int_("num-examples", low=-(2**63))
    return StrategyReply(weights=record_to_weights(records[0]), num_examples=n)


def config_record(ins: TrainIns | EvaluateIns) -> ConfigRecord:
    """The ``config`` record of an instruction: what a Flower strategy samples with (it adds the model).

    Example:
        >>> sorted(config_record(TrainIns(server_round=1, model_round=0)))
        ['chain-id', 'ledger-address', 'model-round', 'server-round']
    """
    return _encode_instruction(replace(ins, model={}, aggregates=())).config_records[CONFIG]


def weights_to_record(weights: Weights) -> ArrayRecord:
    """Named arrays -> ArrayRecord (order and shapes kept).

    A 0-d buffer such as BatchNorm's ``num_batches_tracked`` stays 0-d (``np.ascontiguousarray``
    alone would make it shape ``(1,)``, which the member's shape check refuses).
    """
    return ArrayRecord(
        {name: Array(np.ascontiguousarray(array).reshape(np.shape(array))) for name, array in weights.items()}
    )


def record_to_weights(record: ArrayRecord) -> Weights:
    """ArrayRecord -> named arrays. Raises SerializationError on undecodable content."""
    try:
        return {name: array.numpy() for name, array in record.items()}
    except Exception as exc:  # Flower raises plain exceptions on malformed arrays
        raise SerializationError(f"cannot decode arrays: {exc}") from exc


def chunks_to_record(chunks: list[bytes] | tuple[bytes, ...]) -> ArrayRecord | ConfigRecord:
    """Serialized ciphertext chunks -> a ciphertext record (module docstring): inline when small.

    Example:
        >>> type(chunks_to_record([b"ab", b"c"])).__name__, record_to_chunks(chunks_to_record([b"ab", b"c"]))
        ('ConfigRecord', [b'ab', b'c'])
        >>> type(chunks_to_record([bytes(INLINE_CHUNKS_MAX_BYTES + 1)])).__name__
        'ArrayRecord'
    """
    if sum(map(len, chunks)) <= INLINE_CHUNKS_MAX_BYTES:
        return ConfigRecord({_INLINE_CHUNKS: [bytes(chunk) for chunk in chunks]})
    return ArrayRecord({f"c{i}": Array(np.frombuffer(chunk, dtype=np.uint8)) for i, chunk in enumerate(chunks)})


def record_to_chunks(record: ArrayRecord | ConfigRecord) -> list[bytes]:
    """Inverse of :func:`chunks_to_record`, validating keys, names and dtypes."""
    if isinstance(record, ConfigRecord):
        if set(record.keys()) != {_INLINE_CHUNKS}:
            raise SerializationError(f"an inline ciphertext record holds only {_INLINE_CHUNKS!r}, got {sorted(record)}")
        inline = record[_INLINE_CHUNKS]
        if not isinstance(inline, list) or not all(isinstance(chunk, bytes) for chunk in inline):
            raise SerializationError(f"inline ciphertext chunks must be a list of bytes, got {type(inline).__name__}")
        return list(cast("list[bytes]", inline))
    chunks: list[bytes] = []
    for index, (name, array) in enumerate(record.items()):
        if name != f"c{index}":
            raise SerializationError(f"ciphertext chunk {index} is named {name!r}, expected 'c{index}'")
        values = array.numpy()
        if values.dtype != np.uint8 or values.ndim != 1:
            raise SerializationError(f"ciphertext chunk {name!r} must be a 1-D uint8 array, got {values.dtype}")
        chunks.append(values.tobytes())
    return chunks
