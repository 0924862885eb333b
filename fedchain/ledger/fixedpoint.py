"""Fixed-point encodings of what ``ContributionLedger`` stores: scores, epsilon, DP parameters, budgets, hashes.

Every number written on chain is an unsigned integer. This module is the one place that converts
between those integers and Python values (no web3 import here). Floats are converted exactly from
their shortest decimal form (``repr``) and rounded half to even, so ``0.1`` encodes as ``10**17``
and encoding is deterministic on every machine.

========================  ==========  ================  ===================================
value                     scale       on chain          resolution / range
========================  ==========  ================  ===================================
score                     1e18        ``uint256``       1e-18 (see :mod:`fedchain.rewards`)
cumulative epsilon        1e18        ``uint256``       1e-18; 0 means "no DP"
noise multiplier          1e9         bits 0..47        1e-9, up to 281474.97
sample rate               1e18        bits 48..111      1e-18, in (0, 1]
steps                     1           bits 112..143     1 .. 2**32 - 1
max grad norm (clipping)  1e9         bits 144..191     1e-9, up to 281474.97
delta                     1e18        bits 192..255     1e-18, in (0, 1)
budget epsilon            1e18        bits 128..255     1e-18, in (0, 2**128 / 1e18)
budget delta              1e18        bits 0..127       1e-18, in (0, 1)
========================  ==========  ================  ===================================

The five DP-SGD values pack into one ``uint256`` word per member (``dpParams``), least significant
bits first as listed; the zero word means the member trained without DP. At these resolutions an
auditor who decodes the word and reruns the RDP accountant reproduces the member's epsilon to far
better than 1e-6 (relative input error <= 5e-10 for sigma and the clipping norm; sample rate and
delta are exact to 1e-18).

A member's lifetime privacy budget ``(epsilon, delta)`` is set once with ``setPrivacyBudgets``
(two 1e18-scaled words, packed by the contract into one storage word, epsilon high and delta
low) and read back with ``privacyBudget``; :func:`budget_to_fixed` and :func:`fixed_to_budget`
convert, exactly for values with at most 18 decimals (``8.0``, ``1e-5``).

Example:
    >>> from fedchain.types import DPParams
    >>> dp = DPParams(noise_multiplier=1.1, sample_rate=0.02, steps=150, max_grad_norm=1.0, delta=1e-5)
    >>> unpack_dp(pack_dp(dp)) == dp
    True
    >>> epsilon_to_fixed(2.5)
    2500000000000000000
    >>> fixed_to_budget(*budget_to_fixed(8.0, 1e-5))
    (8.0, 1e-05)
    >>> status_to_code("late"), code_to_status(4)
    (2, 'replayed')

A member-round's status travels as its index in :data:`fedchain.types.MEMBER_STATUSES`
(``0`` accepted, ``1`` rejected, ``2`` late, ``3`` skipped, ``4`` replayed).
"""

from __future__ import annotations

import math
from fractions import Fraction

from fedchain.errors import ConfigError
from fedchain.scores import SCORE_SCALE, fixed_to_score, score_to_fixed
from fedchain.types import MEMBER_STATUSES, DPParams

__all__ = [
    "BUDGET_FIELD_LIMIT",
    "CLIP_SCALE",
    "DELTA_SCALE",
    "EPSILON_SCALE",
    "NOISE_SCALE",
    "SAMPLE_RATE_SCALE",
    "SCORE_SCALE",
    "budget_to_fixed",
    "bytes32_to_hex",
    "code_to_status",
    "delta_to_fixed",
    "epsilon_to_fixed",
    "fixed_to_budget",
    "fixed_to_delta",
    "fixed_to_epsilon",
    "fixed_to_score",
    "hex_to_bytes32",
    "pack_dp",
    "score_to_fixed",
    "status_to_code",
    "unpack_dp",
]

EPSILON_SCALE = 10**18
NOISE_SCALE = 10**9
SAMPLE_RATE_SCALE = 10**18
CLIP_SCALE = 10**9
DELTA_SCALE = 10**18
#: Each field of a stored budget (epsilon, delta) must be below this (the contract packs two per word).
BUDGET_FIELD_LIMIT = 2**128

# (field, shift, bits, scale)
_LAYOUT: tuple[tuple[str, int, int, int], ...] = (
    ("noise_multiplier", 0, 48, NOISE_SCALE),
    ("sample_rate", 48, 64, SAMPLE_RATE_SCALE),
    ("steps", 112, 32, 1),
    ("max_grad_norm", 144, 48, CLIP_SCALE),
    ("delta", 192, 64, DELTA_SCALE),
)
_UINT256_MAX = 2**256 - 1


def _to_fixed(name: str, value: float, scale: int, bits: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(name, "a finite number", value)
    fixed = round(Fraction(repr(float(value))) * scale)
    limit = 2**bits - 1
    if fixed <= 0 or fixed > limit:
        raise ConfigError(name, f"a number in (0, {limit / scale:.10g}] at resolution {1 / scale:g}", value)
    return fixed


def pack_dp(dp: DPParams | None) -> int:
    """Pack one member-round's DP-SGD parameters into the ``dpParams`` word (0 for None).

    Raises:
        ConfigError: a parameter is out of range (noise multiplier, sample rate, steps, clipping norm
            must be positive; sample rate at most 1; delta in (0, 1)).

    Example:
        >>> pack_dp(None)
        0
    """
    if dp is None:
        return 0
    if not 0 < dp.sample_rate <= 1:
        raise ConfigError("dp.sample_rate", "a float in (0, 1]", dp.sample_rate)
    if not 0 < dp.delta < 1:
        raise ConfigError("dp.delta", "a float in (0, 1)", dp.delta)
    if isinstance(dp.steps, bool) or not isinstance(dp.steps, int):
        raise ConfigError("dp.steps", "an int in [1, 4294967295]", dp.steps)
    word = 0
    for name, shift, bits, scale in _LAYOUT:
        word |= _to_fixed(f"dp.{name}", getattr(dp, name), scale, bits) << shift
    return word


def unpack_dp(word: int) -> DPParams | None:
    """Decode a ``dpParams`` word back into :class:`~fedchain.types.DPParams` (None for 0).

    Example:
        >>> unpack_dp(0) is None
        True
    """
    if word == 0:
        return None
    values: dict[str, float | int] = {}
    for name, shift, bits, scale in _LAYOUT:
        raw = (word >> shift) & (2**bits - 1)
        values[name] = raw if scale == 1 else float(Fraction(raw, scale))
    return DPParams(
        noise_multiplier=float(values["noise_multiplier"]),
        sample_rate=float(values["sample_rate"]),
        steps=int(values["steps"]),
        max_grad_norm=float(values["max_grad_norm"]),
        delta=float(values["delta"]),
    )


def epsilon_to_fixed(epsilon: float | None) -> int:
    """Encode a cumulative epsilon (None, meaning no DP, encodes as 0).

    Raises:
        ConfigError: epsilon is not a finite number in (0, inf).

    Example:
        >>> epsilon_to_fixed(None)
        0
    """
    if epsilon is None:
        return 0
    if isinstance(epsilon, bool) or not isinstance(epsilon, int | float) or not math.isfinite(epsilon):
        raise ConfigError("epsilon", "a float in (0, inf)", epsilon)
    fixed = round(Fraction(repr(float(epsilon))) * EPSILON_SCALE)
    if fixed <= 0 or fixed > _UINT256_MAX:
        raise ConfigError("epsilon", "a float in (0, inf)", epsilon)
    return fixed


def fixed_to_epsilon(epsilon_fixed: int) -> float | None:
    """Decode a recorded epsilon (0 decodes as None).

    Example:
        >>> fixed_to_epsilon(2500000000000000000)
        2.5
    """
    if epsilon_fixed == 0:
        return None
    return float(Fraction(epsilon_fixed, EPSILON_SCALE))


def delta_to_fixed(delta: float, *, name: str = "delta") -> int:
    """Encode a DP delta, a float in (0, 1), at resolution 1e-18.

    Args:
        delta: the delta.
        name: how to name the value in an error (e.g. ``"budgets[0xAbC...].delta"``).

    Raises:
        ConfigError: delta is not a finite number in (0, 1), or rounds to 0 at 1e-18.

    Example:
        >>> delta_to_fixed(1e-5)
        10000000000000
    """
    if isinstance(delta, bool) or not isinstance(delta, int | float) or not math.isfinite(delta) or not 0 < delta < 1:
        raise ConfigError(name, "a float in (0, 1)", delta)
    fixed = round(Fraction(repr(float(delta))) * DELTA_SCALE)
    if not 0 < fixed < DELTA_SCALE:
        raise ConfigError(name, f"a float in (0, 1) at resolution {1 / DELTA_SCALE:g}", delta)
    return fixed


def fixed_to_delta(delta_fixed: int) -> float | None:
    """Decode a 1e18-scaled delta (0 decodes as None).

    Example:
        >>> fixed_to_delta(10000000000000)
        1e-05
    """
    if delta_fixed == 0:
        return None
    return float(Fraction(delta_fixed, DELTA_SCALE))


def budget_to_fixed(epsilon: float, delta: float, *, name: str = "budget") -> tuple[int, int]:
    """Encode a lifetime privacy budget as the ``setPrivacyBudgets`` words ``(epsilon, delta)``.

    Args:
        epsilon: the most cumulative epsilon the member may spend, in (0, inf) (below 2**128 / 1e18).
        delta: the member's delta, in (0, 1).
        name: prefix naming the budget in an error; the message names ``NAME.epsilon`` or ``NAME.delta``.

    Raises:
        ConfigError: epsilon is not in (0, 2**128 / 1e18) or delta not in (0, 1) at 1e-18 resolution.

    Example:
        >>> budget_to_fixed(8.0, 1e-5)
        (8000000000000000000, 10000000000000)
        >>> budget_to_fixed(0.0, 1e-5, name="budgets[0x11]")
        Traceback (most recent call last):
        ...
        fedchain.errors.ConfigError: The 'budgets[0x11].epsilon' parameter must be a float in (0, inf). Got 0.0.
    """
    epsilon_name = f"{name}.epsilon"
    if isinstance(epsilon, bool) or not isinstance(epsilon, int | float) or not math.isfinite(epsilon) or epsilon <= 0:
        raise ConfigError(epsilon_name, "a float in (0, inf)", epsilon)
    epsilon_fixed = round(Fraction(repr(float(epsilon))) * EPSILON_SCALE)
    if not 0 < epsilon_fixed < BUDGET_FIELD_LIMIT:
        limit = BUDGET_FIELD_LIMIT / EPSILON_SCALE
        raise ConfigError(epsilon_name, f"a float in (0, {limit:.6g}) at resolution {1 / EPSILON_SCALE:g}", epsilon)
    return epsilon_fixed, delta_to_fixed(delta, name=f"{name}.delta")


def fixed_to_budget(epsilon_fixed: int, delta_fixed: int) -> tuple[float, float] | None:
    """Decode a stored budget; ``(0, 0)`` (no budget set) decodes as None.

    Example:
        >>> fixed_to_budget(0, 0) is None
        True
    """
    epsilon = fixed_to_epsilon(epsilon_fixed)
    delta = fixed_to_delta(delta_fixed)
    if epsilon is None or delta is None:
        return None
    return epsilon, delta


def hex_to_bytes32(value: str, *, name: str = "hash") -> bytes:
    """Parse a 32-byte hash given as hex, with or without ``0x``.

    Raises:
        ConfigError: the value is not 64 hex digits.

    Example:
        >>> len(hex_to_bytes32("ab" * 32))
        32
    """
    text = value[2:] if isinstance(value, str) and value[:2].lower() == "0x" else value
    try:
        raw = bytes.fromhex(text)
    except (TypeError, ValueError):
        raw = b""
    if len(raw) != 32:
        raise ConfigError(name, "a 32-byte hex string (64 hex digits, optional 0x)", value)
    return raw


def bytes32_to_hex(value: bytes) -> str:
    """Format 32 bytes as lowercase ``0x`` hex, the form :mod:`fedchain.types` uses.

    Example:
        >>> bytes32_to_hex(bytes(32)) == "0x" + "00" * 32
        True
    """
    return "0x" + bytes(value).hex()


def status_to_code(status: str, *, name: str = "status") -> int:
    """The on-chain code of a member-round status (its index in :data:`~fedchain.types.MEMBER_STATUSES`).

    Raises:
        ConfigError: ``status`` is not one of :data:`~fedchain.types.MEMBER_STATUSES`.
    """
    if status not in MEMBER_STATUSES:
        raise ConfigError(name, f"one of {', '.join(repr(s) for s in MEMBER_STATUSES)}", status)
    return MEMBER_STATUSES.index(status)


def code_to_status(code: int) -> str:
    """The status named by an on-chain code; ``"unknown(N)"`` for a code no fedchain contract writes."""
    return MEMBER_STATUSES[code] if 0 <= code < len(MEMBER_STATUSES) else f"unknown({code})"
