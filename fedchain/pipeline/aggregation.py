"""Bound and aggregate one round's updates: plaintext, or ciphertexts with the decrypt committee.

:class:`PlainAggregation` and :class:`EncryptedAggregation` are the two
:class:`~fedchain.pipeline.values.AggregationStrategy` implementations the coordinator chooses
between once per run; :func:`ask_committee` is one exchange with the committee, over its port.

Each takes the round's updates one at a time as the replies arrive (``start(round)`` ->
:class:`~fedchain.pipeline.values.RunningAggregation`). Under HE each ciphertext joins a running
encrypted sum at once and its bytes are dropped, so the coordinator's memory does not grow with the
number of members; when the committee needs members' ciphertexts again (norm bound, scalar scorers)
they wait in a :class:`~fedchain.pipeline.spool.CiphertextSpool` on disk, read back one at a time.
Plaintext updates stay in memory until the strategy's Flower aggregation takes them all.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from fedchain.config import FedChainConfig
from fedchain.contribution import InnerProducts, norm_bound_filter
from fedchain.contribution.bounds import dp_update_bound
from fedchain.contribution.committee import (
    CommitteeRequest,
    RevealedExchange,
    RevealedScalars,
    ScalarRequest,
    SignedAnswer,
    reconcile,
    select_committee,
)
from fedchain.errors import CryptoError, SerializationError, StrategyError, UpdateRejectedError
from fedchain.identity.signing import SigningDomain, recover_signer, scalars_digest
from fedchain.pipeline.spool import CiphertextSpool
from fedchain.pipeline.values import (
    AcceptedUpdate,
    Aggregation,
    CommitteeExchange,
    CommitteePort,
    merged_counts,
)
from fedchain.serialization import Weights, check_weights, flatten, model_hash
from fedchain.types import (
    Aggregate,
    MemberRound,
)

__all__ = ["EncryptedAggregation", "PlainAggregation", "ask_committee", "member_norm_bounds"]

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------- 2. bound
def member_norm_bounds(members: Sequence[MemberRound], *, config: FedChainConfig, num_params: int) -> dict[str, float]:
    """Each member's bound on ``||delta_i||``: ``norm-bound``, raised for DP members.

    A DP member's bound is at least what DP-SGD with its declared parameters can produce
    (:func:`~fedchain.contribution.bounds.dp_update_bound`), when those match the federation's.
    The DP check is the one place the coordinator's side asks ``fedchain.privacy`` (Opacus).
    """
    if not config.dp:
        return dict.fromkeys((m.address for m in members), config.norm_bound)
    from fedchain.privacy.config import federation_dp_config
    from fedchain.privacy.epsilon import declared_dp_problem  # no torch, no Opacus (RDP)

    dp_config = federation_dp_config(config)
    bounds: dict[str, float] = {}
    for member in members:
        bound = config.norm_bound
        if member.dp is not None:
            problem = declared_dp_problem(
                member.dp,
                num_examples=member.num_examples,
                config=dp_config,
                epochs=config.dp_local_epochs,
                batch_size=config.dp_batch_size,
            )
            if problem is None:
                dp_bound = dp_update_bound(
                    member.dp,
                    num_examples=member.num_examples,
                    learning_rate=config.dp_learning_rate,
                    momentum=config.momentum,
                    num_params=num_params,
                )
                bound = max(bound, dp_bound)
            else:
                log.warning("member %s: no DP allowance on the norm bound (%s)", member.address, problem)
        bounds[member.address] = bound
    return bounds


def _exclude(
    server_round: int, updates: Sequence[AcceptedUpdate], excluded: Sequence[str]
) -> tuple[list[AcceptedUpdate], tuple[MemberRound, ...], dict[str, int]]:
    """Drop updates above the norm bound; they stay in the round's records with score 0."""
    if not excluded:
        return list(updates), (), {}
    dropped = set(excluded)
    out = []
    for update in updates:
        if update.member.address in dropped:
            log.warning("round %d: %s exceeds the norm bound: left out", server_round, update.member.address)
            out.append(replace(update.member, status="rejected:norm-bound", score=0.0))
    kept = [u for u in updates if u.member.address not in dropped]
    return kept, tuple(out), {"norm-bound": len(dropped)}


# --------------------------------------------------------------------------------------- 3. aggregate
@dataclass(frozen=True)
class PlainAggregation:
    """Plaintext mode: the norm bound on plaintext deltas, then the strategy's Flower aggregation.

    Attributes:
        config: the run configuration (``norm-bound``, ``min-members``, DP settings).
        model: the global model the round starts from.
        combine: the strategy's aggregation, ``(round, [(weights, n_i)]) -> weights`` (raises
            ``StrategyError`` or ``SerializationError`` when it cannot aggregate).
    """

    config: FedChainConfig
    model: Weights
    combine: Callable[[int, list[tuple[Weights, int]]], Weights]

    def start(self, server_round: int) -> _CollectedRound:
        """Collect the round's updates as they arrive; :meth:`aggregate` them all when they are in.

        Flower's strategies (mean, median, trimmed mean) take every update at once.
        """
        return _CollectedRound(self, server_round)

    def aggregate(self, server_round: int, updates: Sequence[AcceptedUpdate]) -> Aggregation:
        """Bound, then aggregate with the strategy (see :class:`AggregationStrategy`)."""
        flat_base = flatten(self.model)
        deltas = {u.member.address: flatten(u.weights or {}) - flat_base for u in updates}
        counts = {u.member.address: u.member.num_examples for u in updates}
        too_large: list[str] = []
        if self.config.norm_bound > 0:
            sq_norms = {address: float(counts[address] ** 2 * (d @ d)) for address, d in deltas.items()}
            bounds = member_norm_bounds([u.member for u in updates], config=self.config, num_params=flat_base.size)
            too_large = norm_bound_filter(sq_norms, counts, bounds)
        kept, excluded, rejections = _exclude(server_round, updates, too_large)
        if len(kept) < self.config.min_members:
            return Aggregation(kept=tuple(kept), excluded=excluded, rejections=rejections)
        try:
            combined = self.combine(server_round, [(u.weights or {}, u.member.num_examples) for u in kept])
            weights = check_weights(combined, self.model)
        except (StrategyError, SerializationError) as exc:  # e.g. a NaN aggregate: keep the model, skip
            log.error("round %d: the strategy could not aggregate: %s", server_round, exc)
            return Aggregation(
                kept=(), excluded=excluded, rejections=merged_counts(rejections, {"aggregation-failed": len(kept)})
            )
        total = sum(u.member.num_examples for u in kept)
        return Aggregation(
            kept=tuple(kept),
            excluded=excluded,
            aggregate=Aggregate(total_weight=total, digest=model_hash(weights)),
            rejections=rejections,
            weights=weights,
            deltas={u.member.address: deltas[u.member.address] for u in kept},
        )


@dataclass
class _CollectedRound:
    """A plaintext round's updates, kept until the strategy aggregates them all."""

    aggregation: PlainAggregation
    server_round: int
    updates: list[AcceptedUpdate] = field(default_factory=list)

    def add(self, update: AcceptedUpdate) -> AcceptedUpdate:
        self.updates.append(update)
        return update

    def finish(self) -> Aggregation:
        return self.aggregation.aggregate(self.server_round, self.updates)

    def close(self) -> None:
        self.updates.clear()


@dataclass(frozen=True)
class EncryptedAggregation:
    """HE mode: add the ciphertexts (no secret key); the committee decrypts norms and scoring scalars.

    Attributes:
        config: the run configuration.
        public_context: the coordinator's public CKKS context.
        vector_size: parameters in the model (the plaintext length of every update).
        domain: what the committee's answers are signed under (required with a committee).
        committee: the decrypt committee; None when the run needs none (addition-only keys, no
            bound, no scorer that needs scalars).
        want_dots: whether the scorer needs the inner products with the sum.
        spool_dir: where a round's ciphertexts wait for the committee (None: the system's temp
            directory); the coordinator uses ``<out-dir>/spool``.
    """

    config: FedChainConfig
    public_context: Any
    vector_size: int
    domain: SigningDomain | None = None
    committee: CommitteePort | None = None
    want_dots: bool = False
    spool_dir: str | None = None

    def start(self, server_round: int) -> _EncryptedRound:
        """A running encrypted sum for ``server_round`` (and a spool when the committee is asked)."""
        return _EncryptedRound(self, server_round)

    def aggregate(self, server_round: int, updates: Sequence[AcceptedUpdate]) -> Aggregation:
        """Sum the ciphertexts that load; bound and score through the committee (see :class:`AggregationStrategy`)."""
        running = self.start(server_round)
        try:
            for update in updates:
                running.add(update)
            return running.finish()
        finally:
            running.close()

    def _expected_chunks(self) -> int:
        from fedchain import crypto

        return crypto.chunk_count(self.vector_size, crypto.context_slot_count(self.public_context))

    def _committee_checks(
        self,
        server_round: int,
        kept: list[AcceptedUpdate],
        sum_chunks: list[bytes],
        result: Aggregation,
        spool: CiphertextSpool,
        squares: Mapping[str, bytes],
    ) -> tuple[Aggregation, list[bytes]]:
        """Norm bound and scoring scalars under HE, decrypted by a committee of members.

        Only scalars are revealed: squared norms of each ``Enc(n_i delta_i)``, its inner product with
        the sum, and the sum's squared norm. An excluded update is dropped by re-summing the others
        (never by revealing "sum minus one member"). With the bound on, exchange 1 reveals the
        squared norms alone and exchange 2 the dot products against the *kept* sum, the aggregate
        members decrypt: every revealed scalar is one its member can recompute and check. The
        squared norms come from ``squares``, computed as each update was added to the sum; members'
        ciphertexts are read back from ``spool`` one at a time only for the inner products with the
        sum and the re-sum after an exclusion.
        """
        from fedchain import crypto

        assert self.committee is not None
        bound_on = self.config.norm_bound > 0
        counts = {u.member.address: u.member.num_examples for u in kept}
        first_sum = sum_chunks if self.want_dots and not bound_on else None
        requests = crypto.build_scalar_requests(
            self.public_context, _chunks_of(kept, spool), first_sum, squares=squares
        )
        first = self._ask(server_round, 1, kept, requests)
        exchanges = [first]
        excluded: list[str] = []
        if bound_on:
            bounds = member_norm_bounds([u.member for u in kept], config=self.config, num_params=self.vector_size)
            excluded = first.verdict.excluded(counts, bounds)
        kept, dropped, bound_rejections = _exclude(server_round, kept, excluded)
        flagged = first.verdict.reason if first.verdict.disagreement else ""
        products = first.verdict.products
        if excluded and kept:
            resum = crypto.EncryptedSum(
                self.public_context, expected_chunks=len(sum_chunks), expected_length=self.vector_size
            )
            for update in kept:
                resum.add(spool[update.member.address])
            sum_chunks = resum.result()
        if self.want_dots and bound_on and kept and not flagged and first.verdict.products is not None:
            again = crypto.build_scalar_requests(
                self.public_context, _chunks_of(kept, spool), sum_chunks, sq_norms=False
            )
            second = self._ask(server_round, 2, kept, again)
            exchanges.append(second)
            if second.verdict.disagreement or second.verdict.products is None:
                flagged = second.verdict.reason
                products = None
            else:
                sq = {u.member.address: first.verdict.products.sq_norms[u.member.address] for u in kept}
                products = InnerProducts(
                    sq_norms=sq, dots=second.verdict.products.dots, agg_sq_norm=second.verdict.products.agg_sq_norm
                )
        rejections: Mapping[str, int] = result.rejections
        for exchange in exchanges:
            rejections = merged_counts(rejections, exchange.problems)
        return (
            replace(
                result,
                kept=tuple(kept),
                excluded=dropped,
                rejections=merged_counts(rejections, bound_rejections),
                products=products if self.want_dots else None,
                flagged=flagged,
                revealed=RevealedScalars(server_round, tuple(e.revealed for e in exchanges)),
                exchanges=tuple(exchanges),
            ),
            sum_chunks,
        )

    def _ask(
        self, server_round: int, exchange: int, kept: Sequence[AcceptedUpdate], requests: list[ScalarRequest]
    ) -> CommitteeExchange:
        assert self.committee is not None and self.domain is not None
        return ask_committee(
            self.committee,
            domain=self.domain,
            server_round=server_round,
            exchange=exchange,
            nodes={u.member.address: u.node_id for u in kept},
            requests=requests,
            committee_size=self.config.committee_size,
            seed=self.config.seed,
        )


def _chunks_of(updates: Sequence[AcceptedUpdate], spool: CiphertextSpool) -> Mapping[str, list[bytes]]:
    """The kept members' ciphertexts, in the round's order, read from the spool when asked for."""
    return spool.subset([u.member.address for u in updates])


@dataclass
class _EncryptedRound:
    """One HE round's running sum: each ciphertext is checked and added as it arrives, then dropped.

    Memory: the running sum and the update being added; with a committee, each member's encrypted
    squared norm (one ciphertext) and, in a spool file removed by :meth:`close`, its ciphertexts.
    """

    aggregation: EncryptedAggregation
    server_round: int
    updates: list[AcceptedUpdate] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)
    failure: str = ""

    def __post_init__(self) -> None:
        from fedchain import crypto

        agg = self.aggregation
        # With a committee, the squared norms it decrypts are computed from the chunks loaded for the sum.
        self._sum = crypto.EncryptedSum(
            agg.public_context,
            expected_chunks=agg._expected_chunks(),
            expected_length=agg.vector_size,
            square_norms=agg.committee is not None,
        )
        self._squares: dict[str, bytes] = {}
        self._spool: CiphertextSpool | None = None
        if agg.committee is not None:
            self._spool = CiphertextSpool(agg.spool_dir, prefix=f"round-{self.server_round}-")

    def add(self, update: AcceptedUpdate) -> AcceptedUpdate:
        kept = replace(update, chunks=None)  # the bytes are in the sum (and the spool) now
        self.updates.append(kept)
        address = update.member.address
        chunks = list(update.chunks or [])
        if self.failure:
            return kept
        try:
            square = self._sum.add(chunks, index=len(self.updates) - 1)
        except UpdateRejectedError as exc:
            log.warning("round %d: node %d's ciphertext rejected: %s", self.server_round, update.node_id, exc.reason)
            self.rejected[address] = exc.reason
            return kept
        except CryptoError as exc:  # not the member's fault: the sum itself is unusable
            log.error("round %d: the encrypted sum failed: %s", self.server_round, exc)
            self.failure = str(exc)
            return kept
        if square is not None:
            self._squares[address] = square
        if self._spool is not None:
            self._spool.write(address, chunks)
        return kept

    def finish(self) -> Aggregation:
        from fedchain import crypto

        agg, server_round = self.aggregation, self.server_round
        if self.failure:
            return Aggregation(kept=(), rejections={"aggregation-failed": len(self.updates)})
        if self._sum.count == 0:
            log.warning("round %d: no encrypted update could be added: %s", server_round, self.rejected)
            return Aggregation(kept=(), rejections={"invalid": len(self.updates)})
        chunks = self._sum.result()
        rejections = {"invalid": len(self.rejected)} if self.rejected else {}
        kept = [u for u in self.updates if u.member.address not in self.rejected]
        result = Aggregation(kept=tuple(kept), rejections=rejections)
        if agg.committee is not None and self._spool is not None and kept:
            result, chunks = agg._committee_checks(server_round, kept, chunks, result, self._spool, self._squares)
        if not result.kept:
            return replace(result, kept=())
        # The committee's products are done: members get the sum without the primes only they needed.
        params = crypto.SCORING if agg.config.he_scoring else crypto.AGGREGATION
        try:
            chunks = crypto.compact_sum(agg.public_context, chunks, max_abs=params.max_magnitude)
        except (CryptoError, SerializationError) as exc:  # our own sum: not any member's fault
            log.error("round %d: compacting the encrypted sum failed: %s", server_round, exc)
            return Aggregation(kept=(), rejections={"aggregation-failed": len(self.updates)})
        aggregate = Aggregate(
            total_weight=sum(u.member.num_examples for u in result.kept),
            digest=crypto.ciphertext_digest(chunks),
            ciphertext=tuple(chunks),
            members=len(result.kept),
        )
        return replace(result, aggregate=aggregate)

    def close(self) -> None:
        if self._spool is not None:
            self._spool.close()


def ask_committee(
    port: CommitteePort,
    *,
    domain: SigningDomain,
    server_round: int,
    exchange: int,
    nodes: Mapping[str, int],
    requests: Sequence[ScalarRequest],
    committee_size: int,
    seed: int,
) -> CommitteeExchange:
    """Ask one exchange's labelled scalars of the round's committee; reconcile the signed answers.

    An answer counts only when it is signed by the committee member asked, over exactly this
    request and these values; refusals, other errors, bad signatures and silence are counted by
    reason (``committee-refused``, ``committee-failed``, ``committee-bad-signature``,
    ``committee-timeout``) and flag the round.
    """
    committee = select_committee(list(nodes), committee_size, seed=seed, server_round=server_round)
    request = CommitteeRequest(server_round, exchange, tuple(requests))
    counts = [scalars.count for scalars in requests]
    replies = port.ask(request, {address: nodes[address] for address in committee})
    problems: Counter[str] = Counter()
    answers: dict[str, list[list[float]] | None] = {}
    signed: list[SignedAnswer] = []
    for address in committee:
        reply = replies.get(address)
        answers[address] = None
        if reply is None:
            problems["committee-timeout"] += 1
            continue
        if reply.problem:
            problems[reply.problem] += 1
            log.warning("round %d: committee member %s: %s", server_round, address, reply.detail)
            continue
        try:
            values = list(reply.values)
            split, offset = [], 0
            for count in counts:
                split.append(values[offset : offset + count])
                offset += count
            if offset != len(values):
                raise ValueError(f"{len(values)} scalars, {offset} requested")
            digest = scalars_digest(
                domain=domain,
                server_round=server_round,
                exchange=exchange,
                request_hash=request.request_hash,
                values=split,
            )
            signer = recover_signer(digest, reply.signature)
        except (KeyError, TypeError, ValueError, SerializationError) as exc:
            problems["committee-failed"] += 1
            log.warning("round %d: committee member %s sent a malformed answer: %s", server_round, address, exc)
            continue
        if signer != address:
            problems["committee-bad-signature"] += 1
            log.warning("round %d: committee answer of %s is signed by %s", server_round, address, signer)
            continue
        answers[address] = split
        signed.append(SignedAnswer(address, tuple(tuple(row) for row in split), reply.signature))
    verdict = reconcile(requests, answers)
    revealed = RevealedExchange(exchange, tuple(request.labels()), tuple(signed))
    return CommitteeExchange(verdict, revealed, dict(problems), asked=len(committee))
