"""The decrypt committee: scoring and norm checks under HE with only scalars ever revealed.

Under HE the coordinator holds ``Enc(a_i)`` with ``a_i = n_i * delta_i`` for every accepted member
(SCORING parameters) and the encrypted sum ``Enc(S)``, but no secret key. The protocol, one round:

1. **Requests** (coordinator, :func:`fedchain.crypto.build_scalar_requests`): encrypted inner products with
   :func:`fedchain.crypto.encrypted_dot`, packed with :func:`fedchain.crypto.pack_scalars`, in this
   order: ``sq_norms`` (``||a_i||^2``, members in order, at most ``slots`` per ciphertext), then
   ``dots`` (``<a_i, S>``, same order and packing), then ``agg_sq_norm`` (``||S||^2``, one unpacked
   inner-product ciphertext). Squared norms and dot products are packed apart because packing
   adds cross-talk proportional to the largest scalar in a ciphertext (see
   :mod:`fedchain.crypto.scoring`); ``||S||^2`` is left unpacked for the same reason.
2. **Committee** (:func:`select_committee`): ``size`` members drawn per round by hashing the run
   seed, the round and each member id, so anyone can recompute who was drawn. Nobody is excluded,
   the members being scored included: a committee member learns only the round's scalars (its own
   it could compute anyway), never a vector.
3. **Answers** (each committee member, :func:`fedchain.crypto.answer_scalar_requests`): decrypt every request with
   the federation's secret context and return the scalars, signed. Nothing else: see "Not an
   oracle" below.
4. **Reconcile** (coordinator, :func:`reconcile`): all committee members must answer with the
   expected counts, and every pair of answers must agree within ``rel_tolerance * (|x| +
   max|x|) + abs_tolerance``. Honest members decrypt the *same* ciphertext with the *same* key, and
   CKKS decryption and decoding are deterministic: honest answers agree to floating-point rounding
   (measured: bit-identical), so the default tolerance (1e-6 relative) is tight. The agreed value is
   the mean of the answers.
5. **Disagreement** (a missing, refused, malformed, unsigned or differing answer): the round is
   *flagged*. The scores cannot be trusted, so rewards for the round are withheld: every score is
   0, which makes the ledger pay the whole pool to the treasury. The norm check is done
   conservatively: a member is excluded if *any* committee answer puts it above the bound
   (:meth:`CommitteeVerdict.excluded`), so a lying committee member can only exclude more, never
   let an oversized update through an honest member's answer.

Exchanges: with the norm bound on, exchange 1 reveals the squared norms alone; the coordinator
sums the kept ciphertexts again after exclusions and, when the scorer needs them, exchange 2
reveals the kept members' ``dots`` and ``agg_sq_norm`` against that kept sum
(``fedchain.crypto.build_scalar_requests(..., sq_norms=False)``). With the bound off, exchange 1 carries all three
kinds. ``dots`` and ``||S||^2`` are therefore always taken against the sum members decrypt. Every
value revealed is an inner product involving the full kept sum or one member with itself:
**never the sum minus one member**, which would expose that member's update. The cosine score's
"others' aggregate" ``S - a_i`` is used only through ``<a_i, S> - ||a_i||^2`` and
``||S||^2 - 2<a_i, S> + ||a_i||^2``, scalars of the kind above.

Not an oracle (issue 14). A committee member decrypts only a :class:`CommitteeRequest` that passes
:func:`check_request`: the current round (the round it was last told to train in), each exchange
once, distinct addresses, counts equal to the labels, ``2 <= min-cohort <= k <= cohort`` (the
cohort announced by the round's train instruction): at most ``2k + 1`` scalars per round. Anything
else is refused (:class:`CommitteeRequestError`, the Flower error ``ERROR_COMMITTEE_REFUSED``)
before anything is decrypted. Within the quota a malicious coordinator can still put any linear
functional of its ciphertexts into a slot, up to ``2k + 1`` scalars per round and committee member.
That is made detectable: committee members sign their answers
(:func:`fedchain.identity.signing.scalars_digest`); every member of the round receives the
:class:`RevealedScalars` with the signed answers and their :attr:`~RevealedScalars.commitment`
(recorded on chain as ``RoundRecord.scalars_commitment``), recomputes the scalars that concern it
from its own ``a_i`` and the decrypted sum (:func:`check_own_scalars`, tolerance
:data:`VERIFY_REL_TOLERANCE` relative against a measured honest error of 1.9e-5), and signs a
dispute on a mismatch, which flags the round on chain and withholds its rewards. What stays
undetected: information hidden within the tolerance band, and rounds whose revealed scalars a
member is never shown (a committee member disputes a round that hides its own answers).

Known limits: a decrypted CKKS result carries noise correlated with the inputs; revealing only
inner products keeps that leakage to scalars. Packed scalars must stay below ``2**48``
(``SCORING.max_magnitude``); an overflowing request fails to decrypt on every committee member
(:class:`~fedchain.errors.CryptoError`) and the round is flagged.

Example:
    >>> select_committee(["m0", "m1", "m2", "m3"], 2, seed=0, server_round=1)
    ['m1', 'm3']
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import numpy as np

from fedchain._validation import Interval
from fedchain.contribution.base import InnerProducts
from fedchain.contribution.bounds import norm_bound_filter
from fedchain.errors import CommitteeRequestError, ConfigError, SerializationError
from fedchain.types import ScalarRequest

__all__ = [
    "DEFAULT_ABS_TOLERANCE",
    "DEFAULT_COMMITTEE_SIZE",
    "DEFAULT_REL_TOLERANCE",
    "EXCHANGES",
    "MIN_COHORT",
    "REQUEST_KINDS",
    "VERIFY_ABS_TOLERANCE",
    "VERIFY_CROSSTALK",
    "VERIFY_REL_TOLERANCE",
    "CommitteeRequest",
    "CommitteeRequestError",
    "CommitteeVerdict",
    "RevealedExchange",
    "RevealedScalars",
    "ScalarRequest",
    "SignedAnswer",
    "canonical_json",
    "check_own_scalars",
    "check_request",
    "decode_answer",
    "reconcile",
    "request_shape",
    "select_committee",
    "withheld_scores",
]

log = logging.getLogger(__name__)

#: Committee members drawn per round (DESIGN.md section 4).
DEFAULT_COMMITTEE_SIZE = 2
#: Relative tolerance between two committee answers (scaled by the value and the request's largest).
DEFAULT_REL_TOLERANCE = 1e-6
#: Absolute tolerance between two committee answers.
DEFAULT_ABS_TOLERANCE = 1e-9
#: Request kinds, in the order :func:`fedchain.crypto.build_scalar_requests` emits them.
REQUEST_KINDS = ("sq_norms", "dots", "agg_sq_norm")
#: Exchanges a committee member answers per round: 1 (the squared norms, with the dot products
#: when no norm-bound exclusion can follow), 2 (the dot products against the kept sum).
EXCHANGES = (1, 2)
#: Fewest members whose scalars a committee member reveals in one exchange: with one, the
#: "aggregate" is that member's update.
MIN_COHORT = 2
#: Tolerance of a member's check of a revealed scalar ``x`` against its own recomputation ``y``:
#: ``|x - y| <= VERIFY_REL_TOLERANCE * max(|x|, |y|) + VERIFY_CROSSTALK * m + VERIFY_ABS_TOLERANCE``
#: with ``m`` the largest revealed value of the same ciphertext. Measured honest error (SCORING,
#: see docs/scoring.md): relative 1.9e-5, cross-talk below 1e-9 of ``m``; the margins are 50x and 100x.
VERIFY_REL_TOLERANCE = 1e-3
#: Packing cross-talk allowance, times the largest value of the same ciphertext.
VERIFY_CROSSTALK = 1e-7
#: Absolute floor of the member's check (fresh CKKS noise times the other operand).
VERIFY_ABS_TOLERANCE = 1e-2

K = TypeVar("K", bound=Hashable)


def decode_answer(requests: Sequence[ScalarRequest], answer: Sequence[Sequence[float]]) -> InnerProducts:
    """Map one answer (a list of scalars per request) back to named inner products.

    Raises:
        ConfigError: when the answer's shape does not match the requests or a value is not finite.
    """
    if len(answer) != len(requests):
        raise ConfigError("answer", f"{len(requests)} lists of scalars (one per request)", len(answer))
    sq_norms: dict[str, float] = {}
    dots: dict[str, float] = {}
    agg: float | None = None
    for position, (request, values) in enumerate(zip(requests, answer, strict=True)):
        if len(values) != request.count:
            raise ConfigError(f"answer[{position}]", f"{request.count} scalars", len(values))
        if not all(isinstance(v, int | float) and math.isfinite(v) for v in values):
            raise ConfigError(f"answer[{position}]", "finite numbers", list(values))
        if request.kind == "sq_norms":
            sq_norms.update(zip(request.addresses, map(float, values), strict=True))
        elif request.kind == "dots":
            dots.update(zip(request.addresses, map(float, values), strict=True))
        elif request.kind == "agg_sq_norm":
            agg = float(values[0])
        else:
            raise ConfigError("kind", f"one of {', '.join(map(repr, REQUEST_KINDS))}", request.kind)
    return InnerProducts(sq_norms=sq_norms, dots=dots, agg_sq_norm=agg)


@dataclass(frozen=True)
class CommitteeVerdict(Generic[K]):
    """What the committee established for one round.

    Attributes:
        products: the agreed inner products (mean of the answers); None when flagged.
        disagreement: True when the round is flagged: its rewards are withheld.
        reason: why it was flagged ("" when not).
        answers: each committee member's decoded answer (well-formed answers only).
    """

    products: InnerProducts | None
    disagreement: bool
    reason: str = ""
    answers: Mapping[K, InnerProducts] = field(default_factory=dict)

    def excluded(self, num_examples: Mapping[str, int], bound: float | Mapping[str, float]) -> list[str]:
        """Members above the norm bound: by the agreed norms, or, when flagged, by *any* answer.

        Args:
            num_examples: ``n_i`` per member, in order.
            bound: the norm bound on ``||delta_i||``, for everyone or per member (0: off).

        Returns:
            Excluded addresses, in the order of ``num_examples``.
        """
        sources = [self.products] if self.products is not None else list(self.answers.values())
        flagged: set[str] = set()
        for products in sources:
            flagged.update(norm_bound_filter(products.sq_norms, num_examples, bound))
        return [address for address in num_examples if address in flagged]


def _first_difference(x: Sequence[float], y: Sequence[float], rel_tolerance: float, abs_tolerance: float) -> int | None:
    """Index of the first pair of values that disagree beyond the tolerance, or None."""
    scale = max((abs(v) for v in (*x, *y)), default=0.0)
    for k, (p, q) in enumerate(zip(x, y, strict=True)):
        if abs(p - q) > rel_tolerance * (max(abs(p), abs(q)) + scale) + abs_tolerance:
            return k
    return None


def reconcile(
    requests: Sequence[ScalarRequest],
    answers: Mapping[K, Sequence[Sequence[float]] | None],
    *,
    rel_tolerance: float = DEFAULT_REL_TOLERANCE,
    abs_tolerance: float = DEFAULT_ABS_TOLERANCE,
) -> CommitteeVerdict[K]:
    """Accept the committee's scalars when every member answered and all answers agree.

    Args:
        requests: the round's requests, as sent.
        answers: per committee member, its answer (one list of scalars per request), or None when
            it did not answer (an error reply, a timeout).
        rel_tolerance: relative tolerance, scaled by each value plus the largest value of its request.
        abs_tolerance: absolute tolerance.

    Returns:
        The verdict: agreed products, or ``disagreement=True`` with the reason.

    Raises:
        ConfigError: for a negative tolerance.

    Example:
        >>> req = [ScalarRequest("agg_sq_norm", (), b"")]
        >>> reconcile(req, {"m1": [[4.0]], "m2": [[4.0]]}).products.agg_sq_norm
        4.0
        >>> reconcile(req, {"m1": [[4.0]], "m2": [[5.0]]}).reason
        "committee members 'm1' and 'm2' disagree on agg_sq_norm (4 vs 5)"
    """
    Interval(float, 0, None, closed="left").check("rel_tolerance", rel_tolerance)
    Interval(float, 0, None, closed="left").check("abs_tolerance", abs_tolerance)
    decoded: dict[K, InnerProducts] = {}
    raw: dict[K, Sequence[Sequence[float]]] = {}
    problems: list[str] = []
    for member, answer in answers.items():
        if answer is None:
            problems.append(f"committee member {member!r} did not answer")
            continue
        try:
            decoded[member] = decode_answer(requests, answer)
        except ConfigError as exc:
            problems.append(f"committee member {member!r} sent a malformed answer: {exc}")
            continue
        raw[member] = answer
    if not answers:
        problems.append("no committee member was asked")
    members = list(raw)
    for other in members[1:]:
        first = members[0]
        for request, x, y in zip(requests, raw[first], raw[other], strict=True):
            k = _first_difference(x, y, rel_tolerance, abs_tolerance)
            if k is not None:
                whose = f"{request.addresses[k]}: " if request.addresses else ""
                detail = f"{whose}{x[k]:g} vs {y[k]:g}"
                problems.append(f"committee members {first!r} and {other!r} disagree on {request.kind} ({detail})")
                break
    if problems:
        reason = "; ".join(problems)
        log.warning("decrypt committee flagged the round: %s", reason)
        return CommitteeVerdict(products=None, disagreement=True, reason=reason, answers=decoded)
    count = len(members)
    mean = [
        [sum(values) / count for values in zip(*columns, strict=True)] for columns in zip(*raw.values(), strict=True)
    ]
    return CommitteeVerdict(products=decode_answer(requests, mean), disagreement=False, reason="", answers=decoded)


def select_committee(members: Sequence[K], size: int, *, seed: int, server_round: int) -> list[K]:
    """Draw the round's decrypt committee, deterministically and verifiably.

    Members are ranked by ``sha256("fedchain-committee:{seed}:{server_round}:{member!r}")`` and the
    first ``size`` taken; anyone with the seed can recompute the draw. Nobody is excluded (see the
    module docstring). With fewer members than ``size``, all of them serve.

    Args:
        members: candidate ids (addresses or node ids), each with a stable ``repr``.
        size: committee size, >= 1.
        seed: the run seed.
        server_round: the round.

    Returns:
        The committee, in draw order.

    Raises:
        ConfigError: when ``size`` is not a positive int or members repeat.
    """
    Interval(int, 1, None, closed="left").check("committee_size", size)
    if len(set(members)) != len(members):
        raise ConfigError("members", "distinct committee candidates", list(members))

    def rank(member: K) -> bytes:
        return hashlib.sha256(f"fedchain-committee:{seed}:{server_round}:{member!r}".encode()).digest()

    if size > len(members):
        log.info("committee of %d requested, %d members available: all serve", size, len(members))
    return sorted(members, key=rank)[:size]


def withheld_scores(num_examples: Mapping[str, int]) -> dict[str, float]:
    """Scores of a flagged round: all zero, so the round's pool goes to the treasury.

    Example:
        >>> withheld_scores({"a": 3, "b": 4})
        {'a': 0.0, 'b': 0.0}
    """
    return dict.fromkeys(num_examples, 0.0)


# ------------------------------------------------------------------ a committee that is not an oracle


def canonical_json(value: Any) -> bytes:
    """The canonical encoding hashed by commitments and answer signatures.

    JSON with sorted keys, no whitespace, no NaN, floats in Python's shortest round-trip form.

    Example:
        >>> canonical_json({"b": [1.5, 2], "a": "x"})
        b'{"a":"x","b":[1.5,2]}'
    """
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def _keccak_hex(data: bytes) -> str:
    from eth_utils import keccak

    return "0x" + keccak(data).hex()


def _label(request: ScalarRequest) -> dict[str, Any]:
    return {
        "kind": request.kind,
        "addresses": list(request.addresses),
        "ciphertext": "0x" + hashlib.sha256(request.ciphertext).hexdigest(),
    }


@dataclass(frozen=True)
class CommitteeRequest:
    """One exchange's request to a committee member: round, exchange and labelled ciphertexts.

    Attributes:
        server_round: the round the scalars belong to.
        exchange: 1 or 2 (:data:`EXCHANGES`).
        requests: the packed ciphertexts, each with its kind and the addresses its slots concern.
    """

    server_round: int
    exchange: int
    requests: tuple[ScalarRequest, ...]

    def labels(self) -> list[dict[str, Any]]:
        """Kind, addresses and sha256 of each ciphertext: what the request hash covers."""
        return [_label(request) for request in self.requests]

    @property
    def request_hash(self) -> str:
        """keccak256 of the canonical encoding of round, exchange and labels (``0x``-hex)."""
        return _request_hash(self.server_round, self.exchange, self.labels())

    @property
    def scalar_count(self) -> int:
        """Scalars the exchange reveals."""
        return sum(request.count for request in self.requests)


def _request_hash(server_round: int, exchange: int, labels: Sequence[Mapping[str, Any]]) -> str:
    return _keccak_hex(canonical_json({"round": server_round, "exchange": exchange, "requests": list(labels)}))


def request_shape(requests: Sequence[ScalarRequest] | Sequence[Mapping[str, Any]]) -> dict[str, list[str]]:
    """Addresses per kind (``agg_sq_norm``: one ``""`` per ciphertext): what a request reveals about whom."""
    shape: dict[str, list[str]] = {kind: [] for kind in REQUEST_KINDS}
    for request in requests:
        kind = request.kind if isinstance(request, ScalarRequest) else str(request["kind"])
        addresses = request.addresses if isinstance(request, ScalarRequest) else tuple(request["addresses"])
        if kind not in shape:
            raise CommitteeRequestError(f"unknown scalar kind {kind!r}: one of {', '.join(REQUEST_KINDS)}")
        shape[kind].extend(addresses if kind != "agg_sq_norm" else [""])
    return shape


def check_request(
    request: CommitteeRequest,
    *,
    current_round: int,
    cohort: int,
    answered: Mapping[int, Mapping[str, Sequence[str]]],
    min_cohort: int = MIN_COHORT,
) -> None:
    """What a committee member checks before it decrypts anything (pure; the quota rules).

    A member answers only:

    * the **current round** (the round it was last instructed to train in), each exchange once;
    * **exchange 1**: ``sq_norms`` of ``k`` distinct addresses, optionally with ``dots`` of
      the same addresses and one ``agg_sq_norm``: at most ``2k + 1`` scalars;
    * **exchange 2**: ``dots`` of distinct addresses plus one ``agg_sq_norm`` (``k + 1`` scalars),
      and, when this member answered exchange 1, only after squared norms alone and for a
      subset of its addresses;
    * ``MIN_COHORT <= min_cohort <= k <= cohort``, with ``cohort`` the number of members the
      round's train instruction announced.

    Every ciphertext's count equals its labels (``len(addresses)``, 1 for ``agg_sq_norm``); the
    decryption itself then refuses a ciphertext holding any other number of values.

    Args:
        request: the labelled request.
        current_round: the round this member last trained in (0: none).
        cohort: members the round's train instruction announced.
        answered: exchanges already answered this round: exchange -> :func:`request_shape`.
        min_cohort: this member's own smallest cohort (at least :data:`MIN_COHORT`).

    Raises:
        CommitteeRequestError: naming the rule broken.

    Example:
        >>> sq = ScalarRequest("sq_norms", ("a", "b"), b"")
        >>> check_request(CommitteeRequest(1, 1, (sq,)), current_round=1, cohort=2, answered={})
        >>> check_request(CommitteeRequest(1, 1, (ScalarRequest("sq_norms", ("a",), b""),)),
        ...               current_round=1, cohort=2, answered={})
        Traceback (most recent call last):
        ...
        fedchain.errors.CommitteeRequestError: 1 member in the request: at least 2 are needed
    """
    if current_round <= 0 or request.server_round != current_round:
        raise CommitteeRequestError(
            f"round {request.server_round} is not the current round ({current_round}): "
            "a committee member answers only the round it was last instructed to train in"
        )
    if request.exchange not in EXCHANGES:
        raise CommitteeRequestError(f"exchange {request.exchange} is not one of {EXCHANGES}")
    if request.exchange in answered:
        raise CommitteeRequestError(f"exchange {request.exchange} of round {request.server_round} was already answered")
    if not request.requests:
        raise CommitteeRequestError("the request holds no ciphertext")
    for request_ in request.requests:
        if request_.kind == "agg_sq_norm" and request_.addresses:
            raise CommitteeRequestError("agg_sq_norm concerns the sum: it names no address")
        if request_.kind != "agg_sq_norm" and not request_.addresses:
            raise CommitteeRequestError(f"a {request_.kind} ciphertext names no address")
    shape = request_shape(request.requests)
    sq, dots, aggs = shape["sq_norms"], shape["dots"], len(shape["agg_sq_norm"])
    for kind in ("sq_norms", "dots"):
        if len(set(shape[kind])) != len(shape[kind]):
            raise CommitteeRequestError(f"an address repeats in the {kind} of the request")
    if request.exchange == 1:
        if not sq:
            raise CommitteeRequestError("exchange 1 must hold the squared norms")
        if (dots or aggs) and (set(dots) != set(sq) or aggs != 1):
            raise CommitteeRequestError(
                "exchange 1 holds squared norms, optionally with the dot products of the same members and one ||S||^2"
            )
        members = sq
    else:
        if sq or not dots or aggs != 1:
            raise CommitteeRequestError("exchange 2 holds the dot products and one ||S||^2 only")
        first = answered.get(1)
        if first is not None:
            if first.get("dots"):
                raise CommitteeRequestError(
                    "exchange 2 follows only an exchange 1 of squared norms alone (dot products are revealed once)"
                )
            if not set(dots) <= set(first.get("sq_norms", ())):
                raise CommitteeRequestError("exchange 2 concerns members that exchange 1 did not")
        members = dots
    k = len(members)
    floor = max(MIN_COHORT, min_cohort)
    if k < floor:
        raise CommitteeRequestError(f"{k} member{'s' if k != 1 else ''} in the request: at least {floor} are needed")
    if k > cohort:
        raise CommitteeRequestError(f"{k} members in the request, but the round's train instruction announced {cohort}")


@dataclass(frozen=True)
class SignedAnswer:
    """One committee member's signed answer to one exchange.

    Attributes:
        signer: the committee member's checksummed address.
        values: one tuple of scalars per ciphertext, in request order.
        signature: EIP-191 signature (``0x``-hex) of
            :func:`fedchain.identity.signing.scalars_digest` over the round, exchange, request hash
            and values, under the signing domain of the round's train instruction.
    """

    signer: str
    values: tuple[tuple[float, ...], ...]
    signature: str

    def to_json(self) -> dict[str, Any]:
        """JSON-safe form (floats exact)."""
        return {"signer": self.signer, "values": [list(v) for v in self.values], "signature": self.signature}


@dataclass(frozen=True)
class RevealedExchange:
    """What one exchange revealed: its labelled requests and the committee's signed answers."""

    exchange: int
    labels: tuple[Mapping[str, Any], ...]
    answers: tuple[SignedAnswer, ...]

    def request_hash(self, server_round: int) -> str:
        """The request hash every answer of this exchange must have signed."""
        return _request_hash(server_round, self.exchange, self.labels)

    def to_json(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "exchange": self.exchange,
            "requests": [dict(label) for label in self.labels],
            "answers": [answer.to_json() for answer in self.answers],
        }


@dataclass(frozen=True)
class RevealedScalars:
    """Every scalar the committee revealed in a round, with the signed answers: what members check.

    The coordinator sends it to every member of the round in the evaluate instruction and
    records :attr:`commitment` on chain (``RoundRecord.scalars_commitment``).

    Example:
        >>> revealed = RevealedScalars(3, ())
        >>> RevealedScalars.from_json(revealed.to_json()) == revealed
        True
        >>> revealed.commitment[:10]
        '0xe7119eff'
    """

    server_round: int
    exchanges: tuple[RevealedExchange, ...]

    def to_json(self) -> dict[str, Any]:
        """JSON-safe form; :attr:`commitment` hashes its canonical encoding."""
        return {"round": self.server_round, "exchanges": [exchange.to_json() for exchange in self.exchanges]}

    @property
    def commitment(self) -> str:
        """keccak256 of :func:`canonical_json` of :meth:`to_json` (``0x``-hex)."""
        return _keccak_hex(canonical_json(self.to_json()))

    @property
    def scalar_count(self) -> int:
        """Distinct scalars revealed (one per slot per exchange; committee members repeat them)."""
        return sum(len(label["addresses"]) or 1 for exchange in self.exchanges for label in exchange.labels)

    @classmethod
    def from_json(cls, data: Any) -> RevealedScalars:
        """Parse and validate what :meth:`to_json` wrote.

        Raises:
            SerializationError: when a field is missing, mistyped or the shapes disagree.
        """
        try:
            exchanges = []
            for entry in data["exchanges"]:
                labels = tuple(
                    {
                        "kind": str(label["kind"]),
                        "addresses": [str(a) for a in label["addresses"]],
                        "ciphertext": str(label["ciphertext"]),
                    }
                    for label in entry["requests"]
                )
                counts = [len(label["addresses"]) or 1 for label in labels]
                answers = []
                for answer in entry["answers"]:
                    values = tuple(tuple(float(v) for v in row) for row in answer["values"])
                    if [len(row) for row in values] != counts:
                        raise ValueError(f"answer of {answer['signer']} does not match the requests' counts")
                    if not all(math.isfinite(v) for row in values for v in row):
                        raise ValueError("a revealed scalar is not finite")
                    answers.append(SignedAnswer(str(answer["signer"]), values, str(answer["signature"])))
                exchanges.append(RevealedExchange(int(entry["exchange"]), labels, tuple(answers)))
            return cls(int(data["round"]), tuple(exchanges))
        except (KeyError, TypeError, ValueError) as exc:
            raise SerializationError(f"malformed revealed scalars: {type(exc).__name__}: {exc}") from exc


def _within(x: float, y: float, largest: float) -> bool:
    tolerance = VERIFY_REL_TOLERANCE * max(abs(x), abs(y)) + VERIFY_CROSSTALK * largest + VERIFY_ABS_TOLERANCE
    return abs(x - y) <= tolerance


def check_own_scalars(
    revealed: RevealedScalars, *, address: str, update: np.ndarray | None, total: np.ndarray | None
) -> list[str]:
    """A member's check of every revealed scalar that concerns it (pure).

    Each revealed ``||a_i||^2`` of this member must match its own ``update`` (``a_i = n_i delta_i``),
    each ``<a_i, S>`` must match its update against ``total`` (the round's decrypted sum ``S``),
    and every ``||S||^2`` must match ``total``, within the documented tolerance
    (:data:`VERIFY_REL_TOLERANCE`, :data:`VERIFY_CROSSTALK`, :data:`VERIFY_ABS_TOLERANCE`). A
    scalar whose operand the member lacks (no update kept, no sum) is not checked.

    Returns:
        One line per mismatch (empty: all checked scalars agree).

    Example:
        >>> a, s = np.array([3.0, 4.0]), np.array([6.0, 8.0])
        >>> labels = ({"kind": "sq_norms", "addresses": ["me", "x"], "ciphertext": ""},)
        >>> good = RevealedScalars(1, (RevealedExchange(1, labels, (SignedAnswer("c", ((25.0, 9.0),), ""),)),))
        >>> check_own_scalars(good, address="me", update=a, total=s)
        []
        >>> bad = RevealedScalars(1, (RevealedExchange(1, labels, (SignedAnswer("c", ((3.0, 9.0),), ""),)),))
        >>> check_own_scalars(bad, address="me", update=a, total=s)
        ['exchange 1: sq_norms from c is 3, recomputed 25']
    """
    own = {
        "sq_norms": float(update @ update) if update is not None else None,
        "dots": float(update @ total) if update is not None and total is not None else None,
        "agg_sq_norm": float(total @ total) if total is not None else None,
    }
    problems: list[str] = []
    for exchange in revealed.exchanges:
        for position, label in enumerate(exchange.labels):
            kind, addresses = label["kind"], list(label["addresses"])
            expected = own.get(kind)
            if expected is None:
                continue
            slot = 0 if kind == "agg_sq_norm" else (addresses.index(address) if address in addresses else None)
            if slot is None:
                continue
            for answer in exchange.answers:
                row = answer.values[position]
                largest = max((abs(v) for v in row), default=0.0)
                if not _within(row[slot], expected, largest):
                    problems.append(
                        f"exchange {exchange.exchange}: {kind} from {answer.signer} is {row[slot]:.6g}, "
                        f"recomputed {expected:.6g}"
                    )
    return problems
