"""Fixed-point scores and the proportional reward rule (see the package docstring)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from fractions import Fraction

from fedchain.errors import ConfigError

__all__ = ["SCORE_SCALE", "fixed_to_score", "proportional_rewards", "rewards_by_address", "score_to_fixed"]

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


def proportional_rewards(scores_fixed: Sequence[int], pool_wei: int) -> tuple[list[int], int]:
    """Split ``pool_wei`` in proportion to fixed-point scores, exactly as the contract does.

    Args:
        scores_fixed: non-negative fixed-point scores (:data:`SCORE_SCALE`), one per member.
        pool_wei: the round's reward pool in wei (non-negative).

    Returns:
        ``(rewards_wei, remainder_wei)``: one floor-rounded reward per score, in the same order,
        and what is left for the treasury. ``sum(rewards_wei) + remainder_wei == pool_wei``.

    Raises:
        ConfigError: a score or the pool is negative or not an int.

    Example:
        >>> proportional_rewards([1, 1, 1], 100)
        ([33, 33, 33], 1)
        >>> proportional_rewards([0, 0], 100)
        ([0, 0], 100)
    """
    if isinstance(pool_wei, bool) or not isinstance(pool_wei, int) or pool_wei < 0:
        raise ConfigError("pool_wei", "an int in [0, inf)", pool_wei)
    for score in scores_fixed:
        if isinstance(score, bool) or not isinstance(score, int) or score < 0:
            raise ConfigError("scores_fixed", "a sequence of ints in [0, inf)", score)
    total = sum(scores_fixed)
    if total == 0:
        return [0] * len(scores_fixed), pool_wei
    rewards = [pool_wei * score // total for score in scores_fixed]
    return rewards, pool_wei - sum(rewards)


def rewards_by_address(scores: Mapping[str, float], *, pool_wei: int) -> tuple[dict[str, int], int]:
    """Apply the rule to float scores keyed by member address (the pipeline's reward stage).

    Args:
        scores: contribution score per member address.
        pool_wei: the round's reward pool in wei.

    Returns:
        ``(rewards_wei, remainder_wei)`` with rewards keyed like ``scores``.

    Example:
        >>> rewards_by_address({"0xA": 3.0, "0xB": 1.0}, pool_wei=10)
        ({'0xA': 7, '0xB': 2}, 1)
    """
    addresses = list(scores)
    rewards, remainder = proportional_rewards([score_to_fixed(scores[a]) for a in addresses], pool_wei)
    return dict(zip(addresses, rewards, strict=True)), remainder
