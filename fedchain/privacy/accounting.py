"""Privacy accounting for a member planning its rounds: noise calibration and round plans (Opacus).

The epsilon of a history (:func:`compute_epsilon`, :func:`epsilon_curve`), the sample rate and the
check of declared DP parameters live in :mod:`fedchain.privacy.epsilon`, which does not import
torch (the auditor and the coordinator use it); they are re-exported here. Calibrating a noise
multiplier to a budget uses Opacus's ``get_noise_multiplier`` and so loads Opacus and torch.

Example:
    >>> from fedchain.privacy import compute_epsilon
    >>> round(compute_epsilon([(1.1, 0.2, 15)] * 4, delta=1e-5), 4)
    10.4569
"""

from __future__ import annotations

import functools
import logging

from opacus.accountants.utils import get_noise_multiplier

from fedchain._validation import Interval
from fedchain.errors import ConfigError, PrivacyError
from fedchain.privacy._quiet import quiet_opacus
from fedchain.privacy.config import DPConfig, PrivacyBudget
from fedchain.privacy.epsilon import (
    HistoryEntry,
    _check_accountant,
    compute_epsilon,
    declared_dp_problem,
    epsilon_curve,
    normalize_history,
    sample_rate_for,
)
from fedchain.types import DPParams

__all__ = [
    "HistoryEntry",
    "calibrate_noise_multiplier",
    "compute_epsilon",
    "declared_dp_problem",
    "epsilon_curve",
    "normalize_history",
    "plan_round",
    "sample_rate_for",
]

log = logging.getLogger(__name__)

_COUNT = Interval(int, 1, None, closed="left")


def calibrate_noise_multiplier(
    *,
    budget: PrivacyBudget,
    sample_rate: float,
    steps_per_round: int,
    rounds: int,
    accountant: str = "rdp",
) -> float:
    """The noise multiplier with which ``rounds`` rounds of ``steps_per_round`` fit the budget.

    Uses Opacus's :func:`~opacus.accountants.utils.get_noise_multiplier` (the search behind
    ``make_private_with_epsilon``) over the planned total steps, then checks the result with
    :func:`compute_epsilon` on the per-round history the member will actually record and nudges
    it up if float rounding put that a hair over the budget. The planned run therefore lands at
    most at ``budget.epsilon`` and within the search tolerance (0.01, or 0.1% of large budgets)
    below it. Results are cached per process.

    Args:
        budget: the member's lifetime budget.
        sample_rate: Poisson sample rate of each step, in (0, 1].
        steps_per_round: optimizer steps per round (>= 1).
        rounds: planned rounds (>= 1).
        accountant: ``"rdp"`` or ``"prv"``.

    Returns:
        The noise multiplier (> 0).

    Raises:
        PrivacyError: the budget is too small for any noise multiplier up to 1e6.

    Example:
        >>> from fedchain.privacy import PrivacyBudget
        >>> sigma = calibrate_noise_multiplier(
        ...     budget=PrivacyBudget(epsilon=8.0, delta=1e-5), sample_rate=0.2, steps_per_round=15, rounds=20
        ... )
        >>> round(sigma, 3), compute_epsilon([(sigma, 0.2, 15)] * 20, delta=1e-5) <= 8.0
        (2.375, True)
    """
    if not isinstance(budget, PrivacyBudget):
        raise ConfigError("budget", "a PrivacyBudget", budget)
    return _calibrate(
        budget.epsilon,
        budget.delta,
        float(Interval(float, 0, 1, closed="right").check("sample_rate", sample_rate)),
        _COUNT.check("steps_per_round", steps_per_round),
        _COUNT.check("rounds", rounds),
        _check_accountant(accountant),
    )


@functools.lru_cache(maxsize=64)
def _calibrate(
    epsilon: float, delta: float, sample_rate: float, steps_per_round: int, rounds: int, accountant: str
) -> float:
    tolerance = max(0.01, 1e-3 * epsilon)
    try:
        with quiet_opacus():
            sigma = float(
                get_noise_multiplier(
                    target_epsilon=epsilon,
                    target_delta=delta,
                    sample_rate=sample_rate,
                    steps=steps_per_round * rounds,
                    accountant=accountant,
                    epsilon_tolerance=tolerance,
                )
            )
    except ValueError as exc:
        raise PrivacyError(
            f"no noise multiplier up to 1e6 keeps {rounds} rounds x {steps_per_round} steps at sample "
            f"rate {sample_rate:g} within epsilon {epsilon:g} (delta {delta:g}): raise the budget or "
            "plan fewer rounds or epochs"
        ) from exc
    history = [(sigma, sample_rate, steps_per_round)] * rounds
    for _ in range(100):
        if compute_epsilon(history, delta, accountant) <= epsilon:
            break
        sigma *= 1.0 + 1e-6
        history = [(sigma, sample_rate, steps_per_round)] * rounds
    else:  # pragma: no cover - the search above already lands within its tolerance
        raise PrivacyError(f"noise calibration did not converge for epsilon {epsilon:g}")
    log.info(
        "calibrated noise multiplier %.4f for %d rounds x %d steps at q=%.4g, epsilon %.3g, delta %.3g (%s)",
        sigma,
        rounds,
        steps_per_round,
        sample_rate,
        epsilon,
        delta,
        accountant,
    )
    return sigma


def plan_round(config: DPConfig, *, num_examples: int, epochs: int, batch_size: int) -> DPParams:
    """The DP parameters one round of local training will use for a member with ``num_examples``.

    The node can call this before training (e.g. to decline early); ``train_private`` calls it.

    Args:
        config: the member's DP config (fixed or calibrated noise).
        num_examples: the member's training examples ``n``.
        epochs: local epochs per round (>= 1).
        batch_size: nominal batch size (>= 1); the Poisson sample rate follows from it.

    Returns:
        ``DPParams`` of the round: noise multiplier, sample rate, steps, clipping norm, delta.

    Example:
        >>> from fedchain.privacy import DPConfig, PrivacyBudget
        >>> config = DPConfig(budget=PrivacyBudget(epsilon=8.0, delta=1e-5), noise_multiplier=1.1)
        >>> plan_round(config, num_examples=150, epochs=3, batch_size=32)
        DPParams(noise_multiplier=1.1, sample_rate=0.2, steps=15, max_grad_norm=1.0, delta=1e-05)
    """
    epochs = _COUNT.check("epochs", epochs)
    sample_rate, steps_per_epoch = sample_rate_for(num_examples, batch_size)
    steps = epochs * steps_per_epoch
    noise_multiplier = config.noise_multiplier
    if noise_multiplier is None:
        noise_multiplier = calibrate_noise_multiplier(
            budget=config.budget,
            sample_rate=sample_rate,
            steps_per_round=steps,
            rounds=config.planned_rounds,
            accountant=config.accountant,
        )
    return DPParams(
        noise_multiplier=noise_multiplier,
        sample_rate=sample_rate,
        steps=steps,
        max_grad_norm=config.max_grad_norm,
        delta=config.budget.delta,
    )
