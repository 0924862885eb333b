"""Flower client mods: what wraps every instruction a member answers, apart from the work itself.

Like Flower's own mods (``flwr.clientapp.mod``, e.g. ``LocalDpMod``), each is a callable
``mod(msg, context, call_next) -> Message`` that the ClientApp (:mod:`clients.client_app`)
registers around its train, evaluate and query functions, outermost first:

* :func:`envelope_mod` (every message): opens the instruction's envelope and packs the reply's
  records into one (:mod:`fedchain.envelope`: one Flower object per message record set instead
  of one per record); a malformed envelope is answered with ``ERROR_INVALID_INSTRUCTION``.
* :func:`member_mod` (every message): builds, or reuses, this run's :class:`~clients.node.MemberNode`;
  a node that cannot be built for the run (a run config it finds invalid, a malformed policy
  file) answers with a Flower ``Error`` naming why.
* :func:`refusal_mod` (train, evaluate): an instruction the member cannot carry out (malformed,
  a model that differs from the chain's record, unreadable state) is answered with
  ``ERROR_INVALID_INSTRUCTION`` and its reason, never raised into Flower.
* :func:`privacy_mod` (train): the member's own privacy policy and budget. Before anything is
  decrypted or trained it checks the instruction against the policy (testing hooks, cohort, the
  budget lowered to the chain's, the accountant state); during training, the DP parameters and
  the budget. A refusal is answered with ``ERROR_POLICY_REFUSED``, ``ERROR_BUDGET_EXHAUSTED`` or
  ``ERROR_PRIVACY_STATE_MISSING`` (:mod:`fedchain.protocol`).
* :func:`seal_mod` (train): encrypt and sign. Training replies without a payload; this mod takes
  the update training handed over, encrypts ``n * delta`` under HE (or attaches the trained
  weights in plaintext mode) and signs the update digest with the member's chain key. A reply
  that skipped this mod carries no payload and is refused by the coordinator.

:data:`TRAIN_MODS` and :data:`EVALUATE_MODS` are the lists the ClientApp registers.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import Any

from flwr.app import Context, Error, Message
from flwr.clientapp.typing import ClientAppCallable, Mod

from clients.node import MemberNode
from clients.training import train_instruction
from fedchain.envelope import pack, unpack
from fedchain.errors import (
    BudgetExhaustedError,
    DPIncompatibleModelError,
    FedChainError,
    PolicyError,
    PrivacyError,
    PrivacyStateMissingError,
)
from fedchain.identity.signing import update_digest
from fedchain.protocol import (
    ERROR_BUDGET_EXHAUSTED,
    ERROR_INVALID_INSTRUCTION,
    ERROR_POLICY_REFUSED,
    ERROR_PRIVACY_STATE_MISSING,
    decode_train_res,
    encode,
)
from fedchain.serialization import flatten, model_hash, unflatten

__all__ = ["EVALUATE_MODS", "TRAIN_MODS", "envelope_mod", "member_mod", "privacy_mod", "refusal_mod", "seal_mod"]

log = logging.getLogger(__name__)

#: Privacy refusals: Flower error code, the member's metrics counter, and the log's wording.
_REFUSALS: tuple[tuple[type[PrivacyError], int, str, str], ...] = (
    (BudgetExhaustedError, ERROR_BUDGET_EXHAUSTED, "declined", "declines the round"),
    (PolicyError, ERROR_POLICY_REFUSED, "refused", "its privacy policy refuses the instruction"),
    (PrivacyStateMissingError, ERROR_PRIVACY_STATE_MISSING, "refused", "refuses to train"),
    # the task's model has a layer DP-SGD cannot train privately: refused by name, no budget spent
    (DPIncompatibleModelError, ERROR_POLICY_REFUSED, "refused", "cannot train this model privately"),
)
_REFUSAL_TYPES = tuple(kind for kind, *_ in _REFUSALS)


def envelope_mod(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
    """Open the instruction's envelope for the mods inside; pack the reply's records into one."""
    if msg.has_content():
        try:
            msg.content = unpack(msg.content)
        except FedChainError as exc:
            return Message(Error(code=ERROR_INVALID_INSTRUCTION, reason=f"{type(exc).__name__}: {exc}"), reply_to=msg)
    reply = call_next(msg, context)
    if reply.has_content():
        reply.content = pack(reply.content)
    return reply


def member_mod(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
    """Build (or reuse) this run's node; a node that cannot be built refuses by name."""
    try:
        MemberNode.from_context(context)
    except PolicyError as exc:
        log.warning("node %d refuses the run: %s", context.node_id, exc)
        return Message(Error(code=ERROR_POLICY_REFUSED, reason=str(exc)), reply_to=msg)
    except FedChainError as exc:
        log.warning("node %d cannot take part in the run: %s", context.node_id, exc)
        return Message(Error(code=ERROR_INVALID_INSTRUCTION, reason=f"{type(exc).__name__}: {exc}"), reply_to=msg)
    return call_next(msg, context)


def refusal_mod(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
    """Answer an instruction the member cannot carry out with ``ERROR_INVALID_INSTRUCTION`` and why.

    On train instructions :func:`privacy_mod` sits inside this mod and answers privacy refusals
    with their own codes first.
    """
    node = MemberNode.from_context(context)
    try:
        return call_next(msg, context)
    except (FedChainError, KeyError) as exc:
        what = "to evaluate" if msg.metadata.message_type.startswith("evaluate") else "the instruction"
        log.warning("member %d refuses %s: %s", node.member_id, what, exc)
        node.record_metrics(lambda m: m.count("failed"))
        return Message(Error(code=ERROR_INVALID_INSTRUCTION, reason=f"{type(exc).__name__}: {exc}"), reply_to=msg)


def privacy_mod(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
    """The member's privacy policy and budget: refuse before decrypting or training, and answer refusals."""
    node = MemberNode.from_context(context)
    try:
        ins = train_instruction(msg)
        node.note_round(ins.server_round, ins.cohort)
        node.check_policy(ins)  # before anything is decrypted or trained; sets the round's budget
        return call_next(msg, context)
    except _REFUSAL_TYPES as exc:
        _, code, counter, wording = next(refusal for refusal in _REFUSALS if isinstance(exc, refusal[0]))
        log.warning("member %d %s: %s", node.member_id, wording, exc)
        node.record_metrics(lambda m: m.count(counter))
        return Message(Error(code=code, reason=str(exc)), reply_to=msg)


def seal_mod(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
    """Encrypt (HE) and sign the update training handed over; the reply gets its payload and signature."""
    reply = call_next(msg, context)
    if reply.has_error():
        return reply
    node = MemberNode.from_context(context)
    ins = train_instruction(msg)
    res = decode_train_res(reply.content, sealed=False)
    update = node.take_update(ins.server_round)
    encrypt_seconds: float | None = None
    if node.config.he:
        from fedchain import crypto

        started = time.perf_counter()
        scaled = update.delta * update.num_examples
        chunks = tuple(crypto.encrypt_update(node._context(), scaled))
        if node.config.he_scoring:
            node.keep_update(ins.server_round, scaled)
            node.note_round(ins.server_round, ins.cohort, trained_again=True)
        encrypt_seconds = time.perf_counter() - started
        sealed = replace(res, update=chunks)
        payload_hash = crypto.ciphertext_digest(list(chunks))
    else:
        trained = unflatten(flatten(update.base) + update.delta, update.base)
        sealed = replace(res, arrays=trained)
        payload_hash = model_hash(trained)
    digest = update_digest(
        domain=node.domain(ins),
        server_round=ins.server_round,
        address=node.address,
        payload_hash=payload_hash,
        num_examples=update.num_examples,
        dp=update.dp,
    )
    sealed = replace(sealed, member=replace(res.member, signature=node.sign(digest)))
    epsilon = res.dp.epsilon if res.dp is not None else None
    budget = node.budget[0] if res.dp is not None and node.budget is not None else None
    train_seconds = res.train_seconds or 0.0

    def observe(m: Any) -> None:
        m.observe_training(train_seconds, epsilon=epsilon, epsilon_budget=budget, examples=node.data.num_train)
        if encrypt_seconds is not None:
            m.observe_encrypt(encrypt_seconds)

    node.record_metrics(observe)
    return Message(encode(sealed), reply_to=msg)


#: The mods of a train instruction, outermost first (``member_mod`` is registered for every message).
TRAIN_MODS: list[Mod] = [refusal_mod, privacy_mod, seal_mod]
#: The mods of an evaluate instruction.
EVALUATE_MODS: list[Mod] = [refusal_mod]
