"""The member node: what an organization runs. Loads its data, trains locally, answers the coordinator.

One :class:`MemberNode` exists per (run, node) in a process. It is built from Flower's
``Context``: the run config (the federation's options) and the node config (this member's
data, keys and state). Failures are answered as Flower ``Error`` replies, never raised into Flower.

Node config keys:
    ``partition-id`` / ``num-partitions``: simulation: which shard of the demo data to use.
    ``data-path`` / ``label-column`` / ``num-classes``: deployment: the organization's CSV,
        Parquet or NPZ file.
    ``member-id``: stable member number (defaults to ``partition-id``).
    ``state-dir``: where the node keeps its privacy accountant and (under HE) the global model.
    ``ckks-context``: the federation's secret CKKS context (defaults to ``<he-keys-dir>/member.ckks``).

Under HE the member holds the global model: it starts from the seeded initial model, applies
each round's encrypted aggregate (decrypt, divide by the total weight, add), verifies every
aggregate against its announced digest, and sends ``Enc(n * delta)``.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import ConfigRecord, Context, Error, Message, MetricRecord, RecordDict

from clients import adversary, task
from fedchain._io import atomic_write_json
from fedchain.aggregation import OptimizerState, load_optimizer_state, save_optimizer_state
from fedchain.config import FedChainConfig
from fedchain.data import load_demo_partition, load_local_dataset
from fedchain.errors import BudgetExhaustedError, FedChainError, IntegrityError, SerializationError
from fedchain.identity import address_of, simulated_member_key
from fedchain.identity.signing import NO_LEDGER, SigningDomain, sign_digest, update_digest
from fedchain.protocol import (
    ERROR_BUDGET_EXHAUSTED,
    ERROR_INVALID_INSTRUCTION,
    chunks_to_record,
    record_to_chunks,
    record_to_weights,
    weights_to_record,
)
from fedchain.serialization import Weights, check_weights, flatten, load_model, model_hash, save_model, unflatten
from fedchain.types import DPParams, LocalDataset

__all__ = ["MEMBER_FEATURES", "MemberNode", "member_kind"]

#: Member-side strategy features this node implements (see strategies.base.MEMBER_FEATURES).
MEMBER_FEATURES = frozenset({"proximal", "server-optimizer"})

log = logging.getLogger(__name__)

_NODES: dict[tuple[int, int], MemberNode] = {}


def _member_key(config: FedChainConfig, member_id: int, node_config: dict[str, Any]) -> bytes:
    """The member's chain key: its encrypted keystore in deployment, a seeded key in simulation."""
    keystore = str(node_config.get("wallet-keystore", "") or "")
    if not keystore:
        return simulated_member_key(seed=config.seed, member_id=member_id)
    from eth_account import Account

    password_env = str(node_config.get("wallet-password-env", "FEDCHAIN_WALLET_PASSWORD"))
    password = os.environ.get(password_env)
    if password is None:
        raise FedChainError(f"wallet keystore {keystore!r} needs its password in ${password_env}")
    try:
        return bytes(Account.decrypt(json.loads(Path(keystore).read_text()), password))
    except (OSError, ValueError) as exc:
        raise FedChainError(f"cannot open wallet keystore {keystore!r}: {exc}") from exc


def member_kind(config: FedChainConfig, member_id: int) -> str:
    """``"honest"``, or the adversary kind of a simulated adversarial member.

    Simulated adversaries take the member ids after the honest ones, in the order given.
    """
    offset = member_id - config.members
    return config.adversaries[offset] if 0 <= offset < len(config.adversaries) else "honest"


@dataclass
class MemberNode:
    """One member's node for one run."""

    config: FedChainConfig
    member_id: int
    address: str
    kind: str
    data: LocalDataset
    state_dir: Path
    private_key: bytes = field(repr=False, default=b"")
    ckks_path: Path | None = None
    #: The Flower run this node answers (part of every signature's domain).
    run_id: int = 0
    _ckks: Any = field(default=None, repr=False)
    _ledger: Any = field(default=None, repr=False)
    _template: Weights | None = field(default=None, repr=False)
    #: The HE state last read or written by this process, keyed by the ``global.json`` it matches.
    _he_state: tuple[dict[str, Any], Weights, OptimizerState | None] | None = field(default=None, repr=False)

    @classmethod
    def from_context(cls, context: Context) -> MemberNode:
        """The node for this Flower context, built once per (run, node) and process."""
        key = (context.run_id, context.node_id)
        node = _NODES.get(key)
        if node is None:
            node = _NODES[key] = cls._build(context)
        return node

    @classmethod
    def _build(cls, context: Context) -> MemberNode:
        config = FedChainConfig.from_run_config(context.run_config)
        node_config: dict[str, Any] = dict(context.node_config)
        member_id = int(node_config.get("member-id", node_config.get("partition-id", 0)))
        data_path = str(node_config.get("data-path", "") or "")
        if data_path:
            data = load_local_dataset(
                data_path,
                label_column=str(node_config.get("label-column", "label")),
                test_fraction=config.test_fraction,
                seed=config.seed + member_id,
                num_classes=int(node_config.get("num-classes", config.num_classes)),
            )
        else:
            data = load_demo_partition(
                member_id,
                int(node_config.get("num-partitions", config.total_members)),
                partitioner=config.partitioner,
                alpha=config.dirichlet_alpha,
                test_fraction=config.test_fraction,
                seed=config.seed,
            )
        if node_config.get("state-dir"):
            state_dir = Path(str(node_config["state-dir"]))
        else:
            root = (
                Path(config.out_dir) if config.out_dir else Path(tempfile.gettempdir()) / f"fedchain-{context.run_id}"
            )
            state_dir = root / "members" / f"member-{member_id}"
        state_dir.mkdir(parents=True, exist_ok=True)
        ckks_path = None
        if config.he:
            ckks = node_config.get("ckks-context") or (
                str(Path(config.he_keys_dir) / "member.ckks") if config.he_keys_dir else ""
            )
            ckks_path = Path(str(ckks)) if ckks else None
        private_key = _member_key(config, member_id, node_config)
        return cls(
            config=config,
            member_id=member_id,
            address=address_of(private_key),
            private_key=private_key,
            kind=member_kind(config, member_id),
            data=data,
            state_dir=state_dir,
            ckks_path=ckks_path,
            run_id=int(context.run_id),
        )

    # ------------------------------------------------------------------ model
    def _new_model(self) -> Any:
        return task.build_model(
            num_features=self.data.num_features,
            num_classes=self.data.num_classes,
            hidden_units=self.config.hidden_units,
            seed=self.config.seed,
        )

    def template(self) -> Weights:
        """The seeded initial weights: the shape every model must have, and round 0's model under HE."""
        if self._template is None:
            self._template = task.get_weights(self._new_model())
        return {name: array.copy() for name, array in self._template.items()}

    def _context(self) -> Any:
        from fedchain import crypto

        if self._ckks is None:
            if self.ckks_path is None:
                raise FedChainError("HE is on but this node has no CKKS context: set he-keys-dir or ckks-context")
            self._ckks = crypto.load_member_context(crypto.read_context(self.ckks_path))
        return self._ckks

    def _global_model(self, content: RecordDict) -> tuple[Weights, int]:
        """The global model the instruction refers to: sent in plaintext, or rebuilt from aggregates under HE."""
        config = content.config_records["config"]
        if not self.config.he:
            weights = check_weights(record_to_weights(content.array_records["model"]), self.template())
            return weights, int(config.get("model-round", 0))  # type: ignore[arg-type]
        return self._apply_aggregates(content)

    def _apply_aggregates(self, content: RecordDict) -> tuple[Weights, int]:
        from fedchain import crypto
        from strategies.builtin import make_server_optimizer

        config = content.config_records["config"]
        weights, model_round, opt_state = self._load_he_state()
        loaded_round = model_round
        optimizer = make_server_optimizer(self.config)  # the strategy's member update ("avg": w + S/W)
        for agg_round in [int(k) for k in config.get("agg-rounds", [])]:  # type: ignore[union-attr]
            if agg_round <= model_round:
                continue
            chunks = record_to_chunks(content.array_records[f"agg.{agg_round}"])
            crypto.verify_digest(chunks, str(config[f"agg.{agg_round}.digest"]), what=f"aggregate of round {agg_round}")
            total_weight = int(config[f"agg.{agg_round}.weight"])  # type: ignore[arg-type]
            if total_weight <= 0:
                raise SerializationError(f"aggregate of round {agg_round} has total weight {total_weight}")
            size = sum(array.size for array in weights.values())
            mean_delta = crypto.decrypt_update(self._context(), chunks, size) / total_weight
            flat, opt_state = optimizer.step(flatten(weights), mean_delta, opt_state, server_round=agg_round)
            weights = unflatten(flat, weights)
            model_round = agg_round
        target = int(config.get("model-round", model_round))  # type: ignore[arg-type]
        if model_round < target:
            model_round = target  # rounds without an aggregate (skipped) leave the model unchanged
        if model_round != loaded_round:
            self._save_he_state(weights, model_round, opt_state)
        return weights, model_round

    def _check_against_chain(self, content: RecordDict, weights: Weights, model_round: int) -> None:
        """Refuse a global model whose hash differs from the one recorded on chain for its round.

        Under HE this also covers the aggregates: a different aggregate yields a different model.
        Needs a chain members can read (a JSON-RPC URL); the embedded chain lives inside the
        coordinator's process, so members of an embedded-chain simulation cannot check it.
        """
        ledger_address = str(content.config_records["config"].get("ledger-address", "") or "")
        if model_round == 0 or not ledger_address or not self.config.chain.startswith(("http://", "https://")):
            return
        if self._ledger is None:
            from fedchain.ledger import Web3Ledger, connect

            self._ledger = Web3Ledger(
                connect(self.config.chain, private_key="0x" + self.private_key.hex()), ledger_address
            )
        recorded = self._ledger.get_round(model_round).model_hash
        actual = model_hash(weights)
        if recorded.lower() != actual.lower():
            raise IntegrityError(f"global model of round {model_round}", recorded, actual)

    def _load_he_state(self) -> tuple[Weights, int, OptimizerState | None]:
        """The member's model and server-optimizer state, as ``global.json`` names them by hash.

        The files are the truth (another process may have answered this member's last message);
        the copy kept in memory is used only while ``global.json`` still matches it.
        """
        meta_path = self.state_dir / "global.json"
        if not meta_path.exists():
            return self.template(), 0, None
        meta = json.loads(meta_path.read_text())
        if self._he_state is not None and self._he_state[0] == meta:
            _, weights, opt_state = self._he_state
            return dict(weights), int(meta["model_round"]), opt_state
        weights = load_model(self.state_dir / "global.safetensors", expected_hash=meta["model_hash"])
        opt_state = None
        if meta.get("optimizer_digest"):
            opt_state = load_optimizer_state(
                self.state_dir / "server_opt.safetensors", expected_digest=meta["optimizer_digest"]
            )
        weights = check_weights(weights, self.template())
        self._he_state = (meta, weights, opt_state)
        return dict(weights), int(meta["model_round"]), opt_state

    def _save_he_state(self, weights: Weights, model_round: int, opt_state: OptimizerState | None) -> None:
        # Optimizer state, then model, then global.json naming both by hash: a crash between the
        # writes leaves global.json pointing at the previous consistent pair (both checked on load).
        opt_digest = save_optimizer_state(self.state_dir / "server_opt.safetensors", opt_state) if opt_state else None
        digest = save_model(self.state_dir / "global.safetensors", weights)
        meta = {"model_round": model_round, "model_hash": digest, "optimizer_digest": opt_digest}
        atomic_write_json(self.state_dir / "global.json", meta)
        self._he_state = (meta, dict(weights), opt_state)

    def _domain(self, config: ConfigRecord) -> SigningDomain:
        """The signing domain: the instruction's chain and ledger, this node's own Flower run id."""
        return SigningDomain(
            chain_id=int(config.get("chain-id", 0)),  # type: ignore[arg-type]
            ledger_address=str(config.get("ledger-address", "") or NO_LEDGER),
            run_id=self.run_id,
        )

    def _sign(
        self, domain: SigningDomain, server_round: int, payload_hash: str, num_examples: int, dp: DPParams | None
    ) -> str:
        digest = update_digest(
            domain=domain,
            server_round=server_round,
            address=self.address,
            payload_hash=payload_hash,
            num_examples=num_examples,
            dp=dp,
        )
        return sign_digest(self.private_key, digest)

    def _identity(self, global_hash: str, model_round: int) -> ConfigRecord:
        return ConfigRecord(
            {
                "member-id": self.member_id,
                "address": self.address,
                "kind": self.kind,
                "model-hash": global_hash,
                "model-round": model_round,
            }
        )

    # ---------------------------------------------------------------- metrics
    def _metrics(self, update: Any) -> None:
        """Apply ``update`` to this member's saved metrics (``state-dir/metrics.json``); never fails the round."""
        from fedchain.telemetry import MEMBER_STATE_FILENAME, MemberMetrics

        try:
            metrics = MemberMetrics.open(self.state_dir / MEMBER_STATE_FILENAME, member=self.address)
            update(metrics)
            metrics.save()
        except (FedChainError, OSError) as exc:
            log.warning("member %d: metrics not saved: %s", self.member_id, exc)

    # ------------------------------------------------------------------ train
    def train(self, msg: Message) -> Message:
        """Answer a train instruction: local training on the global model, reply with the signed update."""
        try:
            server_round = int(msg.content.config_records["config"]["server-round"])  # type: ignore[arg-type]
            weights, model_round = self._global_model(msg.content)
            self._check_against_chain(msg.content, weights, model_round)
            started = time.perf_counter()
            loss, dp, epsilon, delta = 0.0, None, None, np.zeros(sum(a.size for a in weights.values()))
            if adversary.trains(self.kind):
                model = self._new_model()
                task.set_weights(model, weights)
                proximal_mu = float(msg.content.config_records["config"].get("proximal-mu", 0.0))  # type: ignore[arg-type]
                model, loss, dp, epsilon = self._train_local(model, server_round, proximal_mu=proximal_mu)
                delta = flatten(task.get_weights(model)) - flatten(weights)
            if self.kind != "honest":  # simulated adversaries: for tests and benchmarks only
                rng = adversary.adversary_rng(
                    seed=self.config.seed, member_id=self.member_id, server_round=server_round
                )
                delta = adversary.adversarial_update(self.kind, delta, rng=rng)
            if self.member_id in self.config.crashing_members:
                raise RuntimeError(f"fault injection: member {self.member_id} killed during training")
            claimed = adversary.claimed_examples(self.kind, self.data.num_train)
            train_seconds = time.perf_counter() - started
            metrics: dict[str, Any] = {
                "num-examples": claimed,
                "train-loss": loss,
                "train-seconds": train_seconds,
            }
            if dp is not None and epsilon is not None:
                metrics.update(
                    {
                        "epsilon": epsilon,
                        "noise-multiplier": dp.noise_multiplier,
                        "sample-rate": dp.sample_rate,
                        "steps": dp.steps,
                        "max-grad-norm": dp.max_grad_norm,
                        "delta": dp.delta,
                    }
                )
            content = RecordDict(
                {"metrics": MetricRecord(metrics), "member": self._identity(model_hash(weights), model_round)}
            )
            encrypt_seconds: float | None = None
            if self.config.he:
                from fedchain import crypto

                encrypt_started = time.perf_counter()
                chunks = crypto.encrypt_update(self._context(), delta * claimed)
                encrypt_seconds = time.perf_counter() - encrypt_started
                content["update"] = chunks_to_record(chunks)
                payload_hash = crypto.ciphertext_digest(chunks)
            else:
                trained = unflatten(flatten(weights) + delta, weights)
                content["arrays"] = weights_to_record(trained)
                payload_hash = model_hash(trained)
            domain = self._domain(msg.content.config_records["config"])
            content.config_records["member"]["signature"] = self._sign(domain, server_round, payload_hash, claimed, dp)
            budget = self.config.epsilon if dp is not None else None

            def observe(m: Any) -> None:
                m.observe_training(train_seconds, epsilon=epsilon, epsilon_budget=budget, examples=self.data.num_train)
                if encrypt_seconds is not None:
                    m.observe_encrypt(encrypt_seconds)

            self._metrics(observe)
            return Message(content, reply_to=msg)
        except BudgetExhaustedError as exc:
            log.warning("member %d declines the round: %s", self.member_id, exc)
            self._metrics(lambda m: m.count("declined"))
            return Message(Error(code=ERROR_BUDGET_EXHAUSTED, reason=str(exc)), reply_to=msg)
        except (FedChainError, KeyError) as exc:
            log.warning("member %d refuses the instruction: %s", self.member_id, exc)
            self._metrics(lambda m: m.count("failed"))
            return Message(Error(code=ERROR_INVALID_INSTRUCTION, reason=f"{type(exc).__name__}: {exc}"), reply_to=msg)

    def answer_scalars(self, msg: Message) -> Message:
        """Decrypt-committee duty (HE scoring): decrypt the packed inner products; vectors never leave."""
        from fedchain.contribution import answer_scalar_request

        try:
            counts = [int(c) for c in msg.content.config_records["config"]["scalar-counts"]]  # type: ignore[union-attr]
            ciphertexts = record_to_chunks(msg.content.array_records["scalars"])
            values = [
                value
                for data, count in zip(ciphertexts, counts, strict=True)
                for value in answer_scalar_request(self._context(), data, count)
            ]
            return Message(RecordDict({"scalars": MetricRecord({"values": values})}), reply_to=msg)
        except (FedChainError, KeyError, ValueError) as exc:
            log.warning("member %d cannot answer the committee request: %s", self.member_id, exc)
            return Message(Error(code=ERROR_INVALID_INSTRUCTION, reason=f"{type(exc).__name__}: {exc}"), reply_to=msg)

    def _train_local(
        self, model: Any, server_round: int, *, proximal_mu: float = 0.0
    ) -> tuple[Any, float, DPParams | None, float | None]:
        seed = self.config.seed * 100_003 + server_round * 1_009 + self.member_id
        x, cfg = self.data.x_train, self.config
        y = adversary.adversarial_labels(self.kind, self.data.y_train, self.data.num_classes)
        if not cfg.dp:
            loss = task.train_plain(
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
            return model, loss, None, None
        from fedchain.privacy import NoiseCache, PrivacyLedger, federation_dp_config, train_private

        dp_config = federation_dp_config(cfg)
        if dp_config.noise_multiplier is None:  # calibrate once per member, not once per process
            sigma = NoiseCache(self.state_dir / "noise.json").noise_multiplier(
                dp_config, num_examples=len(y), epochs=cfg.dp_local_epochs, batch_size=cfg.dp_batch_size
            )
            dp_config = replace(dp_config, noise_multiplier=sigma)
        ledger = PrivacyLedger.open(self.state_dir / "privacy.json")
        result = train_private(
            model,
            x,
            y,
            epochs=cfg.dp_local_epochs,
            batch_size=cfg.dp_batch_size,
            learning_rate=cfg.dp_learning_rate,
            momentum=cfg.momentum,
            config=dp_config,
            ledger=ledger,
            seed=seed,
            proximal_mu=proximal_mu,
        )
        return result.model, result.train_loss, result.dp, result.epsilon

    # --------------------------------------------------------------- evaluate
    def evaluate(self, msg: Message) -> Message:
        """Answer an evaluate instruction: loss and accuracy of the global model on local test data."""
        try:
            weights, model_round = self._global_model(msg.content)
            model = self._new_model()
            task.set_weights(model, weights)
            loss, accuracy = task.evaluate(model, self.data.x_test, self.data.y_test)
            metrics = MetricRecord({"num-examples": len(self.data.y_test), "loss": loss, "accuracy": accuracy})
            content = RecordDict({"metrics": metrics, "member": self._identity(model_hash(weights), model_round)})
            self._metrics(lambda m: m.count("evaluated"))
            return Message(content, reply_to=msg)
        except (FedChainError, KeyError) as exc:
            log.warning("member %d refuses to evaluate: %s", self.member_id, exc)
            self._metrics(lambda m: m.count("failed"))
            return Message(Error(code=ERROR_INVALID_INSTRUCTION, reason=f"{type(exc).__name__}: {exc}"), reply_to=msg)
