"""A member's calibrated noise multipliers, kept on disk so that a new process need not search again.

Calibrating the noise multiplier to a budget (:func:`~fedchain.privacy.calibrate_noise_multiplier`,
Opacus's search) takes 1 to 2 s of CPU; it is cached per process, but Flower's deployment runtime
starts a fresh ``flwr-clientapp`` process for every message, so a member would search again in
every round. :class:`NoiseCache` keeps the results in the node's state directory, keyed by
everything the search depends on.

A cached value cannot breach the budget: :func:`~fedchain.privacy.train_private` still checks
each round against the member's lifetime ledger and declines a round that would exceed it. An
unreadable cache file is ignored (logged) and rewritten.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> from fedchain.privacy import DPConfig, PrivacyBudget
    >>> config = DPConfig(budget=PrivacyBudget(epsilon=8.0, delta=1e-5), planned_rounds=20)
    >>> cache = NoiseCache(Path(tempfile.mkdtemp()) / "noise.json")
    >>> sigma = cache.noise_multiplier(config, num_examples=150, epochs=3, batch_size=32)
    >>> cache.noise_multiplier(config, num_examples=150, epochs=3, batch_size=32) == sigma
    True
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

from fedchain._io import atomic_write_json
from fedchain.privacy.accounting import plan_round, sample_rate_for
from fedchain.privacy.config import DPConfig

__all__ = ["NoiseCache"]

log = logging.getLogger(__name__)

_VERSION = 1


class NoiseCache:
    """Calibrated noise multipliers of one member, in a JSON file (see the module docstring).

    Args:
        path: the cache file, usually ``state-dir/noise.json``.

    Example:
        >>> NoiseCache("state/noise.json").path.name
        'noise.json'
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def noise_multiplier(self, config: DPConfig, *, num_examples: int, epochs: int, batch_size: int) -> float:
        """The noise multiplier :func:`~fedchain.privacy.plan_round` would use; calibrated once per key.

        ``config.noise_multiplier`` when it is fixed; otherwise the cached calibration for this
        budget, sample rate, steps per round, planned rounds and accountant, or a new one (saved).

        Raises:
            PrivacyError: no noise multiplier fits the budget (from the calibration).
        """
        if config.noise_multiplier is not None:
            return config.noise_multiplier
        sample_rate, steps_per_epoch = sample_rate_for(num_examples, batch_size)
        steps = epochs * steps_per_epoch
        key = (
            f"epsilon={config.budget.epsilon!r} delta={config.budget.delta!r} q={sample_rate!r} "
            f"steps={steps} rounds={config.planned_rounds} accountant={config.accountant}"
        )
        entries = self._read()
        cached = entries.get(key)
        if isinstance(cached, float) and math.isfinite(cached) and cached > 0:
            return cached
        sigma = plan_round(config, num_examples=num_examples, epochs=epochs, batch_size=batch_size).noise_multiplier
        entries[key] = sigma
        try:
            atomic_write_json(self.path, {"version": _VERSION, "noise_multipliers": entries})
        except OSError as exc:  # a cache: the round goes on without it
            log.warning("noise multiplier cache %s not saved: %s", self.path, exc)
        return sigma

    def _read(self) -> dict[str, float]:
        if not self.path.exists():
            return {}
        try:
            document = json.loads(self.path.read_text())
            entries = document["noise_multipliers"] if document.get("version") == _VERSION else {}
            return {str(k): v for k, v in dict(entries).items()}
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            log.warning("ignoring the unreadable noise multiplier cache %s: %s", self.path, exc)
            return {}
