"""SIMULATED ADVERSARIES, FOR TESTS AND BENCHMARKS ONLY. Never enable them in a real federation.

``fedchain run --adversary KIND`` (repeatable) adds one simulated member of that kind after the
honest members; ``result.json`` marks each member's ``kind``. These pure functions say how such a
member departs from an honest one, so that scorers, the norm bound and rewards can be tested
against misbehaviour:

==============  ============================================================================
kind            behaviour
==============  ============================================================================
``free_rider``  does no useful work: sends a zero update (the global model back) and claims
                :data:`FREE_RIDER_CLAIM_FACTOR` times its examples
``noise``       sends a random Gaussian update with :data:`NOISE_NORM_FACTOR` times the norm of
                the honest update it would have sent (comparable size, no information)
``label_flip``  trains honestly on poisoned labels ``y -> num_classes - 1 - y``
``scaled``      sends its honest update multiplied by :data:`SCALE_FACTOR` (boosting attack)
==============  ============================================================================

A member node applies them at three points of its round: labels before training
(:func:`adversarial_labels`), the update before encryption or sending (:func:`adversarial_update`),
and the example count it reports (:func:`claimed_examples`). ``"honest"`` changes nothing.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> adversarial_update("scaled", np.array([0.5, -1.0]), rng=rng)
    array([  50., -100.])
    >>> adversarial_labels("label_flip", np.array([0, 3, 9]), num_classes=10)
    array([9, 6, 0])
    >>> claimed_examples("free_rider", 120)
    1200
"""

from __future__ import annotations

import logging

import numpy as np

from fedchain.config import ADVERSARY_KINDS
from fedchain.errors import ConfigError

__all__ = [
    "ADVERSARY_KINDS",
    "FREE_RIDER_CLAIM_FACTOR",
    "HONEST",
    "NOISE_NORM_FACTOR",
    "SCALE_FACTOR",
    "adversarial_labels",
    "adversarial_update",
    "adversary_rng",
    "claimed_examples",
    "trains",
]

log = logging.getLogger(__name__)

#: The kind of every real member.
HONEST = "honest"
#: A free rider claims this many times its real example count.
FREE_RIDER_CLAIM_FACTOR = 10
#: A noise member's update has this many times the norm of its honest update.
NOISE_NORM_FACTOR = 1.0
#: A scaled member multiplies its honest update by this.
SCALE_FACTOR = 100.0


def _check_kind(kind: str) -> str:
    if kind != HONEST and kind not in ADVERSARY_KINDS:
        raise ConfigError("adversary", "one of " + ", ".join(repr(k) for k in (HONEST, *ADVERSARY_KINDS)), kind)
    return kind


def adversary_rng(*, seed: int, member_id: int, server_round: int) -> np.random.Generator:
    """The random generator of one simulated member-round (deterministic for a run seed).

    Example:
        >>> float(adversary_rng(seed=0, member_id=7, server_round=1).normal()) == float(
        ...     adversary_rng(seed=0, member_id=7, server_round=1).normal())
        True
    """
    return np.random.default_rng([seed, member_id, server_round, 0xAD5E])


def trains(kind: str) -> bool:
    """Whether a member of ``kind`` runs local training at all (a free rider does not).

    Example:
        >>> trains("free_rider"), trains("label_flip")
        (False, True)
    """
    return _check_kind(kind) != "free_rider"


def adversarial_labels(kind: str, y: np.ndarray, num_classes: int) -> np.ndarray:
    """The labels a member of ``kind`` trains on: flipped for ``label_flip``, else unchanged.

    Args:
        kind: ``"honest"`` or an adversary kind.
        y: integer labels in ``[0, num_classes)``.
        num_classes: the federation's number of classes.

    Returns:
        ``num_classes - 1 - y`` for ``label_flip``; ``y`` itself otherwise.

    Raises:
        ConfigError: for an unknown kind or labels outside ``[0, num_classes)``.
    """
    if _check_kind(kind) != "label_flip":
        return y
    labels = np.asarray(y)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ConfigError("y", f"labels in [0, {num_classes})", f"[{labels.min()}, {labels.max()}]")
    return (num_classes - 1 - labels).astype(labels.dtype, copy=False)


def adversarial_update(kind: str, delta: np.ndarray, *, rng: np.random.Generator) -> np.ndarray:
    """The flat update a member of ``kind`` sends instead of its honest ``delta``.

    Args:
        kind: ``"honest"`` or an adversary kind.
        delta: the honest (unweighted) update ``new weights - global weights``, flat; for a free
            rider (which does not train) any array of the right shape.
        rng: the member-round's generator (:func:`adversary_rng`), used by ``noise``.

    Returns:
        A new flat float64 array (``delta`` itself for ``honest`` and ``label_flip``, whose harm
        is in the labels).

    Raises:
        ConfigError: for an unknown kind.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> adversarial_update("free_rider", np.ones(3), rng=rng)
        array([0., 0., 0.])
        >>> noise = adversarial_update("noise", np.array([3.0, 4.0]), rng=rng)
        >>> round(float(np.linalg.norm(noise)), 6)
        5.0
    """
    kind = _check_kind(kind)
    values = np.asarray(delta, dtype=np.float64)
    if kind == "free_rider":
        return np.zeros_like(values)
    if kind == "noise":
        direction = rng.normal(size=values.shape)
        norm = float(np.linalg.norm(direction))
        target = NOISE_NORM_FACTOR * float(np.linalg.norm(values))
        return direction * (target / norm) if norm > 0 else direction
    if kind == "scaled":
        return values * SCALE_FACTOR
    return values


def claimed_examples(kind: str, num_examples: int) -> int:
    """The example count a member of ``kind`` reports (a free rider inflates it).

    Example:
        >>> claimed_examples("noise", 120)
        120
    """
    if _check_kind(kind) == "free_rider":
        return num_examples * FREE_RIDER_CLAIM_FACTOR
    return num_examples
