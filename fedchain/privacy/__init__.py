"""Differential privacy for fedchain members: budgets, lifetime accounting and DP-SGD training.

The only package that imports Opacus. A member node uses it like this each round:

1. build a :class:`DPConfig` from the federation's options (budget, clipping, planned rounds);
2. open its :class:`PrivacyAccountant` (state dir or Flower ``Context.state``), which holds every
   round it ever trained;
3. call :func:`train_private` (or :func:`train_plain` without DP): it refuses a round that would
   exceed the budget with :class:`~fedchain.errors.BudgetExhaustedError`, trains with Opacus and
   records the round; the result carries the round's ``DPParams`` and the cumulative epsilon.

An auditor recomputes the member's epsilon from the recorded ``DPParams`` with
:func:`compute_epsilon` (or :func:`epsilon_curve` round by round) and gets the same number.

Names load on first use: the epsilon computation (:mod:`fedchain.privacy.epsilon`), the configs and
the accountant's state file do not import torch, so the auditor and the coordinator can use them
without loading torch and Opacus; training (:mod:`fedchain.privacy.training`) and noise
calibration (:mod:`fedchain.privacy.accounting`) load them.

Example:
    >>> from fedchain.privacy import DPConfig, PrivacyBudget, compute_epsilon, plan_round
    >>> config = DPConfig(budget=PrivacyBudget(epsilon=8.0, delta=1e-5), planned_rounds=20)
    >>> params = plan_round(config, num_examples=150, epochs=3, batch_size=32)
    >>> compute_epsilon([params] * 20, delta=1e-5) <= 8.0
    True
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fedchain._lazy import lazy_exports

if TYPE_CHECKING:
    from fedchain.privacy._registry import ACCOUNTANT_NAMES, GRAD_SAMPLE_MODES
    from fedchain.privacy.accountant import PrivacyAccountant
    from fedchain.privacy.accounting import calibrate_noise_multiplier, plan_round
    from fedchain.privacy.compatibility import (
        check_dp_compatible,
        dp_compatibility,
        incompatible_layers,
        opacus_mode_for,
    )
    from fedchain.privacy.config import DPConfig, PrivacyBudget, check_delta, federation_dp_config
    from fedchain.privacy.epsilon import (
        HistoryEntry,
        compute_epsilon,
        declared_dp_problem,
        epsilon_curve,
        sample_rate_for,
    )
    from fedchain.privacy.noise_cache import NoiseCache
    from fedchain.privacy.randomness import PrivacyRandomness, SecureRandomness, SeededRandomness
    from fedchain.privacy.training import TrainResult, train_plain, train_private

__all__ = [
    "ACCOUNTANT_NAMES",
    "DPConfig",
    "GRAD_SAMPLE_MODES",
    "HistoryEntry",
    "NoiseCache",
    "PrivacyAccountant",
    "PrivacyBudget",
    "PrivacyRandomness",
    "SecureRandomness",
    "SeededRandomness",
    "TrainResult",
    "calibrate_noise_multiplier",
    "check_delta",
    "check_dp_compatible",
    "compute_epsilon",
    "declared_dp_problem",
    "dp_compatibility",
    "epsilon_curve",
    "federation_dp_config",
    "incompatible_layers",
    "opacus_mode_for",
    "plan_round",
    "sample_rate_for",
    "train_plain",
    "train_private",
]

# Training and calibration import torch and Opacus (about a second): load each name on first use,
# so that the epsilon computation (fedchain.privacy.epsilon) stays light for the auditor.
_HOME = {
    **dict.fromkeys(("ACCOUNTANT_NAMES", "GRAD_SAMPLE_MODES"), "_registry"),
    **dict.fromkeys(("calibrate_noise_multiplier", "plan_round"), "accounting"),
    **dict.fromkeys(("DPConfig", "PrivacyBudget", "check_delta", "federation_dp_config"), "config"),
    **dict.fromkeys(
        ("HistoryEntry", "compute_epsilon", "declared_dp_problem", "epsilon_curve", "sample_rate_for"), "epsilon"
    ),
    "PrivacyAccountant": "accountant",
    "NoiseCache": "noise_cache",
    **dict.fromkeys(("PrivacyRandomness", "SecureRandomness", "SeededRandomness"), "randomness"),
    **dict.fromkeys(
        ("check_dp_compatible", "dp_compatibility", "incompatible_layers", "opacus_mode_for"),
        "compatibility",
    ),
    **dict.fromkeys(("TrainResult", "train_plain", "train_private"), "training"),
}


__getattr__, __dir__ = lazy_exports(__name__, _HOME)
