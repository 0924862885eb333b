"""The one validated, frozen configuration of a federation run.

A :class:`FedChainConfig` is built from Flower's run config (``[tool.flwr.app.config]`` in
``pyproject.toml``, kebab-case keys) and CLI overrides, and validated once, before anything
starts. Invalid values raise :class:`~fedchain.errors.ConfigError` with a message that names the
parameter, the allowed range and the value given.

Example:
    >>> from fedchain.config import FedChainConfig
    >>> config = FedChainConfig(rounds=2, members=3)
    >>> config.rounds, config.to_run_config()["num-server-rounds"]
    (2, 2)
    >>> FedChainConfig(rounds=0)
    Traceback (most recent call last):
    ...
    fedchain.errors.ConfigError: The 'rounds' parameter must be an int in [1, inf). Got 0.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fedchain._validation import Interval, OneOf, check_bool
from fedchain.errors import ConfigError

__all__ = ["ADVERSARY_KINDS", "FedChainConfig"]

#: Simulated adversarial member kinds (for tests and benchmarks only).
ADVERSARY_KINDS = ("free_rider", "noise", "label_flip", "scaled")

_INT_POS = Interval(int, 1, None, closed="left")
_INT_NONNEG = Interval(int, 0, None, closed="left")
_FLOAT_POS = Interval(float, 0, None, closed="neither")


def _valid_fault(spec: str) -> bool:
    kind, _, rest = spec.partition(":")
    if kind == "crash":
        return all(part.strip().isdigit() for part in rest.split(","))
    if kind == "kill":
        server_round, _, point = rest.partition(":")
        return server_round.isdigit() and point in ("replies", "aggregated", "sent")
    if kind == "slow":
        parts = rest.split(":")
        if len(parts) != 3:
            return False
        server_round, members, seconds = parts
        ids_ok = all(part.strip().isdigit() for part in members.split(","))
        return server_round.isdigit() and ids_ok and _positive_float(seconds)
    return False


def _positive_float(text: str) -> bool:
    try:
        return 0 < float(text) < float("inf")
    except ValueError:
        return False


def _auto_bool(name: str, value: Any) -> bool | str:
    """A bool, or ``"auto"`` (also None): the option is then derived from the others."""
    if value is None or (isinstance(value, str) and value.lower() == "auto"):
        return "auto"
    try:
        return check_bool(name, value)
    except ConfigError:
        raise ConfigError(name, "a boolean or 'auto'", value) from None


@dataclass(frozen=True)
class _Auto:
    """A number in ``constraint``, or ``"auto"`` (also None): the task's default (``fedchain.tasks.Task.defaults``)."""

    constraint: Interval

    def check(self, name: str, value: Any) -> Any:
        if value is None or (isinstance(value, str) and value.lower() == "auto"):
            return "auto"
        try:
            return self.constraint.check(name, value)
        except ConfigError:
            raise ConfigError(name, f"{self.constraint.describe()} or 'auto'", value) from None


def _spec(default: Any, check: Any, key: str, help: str) -> Any:
    """A config field: its default, its validator, its run-config key and its help text."""
    return field(default=default, metadata={"check": check, "key": key, "help": help})


@dataclass(frozen=True)
class FedChainConfig:
    """Validated settings of one federation run. Every field has a sane default.

    Field names are the Python spelling; ``FIELD_KEYS`` maps them to Flower run-config keys
    (kebab-case). See the README's configuration reference for each option.
    """

    rounds: int = _spec(5, _INT_POS, "num-server-rounds", "number of federated rounds")
    members: int = _spec(5, _INT_POS, "num-members", "simulated members (virtual SuperNodes)")
    fraction_train: float = _spec(
        1.0, Interval(float, 0, 1, closed="right"), "fraction-train", "share of members sampled to train"
    )
    fraction_evaluate: float = _spec(
        1.0, Interval(float, 0, 1, closed="both"), "fraction-evaluate", "share of members sampled to evaluate"
    )
    min_members: int = _spec(
        2, _INT_POS, "min-members", "fewest accepted updates a round needs; below it the round is skipped"
    )
    task: str = _spec(
        "digits-mlp", None, "task", "the model and data to train: registry name or dotted path (fedchain tasks)"
    )
    local_epochs: int = _spec(
        "auto", _Auto(_INT_POS), "local-epochs", "local epochs per round on each member; 'auto': the task's"
    )
    batch_size: int = _spec("auto", _Auto(_INT_POS), "batch-size", "local batch size; 'auto': the task's")
    learning_rate: float = _spec(
        "auto", _Auto(_FLOAT_POS), "learning-rate", "local SGD learning rate; 'auto': the task's"
    )
    momentum: float = _spec(
        "auto", _Auto(Interval(float, 0, 1, closed="left")), "momentum", "local SGD momentum; 'auto': the task's"
    )
    hidden_units: int = _spec(64, _INT_POS, "hidden-units", "digits-mlp: width of the MLP's hidden layer")
    num_features: int = _spec(
        64, _INT_POS, "num-features", "digits-mlp: input features (64 for digits; a member file's feature columns)"
    )
    num_classes: int = _spec(10, Interval(int, 2, None, closed="left"), "num-classes", "label classes of the model")
    model_width: int = _spec(
        64, _INT_POS, "model-width", "mnist-wide: hidden width w (w**2 + 796 w + 10 parameters; 679 ~ 1M, 2790 ~ 10M)"
    )
    partitioner: str = _spec(
        "dirichlet", OneOf(("iid", "dirichlet")), "partitioner", "how the demo data is split across members"
    )
    dirichlet_alpha: float = _spec(0.5, _FLOAT_POS, "dirichlet-alpha", "non-IID concentration (lower = more skewed)")
    test_fraction: float = _spec(
        0.2, Interval(float, 0, 1, closed="neither"), "test-fraction", "held-out share of the data for evaluation"
    )
    seed: int = _spec(0, _INT_NONNEG, "seed", "seed for partitioning, initialisation and sampling")
    strategy: str = _spec("fedavg", None, "strategy", "aggregation strategy: registry name or dotted path")
    scorer: str = _spec("data_size", None, "scorer", "contribution scorer: registry name")
    proximal_mu: float = _spec(
        0.01, Interval(float, 0, None, closed="left"), "proximal-mu", "FedProx: proximal term weight mu"
    )
    server_learning_rate: float = _spec(1.0, _FLOAT_POS, "server-learning-rate", "FedAvgM: server learning rate")
    server_momentum: float = _spec(
        0.7, Interval(float, 0, 1, closed="left"), "server-momentum", "FedAvgM: server momentum"
    )
    server_eta: float = _spec(0.1, _FLOAT_POS, "server-eta", "FedAdam/FedYogi: server learning rate eta")
    server_beta_1: float = _spec(
        0.9, Interval(float, 0, 1, closed="left"), "server-beta-1", "FedAdam/FedYogi: first-moment decay"
    )
    server_beta_2: float = _spec(
        0.99, Interval(float, 0, 1, closed="left"), "server-beta-2", "FedAdam/FedYogi: second-moment decay"
    )
    server_tau: float = _spec(1e-3, _FLOAT_POS, "server-tau", "FedAdam/FedYogi: adaptivity tau")
    trimmed_beta: float = _spec(
        0.2, Interval(float, 0, 0.5, closed="left"), "trimmed-beta", "FedTrimmedAvg: share cut at each end"
    )
    krum_malicious_members: int = _spec(0, _INT_NONNEG, "krum-malicious-members", "Krum: members assumed malicious (f)")
    norm_bound: float = _spec(
        20.0,
        Interval(float, 0, None, closed="left"),
        "norm-bound",
        "largest allowed update norm ||delta_i||; larger updates are left out and score 0 (0 = off)",
    )
    committee_size: int = _spec(
        2, _INT_POS, "committee-size", "members drawn each round to decrypt scoring scalars (HE)"
    )
    dp: bool = _spec(True, check_bool, "dp", "DP-SGD (Opacus) on every member")
    epsilon: float = _spec(8.0, _FLOAT_POS, "epsilon", "each member's total privacy budget over the run")
    delta: float = _spec(1e-5, Interval(float, 0, 1, closed="neither"), "delta", "each member's DP delta")
    max_grad_norm: float = _spec(0.5, _FLOAT_POS, "max-grad-norm", "per-sample gradient clipping norm")
    dp_batch_size: int = _spec(
        "auto", _Auto(_INT_POS), "dp-batch-size", "expected Poisson batch size with DP on; 'auto': the task's"
    )
    dp_local_epochs: int = _spec(
        "auto", _Auto(_INT_POS), "dp-local-epochs", "local epochs per round with DP on; 'auto': the task's"
    )
    dp_learning_rate: float = _spec(
        "auto", _Auto(_FLOAT_POS), "dp-learning-rate", "local SGD learning rate with DP on; 'auto': the task's"
    )
    noise_multiplier: float = _spec(
        0.0,
        Interval(float, 0, None, closed="left"),
        "noise-multiplier",
        "fixed DP noise multiplier; 0 calibrates it so the planned run fits the epsilon budget",
    )
    dp_noise_seed: int = _spec(
        -1,
        Interval(int, -1, None, closed="left"),
        "dp-noise-seed",
        "testing only: a fixed seed for DP sampling and noise, replayable by anyone who knows it "
        "(-1 = off: a CSPRNG); members outside fedchain's simulation runner refuse it",
    )
    he: bool = _spec(True, check_bool, "he", "homomorphic (CKKS) aggregation: the coordinator sees ciphertexts only")
    he_scoring: bool = _spec(
        "auto",
        _auto_bool,
        "he-scoring",
        "CKKS parameters with one multiplicative level for encrypted norms and scores; 'auto': on when HE is "
        "on and the norm bound or the scorer needs them",
    )
    he_keys_dir: str = _spec(
        "", None, "he-keys-dir", "directory with member.ckks (secret) and coordinator.ckks (public) contexts"
    )
    chain: str = _spec("embedded", None, "chain", "'embedded' (in-process EVM), 'none', or a JSON-RPC URL")
    reward_pool_wei: int = _spec(10**20, _INT_NONNEG, "reward-pool-wei", "tokens (wei) split among members each round")
    chain_attempts: int = _spec(5, _INT_POS, "chain-attempts", "tries to record a round before giving up")
    chain_backoff_s: float = _spec(
        0.5, Interval(float, 0, None, closed="left"), "chain-backoff-s", "first retry delay; doubles each try"
    )
    round_timeout_s: float = _spec(600.0, _FLOAT_POS, "round-timeout-s", "seconds to wait for member replies")
    committee_timeout_s: float = _spec(
        60.0, _FLOAT_POS, "committee-timeout-s", "seconds to wait for the decrypt committee's answers (HE)"
    )
    adversaries: tuple[str, ...] = _spec(
        (), None, "adversaries", "simulated adversarial members, comma-separated kinds (testing only)"
    )
    faults: str = _spec(
        "",
        None,
        "faults",
        "testing only: 'crash:ID,ID' kills those members during training; 'kill:ROUND:POINT' kills the "
        "coordinator at POINT (replies, aggregated, sent) of ROUND; 'slow:ROUND:ID,ID:SECONDS' makes those "
        "members reply to ROUND's train instruction SECONDS late",
    )
    resume: bool = _spec(False, check_bool, "resume", "continue a run from the checkpoint in out-dir")
    out_dir: str = _spec("", None, "out-dir", "directory for result.json and model.safetensors")
    metrics_port: int = _spec(
        0, Interval(int, 0, 65535, closed="both"), "metrics-port", "Prometheus /metrics port; 0 disables it"
    )
    metrics_host: str = _spec("127.0.0.1", None, "metrics-host", "listen address of /metrics (loopback by default)")
    ledger_address: str = _spec(
        "", None, "ledger-address", "attach to this deployed ContributionLedger (chain URL) instead of deploying one"
    )

    def __post_init__(self) -> None:
        for spec in dataclasses.fields(self):
            check = spec.metadata.get("check")
            value = getattr(self, spec.name)
            if check is None:
                continue
            checked = check(spec.name, value) if callable(check) else check.check(spec.name, value)
            object.__setattr__(self, spec.name, checked)
        for name in ("task", "strategy", "scorer", "chain", "he_keys_dir", "faults", "out_dir"):
            if not isinstance(getattr(self, name), str):
                raise ConfigError(name, "a string", getattr(self, name))
        adversaries = self.adversaries
        if isinstance(adversaries, str):
            adversaries = tuple(kind.strip() for kind in adversaries.split(",") if kind.strip())
        if not isinstance(adversaries, tuple | list):
            raise ConfigError("adversaries", "a comma-separated string or a list of adversary kinds", adversaries)
        for kind in adversaries:
            OneOf(ADVERSARY_KINDS).check("adversary", kind)
        object.__setattr__(self, "adversaries", tuple(adversaries))
        self._resolve_task_defaults()
        if not self.strategy:
            raise ConfigError("strategy", "a registered strategy name or a dotted path", self.strategy)
        if not (self.chain in ("embedded", "none") or self.chain.startswith(("http://", "https://"))):
            raise ConfigError("chain", "'embedded', 'none' or an http(s):// JSON-RPC URL", self.chain)
        if self.faults and not _valid_fault(self.faults):
            raise ConfigError(
                "faults",
                "'', 'crash:ID,ID,...', 'kill:ROUND:replies|aggregated|sent' or 'slow:ROUND:ID,ID:SECONDS' "
                "(testing only)",
                self.faults,
            )
        from fedchain.contribution import check_scorer_allowed

        scorer = check_scorer_allowed(self.scorer, he=self.he, he_scoring=None)
        self._resolve_he_scoring(needs_scalars=scorer.needs_scalars)
        check_scorer_allowed(self.scorer, he=self.he, he_scoring=self.he_scoring)
        if self.resume and self.chain == "embedded":
            raise ConfigError(
                "resume",
                "used with a persistent chain",
                self.resume,
                hint="The embedded chain lives in the coordinator's process and dies with it: use --chain URL.",
            )
        if self.min_members > self.total_members:
            raise ConfigError(
                "min_members",
                f"an int in [1, {self.total_members}] (the number of members)",
                self.min_members,
            )
        if self.he and self.min_members < 2:
            raise ConfigError(
                "min_members",
                "an int in [2, inf) when HE is on",
                self.min_members,
                hint="An aggregate of one member is that member's update: every member who decrypts it reads it.",
            )

    def _resolve_task_defaults(self) -> None:
        """Options left at ``"auto"`` take the task's defaults (:attr:`fedchain.tasks.Task.defaults`).

        Raises:
            ConfigError: the task is neither registered nor an importable dotted path.
        """
        from fedchain.tasks.base import TRAINING_FIELDS
        from fedchain.tasks.registry import resolve_task

        defaults = resolve_task(self.task).defaults
        auto = frozenset(name for name in TRAINING_FIELDS if getattr(self, name) == "auto")
        object.__setattr__(self, "_task_auto", auto)
        for name in auto:
            object.__setattr__(self, name, getattr(defaults, name))

    def _resolve_he_scoring(self, *, needs_scalars: bool) -> None:
        """``he_scoring="auto"``: on under HE when the norm bound is on or the scorer needs scalars.

        Under HE the norm bound is checked on encrypted norms decrypted by the committee, which
        needs the SCORING parameters: a bound with ``he_scoring`` off would check nothing, so it
        is refused.
        """
        needed = self.he and (self.norm_bound > 0 or needs_scalars)
        auto = self.he_scoring == "auto"
        object.__setattr__(self, "_he_scoring_auto", auto)
        if auto:
            object.__setattr__(self, "he_scoring", needed)
        elif self.he and not self.he_scoring and self.norm_bound > 0:
            raise ConfigError(
                "he_scoring",
                f"true (or 'auto') under HE with norm bound {self.norm_bound:g}",
                self.he_scoring,
                hint=(
                    "Under HE the norm bound is checked on encrypted norms that the decrypt committee "
                    "decrypts, which needs the SCORING CKKS parameters; without them no norm would be "
                    "checked. Drop --no-he-scoring (it is automatic), or turn the bound off with --norm-bound 0."
                ),
            )

    @property
    def crashing_members(self) -> frozenset[int]:
        """Member ids that fault injection makes crash during training (testing only)."""
        if not self.faults.startswith("crash:"):
            return frozenset()
        return frozenset(int(p) for p in self.faults[6:].split(","))

    def straggler_delay_s(self, member_id: int, server_round: int) -> float:
        """Seconds fault injection makes ``member_id`` wait before its train reply in ``server_round`` (tests only)."""
        if not self.faults.startswith("slow:"):
            return 0.0
        slow_round, members, seconds = self.faults[5:].split(":")
        late = int(slow_round) == server_round and member_id in {int(p) for p in members.split(",")}
        return float(seconds) if late else 0.0

    def coordinator_dies_at(self, point: str, server_round: int) -> bool:
        """Whether fault injection kills the coordinator at ``point`` of ``server_round`` (testing only)."""
        return self.faults == f"kill:{server_round}:{point}"

    @property
    def total_members(self) -> int:
        """Honest members plus simulated adversaries."""
        return self.members + len(self.adversaries)

    def replace(self, **changes: Any) -> FedChainConfig:
        """Return a copy with ``changes`` applied and validated again."""
        unknown = sorted(set(changes) - {spec.name for spec in dataclasses.fields(self)})
        if unknown:
            raise ConfigError(
                unknown[0], "a known option (" + ", ".join(self.option_names()) + ")", changes[unknown[0]]
            )
        if getattr(self, "_he_scoring_auto", False) and "he_scoring" not in changes:
            changes = {**changes, "he_scoring": "auto"}  # derived again from the changed options
        # options that were the task's defaults follow the (possibly changed) task
        changes = {**dict.fromkeys(getattr(self, "_task_auto", frozenset()) - set(changes), "auto"), **changes}
        return dataclasses.replace(self, **changes)

    @classmethod
    def option_names(cls) -> list[str]:
        """Python names of every option."""
        return [spec.name for spec in dataclasses.fields(cls)]

    @classmethod
    def from_run_config(cls, run_config: Mapping[str, Any], **overrides: Any) -> FedChainConfig:
        """Build from a Flower run config (kebab-case keys); unknown keys are ignored.

        Example:
            >>> FedChainConfig.from_run_config({"num-server-rounds": 4, "dp": False}).rounds
            4
        """
        by_key = {spec.metadata["key"]: spec for spec in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        for key, value in run_config.items():
            spec = by_key.get(key)
            if spec is None:
                continue
            if spec.name == "reward_pool_wei" and isinstance(value, str):
                try:
                    value = int(value)
                except ValueError:
                    raise ConfigError("reward_pool_wei", "an integer number of wei", value) from None
            values[spec.name] = value
        values.update(overrides)
        return cls(**values)

    def to_run_config(self) -> dict[str, bool | int | float | str]:
        """Flatten to Flower run-config values (kebab-case keys; big ints and lists as strings)."""
        flat: dict[str, bool | int | float | str] = {}
        for spec in dataclasses.fields(self):
            value = getattr(self, spec.name)
            if spec.name == "adversaries":
                value = ",".join(value)
            elif spec.name == "reward_pool_wei":
                value = str(value)
            elif spec.name == "he_scoring" and getattr(self, "_he_scoring_auto", False):
                value = "auto"  # members derive it again from the same options
            elif spec.name in getattr(self, "_task_auto", frozenset()):
                value = "auto"  # the task's default, derived again by every member
            flat[spec.metadata["key"]] = value
        return flat

    def to_dict(self) -> dict[str, Any]:
        """Python names to values, JSON-ready (for ``result.json``)."""
        data = dataclasses.asdict(self)
        data["adversaries"] = list(self.adversaries)
        return data
