"""A member's own privacy policy: the run config proposes, the member decides.

Members do not trust the coordinator, and the coordinator writes the run config. So the limits that
protect a member's data come from the member's node, never from the run config:
:class:`MemberPolicy` holds them and refuses, with a :class:`~fedchain.errors.PolicyError` that
names the field, the proposed value and the member's limit, any train instruction that would weaken
them. Pure logic, no I/O beyond reading the policy file, no Opacus.

Where a member's policy comes from (:func:`load_policy`), later sources winning:

1. defaults: in a simulation (:func:`fedchain.simulation.is_simulation`) they derive from the
   simulation's own settings (:meth:`MemberPolicy.for_simulation`), so ``fedchain run`` and the
   tests keep working; in deployment they are :class:`MemberPolicy`'s documented defaults
   (budget epsilon 8 / delta 1e-5, DP and HE required, cohorts of 2 or more, noise multiplier
   0.5 or more);
2. the policy file: node config ``policy-file`` (a path relative to ``state-dir`` unless
   absolute), else ``<state-dir>/policy.toml`` or ``<state-dir>/policy.json`` when present;
3. single node-config keys ``policy-<key>`` (e.g. ``policy-epsilon = 3.0``).

Then, where the node reads the chain, the budget recorded for it on chain
(``privacy_budget(address)``): the stricter of the two wins (:meth:`MemberPolicy.stricter`).

A policy file (TOML, or a JSON object with the same keys; every key optional)::

    epsilon = 3.0                 # lifetime budget, (0, inf)
    delta = 1e-6                  # (0, 1)
    require-dp = true             # refuse rounds without DP-SGD
    require-he = true             # refuse rounds without homomorphic aggregation
    min-cohort = 5                # smallest cohort it contributes to (>= 2 when HE is required)
    min-noise-multiplier = 0.8    # smallest DP noise multiplier it trains with
    max-sample-rate = 0.1         # largest Poisson sample rate per step
    max-steps = 200               # most DP-SGD steps per round (omit: no limit)
    max-grad-norm = 1.0           # largest per-sample clipping norm (omit: no limit)

Example:
    >>> policy = MemberPolicy(epsilon=3.0, min_cohort=3)
    >>> policy.min_cohort, policy.require_he
    (3, True)
    >>> MemberPolicy(min_cohort=1)
    Traceback (most recent call last):
    ...
    fedchain.errors.ConfigError: The 'min_cohort' parameter must be an int in [2, inf) when HE is \
required (an aggregate of one member is that member's update). Got 1.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fedchain._validation import Interval, check_bool
from fedchain.errors import ConfigError, PolicyError

if TYPE_CHECKING:
    from fedchain.config import FedChainConfig

__all__ = ["POLICY_FILENAMES", "MemberPolicy", "check_testing_hooks", "load_policy"]

#: Policy files a node reads from its state directory when node config names none.
POLICY_FILENAMES = ("policy.toml", "policy.json")

_EPSILON = Interval(float, 0, None, closed="neither")
_DELTA = Interval(float, 0, 1, closed="neither")
_COHORT = Interval(int, 1, None, closed="left")
_NOISE = Interval(float, 0, None, closed="left")
_RATE = Interval(float, 0, 1, closed="right")
_STEPS = Interval(int, 1, None, closed="left")
_NORM = Interval(float, 0, None, closed="neither")


def _spec(default: Any, check: Any, key: str, help: str) -> Any:
    return field(default=default, metadata={"check": check, "key": key, "help": help})


def _finite(check: Interval) -> Any:
    def validate(name: str, value: Any) -> Any:
        checked = check.check(name, value)
        if isinstance(checked, float) and math.isinf(checked):
            raise ConfigError(name, check.describe(), checked)
        return checked

    return validate


def _optional(check: Any) -> Any:
    def validate(name: str, value: Any) -> Any:
        if value is None:
            return None
        return check(name, value) if callable(check) else check.check(name, value)

    return validate


@dataclass(frozen=True)
class MemberPolicy:
    """What a member accepts, whatever a train instruction proposes. Validated when built.

    Attributes:
        epsilon: lifetime privacy budget; a run proposing a larger one is refused.
        delta: the delta of that budget; a run proposing a larger one is refused.
        require_dp: refuse rounds with DP-SGD off.
        require_he: refuse rounds with homomorphic aggregation off (a node holding the
            federation's secret CKKS context always requires it).
        min_cohort: the smallest cohort the member contributes to, and the fewest contributors an
            aggregate it decrypts may have; at least 2 when HE is required. Read by the node and
            the decrypt committee (``policy.min_cohort``); :meth:`cohort_floor` applies the HE floor.
        min_noise_multiplier: the smallest DP noise multiplier (noise std / clipping norm) it
            trains with, fixed or calibrated; 0 accepts any.
        max_sample_rate: the largest Poisson sample rate of a DP-SGD step, in (0, 1].
        max_steps: the most DP-SGD steps in one round; None: no limit.
        max_grad_norm: the largest per-sample clipping norm; None: no limit.
        source: where the policy came from (for messages and logs).
    """

    epsilon: float = _spec(8.0, _finite(_EPSILON), "epsilon", "lifetime privacy budget epsilon")
    delta: float = _spec(1e-5, _DELTA, "delta", "delta of the lifetime budget")
    require_dp: bool = _spec(True, check_bool, "require-dp", "refuse rounds without DP-SGD")
    require_he: bool = _spec(True, check_bool, "require-he", "refuse rounds without homomorphic aggregation")
    min_cohort: int = _spec(2, _COHORT, "min-cohort", "smallest cohort the member contributes to")
    min_noise_multiplier: float = _spec(
        0.5, _finite(_NOISE), "min-noise-multiplier", "smallest DP noise multiplier the member trains with"
    )
    max_sample_rate: float = _spec(1.0, _RATE, "max-sample-rate", "largest Poisson sample rate per DP-SGD step")
    max_steps: int | None = _spec(None, _optional(_STEPS), "max-steps", "most DP-SGD steps per round")
    max_grad_norm: float | None = _spec(
        None, _optional(_finite(_NORM)), "max-grad-norm", "largest per-sample clipping norm"
    )
    source: str = field(default="defaults", compare=False)

    def __post_init__(self) -> None:
        for spec in dataclasses.fields(self):
            check = spec.metadata.get("check")
            if check is not None:
                value = getattr(self, spec.name)
                checked = check(spec.name, value) if callable(check) else check.check(spec.name, value)
                object.__setattr__(self, spec.name, checked)
        if self.require_he and self.min_cohort < 2:
            raise ConfigError(
                "min_cohort",
                "an int in [2, inf) when HE is required (an aggregate of one member is that member's update)",
                self.min_cohort,
            )

    # ----------------------------------------------------------------- building
    @classmethod
    def for_simulation(cls, config: FedChainConfig) -> MemberPolicy:
        """The defaults of a simulated member: whatever the simulation itself is set to.

        In a simulation one party writes the run config and runs every member, so the members
        accept it; a deployed member starts from :class:`MemberPolicy`'s own defaults instead.

        Example:
            >>> from fedchain.config import FedChainConfig
            >>> MemberPolicy.for_simulation(FedChainConfig(he=False, dp=False, min_members=1)).min_cohort
            1
        """
        return cls(
            epsilon=config.epsilon,
            delta=config.delta,
            require_dp=config.dp,
            require_he=config.he,
            min_cohort=min(2, config.min_members) if not config.he else 2,
            min_noise_multiplier=0.0,
            source="simulation settings",
        )

    @classmethod
    def keys(cls) -> dict[str, str]:
        """Policy-file key -> field name (node config spells each key ``policy-<key>``)."""
        return {spec.metadata["key"]: spec.name for spec in dataclasses.fields(cls) if "key" in spec.metadata}

    def updated(self, values: Mapping[str, Any], *, source: str) -> MemberPolicy:
        """A copy with ``values`` (policy-file keys) applied and validated.

        Raises:
            ConfigError: an unknown key (the message lists the known ones) or an invalid value.
        """
        names = self.keys()
        changes: dict[str, Any] = {}
        for key, value in values.items():
            if key not in names:
                raise ConfigError(f"{source}: {key}", "a policy key (" + ", ".join(sorted(names)) + ")", value)
            changes[names[key]] = value
        try:
            return dataclasses.replace(self, **changes, source=source)
        except ConfigError as exc:
            raise ConfigError(exc.parameter, exc.constraint, exc.value, hint=f"(member policy from {source})") from exc

    def stricter(self, budget: tuple[float, float] | None, *, source: str = "chain") -> MemberPolicy:
        """A copy with the budget lowered to ``budget`` ``(epsilon, delta)`` where that is stricter.

        Example:
            >>> MemberPolicy(epsilon=8.0, delta=1e-5).stricter((3.0, 1e-4)).epsilon
            3.0
            >>> MemberPolicy(epsilon=8.0, delta=1e-5).stricter((3.0, 1e-4)).delta
            1e-05
        """
        if budget is None:
            return self
        epsilon, delta = min(self.epsilon, float(budget[0])), min(self.delta, float(budget[1]))
        if (epsilon, delta) == (self.epsilon, self.delta):
            return self
        return dataclasses.replace(self, epsilon=epsilon, delta=delta, source=f"{self.source} + {source}")

    # ------------------------------------------------------------------- checks
    def cohort_floor(self, *, he: bool) -> int:
        """The fewest members a cohort or an aggregate may have for this member: never 1 under HE."""
        return max(2, self.min_cohort) if he else self.min_cohort

    def check_run(self, config: FedChainConfig, *, cohort: int | None) -> tuple[float, float]:
        """Refuse a train instruction whose run config or cohort weakens this policy.

        Args:
            config: the run config the coordinator sent (validated).
            cohort: the number of members the instruction says were sampled (``cohort``),
                None when it does not say.

        Returns:
            The budget ``(epsilon, delta)`` the member trains with: the stricter of the proposal
            and the policy (a looser proposal is refused, so it is the proposal).

        Raises:
            PolicyError: naming the first field that is outside the policy.

        Example:
            >>> from fedchain.config import FedChainConfig
            >>> MemberPolicy(epsilon=3.0).check_run(FedChainConfig(epsilon=2.0), cohort=4)
            (2.0, 1e-05)
            >>> MemberPolicy(epsilon=3.0).check_run(FedChainConfig(epsilon=50.0), cohort=4)
            Traceback (most recent call last):
            ...
            fedchain.errors.PolicyError: policy refused: epsilon = 50.0 proposed; this member accepts at most 3 \
(its lifetime budget, from defaults)
        """
        if self.require_he and not config.he:
            raise PolicyError("he", config.he, f"HE on only (require-he, from {self.source})")
        if self.require_dp and not config.dp:
            raise PolicyError("dp", config.dp, f"DP-SGD on only (require-dp, from {self.source})")
        floor = self.cohort_floor(he=config.he)
        if config.min_members < floor:
            raise PolicyError("min-members", config.min_members, self._cohort_words(floor))
        if cohort is None and floor > 1:
            raise PolicyError("cohort", None, "an instruction that announces its cohort")
        if cohort is not None and cohort < floor:
            raise PolicyError("cohort", cohort, self._cohort_words(floor))
        if not config.dp:
            return self.epsilon, self.delta
        if config.epsilon > self.epsilon:
            raise PolicyError(
                "epsilon", config.epsilon, f"at most {self.epsilon:g} (its lifetime budget, from {self.source})"
            )
        if config.delta > self.delta:
            raise PolicyError("delta", config.delta, f"at most {self.delta:g} (its budget's delta, from {self.source})")
        if config.noise_multiplier:  # 0: calibrated by the member, checked by check_dp once known
            self._check_noise(config.noise_multiplier)
        if self.max_grad_norm is not None and config.max_grad_norm > self.max_grad_norm:
            raise PolicyError("max-grad-norm", config.max_grad_norm, self._limit("at most", "max_grad_norm"))
        return min(config.epsilon, self.epsilon), min(config.delta, self.delta)

    def check_dp(self, *, noise_multiplier: float, sample_rate: float, steps: int, max_grad_norm: float) -> None:
        """Refuse a planned DP-SGD round outside the policy (before anything is trained or spent).

        Raises:
            PolicyError: naming the first parameter outside the policy.
        """
        self._check_noise(noise_multiplier)
        if sample_rate > self.max_sample_rate:
            raise PolicyError("sample-rate", sample_rate, self._limit("at most", "max_sample_rate"))
        if self.max_steps is not None and steps > self.max_steps:
            raise PolicyError("steps", steps, self._limit("at most", "max_steps"))
        if self.max_grad_norm is not None and max_grad_norm > self.max_grad_norm:
            raise PolicyError("max-grad-norm", max_grad_norm, self._limit("at most", "max_grad_norm"))

    def check_aggregate(self, agg_round: int, members: int | None) -> None:
        """Refuse to decrypt an aggregate announced with fewer contributors than the HE cohort floor.

        The count is the coordinator's word (``agg.<k>.members``); the round's record on chain
        names its members, so a lie is visible afterwards, not prevented.

        Raises:
            PolicyError: the count is missing or below :meth:`cohort_floor` (HE).
        """
        floor = self.cohort_floor(he=True)
        if members is None or members < floor:
            raise PolicyError(f"agg.{agg_round}.members", members, self._cohort_words(floor, "aggregates to decrypt"))

    def _check_noise(self, noise_multiplier: float) -> None:
        if noise_multiplier < self.min_noise_multiplier:
            raise PolicyError("noise-multiplier", noise_multiplier, self._limit("at least", "min_noise_multiplier"))

    def _limit(self, relation: str, name: str) -> str:
        key = next(spec.metadata["key"] for spec in dataclasses.fields(self) if spec.name == name)
        return f"{relation} {getattr(self, name):g} ({key}, from {self.source})"

    def _cohort_words(self, floor: int, what: str = "cohorts") -> str:
        return f"{what} of at least {floor} members (min-cohort, from {self.source})"


def check_testing_hooks(config: FedChainConfig, *, simulation: bool) -> None:
    """Refuse simulated adversaries and fault injection outside a simulation.

    Raises:
        PolicyError: ``adversaries`` or ``faults`` is set and this process is not a simulation.

    Example:
        >>> from fedchain.config import FedChainConfig
        >>> check_testing_hooks(FedChainConfig(members=2, adversaries="label_flip"), simulation=False)
        Traceback (most recent call last):
        ...
        fedchain.errors.PolicyError: policy refused: adversaries = ('label_flip',) proposed; this member accepts \
none: testing hooks act only in a simulation
    """
    if simulation:
        return
    for name, value in (("adversaries", config.adversaries), ("faults", config.faults)):
        if value:
            raise PolicyError(name, value, "none: testing hooks act only in a simulation")


def _read_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text("utf-8")
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (OSError, ValueError) as exc:  # tomllib.TOMLDecodeError and JSONDecodeError are ValueErrors
        raise ConfigError("policy-file", "a readable TOML or JSON policy file", str(path), hint=str(exc)) from exc
    if not isinstance(data, dict):
        raise ConfigError("policy-file", "a TOML table or JSON object of policy keys", str(path))
    return data


def load_policy(node_config: Mapping[str, Any], *, state_dir: Path | None, defaults: MemberPolicy) -> MemberPolicy:
    """The member's policy: ``defaults``, then its policy file, then ``policy-<key>`` node-config keys.

    Args:
        node_config: the node's own Flower node config (never the run config).
        state_dir: the node's state directory (relative ``policy-file`` paths and default files).
        defaults: :meth:`MemberPolicy.for_simulation` in a simulation, ``MemberPolicy()`` elsewhere.

    Raises:
        ConfigError: a named policy file that is missing or malformed, an unknown key, a bad value.

    Example:
        >>> load_policy({"policy-epsilon": 2.5}, state_dir=None, defaults=MemberPolicy()).epsilon
        2.5
    """
    policy = defaults
    named = str(node_config.get("policy-file", "") or "")
    path: Path | None = None
    if named:
        path = Path(named)
        if not path.is_absolute() and state_dir is not None:
            path = state_dir / path
        if not path.is_file():
            raise ConfigError("policy-file", "an existing TOML or JSON policy file", str(path))
    elif state_dir is not None:
        path = next((state_dir / name for name in POLICY_FILENAMES if (state_dir / name).is_file()), None)
    if path is not None:
        policy = policy.updated(_read_file(path), source=str(path))
    keys = {key[len("policy-") :]: value for key, value in node_config.items() if key.startswith("policy-")}
    keys.pop("file", None)
    if keys:
        policy = policy.updated(keys, source="node config")
    return policy
