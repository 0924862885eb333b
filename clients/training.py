"""The member's own work on a round: local training and evaluation, in one place.

These are the ClientApp's train and evaluate functions (:mod:`clients.client_app`), inside the
mods that wrap every instruction (:mod:`clients.mods`): by the time :func:`train_app` runs, the
member's policy has accepted the instruction and set the round's budget; what it returns is
unsealed (no payload, no signature): :func:`clients.mods.seal_mod` encrypts the update it hands
over (:class:`LocalUpdate`) and signs the reply.

Training, in order: the global model (plaintext, or rebuilt from the encrypted aggregates under
HE), checked against the chain where the member can read it; local training, with DP-SGD
(:func:`fedchain.privacy.train_private`, the member's accountant in ``state-dir/privacy.json``) or
without (:func:`fedchain.privacy.train_plain`); the update ``delta`` (a simulated adversary's
distortion, for tests and benchmarks only).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
from flwr.app import Context, Message, RecordDict

from clients import adversary, task
from clients.node import MemberNode
from fedchain.protocol import (
    DisputeClaim,
    DPReport,
    EvaluateIns,
    EvaluateRes,
    TrainIns,
    TrainRes,
    decode_evaluate_ins,
    decode_train_ins,
    encode,
)
from fedchain.serialization import Weights, flatten, model_hash
from fedchain.types import DPParams

if TYPE_CHECKING:
    from fedchain.privacy.training import TrainResult

__all__ = ["LocalUpdate", "evaluate", "evaluate_app", "train", "train_app", "train_instruction"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LocalUpdate:
    """What local training hands to the seal mod: the update, before it is encrypted or signed.

    Attributes:
        server_round: the round trained.
        base: the global model trained from.
        delta: the flat update (trained minus ``base``), float64.
        num_examples: the example count the member reports (its claim).
        dp: the round's DP parameters (signed with the update), None without DP.
    """

    server_round: int
    base: Weights = field(repr=False)
    delta: np.ndarray = field(repr=False)
    num_examples: int
    dp: DPParams | None = None


#: The last train instruction decoded, with the content it came from: the mods and the train
#: function of one message read the same instruction, and its arrays are decoded once.
_decoded: tuple[RecordDict, TrainIns] | None = None


def train_instruction(msg: Message) -> TrainIns:
    """The train instruction ``msg`` carries (:func:`fedchain.protocol.decode_train_ins`, decoded once per message).

    Raises:
        SerializationError: the instruction is malformed.
    """
    global _decoded
    cached = _decoded  # read once: another thread may replace it
    if cached is not None and cached[0] is msg.content:
        return cached[1]
    ins = decode_train_ins(msg.content)
    _decoded = (msg.content, ins)
    return ins


def train_app(msg: Message, context: Context) -> Message:
    """The ClientApp's train function: decode, train, reply (unsealed: the seal mod completes it)."""
    node = MemberNode.from_context(context)
    return Message(encode(train(node, train_instruction(msg))), reply_to=msg)


def evaluate_app(msg: Message, context: Context) -> Message:
    """The ClientApp's evaluate function: decode, evaluate, reply."""
    node = MemberNode.from_context(context)
    return Message(encode(evaluate(node, decode_evaluate_ins(msg.content))), reply_to=msg)


def train(node: MemberNode, ins: TrainIns) -> TrainRes:
    """Train on the instruction's global model; hand the update over to the seal mod.

    Returns:
        The reply without payload or signature (the seal mod adds both).

    Raises:
        FedChainError: the global model is malformed or differs from the chain's record; the
            privacy errors (budget, policy) for the policy mod to answer.
    """
    weights, model_round = node.global_model(ins)
    node.check_against_chain(ins, weights, model_round)
    started = time.perf_counter()
    result: TrainResult | None = None
    history: tuple[tuple[float, float, int], ...] = ()
    delta = np.zeros(sum(a.size for a in weights.values()))
    if adversary.trains(node.kind):
        model = node.new_model()
        task.set_weights(model, weights)
        result, history = _train_local(node, model, ins.server_round, proximal_mu=ins.proximal_mu)
        delta = flatten(task.get_weights(result.model)) - flatten(weights)
    if node.kind != "honest":  # simulated adversaries: for tests and benchmarks only
        rng = adversary.adversary_rng(seed=node.config.seed, member_id=node.member_id, server_round=ins.server_round)
        delta = adversary.adversarial_update(node.kind, delta, rng=rng)
    if node.member_id in node.config.crashing_members:
        raise RuntimeError(f"fault injection: member {node.member_id} killed during training")
    if delay_s := node.config.straggler_delay_s(node.member_id, ins.server_round):
        time.sleep(delay_s)  # a straggler (simulation only: the member's policy refuses faults elsewhere)
    claimed = adversary.claimed_examples(node.kind, node.data.num_train)
    train_seconds = time.perf_counter() - started
    report, dp = None, result.dp if result is not None else None
    if result is not None and dp is not None and result.epsilon is not None:
        # what the noise really came from, as train_private reports it (not the option asked for)
        report = DPReport(result.epsilon, dp, history, noise_seeded=not result.secure_noise)
    node.hand_over(LocalUpdate(ins.server_round, weights, delta, claimed, dp))
    return TrainRes(
        member=node.identity(model_hash(weights), model_round),
        num_examples=claimed,
        train_loss=result.train_loss if result is not None else 0.0,
        train_seconds=train_seconds,
        dp=report,
    )


def _train_local(
    node: MemberNode, model: Any, server_round: int, *, proximal_mu: float = 0.0
) -> tuple[TrainResult, tuple[tuple[float, float, int], ...]]:
    """Local training, with DP-SGD or without: the result and the accountant's history (empty without DP)."""
    from fedchain.privacy import train_plain

    # Shuffling without DP is not private; it stays reproducible from the run seed.
    seed = node.config.seed * 100_003 + server_round * 1_009 + node.member_id
    x, cfg = node.data.x_train, node.config
    y = adversary.adversarial_labels(node.kind, node.data.y_train, node.data.num_classes)
    if not cfg.dp:
        plain = train_plain(
            model,
            x,
            y,
            epochs=cfg.local_epochs,
            batch_size=cfg.batch_size,
            learning_rate=cfg.learning_rate,
            momentum=cfg.momentum,
            seed=seed,
            proximal_mu=proximal_mu,
        )
        return plain, ()
    from fedchain.privacy import (
        NoiseCache,
        PrivacyAccountant,
        PrivacyBudget,
        federation_dp_config,
        plan_round,
        train_private,
    )

    dp_config = federation_dp_config(cfg)
    if node.budget is not None:  # the member's own budget (check_run refused a looser proposal)
        dp_config = replace(dp_config, budget=PrivacyBudget(*node.budget))
    if dp_config.noise_multiplier is None:  # calibrate once per member, not once per process
        sigma = NoiseCache(node.state_dir / "noise.json").noise_multiplier(
            dp_config, num_examples=len(y), epochs=cfg.dp_local_epochs, batch_size=cfg.dp_batch_size
        )
        dp_config = replace(dp_config, noise_multiplier=sigma)
    plan = plan_round(dp_config, num_examples=len(y), epochs=cfg.dp_local_epochs, batch_size=cfg.dp_batch_size)
    node.policy.check_dp(
        noise_multiplier=plan.noise_multiplier,
        sample_rate=plan.sample_rate,
        steps=plan.steps,
        max_grad_norm=plan.max_grad_norm,
    )
    accountant = PrivacyAccountant.open(node.state_dir / "privacy.json")
    result = train_private(
        model,
        x,
        y,
        epochs=cfg.dp_local_epochs,
        batch_size=cfg.dp_batch_size,
        learning_rate=cfg.dp_learning_rate,
        momentum=cfg.momentum,
        config=dp_config,
        accountant=accountant,
        seed=node.noise_seed(server_round=server_round),
        proximal_mu=proximal_mu,
    )
    # Every round this member's accountant charged: the coordinator records those the chain lacks.
    return result, tuple(accountant.history)


def evaluate(node: MemberNode, ins: EvaluateIns) -> EvaluateRes:
    """Loss and accuracy of the global model on the member's test data; under HE, its check of the revealed scalars."""
    weights, model_round = node.global_model(ins)
    model = node.new_model()
    node.task.set_weights(model, weights)
    loss, accuracy = node.task.evaluate(model, node.data.x_test, node.data.y_test)
    dispute = None
    if node.config.he:  # the scalars the committee revealed about this member, checked
        from clients.committee import check_scalars

        disputed = check_scalars(node, ins, model_round)
        if disputed is not None:
            claim, reason = disputed
            dispute = DisputeClaim(claim.scalars_commitment, claim.signature, reason)
    node.record_metrics(lambda m: m.count("evaluated"))
    return EvaluateRes(
        member=node.identity(model_hash(weights), model_round),
        num_examples=len(node.data.y_test),
        loss=loss,
        accuracy=accuracy,
        dispute=dispute,
    )
