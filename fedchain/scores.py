"""Fixed-point scores: the unit in which contribution scores travel on chain.

Shared by the reward rule (:mod:`fedchain.rewards`, which re-exports these names), the ledger's
encoding (:mod:`fedchain.ledger.fixedpoint`) and the auditor; it sits in the core so that none of
those stage packages imports another for it (docs/architecture.md, "Import rules").
"""

from __future__ import annotations

import math
from fractions import Fraction

from fedchain.errors import ConfigError

__all__ = ["SCORE_SCALE", "fixed_to_score", "score_to_fixed"]

#: Scores travel on chain as ``round(score * SCORE_SCALE)`` (18 decimals, like wei per token).
SCORE_SCALE = 10**18

_UINT256_MAX = 2**256 - 1


def score_to_fixed(score: float) -> int:
    """Convert a contribution score to the chain's fixed point, rounding half to even.

    The conversion works on the float's shortest decimal form (``repr``), exactly, so ``0.1`` becomes
    ``10**17`` and the same float always gives the same integer on every machine.

    Args:
        score: a finite, non-negative score.

    Returns:
        ``round(score * SCORE_SCALE)`` as an int.

    Raises:
        ConfigError: the score is negative, NaN or infinite.

    Example:
        >>> score_to_fixed(0.25)
        250000000000000000
    """
    if isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score) or score < 0:
        raise ConfigError("score", "a finite number in [0, inf)", score)
    fixed = round(Fraction(repr(float(score))) * SCORE_SCALE)
    if fixed > _UINT256_MAX:
        raise ConfigError("score", f"at most {_UINT256_MAX / SCORE_SCALE:.3g}", score)
    return fixed


def fixed_to_score(score_fixed: int) -> float:
    """Convert a fixed-point score read from the chain back to a float.

    Example:
        >>> fixed_to_score(250000000000000000)
        0.25
    """
    return float(Fraction(score_fixed, SCORE_SCALE))
