"""The proportional reward rule (see the package docstring); fixed-point scores are :mod:`fedchain.scores`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from fedchain.errors import ConfigError
from fedchain.scores import SCORE_SCALE, fixed_to_score, score_to_fixed

__all__ = ["SCORE_SCALE", "fixed_to_score", "proportional_rewards", "rewards_by_address", "score_to_fixed"]


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
