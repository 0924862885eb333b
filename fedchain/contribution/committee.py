"""The decrypt committee: scoring and norm checks under HE with only scalars ever revealed.

Under HE the coordinator holds ``Enc(a_i)`` with ``a_i = n_i * delta_i`` for every accepted member
(SCORING parameters) and the encrypted sum ``Enc(S)``, but no secret key. The protocol, one round:

1. **Requests** (coordinator, :func:`build_scalar_requests`): encrypted inner products with
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
3. **Answers** (each committee member, :func:`answer_scalar_requests`): decrypt every request with
   the federation's secret context and return the scalars. Nothing else.
4. **Reconcile** (coordinator, :func:`reconcile`): all committee members must answer with the
   expected counts, and every pair of answers must agree within ``rel_tolerance * (|x| +
   max|x|) + abs_tolerance``. Honest members decrypt the *same* ciphertext with the *same* key, and
   CKKS decryption and decoding are deterministic: honest answers agree to floating-point rounding
   (measured: bit-identical), so the default tolerance (1e-6 relative) is tight. The agreed value is
   the mean of the answers.
5. **Disagreement** (a missing, malformed or differing answer): the round is *flagged*. The scores
   cannot be trusted, so rewards for the round are withheld: every score is 0, which makes the
   ledger pay the whole pool to the treasury. The norm check is done conservatively: a member is
   excluded if *any* committee answer puts it above the bound
   (:meth:`CommitteeVerdict.excluded`), so a lying committee member can only exclude more, never
   let an oversized update through an honest member's answer.

Norm bound under HE: when the agreed ``sq_norms`` exclude members, the coordinator sums the
ciphertexts again without them and asks the committee for the ``dots`` and ``agg_sq_norm`` of the
kept members against the new sum (``build_scalar_requests(..., sq_norms=False)``): two exchanges in
such a round, one otherwise. Every value revealed is an inner product involving the full kept
sum or one member with itself: **never the sum minus one member**, which would expose that
member's update. The cosine score's "others' aggregate" ``S - a_i`` is used only through
``<a_i, S> - ||a_i||^2`` and ``||S||^2 - 2<a_i, S> + ||a_i||^2``, scalars of the kind above.

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
import logging
import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from fedchain._validation import Interval
from fedchain.contribution.base import InnerProducts
from fedchain.contribution.bounds import norm_bound_filter
from fedchain.errors import ConfigError

__all__ = [
    "DEFAULT_ABS_TOLERANCE",
    "DEFAULT_COMMITTEE_SIZE",
    "DEFAULT_REL_TOLERANCE",
    "REQUEST_KINDS",
    "CommitteeVerdict",
    "ScalarRequest",
    "answer_scalar_request",
    "answer_scalar_requests",
    "build_scalar_requests",
    "decode_answer",
    "reconcile",
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
#: Request kinds, in the order :func:`build_scalar_requests` emits them.
REQUEST_KINDS = ("sq_norms", "dots", "agg_sq_norm")

K = TypeVar("K", bound=Hashable)


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
        """Scalars the ciphertext holds (what :func:`answer_scalar_request` must be told)."""
        return len(self.addresses) or 1


def _slots(public_ctx: Any) -> int:
    from fedchain import crypto

    return int(crypto.context_slot_count(public_ctx))


def build_scalar_requests(
    public_ctx: Any,
    member_chunks: Mapping[str, Sequence[bytes]],
    sum_chunks: Sequence[bytes] | None,
    *,
    sq_norms: bool = True,
) -> list[ScalarRequest]:
    """Compute and pack the encrypted inner products the committee will decrypt (coordinator side).

    Args:
        public_ctx: the coordinator's SCORING public context (relinearization and Galois keys).
        member_chunks: ``Enc(a_i)`` chunks per member address, in the round's member order.
        sum_chunks: ``Enc(S)`` chunks, the sum over exactly ``member_chunks``; None requests the
            squared norms only.
        sq_norms: include the ``sq_norms`` requests (False when asking again after exclusions).

    Returns:
        Requests in the documented order: ``sq_norms`` packs, ``dots`` packs, ``agg_sq_norm``.
        About ``2 * n + 1`` encrypted inner products (0.15 s each at 100k values, measured).

    Raises:
        ConfigError: when nothing would be requested.
        CryptoError: when the context lacks evaluation keys or chunk counts differ.
        SerializationError: when a chunk is malformed.

    Example:
        >>> import numpy as np
        >>> from fedchain import crypto
        >>> ctx = crypto.create_secret_context(crypto.SCORING)
        >>> a, b = crypto.encrypt_update(ctx, np.ones(3)), crypto.encrypt_update(ctx, np.full(3, 2.0))
        >>> total = crypto.sum_encrypted(ctx, [a, b], expected_chunks=1)
        >>> [(r.kind, r.count) for r in build_scalar_requests(ctx, {"a": a, "b": b}, total)]
        [('sq_norms', 2), ('dots', 2), ('agg_sq_norm', 1)]
    """
    from fedchain import crypto

    addresses = list(member_chunks)
    if not addresses or (not sq_norms and sum_chunks is None):
        raise ConfigError("member_chunks", "at least one member and something to request", addresses)
    slots = _slots(public_ctx)
    requests: list[ScalarRequest] = []

    def packed(kind: str, other: Sequence[bytes] | None) -> None:
        for start in range(0, len(addresses), slots):
            group = addresses[start : start + slots]
            dots = [crypto.encrypted_dot(public_ctx, member_chunks[a], other or member_chunks[a]) for a in group]
            requests.append(ScalarRequest(kind, tuple(group), crypto.pack_scalars(public_ctx, dots)))

    if sq_norms:
        packed("sq_norms", None)
    if sum_chunks is not None:
        packed("dots", sum_chunks)
        requests.append(ScalarRequest("agg_sq_norm", (), crypto.encrypted_dot(public_ctx, sum_chunks, sum_chunks)))
    log.debug("built %d scalar requests for %d members", len(requests), len(addresses))
    return requests


def answer_scalar_request(secret_ctx: Any, ciphertext: bytes, count: int) -> list[float]:
    """Decrypt one request (committee member side): the scalars, nothing else.

    Args:
        secret_ctx: the federation's secret SCORING context, held by members only.
        ciphertext: ``ScalarRequest.ciphertext``.
        count: ``ScalarRequest.count``.

    Raises:
        CryptoError: without a secret key, or when the scalars are out of the decodable range.
        SerializationError: when the ciphertext is malformed or holds another count.
    """
    from fedchain import crypto

    return list(crypto.decrypt_scalars(secret_ctx, ciphertext, count))


def answer_scalar_requests(secret_ctx: Any, requests: Sequence[ScalarRequest]) -> list[list[float]]:
    """Decrypt every request of a round, in order (what a committee member replies).

    Example:
        >>> import numpy as np
        >>> from fedchain import crypto
        >>> ctx = crypto.create_secret_context(crypto.SCORING)
        >>> a = crypto.encrypt_update(ctx, np.full(4, 0.5))
        >>> [[round(x, 3) for x in v] for v in answer_scalar_requests(ctx, build_scalar_requests(ctx, {"a": a}, a))]
        [[1.0], [1.0], [1.0]]
    """
    return [answer_scalar_request(secret_ctx, request.ciphertext, request.count) for request in requests]


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
