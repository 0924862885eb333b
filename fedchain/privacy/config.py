"""What a member promises about privacy: its budget and how DP-SGD is run.

Both classes are frozen and validated when built, so a config that exists is a config that can be
used. Messages follow scikit-learn's: "The 'epsilon' parameter must be a float in (0, inf). Got 0.0."

Delta and the member's data size: a delta of ``1/n`` or more permits a mechanism that publishes one
training example outright and still calls itself (epsilon, delta)-DP, so the guarantee means
nothing. fedchain refuses such a delta (:func:`check_delta`, called by ``train_private`` with the
member's ``n``) rather than warning, because a warning in a node's log is a guarantee nobody reads.

Example:
    >>> from fedchain.privacy import DPConfig, PrivacyBudget
    >>> config = DPConfig(budget=PrivacyBudget(epsilon=8.0, delta=1e-5), planned_rounds=20)
    >>> config.accountant, config.grad_sample_mode
    ('rdp', 'auto')
    >>> PrivacyBudget(epsilon=0.0, delta=1e-5)
    Traceback (most recent call last):
    ...
    fedchain.errors.ConfigError: The 'epsilon' parameter must be a float in (0, inf). Got 0.0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from fedchain._validation import Interval, OneOf, check_bool
from fedchain.errors import ConfigError
from fedchain.privacy._registry import ACCOUNTANT_NAMES, GRAD_SAMPLE_MODES

__all__ = ["DPConfig", "FederationDPOptions", "PrivacyBudget", "check_delta", "federation_dp_config", "positive_float"]

_POSITIVE = Interval(float, 0, None, closed="neither")
_DELTA = Interval(float, 0, 1, closed="neither")
_ROUNDS = Interval(int, 1, None, closed="left")


def positive_float(name: str, value: object) -> float:
    """``value`` as a float in the open interval (0, inf), else :class:`ConfigError` (inf included)."""
    checked = float(_POSITIVE.check(name, value))
    if math.isinf(checked):
        raise ConfigError(name, _POSITIVE.describe(), checked)
    return checked


@dataclass(frozen=True)
class PrivacyBudget:
    """A member's lifetime (epsilon, delta) budget.

    Attributes:
        epsilon: the most cumulative epsilon the member will ever spend, in (0, inf).
        delta: the delta every epsilon is reported at, in (0, 1); must also be below ``1/n``
            for the member's ``n`` training examples (see :func:`check_delta`).

    Example:
        >>> PrivacyBudget(epsilon=3, delta=1e-5).epsilon
        3.0
    """

    epsilon: float
    delta: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "epsilon", positive_float("epsilon", self.epsilon))
        object.__setattr__(self, "delta", _DELTA.check("delta", self.delta))


@dataclass(frozen=True)
class DPConfig:
    """How a member runs DP-SGD, validated at construction.

    Attributes:
        budget: the member's lifetime privacy budget.
        max_grad_norm: per-sample gradient clipping norm ``C``, in (0, inf).
        noise_multiplier: Gaussian noise std divided by ``C``, in (0, inf); ``None`` (default)
            calibrates it so that ``planned_rounds`` rounds land just within the budget.
        planned_rounds: how many rounds the member expects to train in, >= 1. Used only to
            calibrate the noise; the budget itself is enforced round by round.
        accountant: the Opacus accountant, one of :data:`ACCOUNTANT_NAMES` (``"rdp"`` default;
            ``"prv"`` gives tighter epsilons but is slower to compute).
        grad_sample_mode: how clipped per-sample gradients are computed, one of
            :data:`GRAD_SAMPLE_MODES`. ``"auto"`` (default) uses ``"fused"``, fedchain's one-pass
            DP step, when every trainable layer is an ``nn.Linear`` on ``(batch, features)``
            inputs (the demo MLP: 1.5x the non-private epoch instead of 4x, see
            :mod:`fedchain.privacy.training`), else the Opacus mode
            :func:`~fedchain.privacy.opacus_mode_for` picks: ``"ghost"`` for a model with an
            ``nn.Embedding`` (no per-sample embedding gradients), ``"ew"`` for Conv/norm/Linear
            models, ``"hooks"`` for layers ExpandedWeights lacks.
        fix_incompatible_layers: when True, layers DP-SGD cannot train (BatchNorm) are replaced
            by Opacus's ``ModuleValidator.fix`` (BatchNorm -> GroupNorm) and the swap is logged;
            when False (default) training is refused with a message naming each layer. Fixing
            changes the architecture, so in a federation every member and the global model must
            agree: prefer fixing the task's model once, for everyone.

    Example:
        >>> DPConfig(budget=PrivacyBudget(epsilon=8.0, delta=1e-5), accountant="pld")
        Traceback (most recent call last):
        ...
        fedchain.errors.ConfigError: The 'accountant' parameter must be one of 'prv', 'rdp'. Got 'pld'.
    """

    budget: PrivacyBudget
    max_grad_norm: float = 1.0
    noise_multiplier: float | None = None
    planned_rounds: int = 1
    accountant: str = "rdp"
    grad_sample_mode: str = "auto"
    fix_incompatible_layers: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.budget, PrivacyBudget):
            raise ConfigError("budget", "a PrivacyBudget", self.budget)
        set_ = object.__setattr__
        set_(self, "max_grad_norm", positive_float("max_grad_norm", self.max_grad_norm))
        if self.noise_multiplier is not None:
            set_(self, "noise_multiplier", _check_noise_multiplier(self.noise_multiplier))
        set_(self, "planned_rounds", _ROUNDS.check("planned_rounds", self.planned_rounds))
        set_(self, "accountant", OneOf(ACCOUNTANT_NAMES).check("accountant", self.accountant))
        set_(
            self,
            "grad_sample_mode",
            OneOf(GRAD_SAMPLE_MODES).check("grad_sample_mode", self.grad_sample_mode),
        )
        set_(
            self,
            "fix_incompatible_layers",
            check_bool("fix_incompatible_layers", self.fix_incompatible_layers),
        )


def _check_noise_multiplier(value: object) -> float:
    try:
        return positive_float("noise_multiplier", value)
    except ConfigError as exc:
        raise ConfigError(
            "noise_multiplier",
            "a float in (0, inf) or None",
            value,
            hint="None calibrates it from the budget; 0 would mean no privacy at all.",
        ) from exc


def check_delta(delta: float, num_examples: int) -> float:
    """Refuse a delta that is not below ``1/n`` for a member with ``n`` training examples.

    Args:
        delta: the member's target delta.
        num_examples: the member's number of training examples ``n`` (>= 1).

    Returns:
        ``delta`` as a float, when it is in ``(0, 1/n)``.

    Raises:
        ConfigError: when ``delta`` is outside ``(0, 1/n)``; the message gives the bound.

    Example:
        >>> check_delta(1e-5, 150)
        1e-05
        >>> check_delta(0.01, 150)
        Traceback (most recent call last):
        ...
        fedchain.errors.ConfigError: The 'delta' parameter must be a float in (0, 1/n) = (0, 0.00666667) \
for a member with n=150 training examples. Got 0.01. A delta of 1/n or more allows releasing one \
example outright; use one well below 1/n, such as 1e-5.
    """
    n = Interval(int, 1, None, closed="left").check("num_examples", num_examples)
    delta = _DELTA.check("delta", delta)
    if delta >= 1.0 / n:
        raise ConfigError(
            "delta",
            f"a float in (0, 1/n) = (0, {1.0 / n:.6g}) for a member with n={n} training examples",
            delta,
            hint="A delta of 1/n or more allows releasing one example outright; use one well below 1/n, such as 1e-5.",
        )
    return delta


class FederationDPOptions(Protocol):
    """The run options :func:`federation_dp_config` reads (a :class:`fedchain.config.FedChainConfig` has them).

    A protocol rather than the run config's class: a stage package does not import the composition
    layer (docs/architecture.md, "Import rules").
    """

    @property
    def epsilon(self) -> float:
        """Each member's lifetime epsilon budget."""
        ...

    @property
    def delta(self) -> float:
        """Each member's DP delta."""
        ...

    @property
    def max_grad_norm(self) -> float:
        """The per-sample clipping norm."""
        ...

    @property
    def noise_multiplier(self) -> float:
        """A fixed noise multiplier; 0 calibrates it to the budget."""
        ...

    @property
    def rounds(self) -> int:
        """The planned rounds."""
        ...


def federation_dp_config(config: FederationDPOptions) -> DPConfig:
    """The DP config every member of a federation trains with (and the coordinator checks against).

    Example:
        >>> from fedchain.config import FedChainConfig
        >>> federation_dp_config(FedChainConfig(epsilon=3.0, rounds=20)).budget
        PrivacyBudget(epsilon=3.0, delta=1e-05)
    """
    return DPConfig(
        budget=PrivacyBudget(epsilon=config.epsilon, delta=config.delta),
        max_grad_norm=config.max_grad_norm,
        noise_multiplier=config.noise_multiplier or None,
        planned_rounds=config.rounds,
    )
