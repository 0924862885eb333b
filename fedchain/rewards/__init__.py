"""The published reward rule, in pure Python: the exact mirror of ``ContributionLedger.recordRound``.

The chain pays each round's pool by integer arithmetic on fixed-point scores::

    reward_i  = pool_wei * score_i // total_score   (0 when score_i == 0 or total_score == 0)
    remainder = pool_wei - sum(reward_i)             (paid to the treasury)

with ``score_i`` the member's score scaled by :data:`SCORE_SCALE` (1e18) and rounded half to even
(:func:`score_to_fixed`). The auditor and the tests use :func:`proportional_rewards` to recompute what
the chain paid; results are identical to the last wei, and ``sum(rewards) + remainder == pool_wei``
always holds. This package has no I/O and no third-party imports.

Example:
    >>> from fedchain.rewards import proportional_rewards, score_to_fixed
    >>> scores = [score_to_fixed(s) for s in (0.5, 0.25, 0.0)]
    >>> proportional_rewards(scores, 1001)
    ([667, 333, 0], 1)
"""

from __future__ import annotations

from fedchain.rewards.rule import (
    SCORE_SCALE,
    fixed_to_score,
    proportional_rewards,
    rewards_by_address,
    score_to_fixed,
)

__all__ = [
    "SCORE_SCALE",
    "fixed_to_score",
    "proportional_rewards",
    "rewards_by_address",
    "score_to_fixed",
]
