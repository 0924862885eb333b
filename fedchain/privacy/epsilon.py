"""The epsilon of a DP-SGD history: the pure computation a member reports and an auditor recomputes.

A history is a sequence of ``(noise_multiplier, sample_rate, steps)`` entries, the format of an
Opacus accountant's ``history``; fedchain keeps one entry per member-round, so the entries map
one to one onto the DP parameters recorded on chain. :func:`compute_epsilon` is *the* definition
of a member's cumulative epsilon: the member reports it and the auditor recomputes it with the
same function and gets the same float.

- ``"rdp"``: Opacus's :class:`~opacus.accountants.RDPAccountant` arithmetic, computed
  incrementally (the per-step RDP curve of each ``(sample_rate, noise_multiplier)`` is cached and
  summed in history order), bit-identical to ``RDPAccountant.get_epsilon`` on the same history.
- ``"prv"``: Opacus's :class:`~opacus.accountants.PRVAccountant` on the history with runs of
  entries of equal ``(noise_multiplier, sample_rate)`` merged (composition is the same; the
  numerical domain is tighter and it is much faster).

This module does not import torch: importing anything from the ``opacus`` package runs
``opacus/__init__.py``, which loads torch and Opacus's training stack (about a second), while the
RDP arithmetic is Opacus's ``opacus/accountants/analysis/rdp.py``, a NumPy + SciPy file with no
imports from the rest of Opacus. :func:`_rdp_analysis` loads that file of the installed, pinned
Opacus on its own, so the auditor (:mod:`fedchain.audit`) and the coordinator's check of declared
DP parameters run Opacus's own code without torch. The ``"prv"`` accountant imports Opacus
normally, on first use. ``tests/privacy/test_epsilon.py`` checks both: the same numbers as
``opacus.accountants``, and torch not loaded.

Example:
    >>> from fedchain.privacy.epsilon import compute_epsilon
    >>> round(compute_epsilon([(1.1, 0.2, 15)] * 4, delta=1e-5), 4)
    10.4569
"""

from __future__ import annotations

import functools
import importlib.util
import math
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import ModuleType
from typing import TypeAlias

import numpy as np

from fedchain._validation import Interval, OneOf
from fedchain.errors import ConfigError, PrivacyError
from fedchain.privacy._quiet import quiet_opacus
from fedchain.privacy._registry import ACCOUNTANT_NAMES
from fedchain.privacy.config import DPConfig, positive_float
from fedchain.types import DPParams

__all__ = [
    "ACCOUNTANT_NAMES",
    "RDP_ORDERS",
    "HistoryEntry",
    "compute_epsilon",
    "declared_dp_problem",
    "epsilon_curve",
    "normalize_history",
    "sample_rate_for",
]

#: One accounting entry: ``(noise_multiplier, sample_rate, steps)``, as in Opacus's ``history``.
HistoryEntry: TypeAlias = tuple[float, float, int]

#: The RDP orders of Opacus's ``RDPAccountant.DEFAULT_ALPHAS`` (a test checks they are the same).
RDP_ORDERS: tuple[float, ...] = tuple([1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64)))

_DELTA = Interval(float, 0, 1, closed="neither")
_COUNT = Interval(int, 1, None, closed="left")
_RDP_FILE = ("accountants", "analysis", "rdp.py")


@functools.cache
def _rdp_analysis() -> ModuleType:
    """Opacus's ``opacus.accountants.analysis.rdp``, loaded without running ``opacus/__init__`` (torch).

    Where Opacus is already imported (a member that trains), its own module is used; else the same
    file of the installed Opacus is loaded on its own. Should a future Opacus move the file, this
    falls back to the normal import (correct, only slower).
    """
    name = "opacus.accountants.analysis.rdp"
    if name in sys.modules:
        return sys.modules[name]
    opacus = importlib.util.find_spec("opacus")  # finds the package without importing it
    locations = list(opacus.submodule_search_locations or []) if opacus is not None else []
    for location in locations:
        path = Path(location).joinpath(*_RDP_FILE)
        spec = importlib.util.spec_from_file_location("fedchain.privacy._opacus_rdp", path)
        if path.is_file() and spec is not None and spec.loader is not None:
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return module
    return importlib.import_module(name)  # pragma: no cover - an Opacus laid out differently


def normalize_history(history: Iterable[HistoryEntry | DPParams]) -> list[HistoryEntry]:
    """Validate a history and return it as a list of plain ``(float, float, int)`` tuples.

    Args:
        history: entries as 3-tuples or :class:`~fedchain.types.DPParams` (as read from chain).

    Returns:
        The entries as tuples, in order.

    Raises:
        PrivacyError: an entry is malformed; the message names its index and field.

    Example:
        >>> normalize_history([(1.0, 0.5, 2)])
        [(1.0, 0.5, 2)]
    """
    entries: list[HistoryEntry] = []
    for index, entry in enumerate(history):
        if isinstance(entry, DPParams):
            raw: Sequence[object] = (entry.noise_multiplier, entry.sample_rate, entry.steps)
        elif isinstance(entry, Sequence) and not isinstance(entry, str | bytes) and len(entry) == 3:
            raw = entry
        else:
            raise PrivacyError(
                f"history entry {index} must be (noise_multiplier, sample_rate, steps) or DPParams, got {entry!r}"
            )
        noise_multiplier, sample_rate, steps = raw
        try:
            entries.append(
                (
                    positive_float("noise_multiplier", noise_multiplier),
                    float(Interval(float, 0, 1, closed="right").check("sample_rate", sample_rate)),
                    int(_COUNT.check("steps", steps)),
                )
            )
        except ConfigError as exc:
            raise PrivacyError(f"history entry {index}: {exc}") from exc
    return entries


@functools.lru_cache(maxsize=256)
def _rdp_per_step(sample_rate: float, noise_multiplier: float) -> np.ndarray:
    """Opacus's RDP curve of one step (read-only array over :data:`RDP_ORDERS`)."""
    curve = _rdp_analysis().compute_rdp(
        q=sample_rate, noise_multiplier=noise_multiplier, steps=1, orders=list(RDP_ORDERS)
    )
    curve = np.asarray(curve, dtype=np.float64)
    curve.setflags(write=False)
    return curve


def _rdp_epsilon(total_rdp: np.ndarray, delta: float) -> float:
    with quiet_opacus():
        epsilon, _ = _rdp_analysis().get_privacy_spent(orders=list(RDP_ORDERS), rdp=total_rdp, delta=delta)
    return float(epsilon)


def _merge_runs(entries: list[HistoryEntry]) -> list[HistoryEntry]:
    merged: list[HistoryEntry] = []
    for noise_multiplier, sample_rate, steps in entries:
        if merged and merged[-1][:2] == (noise_multiplier, sample_rate):
            merged[-1] = (noise_multiplier, sample_rate, merged[-1][2] + steps)
        else:
            merged.append((noise_multiplier, sample_rate, steps))
    return merged


def _prv_epsilon(entries: list[HistoryEntry], delta: float) -> float:
    from opacus.accountants import PRVAccountant  # loads torch: PRV only, on first use

    accountant = PRVAccountant()
    accountant.history = _merge_runs(entries)
    try:
        with quiet_opacus():
            return float(accountant.get_epsilon(delta=delta))
    except (ValueError, RuntimeError) as exc:
        raise PrivacyError(f"the PRV accountant cannot bound this history: {exc}") from exc


def _check_accountant(accountant: str) -> str:
    return OneOf(ACCOUNTANT_NAMES).check("accountant", accountant)


def compute_epsilon(history: Iterable[HistoryEntry | DPParams], delta: float, accountant: str = "rdp") -> float:
    """Cumulative epsilon of a history of DP-SGD runs, at ``delta``.

    This is what a member reports and what an auditor recomputes from the DP parameters on chain.

    Args:
        history: ``(noise_multiplier, sample_rate, steps)`` entries or ``DPParams``, in order.
        delta: the target delta, in (0, 1).
        accountant: ``"rdp"`` or ``"prv"`` (see the module docstring).

    Returns:
        epsilon; ``0.0`` for an empty history.

    Raises:
        ConfigError: ``delta`` or ``accountant`` is invalid.
        PrivacyError: an entry is malformed.

    Example:
        >>> compute_epsilon([], delta=1e-5)
        0.0
        >>> round(compute_epsilon([(1.0, 0.01, 1000)], delta=1e-5), 3)
        2.101
    """
    delta = _DELTA.check("delta", delta)
    accountant = _check_accountant(accountant)
    entries = normalize_history(history)
    if not entries:
        return 0.0
    if accountant == "prv":
        return _prv_epsilon(entries, delta)
    return _rdp_curve(entries, delta)[-1]


def epsilon_curve(history: Iterable[HistoryEntry | DPParams], delta: float, accountant: str = "rdp") -> list[float]:
    """Cumulative epsilon after each entry of a history (what an auditor checks round by round).

    For ``"rdp"`` this is incremental: one pass, each distinct ``(sample_rate, noise_multiplier)``
    curve computed once. Its last element equals :func:`compute_epsilon` exactly.

    Args:
        history: as for :func:`compute_epsilon`.
        delta: the target delta, in (0, 1).
        accountant: ``"rdp"`` or ``"prv"``.

    Returns:
        One epsilon per entry, non-decreasing; ``[0.0]`` for an empty history.

    Example:
        >>> [round(e, 3) for e in epsilon_curve([(1.1, 0.2, 15)] * 3, delta=1e-5)]
        [5.669, 7.573, 9.106]
    """
    delta = _DELTA.check("delta", delta)
    accountant = _check_accountant(accountant)
    entries = normalize_history(history)
    if not entries:
        return [0.0]
    if accountant == "prv":
        return [_prv_epsilon(entries[: end + 1], delta) for end in range(len(entries))]
    return _rdp_curve(entries, delta)


def _rdp_curve(entries: list[HistoryEntry], delta: float) -> list[float]:
    total: np.ndarray | int = 0
    curve: list[float] = []
    for noise_multiplier, sample_rate, steps in entries:
        # Same float operations, in the same order, as RDPAccountant.get_privacy_spent.
        total = total + _rdp_per_step(sample_rate, noise_multiplier) * steps
        curve.append(_rdp_epsilon(np.asarray(total), delta))
    return curve


def sample_rate_for(num_examples: int, batch_size: int) -> tuple[float, int]:
    """Poisson sample rate and steps per epoch that Opacus's ``DPDataLoader`` uses.

    ``make_private`` sets ``sample_rate = 1 / len(data_loader)`` of a loader with ``batch_size``
    (``ceil(n / batch_size)`` batches) and draws ``int(1 / sample_rate)`` batches per epoch.

    Args:
        num_examples: the member's training examples ``n`` (>= 1).
        batch_size: the nominal batch size (>= 1).

    Returns:
        ``(sample_rate, steps_per_epoch)``.

    Example:
        >>> sample_rate_for(150, 32)
        (0.2, 5)
    """
    n = _COUNT.check("num_examples", num_examples)
    batch_size = _COUNT.check("batch_size", batch_size)
    sample_rate = 1.0 / math.ceil(n / batch_size)
    return sample_rate, int(1 / sample_rate)


#: A declared noise multiplier above the calibrated one must still spend this share of the budget.
_DECLARED_SPEND_FLOOR = 0.9


def declared_dp_problem(
    dp: DPParams, *, num_examples: int, config: DPConfig, epochs: int, batch_size: int
) -> str | None:
    """Why a member's declared DP parameters are not what an honest member would use, or None.

    An honest member with ``num_examples`` examples plans its round with :func:`plan_round`: the
    same sample rate, at most the planned steps, the federation's clipping norm, and a noise
    multiplier that spends the budget over the planned rounds (or the fixed one). A declaration
    with more noise than that (it would spend under ``90%`` of the budget) or larger steps or
    clipping is refused. Cheap: one RDP evaluation per distinct declaration, cached.

    Example:
        >>> from fedchain.privacy import DPConfig, PrivacyBudget, plan_round
        >>> config = DPConfig(budget=PrivacyBudget(epsilon=8.0, delta=1e-5), noise_multiplier=1.1)
        >>> honest = plan_round(config, num_examples=150, epochs=3, batch_size=32)
        >>> declared_dp_problem(honest, num_examples=150, config=config, epochs=3, batch_size=32) is None
        True
        >>> from dataclasses import replace
        >>> declared_dp_problem(replace(honest, noise_multiplier=50.0), num_examples=150, config=config,
        ...                     epochs=3, batch_size=32)
        'noise multiplier 50 above the configured 1.1'
    """
    sample_rate, steps_per_epoch = sample_rate_for(num_examples, batch_size)
    planned_steps = _COUNT.check("epochs", epochs) * steps_per_epoch
    if not math.isclose(dp.sample_rate, sample_rate, rel_tol=1e-9):
        return f"sample rate {dp.sample_rate:g}, expected {sample_rate:g} for {num_examples} examples"
    if not 0 < dp.steps <= planned_steps:
        return f"{dp.steps} steps, at most {planned_steps} planned"
    if dp.max_grad_norm > config.max_grad_norm * (1 + 1e-9):
        return f"clipping norm {dp.max_grad_norm:g} above the configured {config.max_grad_norm:g}"
    if config.noise_multiplier is not None:
        if dp.noise_multiplier > config.noise_multiplier * (1 + 1e-9):
            return f"noise multiplier {dp.noise_multiplier:g} above the configured {config.noise_multiplier:g}"
        return None
    spend = compute_epsilon(
        [(dp.noise_multiplier, sample_rate, planned_steps)] * config.planned_rounds,
        config.budget.delta,
        config.accountant,
    )
    if spend < _DECLARED_SPEND_FLOOR * config.budget.epsilon:
        return (
            f"noise multiplier {dp.noise_multiplier:g} spends only epsilon {spend:.3g} of the budget "
            f"{config.budget.epsilon:g} over {config.planned_rounds} rounds: more noise than calibrated"
        )
    return None
