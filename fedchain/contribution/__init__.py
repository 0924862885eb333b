"""Contribution scoring: how much each member's update is worth in a round.

Example:
    >>> from fedchain.contribution import data_size_scores
    >>> data_size_scores({"a": 30, "b": 10})
    {'a': 0.75, 'b': 0.25}
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["data_size_scores"]


def data_size_scores(num_examples: Mapping[str, int]) -> dict[str, float]:
    """Baseline scorer: each member's share of the round's examples (sums to 1; all zero if none)."""
    total = sum(num_examples.values())
    if total <= 0:
        return {member: 0.0 for member in num_examples}
    return {member: n / total for member, n in num_examples.items()}
