"""The member's decrypt-committee duty (HE scoring), and its check of what the committee revealed.

A committee member answers :class:`~fedchain.protocol.CommitteeQuery` messages: it labels each
ciphertext (:func:`label_query`), checks the request against the round and its quota
(:func:`fedchain.contribution.committee.check_request`), decrypts only the labelled scalars and
signs them. Anything else gets the Flower error ``ERROR_COMMITTEE_REFUSED`` before anything is
revealed; vectors never leave. Every member, at evaluation, checks the scalars revealed about it
(:func:`check_scalars`) and signs a dispute when one is wrong.
"""

from __future__ import annotations

import json
import logging

from flwr.app import Context, Error, Message

from clients.node import MemberNode
from fedchain.contribution.committee import (
    CommitteeRequest,
    CommitteeRequestError,
    RevealedScalars,
    ScalarRequest,
    check_own_scalars,
    check_request,
    request_shape,
)
from fedchain.errors import CryptoError, FedChainError, SerializationError
from fedchain.identity.signing import dispute_digest, recover_signer, scalars_digest
from fedchain.protocol import (
    ERROR_COMMITTEE_REFUSED,
    ERROR_INVALID_INSTRUCTION,
    CommitteeAnswer,
    CommitteeQuery,
    EvaluateIns,
    decode_committee_query,
    encode,
)
from fedchain.types import ZERO_HASH, Dispute

__all__ = ["answer_scalars", "check_scalars", "label_query", "query_app"]

log = logging.getLogger(__name__)


def query_app(msg: Message, context: Context) -> Message:
    """The ClientApp's query function: the decrypt-committee duty."""
    return answer_scalars(MemberNode.from_context(context), msg)


def label_query(query: CommitteeQuery) -> CommitteeRequest:
    """The labelled request of a query: each ciphertext with its kind and the addresses of its scalars.

    Raises:
        CommitteeRequestError: a count differs from its labels, or labels are left over.
    """
    requests, offset = [], 0
    for kind, count, data in zip(query.kinds, query.counts, query.ciphertexts, strict=True):
        labelled = 0 if kind == "agg_sq_norm" else count
        names = tuple(query.addresses[offset : offset + labelled])
        if count != (len(names) if kind != "agg_sq_norm" else 1) or count < 1:
            raise CommitteeRequestError(f"a {kind} ciphertext of {count} scalars must be labelled by as many addresses")
        requests.append(ScalarRequest(kind, names, data))
        offset += labelled
    if offset != len(query.addresses):
        raise CommitteeRequestError(f"{len(query.addresses)} addresses for {offset} labelled scalars")
    return CommitteeRequest(query.server_round, query.exchange, tuple(requests))


def _decode(msg: Message) -> tuple[CommitteeQuery, CommitteeRequest]:
    try:
        query = decode_committee_query(msg.content)
    except SerializationError as exc:
        cause = exc.__cause__ or exc
        raise CommitteeRequestError(
            f"malformed committee request ({type(cause).__name__}: {exc}): it must name its round, exchange, "
            "and each ciphertext's kind, count and addresses"
        ) from exc
    return query, label_query(query)


def answer_scalars(node: MemberNode, msg: Message) -> Message:
    """Decrypt-committee duty (HE scoring): check the request, decrypt its scalars, sign the answer.

    Only well-formed requests of the current round within the quota are answered
    (:func:`fedchain.contribution.committee.check_request`); anything else, including a
    ciphertext that holds more values than its labels, gets the Error reply
    ``ERROR_COMMITTEE_REFUSED`` before anything is revealed. Vectors never leave.
    """
    from fedchain import crypto  # TenSEAL: only committee members load it

    try:
        query, request = _decode(msg)
        state = node.committee_state()
        answered = {int(k): v["shape"] for k, v in dict(state.get("answered", {})).items()}
        check_request(
            request,
            current_round=int(state.get("round", 0)),
            cohort=int(state.get("cohort", 0)),
            answered=answered,
            min_cohort=node.min_cohort(),
        )
        values = []
        for position, scalars in enumerate(request.requests):
            try:
                values.append(crypto.answer_scalar_request(node._context(), scalars.ciphertext, scalars.count))
            except (SerializationError, CryptoError) as exc:
                raise CommitteeRequestError(
                    f"ciphertext {position} ({scalars.kind}) does not hold exactly its {scalars.count} "
                    f"labelled scalars: {exc}"
                ) from exc
        request_hash = request.request_hash
        digest = scalars_digest(
            domain=node.domain(query),
            server_round=request.server_round,
            exchange=request.exchange,
            request_hash=request_hash,
            values=values,
        )
        state["answered"] = {
            **dict(state.get("answered", {})),
            str(request.exchange): {"shape": request_shape(request.requests), "request_hash": request_hash},
        }
        node.save_committee_state(state)
        answer = CommitteeAnswer(
            values=tuple(value for row in values for value in row),
            signer=node.address,
            signature=node.sign(digest),
            request_hash=request_hash,
            server_round=request.server_round,
            exchange=request.exchange,
        )
        return Message(encode(answer), reply_to=msg)
    except CommitteeRequestError as exc:
        log.warning("member %d refuses the committee request: %s", node.member_id, exc)
        return Message(Error(code=ERROR_COMMITTEE_REFUSED, reason=str(exc)), reply_to=msg)
    except (FedChainError, KeyError, ValueError) as exc:
        log.warning("member %d cannot answer the committee request: %s", node.member_id, exc)
        return Message(Error(code=ERROR_INVALID_INSTRUCTION, reason=f"{type(exc).__name__}: {exc}"), reply_to=msg)


def check_scalars(node: MemberNode, ins: EvaluateIns, server_round: int) -> tuple[Dispute, str] | None:
    """Check the scalars revealed in ``server_round`` that concern this member; a dispute if one is wrong.

    Returns:
        ``(Dispute, reason)`` when a revealed scalar about this member, the sum's norm, the
        commitment or a committee signature is wrong, or when this member's own committee
        answer was withheld; None when everything checked agrees. The dispute is filed on chain
        when the member can reach it, and carried by the evaluate reply for the coordinator to relay.
    """
    raw = ins.revealed_scalars
    state = node.committee_state()
    answered = dict(state.get("answered", {})) if state.get("round") == server_round else {}
    if not raw and not answered:
        return None
    commitment = ins.scalars_commitment or ZERO_HASH
    domain = node.domain(ins)
    problems: list[str] = []
    revealed = None
    if raw:
        try:
            revealed = RevealedScalars.from_json(json.loads(raw))
        except (SerializationError, ValueError) as exc:
            problems.append(f"the revealed scalars are unreadable: {exc}")
    if revealed is not None:
        if revealed.server_round != server_round:
            problems.append(f"the revealed scalars are of round {revealed.server_round}, not {server_round}")
        if revealed.commitment != commitment:
            problems.append(f"commitment {commitment} is not that of the revealed scalars ({revealed.commitment})")
        for exchange in revealed.exchanges:
            request_hash = exchange.request_hash(revealed.server_round)
            concerned = {address for label in exchange.labels for address in label["addresses"]}
            for answer in exchange.answers:
                digest = scalars_digest(
                    domain=domain,
                    server_round=revealed.server_round,
                    exchange=exchange.exchange,
                    request_hash=request_hash,
                    values=[list(row) for row in answer.values],
                )
                try:
                    signer = recover_signer(digest, answer.signature)
                except SerializationError:
                    signer = ""
                if signer != answer.signer or signer not in concerned:
                    problems.append(
                        f"exchange {exchange.exchange}: the answer of {answer.signer} is not signed by a member "
                        "of the round over these values"
                    )
        problems += check_own_scalars(
            revealed,
            address=node.address,
            update=node.kept_update(server_round),
            total=node.decrypted_sum(server_round),
        )
    for exchange_key, entry in answered.items():
        shown = revealed is not None and any(
            str(exchange.exchange) == exchange_key
            and exchange.request_hash(revealed.server_round) == entry.get("request_hash")
            and any(answer.signer == node.address for answer in exchange.answers)
            for exchange in revealed.exchanges
        )
        if not shown:
            problems.append(f"this member's committee answer to exchange {exchange_key} was not revealed")
    if not problems:
        return None
    digest = dispute_digest(
        chain_id=domain.chain_id,
        ledger_address=domain.ledger_address,
        server_round=server_round,
        scalars_commitment=commitment,
    )
    dispute = Dispute(server_round, node.address, commitment, node.sign(digest))
    reason = "; ".join(problems)
    log.warning("member %d disputes round %d: %s", node.member_id, server_round, reason)
    node.file_dispute(dispute, domain.ledger_address)
    return dispute, reason
