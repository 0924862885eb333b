"""Parameter validation with messages generated from the constraint (scikit-learn style).

Example:
    >>> from fedchain._validation import Interval
    >>> Interval(float, 0, None, closed="neither").check("epsilon", 3.0)
    3.0
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from fedchain.errors import ConfigError

__all__ = ["Interval", "OneOf", "check_bool"]

_BOUND = {"left": ("[", ")"), "right": ("(", "]"), "both": ("[", "]"), "neither": ("(", ")")}


@dataclass(frozen=True)
class Interval:
    """A numeric range; ``None`` bounds are infinite.

    Attributes:
        kind: ``int`` or ``float``.
        low: lower bound or None.
        high: upper bound or None.
        closed: which ends are included: ``"left"``, ``"right"``, ``"both"`` or ``"neither"``.
    """

    kind: type
    low: float | None
    high: float | None
    closed: Literal["left", "right", "both", "neither"] = "both"

    def describe(self) -> str:
        """Render as e.g. ``a float in (0, inf)``."""
        left, right = _BOUND[self.closed]
        if self.low is None:
            left = "("
        if self.high is None:
            right = ")"
        low = "-inf" if self.low is None else f"{self.low:g}"
        high = "inf" if self.high is None else f"{self.high:g}"
        article = "an" if self.kind is int else "a"
        return f"{article} {self.kind.__name__} in {left}{low}, {high}{right}"

    def check(self, name: str, value: Any) -> Any:
        """Return ``value`` converted to the interval's kind, or raise :class:`ConfigError`."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(name, self.describe(), value)
        if self.kind is int:
            if isinstance(value, float) and not value.is_integer():
                raise ConfigError(name, self.describe(), value)
            value = int(value)
        else:
            value = float(value)
            # An open infinite bound excludes infinity itself: (0, inf) does not contain inf.
            if math.isnan(value) or math.isinf(value):
                raise ConfigError(name, self.describe(), value)
        if self.low is not None:
            too_low = value < self.low if self.closed in ("left", "both") else value <= self.low
            if too_low:
                raise ConfigError(name, self.describe(), value)
        if self.high is not None:
            too_high = value > self.high if self.closed in ("right", "both") else value >= self.high
            if too_high:
                raise ConfigError(name, self.describe(), value)
        return value


@dataclass(frozen=True)
class OneOf:
    """A value from a fixed set of strings."""

    options: tuple[str, ...]

    def describe(self) -> str:
        """Render as e.g. ``one of 'iid', 'dirichlet'``."""
        return "one of " + ", ".join(repr(option) for option in self.options)

    def check(self, name: str, value: Any) -> str:
        """Return ``value`` if it is one of the options, else raise :class:`ConfigError`."""
        if value not in self.options:
            raise ConfigError(name, self.describe(), value)
        return str(value)


def check_bool(name: str, value: Any) -> bool:
    """Accept a bool, or the strings and integers Flower run config may carry for one."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
        return value.lower() in ("true", "1", "yes")
    raise ConfigError(name, "a boolean", value)
