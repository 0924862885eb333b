"""The member node: what an organization runs, and the state it keeps from round to round.

One :class:`MemberNode` exists per (run, node) in a process. It is built from Flower's
``Context``: the run config (the federation's options) and the node config (this member's
data, keys and state). It holds the member's state (data, keys, privacy policy, the global model
under HE, the committee state) and the checks on it; it does not read or write Flower records:
:mod:`fedchain.protocol` does, and the member's ClientApp (:mod:`clients.client_app`) answers
each message with the mods of :mod:`clients.mods` (privacy policy and budget; encrypt and sign)
around the local work of :mod:`clients.training` and :mod:`clients.committee`.

Node config keys:
    ``partition-id`` / ``num-partitions``: simulation: which shard of the task's bundled data set to use.
    ``data-path`` / ``label-column`` / ``num-classes``: deployment: the organization's CSV,
        Parquet or NPZ file (flat rows: the task reshapes them to its input shape).
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
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from flwr.app import Context, Message, RecordDict

from fedchain._io import atomic_write_json
from fedchain._validation import check_bool
from fedchain.aggregation import OptimizerState, load_optimizer_state, save_optimizer_state
from fedchain.config import FedChainConfig
from fedchain.errors import (
    FedChainError,
    IntegrityError,
    PolicyError,
    PrivacyStateMissingError,
    SerializationError,
)
from fedchain.identity import address_of, simulated_member_key
from fedchain.identity.signing import NO_LEDGER, SigningDomain, sign_digest
from fedchain.policy import MemberPolicy, check_testing_hooks, load_policy
from fedchain.protocol import CommitteeQuery, EvaluateIns, MemberIdentity, SealedAggregate, TrainIns
from fedchain.serialization import Weights, check_weights, flatten, load_model, model_hash, save_model, unflatten
from fedchain.simulation import is_simulation
from fedchain.tasks import Task, create_task
from fedchain.types import LocalDataset

if TYPE_CHECKING:
    from clients.training import LocalUpdate

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
    #: The Flower node id this node answers as (None: built directly, not from a Context).
    node_id: int | None = None
    #: The budget ``(epsilon, delta)`` of the round being trained: the stricter of policy, chain and run.
    budget: tuple[float, float] | None = field(default=None, repr=False)
    _ckks: Any = field(default=None, repr=False)
    _ledger: Any = field(default=None, repr=False)
    _template: Weights | None = field(default=None, repr=False)
    #: The HE state last read or written by this process, keyed by the ``global.json`` it matches.
    _he_state: tuple[dict[str, Any], Weights, OptimizerState | None] | None = field(default=None, repr=False)
    #: Decrypted aggregate sums ``S`` applied by this process, by round (a member checks its scalars against them).
    _sums: dict[int, np.ndarray] = field(default_factory=dict, repr=False)
    #: The local update training handed over to the seal mod.
    _pending: LocalUpdate | None = field(default=None, repr=False)
    #: The run's task (:mod:`fedchain.tasks`): model, data shape, evaluation; built from ``config`` when None.
    _task: Task | None = field(default=None, repr=False)

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
        classes = int(node_config.get("num-classes", config.num_classes))
        task = create_task(config=config if classes == config.num_classes else config.replace(num_classes=classes))
        if data_path:
            label_column = str(node_config.get("label-column", "label"))
            data = task.load_file(data_path, label_column=label_column, seed=config.seed + member_id)
        else:
            data = task.load_demo(member_id, int(node_config.get("num-partitions", config.total_members)))
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
            node_id=int(context.node_id),
            policy=policy,
            simulation=simulation,
            new_member=check_bool("new-member", node_config.get("new-member", False)),
            durable_state=simulation or bool(node_config.get("state-dir")),
            _task=task,
        )

    def flower_context(self) -> Context:
        """A Flower ``Context`` that resolves to this node: to answer a message through the ClientApp."""
        key = (self.run_id, self.node_id if self.node_id is not None else -id(self))
        _NODES[key] = self
        return Context(run_id=key[0], node_id=key[1], node_config={}, state=RecordDict(), run_config={})

    # ----------------------------------------------------------------- answers
    def train(self, msg: Message) -> Message:
        """Answer a train instruction as the member's ClientApp does (its mods included).

        The reply's records are returned as the coordinator reads them: its envelope
        (:mod:`fedchain.envelope`) opened, as for :meth:`evaluate` and :meth:`answer_scalars`.
        """
        return self._answer(msg)

    def evaluate(self, msg: Message) -> Message:
        """Answer an evaluate instruction as the member's ClientApp does."""
        return self._answer(msg)

    def answer_scalars(self, msg: Message) -> Message:
        """Answer a committee query as the member's ClientApp does (see :mod:`clients.committee`)."""
        return self._answer(msg)

    def _answer(self, msg: Message) -> Message:
        from clients.client_app import app
        from fedchain.envelope import unpack

        reply = app(msg, self.flower_context())
        if reply.has_content():
            reply.content = unpack(reply.content)
        return reply

    # ------------------------------------------------------------------ model
    @property
    def task(self) -> Task:
        """The run's task (``task`` in the run config): builds, loads and evaluates the model."""
        if self._task is None:
            self._task = create_task(config=self.config)
        return self._task

    def new_model(self) -> Any:
        """The task's model, with the seeded initial weights."""
        return self.task.build_model(seed=self.config.seed)

    def template(self) -> Weights:
        """The seeded initial weights: the shape every model must have, and round 0's model under HE."""
        if self._template is None:
            self._template = self.task.get_weights(self.new_model())
        return {name: array.copy() for name, array in self._template.items()}

    def _context(self) -> Any:
        from fedchain import crypto

        if self._ckks is None:
            if self.ckks_path is None:
                raise FedChainError("HE is on but this node has no CKKS context: set he-keys-dir or ckks-context")
            self._ckks = crypto.load_member_context(crypto.read_context(self.ckks_path))
        return self._ckks

    def global_model(self, ins: TrainIns | EvaluateIns) -> tuple[Weights, int]:
        """The global model the instruction refers to: sent in plaintext, or rebuilt from aggregates under HE."""
        if not self.config.he:
            if ins.model is None:
                raise SerializationError("a plaintext instruction must carry the global model ('model' record)")
            return check_weights(ins.model, self.template()), ins.model_round
        return self._apply_aggregates(ins.aggregates, target=ins.model_round)

    def _apply_aggregates(self, aggregates: tuple[SealedAggregate, ...], *, target: int) -> tuple[Weights, int]:
        from fedchain import crypto
        from fedchain.aggregation import create_server_optimizer

        weights, model_round, opt_state = self._load_he_state()
        loaded_round = model_round
        for aggregate in aggregates:
            agg_round = aggregate.server_round
            if agg_round <= model_round:
                continue
            crypto.verify_digest(aggregate.chunks, aggregate.digest, what=f"aggregate of round {agg_round}")
            self.policy.check_aggregate(agg_round, aggregate.members)
            size = sum(array.size for array in weights.values())
            total = crypto.decrypt_update(self._context(), list(aggregate.chunks), size)
            self._sums = {agg_round: total}  # the latest round's sum S, for the member's scalar check
            mean_delta = total / aggregate.total_weight
            # the strategy's member update, sent with the aggregate ("avg": w + S / W)
            optimizer = create_server_optimizer(aggregate.update, **dict(aggregate.update_options))
            flat, opt_state = optimizer.step(flatten(weights), mean_delta, opt_state, server_round=agg_round)
            weights = unflatten(flat, weights)
            model_round = agg_round
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

    def reads_chain(self) -> bool:
        """Whether this node can read the run's chain (a JSON-RPC URL; the embedded chain is the coordinator's)."""
        return self.config.chain.startswith(("http://", "https://"))

    def check_policy(self, ins: TrainIns) -> tuple[float, float]:
        """Refuse, before anything is decrypted or trained, an instruction outside this member's policy.

        Checks, in order: testing hooks outside a simulation; the run config and the announced
        ``cohort`` against the policy, its budget lowered to the one on chain where the node can
        read it; in deployment with DP on, the accountant state (see :meth:`_require_privacy_state`).

        Returns:
            The budget ``(epsilon, delta)`` this round trains under (also kept for the round).

        Raises:
            PolicyError: the instruction would weaken the policy (names field, value and limit).
            PrivacyStateMissingError: a deployed member has no accountant state and is not new.
        """
        check_testing_hooks(self.config, simulation=self.simulation)
        policy = self.policy
        if ins.ledger_address and self.reads_chain():
            policy = policy.stricter(self._ledger_at(ins.ledger_address).privacy_budget(self.address), source="chain")
        budget = policy.check_run(self.config, cohort=ins.cohort)
        if self.config.dp:
            self._require_privacy_state()
        self.budget = budget
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

    def check_against_chain(self, ins: TrainIns | EvaluateIns, weights: Weights, model_round: int) -> None:
        """Refuse a global model whose hash differs from the one recorded on chain for its round.

        Under HE this also covers the aggregates: a different aggregate yields a different model.
        Needs a chain members can read (a JSON-RPC URL); the embedded chain lives inside the
        coordinator's process, so members of an embedded-chain simulation cannot check it.
        """
        if model_round == 0 or not ins.ledger_address or not self.reads_chain():
            return
        recorded = self._ledger_at(ins.ledger_address).get_round(model_round).model_hash
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

    # --------------------------------------------------------------- identity
    def domain(self, ins: TrainIns | EvaluateIns | CommitteeQuery) -> SigningDomain:
        """The signing domain: the instruction's chain and ledger, this node's own Flower run id."""
        return SigningDomain(chain_id=ins.chain_id, ledger_address=ins.ledger_address or NO_LEDGER, run_id=self.run_id)

    def sign(self, digest: str) -> str:
        """The member's EIP-191 signature over ``digest``."""
        return sign_digest(self.private_key, digest)

    def identity(self, global_hash: str, model_round: int) -> MemberIdentity:
        """Who answers, and from which global model (unsigned)."""
        return MemberIdentity(
            member_id=self.member_id,
            address=self.address,
            kind=self.kind,
            model_hash=global_hash,
            model_round=model_round,
        )

    # ---------------------------------------------------------------- metrics
    def record_metrics(self, update: Any) -> None:
        """Apply ``update`` to this member's saved metrics (``state-dir/metrics.json``); never fails the round."""
        from fedchain.telemetry import MEMBER_STATE_FILENAME, MemberMetrics

        try:
            metrics = MemberMetrics.open(self.state_dir / MEMBER_STATE_FILENAME, member=self.address)
            update(metrics)
            metrics.save()
        except (FedChainError, OSError) as exc:
            log.warning("member %d: metrics not saved: %s", self.member_id, exc)

    # --------------------------------------------------------- committee state
    def committee_state(self) -> dict[str, Any]:
        """``state-dir/committee.json``: the current round, its cohort and domain, the exchanges answered."""
        path = self.state_dir / "committee.json"
        if not path.exists():
            return {}
        try:
            state = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise SerializationError(f"committee state {path} is unreadable: {exc}") from exc
        return state if isinstance(state, dict) else {}

    def save_committee_state(self, state: dict[str, Any]) -> None:
        """Write ``state-dir/committee.json`` atomically."""
        atomic_write_json(self.state_dir / "committee.json", state)

    def note_round(self, server_round: int, cohort: int | None, *, trained_again: bool = False) -> None:
        """Remember the round this member was last instructed to train in: the committee's current round.

        Kept in the state dir because Flower's deployment runtime answers each message in a new
        process. A repeated instruction of the same round keeps the exchanges already answered,
        unless the member has just trained the round again (``trained_again``): scalars about a
        new update get a fresh quota. That happens when a round is replayed after a coordinator
        crash, and each replay costs the member privacy that the chain records as ``replayed``, so
        a coordinator cannot reset the quota for free (a refused or failed instruction resets nothing).
        """
        if not self.config.he or (self.committee_state().get("round") == server_round and not trained_again):
            return
        self.save_committee_state({"round": server_round, "cohort": cohort or 0, "answered": {}})

    def keep_update(self, server_round: int, update: np.ndarray) -> None:
        """Keep ``a_i = n_i * delta_i`` (safetensors) to check the scalars revealed about it; two rounds kept."""
        directory = self.state_dir / "updates"
        directory.mkdir(parents=True, exist_ok=True)
        save_model(directory / f"round-{server_round}.safetensors", {"update": np.asarray(update, dtype=np.float64)})
        for old in directory.glob("round-*.safetensors"):
            if old.stem.removeprefix("round-").isdigit() and int(old.stem.removeprefix("round-")) < server_round - 1:
                old.unlink(missing_ok=True)

    def kept_update(self, server_round: int) -> np.ndarray | None:
        """The ``a_i`` this member sent in ``server_round``, if kept."""
        path = self.state_dir / "updates" / f"round-{server_round}.safetensors"
        return load_model(path)["update"] if path.exists() else None

    def decrypted_sum(self, server_round: int) -> np.ndarray | None:
        """The aggregate sum ``S`` of ``server_round`` this process decrypted, if any."""
        return self._sums.get(server_round)

    def min_cohort(self) -> int:
        """The smallest cohort whose scalars this member reveals: 2, or its own policy's if larger."""
        from fedchain.contribution.committee import MIN_COHORT

        return max(MIN_COHORT, self.policy.min_cohort)

    def file_dispute(self, dispute: Any, ledger_address: str) -> None:
        """File ``dispute`` on chain when this member can reach it (``chain`` is a JSON-RPC URL)."""
        if not self.reads_chain() or ledger_address == NO_LEDGER:
            return
        try:
            file_dispute = getattr(self._ledger_at(ledger_address), "file_dispute", None)
            if file_dispute is None:
                log.warning("member %d: this ledger client cannot file disputes; relayed by the reply", self.member_id)
                return
            file_dispute(dispute)
        except Exception as exc:  # the reply still carries the dispute for the coordinator to relay
            log.warning(
                "member %d: filing the dispute of round %d failed: %s", self.member_id, dispute.server_round, exc
            )

    # ------------------------------------------------------------------ privacy
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

    def hand_over(self, update: LocalUpdate) -> None:
        """Keep the round's local update for the seal mod (:func:`clients.mods.seal_mod`), which takes it."""
        self._pending = update

    def take_update(self, server_round: int) -> LocalUpdate:
        """The local update of ``server_round`` handed over by training, once.

        Raises:
            FedChainError: training handed over no update of this round.
        """
        update, self._pending = self._pending, None
        if update is None or update.server_round != server_round:
            raise FedChainError(f"no local update of round {server_round} to seal")
        return update
