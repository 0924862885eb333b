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
    ``ckks-context``: the federation's secret CKKS context (defaults to ``<he-keys-dir>/member.ckks``);
        a node that names one never sends plaintext weights (its policy requires HE).
    ``policy-file`` / ``policy-<key>``: the member's own privacy policy (:mod:`fedchain.policy`):
        budget, HE and DP required, smallest cohort, accepted DP parameters. The run config only
        proposes; an instruction outside the policy is refused (``ERROR_POLICY_REFUSED``).
    ``new-member``: deployment: true lets a member without accountant state (``privacy.json``)
        start one; otherwise it refuses DP training (``ERROR_PRIVACY_STATE_MISSING``).

Simulation or deployment is the node's own fact (:func:`fedchain.simulation.is_simulation`), never
the run config's: in a simulation the policy defaults to the simulation's settings and the testing
hooks (``adversaries``, ``faults``) act; in deployment the policy defaults are
:class:`~fedchain.policy.MemberPolicy`'s, the testing hooks are refused, and state lives only in the
node's ``state-dir``.

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
from fedchain._validation import check_bool
from fedchain.aggregation import OptimizerState, load_optimizer_state, save_optimizer_state
from fedchain.config import FedChainConfig
from fedchain.data import load_demo_partition, load_local_dataset
from fedchain.errors import (
    BudgetExhaustedError,
    FedChainError,
    IntegrityError,
    PolicyError,
    PrivacyStateMissingError,
    SerializationError,
)
from fedchain.identity import address_of, simulated_member_key
from fedchain.identity.signing import NO_LEDGER, SigningDomain, sign_digest, update_digest
from fedchain.policy import MemberPolicy, check_testing_hooks, load_policy
from fedchain.protocol import (
    ERROR_BUDGET_EXHAUSTED,
    ERROR_COMMITTEE_REFUSED,
    ERROR_INVALID_INSTRUCTION,
    ERROR_POLICY_REFUSED,
    ERROR_PRIVACY_STATE_MISSING,
    chunks_to_record,
    record_to_chunks,
    record_to_weights,
    weights_to_record,
)
from fedchain.serialization import Weights, check_weights, flatten, load_model, model_hash, save_model, unflatten
from fedchain.simulation import is_simulation
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
        if not is_simulation():  # a key derived from the run seed is a key the coordinator can compute
            raise FedChainError(
                "this member has no wallet: set wallet-keystore in the node config (fedchain member enroll "
                "creates one); a key derived from the run seed is only for fedchain's simulation"
            )
        return simulated_member_key(seed=config.seed, member_id=member_id)
    from fedchain.identity.wallet import decrypt_key

    password_env = str(node_config.get("wallet-password-env", "FEDCHAIN_WALLET_PASSWORD"))
    password = os.environ.get(password_env)
    if password is None:
        raise FedChainError(f"wallet keystore {keystore!r} needs its password in ${password_env}")
    try:
        return decrypt_key(json.loads(Path(keystore).read_text()), password)
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
    #: The member's own privacy policy (node config; the simulation's settings in a simulation).
    policy: MemberPolicy = field(default_factory=MemberPolicy)
    #: Whether this process is a simulation (:func:`fedchain.simulation.is_simulation`), decided once.
    simulation: bool = False
    #: Deployment: the node config says this member is new, so it may start an accountant.
    new_member: bool = False
    #: Deployment: ``state-dir`` came from the node config (not a temporary folder).
    durable_state: bool = True
    #: The budget ``(epsilon, delta)`` of the round being trained: the stricter of policy, chain and run.
    _budget: tuple[float, float] | None = field(default=None, repr=False)
    _ckks: Any = field(default=None, repr=False)
    _ledger: Any = field(default=None, repr=False)
    _template: Weights | None = field(default=None, repr=False)
    #: The HE state last read or written by this process, keyed by the ``global.json`` it matches.
    _he_state: tuple[dict[str, Any], Weights, OptimizerState | None] | None = field(default=None, repr=False)
    #: The accountant's history after the last DP round this process trained.
    _spend_history: tuple[tuple[float, float, int], ...] = field(default=(), repr=False)
    #: Decrypted aggregate sums ``S`` applied by this process, by round (a member checks its scalars against them).
    _sums: dict[int, np.ndarray] = field(default_factory=dict, repr=False)

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
        simulation = is_simulation()
        if node_config.get("state-dir"):
            state_dir = Path(str(node_config["state-dir"]))
        else:  # the run config's out-dir is the coordinator's choice: only a simulation uses it
            out_dir = config.out_dir if simulation else ""
            root = Path(out_dir) if out_dir else Path(tempfile.gettempdir()) / f"fedchain-{context.run_id}"
            state_dir = root / "members" / f"member-{member_id}"
        state_dir.mkdir(parents=True, exist_ok=True)
        policy = load_policy(
            node_config,
            state_dir=state_dir if node_config.get("state-dir") else None,
            defaults=MemberPolicy.for_simulation(config) if simulation else MemberPolicy(),
        )
        if node_config.get("ckks-context") and not policy.require_he:  # holds the secret key: never plaintext
            policy = replace(policy, require_he=True, min_cohort=max(2, policy.min_cohort))
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
            kind=member_kind(config, member_id) if simulation else "honest",
            data=data,
            state_dir=state_dir,
            ckks_path=ckks_path,
            run_id=int(context.run_id),
            policy=policy,
            simulation=simulation,
            new_member=check_bool("new-member", node_config.get("new-member", False)),
            durable_state=simulation or bool(node_config.get("state-dir")),
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
            members = config.get(f"agg.{agg_round}.members")
            self.policy.check_aggregate(agg_round, None if members is None else int(members))  # type: ignore[arg-type]
            total_weight = int(config[f"agg.{agg_round}.weight"])  # type: ignore[arg-type]
            if total_weight <= 0:
                raise SerializationError(f"aggregate of round {agg_round} has total weight {total_weight}")
            size = sum(array.size for array in weights.values())
            total = crypto.decrypt_update(self._context(), chunks, size)
            self._sums = {agg_round: total}  # the latest round's sum S, for the member's scalar check
            mean_delta = total / total_weight
            flat, opt_state = optimizer.step(flatten(weights), mean_delta, opt_state, server_round=agg_round)
            weights = unflatten(flat, weights)
            model_round = agg_round
        target = int(config.get("model-round", model_round))  # type: ignore[arg-type]
        if model_round < target:
            model_round = target  # rounds without an aggregate (skipped) leave the model unchanged
        if model_round != loaded_round:
            self._save_he_state(weights, model_round, opt_state)
        return weights, model_round

    def _ledger_at(self, ledger_address: str) -> Any:
        """The ledger the instruction names, on the run's JSON-RPC chain (connected once per process)."""
        if self._ledger is None:
            from fedchain.ledger import Web3Ledger, connect

            self._ledger = Web3Ledger(
                connect(self.config.chain, private_key="0x" + self.private_key.hex()), ledger_address
            )
        return self._ledger

    def _check_policy(self, config: ConfigRecord) -> tuple[float, float]:
        """Refuse, before anything is decrypted or trained, an instruction outside this member's policy.

        Checks, in order: testing hooks outside a simulation; the run config and the announced
        ``cohort`` against the policy, its budget lowered to the one on chain where the node can
        read it; in deployment with DP on, the accountant state (see :meth:`_require_privacy_state`).

        Returns:
            The budget ``(epsilon, delta)`` this round trains under.

        Raises:
            PolicyError: the instruction would weaken the policy (names field, value and limit).
            PrivacyStateMissingError: a deployed member has no accountant state and is not new.
        """
        check_testing_hooks(self.config, simulation=self.simulation)
        policy = self.policy
        ledger_address = str(config.get("ledger-address", "") or "")
        if ledger_address and self.config.chain.startswith(("http://", "https://")):
            policy = policy.stricter(self._ledger_at(ledger_address).privacy_budget(self.address), source="chain")
        cohort = config.get("cohort")
        budget = policy.check_run(self.config, cohort=None if cohort is None else int(cohort))  # type: ignore[arg-type]
        if self.config.dp:
            self._require_privacy_state()
        return budget

    def _require_privacy_state(self) -> None:
        """Deployment: refuse DP training without accountant state unless the node config says the member is new.

        A simulation starts its members fresh. A deployed member whose ``privacy.json`` is missing
        (a lost or wrong ``state-dir``) would otherwise restart its epsilon at 0.
        """
        path = self.state_dir / "privacy.json"
        if self.simulation or path.exists():
            return
        if not self.durable_state:
            raise PrivacyStateMissingError(f"{path} (no state-dir in the node config)")
        if not self.new_member:
            raise PrivacyStateMissingError(path)
        log.info("member %d is new (new-member = true): starting its privacy accountant at %s", self.member_id, path)

    def _check_against_chain(self, content: RecordDict, weights: Weights, model_round: int) -> None:
        """Refuse a global model whose hash differs from the one recorded on chain for its round.

        Under HE this also covers the aggregates: a different aggregate yields a different model.
        Needs a chain members can read (a JSON-RPC URL); the embedded chain lives inside the
        coordinator's process, so members of an embedded-chain simulation cannot check it.
        """
        ledger_address = str(content.config_records["config"].get("ledger-address", "") or "")
        if model_round == 0 or not ledger_address or not self.config.chain.startswith(("http://", "https://")):
            return
        recorded = self._ledger_at(ledger_address).get_round(model_round).model_hash
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
            self._note_round(msg.content.config_records["config"], server_round)
            self._budget = self._check_policy(msg.content.config_records["config"])  # before decrypting or training
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
                        # Every round this member's accountant charged, as flat (sigma, q, steps)
                        # triples: the coordinator records those the chain lacks (late, replayed).
                        "spend-history": [float(v) for entry in self._spend_history for v in entry],
                        "noise-seeded": int(self.config.dp_noise_seed >= 0),
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
                if self.config.he_scoring:
                    self._keep_update(server_round, delta * claimed)
                    self._note_round(msg.content.config_records["config"], server_round, trained_again=True)
                encrypt_seconds = time.perf_counter() - encrypt_started
                content["update"] = chunks_to_record(chunks)
                payload_hash = crypto.ciphertext_digest(chunks)
            else:
                trained = unflatten(flatten(weights) + delta, weights)
                content["arrays"] = weights_to_record(trained)
                payload_hash = model_hash(trained)
            domain = self._domain(msg.content.config_records["config"])
            content.config_records["member"]["signature"] = self._sign(domain, server_round, payload_hash, claimed, dp)
            budget = self._budget[0] if dp is not None and self._budget is not None else None

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
        except PolicyError as exc:
            log.warning("member %d: its privacy policy refuses the instruction: %s", self.member_id, exc)
            self._metrics(lambda m: m.count("refused"))
            return Message(Error(code=ERROR_POLICY_REFUSED, reason=str(exc)), reply_to=msg)
        except PrivacyStateMissingError as exc:
            log.warning("member %d refuses to train: %s", self.member_id, exc)
            self._metrics(lambda m: m.count("refused"))
            return Message(Error(code=ERROR_PRIVACY_STATE_MISSING, reason=str(exc)), reply_to=msg)
        except (FedChainError, KeyError) as exc:
            log.warning("member %d refuses the instruction: %s", self.member_id, exc)
            self._metrics(lambda m: m.count("failed"))
            return Message(Error(code=ERROR_INVALID_INSTRUCTION, reason=f"{type(exc).__name__}: {exc}"), reply_to=msg)

    # ---------------------------------------------------------- committee duty
    def _committee_state(self) -> dict[str, Any]:
        """``state-dir/committee.json``: the current round, its cohort and domain, the exchanges answered."""
        path = self.state_dir / "committee.json"
        if not path.exists():
            return {}
        try:
            state = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise SerializationError(f"committee state {path} is unreadable: {exc}") from exc
        return state if isinstance(state, dict) else {}

    def _note_round(self, config: ConfigRecord, server_round: int, *, trained_again: bool = False) -> None:
        """Remember the round this member was last instructed to train in: the committee's current round.

        Kept in the state dir because Flower's deployment runtime answers each message in a new
        process. A repeated instruction of the same round keeps the exchanges already answered,
        unless the member has just trained the round again (``trained_again``): scalars about a
        new update get a fresh quota. That happens when a round is replayed after a coordinator
        crash, and each replay costs the member privacy that the chain records as ``replayed``, so
        a coordinator cannot reset the quota for free (a refused or failed instruction resets nothing).
        """
        if not self.config.he or (self._committee_state().get("round") == server_round and not trained_again):
            return
        state = {
            "round": server_round,
            "cohort": int(config.get("cohort", 0)),  # type: ignore[arg-type]
            "answered": {},
        }
        atomic_write_json(self.state_dir / "committee.json", state)

    def _keep_update(self, server_round: int, update: np.ndarray) -> None:
        """Keep ``a_i = n_i * delta_i`` (safetensors) to check the scalars revealed about it; two rounds kept."""
        directory = self.state_dir / "updates"
        directory.mkdir(parents=True, exist_ok=True)
        save_model(directory / f"round-{server_round}.safetensors", {"update": np.asarray(update, dtype=np.float64)})
        for old in directory.glob("round-*.safetensors"):
            if old.stem.removeprefix("round-").isdigit() and int(old.stem.removeprefix("round-")) < server_round - 1:
                old.unlink(missing_ok=True)

    def _kept_update(self, server_round: int) -> np.ndarray | None:
        path = self.state_dir / "updates" / f"round-{server_round}.safetensors"
        return load_model(path)["update"] if path.exists() else None

    def _min_cohort(self) -> int:
        """The smallest cohort whose scalars this member reveals: 2, or its own policy's if larger."""
        from fedchain.contribution.committee import MIN_COHORT

        return max(MIN_COHORT, self.policy.min_cohort)

    @staticmethod
    def _parse_committee_request(content: RecordDict) -> Any:
        """The labelled :class:`~fedchain.contribution.committee.CommitteeRequest` of a query message."""
        from fedchain.contribution.committee import CommitteeRequest, CommitteeRequestError, ScalarRequest

        try:
            config = content.config_records["config"]
            kinds = [str(kind) for kind in config["scalar-kinds"]]  # type: ignore[union-attr]
            counts = [int(count) for count in config["scalar-counts"]]  # type: ignore[union-attr]
            addresses = [str(address) for address in config["scalar-addresses"]]  # type: ignore[union-attr]
            ciphertexts = record_to_chunks(content.array_records["scalars"])
            server_round, exchange = int(config["server-round"]), int(config["exchange"])  # type: ignore[arg-type]
        except (KeyError, TypeError, ValueError, SerializationError) as exc:
            raise CommitteeRequestError(
                f"malformed committee request ({type(exc).__name__}: {exc}): it must name its round, exchange, "
                "and each ciphertext's kind, count and addresses"
            ) from exc
        if not len(kinds) == len(counts) == len(ciphertexts):
            raise CommitteeRequestError(
                f"{len(ciphertexts)} ciphertexts, {len(kinds)} kinds and {len(counts)} counts: one of each"
            )
        requests, offset = [], 0
        for kind, count, data in zip(kinds, counts, ciphertexts, strict=True):
            labelled = 0 if kind == "agg_sq_norm" else count
            names = tuple(addresses[offset : offset + labelled])
            if count != (len(names) if kind != "agg_sq_norm" else 1) or count < 1:
                raise CommitteeRequestError(
                    f"a {kind} ciphertext of {count} scalars must be labelled by as many addresses"
                )
            requests.append(ScalarRequest(kind, names, data))
            offset += labelled
        if offset != len(addresses):
            raise CommitteeRequestError(f"{len(addresses)} addresses for {offset} labelled scalars")
        return CommitteeRequest(server_round, exchange, tuple(requests))

    def answer_scalars(self, msg: Message) -> Message:
        """Decrypt-committee duty (HE scoring): check the request, decrypt its scalars, sign the answer.

        Only well-formed requests of the current round within the quota are answered
        (:func:`fedchain.contribution.committee.check_request`); anything else, including a
        ciphertext that holds more values than its labels, gets the Error reply
        ``ERROR_COMMITTEE_REFUSED`` before anything is revealed. Vectors never leave.
        """
        from fedchain.contribution.committee import (
            CommitteeRequestError,
            answer_scalar_request,
            check_request,
            request_shape,
        )
        from fedchain.errors import CryptoError
        from fedchain.identity.signing import scalars_digest

        try:
            request = self._parse_committee_request(msg.content)
            state = self._committee_state()
            answered = {int(k): v["shape"] for k, v in dict(state.get("answered", {})).items()}
            check_request(
                request,
                current_round=int(state.get("round", 0)),
                cohort=int(state.get("cohort", 0)),
                answered=answered,
                min_cohort=self._min_cohort(),
            )
            values = []
            for position, scalars in enumerate(request.requests):
                try:
                    values.append(answer_scalar_request(self._context(), scalars.ciphertext, scalars.count))
                except (SerializationError, CryptoError) as exc:
                    raise CommitteeRequestError(
                        f"ciphertext {position} ({scalars.kind}) does not hold exactly its {scalars.count} "
                        f"labelled scalars: {exc}"
                    ) from exc
            request_hash = request.request_hash
            digest = scalars_digest(
                domain=self._domain(msg.content.config_records["config"]),
                server_round=request.server_round,
                exchange=request.exchange,
                request_hash=request_hash,
                values=values,
            )
            state["answered"] = {
                **dict(state.get("answered", {})),
                str(request.exchange): {"shape": request_shape(request.requests), "request_hash": request_hash},
            }
            atomic_write_json(self.state_dir / "committee.json", state)
            answer = ConfigRecord(
                {
                    "signer": self.address,
                    "signature": sign_digest(self.private_key, digest),
                    "request-hash": request_hash,
                    "server-round": request.server_round,
                    "exchange": request.exchange,
                }
            )
            flat = [value for row in values for value in row]
            return Message(RecordDict({"scalars": MetricRecord({"values": flat}), "answer": answer}), reply_to=msg)
        except CommitteeRequestError as exc:
            log.warning("member %d refuses the committee request: %s", self.member_id, exc)
            return Message(Error(code=ERROR_COMMITTEE_REFUSED, reason=str(exc)), reply_to=msg)
        except (FedChainError, KeyError, ValueError) as exc:
            log.warning("member %d cannot answer the committee request: %s", self.member_id, exc)
            return Message(Error(code=ERROR_INVALID_INSTRUCTION, reason=f"{type(exc).__name__}: {exc}"), reply_to=msg)

    def _check_scalars(self, config: ConfigRecord, server_round: int) -> tuple[Any, str] | None:
        """Check the scalars revealed in ``server_round`` that concern this member; a dispute if one is wrong.

        Returns:
            ``(Dispute, reason)`` when a revealed scalar about this member, the sum's norm, the
            commitment or a committee signature is wrong, or when this member's own committee
            answer was withheld; None when everything checked agrees.
        """
        from fedchain.contribution.committee import RevealedScalars, check_own_scalars
        from fedchain.identity.signing import dispute_digest, recover_signer, scalars_digest
        from fedchain.types import ZERO_HASH, Dispute

        raw = config.get("revealed-scalars")
        state = self._committee_state()
        answered = dict(state.get("answered", {})) if state.get("round") == server_round else {}
        if not raw and not answered:
            return None
        commitment = str(config.get("scalars-commitment", "") or ZERO_HASH)
        domain = self._domain(config)
        problems: list[str] = []
        revealed = None
        if raw:
            try:
                revealed = RevealedScalars.from_json(json.loads(str(raw)))
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
                address=self.address,
                update=self._kept_update(server_round),
                total=self._sums.get(server_round),
            )
        for exchange_key, entry in answered.items():
            shown = revealed is not None and any(
                str(exchange.exchange) == exchange_key
                and exchange.request_hash(revealed.server_round) == entry.get("request_hash")
                and any(answer.signer == self.address for answer in exchange.answers)
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
        dispute = Dispute(server_round, self.address, commitment, sign_digest(self.private_key, digest))
        reason = "; ".join(problems)
        log.warning("member %d disputes round %d: %s", self.member_id, server_round, reason)
        self._file_dispute(dispute, domain.ledger_address)
        return dispute, reason

    def _file_dispute(self, dispute: Any, ledger_address: str) -> None:
        """File ``dispute`` on chain when this member can reach it (``chain`` is a JSON-RPC URL)."""
        if not self.config.chain.startswith(("http://", "https://")) or ledger_address == NO_LEDGER:
            return
        try:
            if self._ledger is None:
                from fedchain.ledger import Web3Ledger, connect

                self._ledger = Web3Ledger(
                    connect(self.config.chain, private_key="0x" + self.private_key.hex()), ledger_address
                )
            file_dispute = getattr(self._ledger, "file_dispute", None)
            if file_dispute is None:
                log.warning("member %d: this ledger client cannot file disputes; relayed by the reply", self.member_id)
                return
            file_dispute(dispute)
        except Exception as exc:  # the reply still carries the dispute for the coordinator to relay
            log.warning(
                "member %d: filing the dispute of round %d failed: %s", self.member_id, dispute.server_round, exc
            )

    def noise_seed(self, *, server_round: int) -> int | None:
        """The round's DP noise seed: None (a CSPRNG) unless a simulation asked for ``dp-noise-seed``.

        Raises:
            PolicyError: a fixed noise seed outside fedchain's simulation runner.
        """
        if self.config.dp_noise_seed < 0:
            return None
        if not is_simulation():
            raise PolicyError(
                "dp-noise-seed",
                self.config.dp_noise_seed,
                "a CSPRNG (a fixed noise seed lets anyone who knows it strip the DP noise); "
                "it is a testing switch of fedchain's simulation runner only",
            )
        return self.config.dp_noise_seed * 100_003 + server_round * 1_009 + self.member_id

    def _train_local(
        self, model: Any, server_round: int, *, proximal_mu: float = 0.0
    ) -> tuple[Any, float, DPParams | None, float | None]:
        # Shuffling without DP is not private; it stays reproducible from the run seed.
        seed = self.config.seed * 100_003 + server_round * 1_009 + self.member_id
        x, cfg = self.data.x_train, self.config
        y = adversary.adversarial_labels(self.kind, self.data.y_train, self.data.num_classes)
        if not cfg.dp:
            from fedchain.privacy import train_plain

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
            return model, plain.train_loss, None, None
        from fedchain.privacy import (
            NoiseCache,
            PrivacyAccountant,
            PrivacyBudget,
            federation_dp_config,
            plan_round,
            train_private,
        )

        dp_config = federation_dp_config(cfg)
        if self._budget is not None:  # the member's own budget (check_run refused a looser proposal)
            dp_config = replace(dp_config, budget=PrivacyBudget(*self._budget))
        if dp_config.noise_multiplier is None:  # calibrate once per member, not once per process
            sigma = NoiseCache(self.state_dir / "noise.json").noise_multiplier(
                dp_config, num_examples=len(y), epochs=cfg.dp_local_epochs, batch_size=cfg.dp_batch_size
            )
            dp_config = replace(dp_config, noise_multiplier=sigma)
        plan = plan_round(dp_config, num_examples=len(y), epochs=cfg.dp_local_epochs, batch_size=cfg.dp_batch_size)
        self.policy.check_dp(
            noise_multiplier=plan.noise_multiplier,
            sample_rate=plan.sample_rate,
            steps=plan.steps,
            max_grad_norm=plan.max_grad_norm,
        )
        ledger = PrivacyAccountant.open(self.state_dir / "privacy.json")
        result = train_private(
            model,
            x,
            y,
            epochs=cfg.dp_local_epochs,
            batch_size=cfg.dp_batch_size,
            learning_rate=cfg.dp_learning_rate,
            momentum=cfg.momentum,
            config=dp_config,
            accountant=ledger,
            seed=self.noise_seed(server_round=server_round),
            proximal_mu=proximal_mu,
        )
        self._spend_history = ledger.history
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
            if self.config.he:  # the scalars the committee revealed about this member, checked
                disputed = self._check_scalars(msg.content.config_records["config"], model_round)
                if disputed is not None:
                    dispute, reason = disputed
                    content.config_records["member"]["dispute-commitment"] = dispute.scalars_commitment
                    content.config_records["member"]["dispute-signature"] = dispute.signature
                    content.config_records["member"]["dispute-reason"] = reason
            self._metrics(lambda m: m.count("evaluated"))
            return Message(content, reply_to=msg)
        except (FedChainError, KeyError) as exc:
            log.warning("member %d refuses to evaluate: %s", self.member_id, exc)
            self._metrics(lambda m: m.count("failed"))
            return Message(Error(code=ERROR_INVALID_INSTRUCTION, reason=f"{type(exc).__name__}: {exc}"), reply_to=msg)
