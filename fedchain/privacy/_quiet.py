"""Silence Opacus warnings that are known to be harmless here, and only around Opacus calls.

- "Secure RNG turned off": fedchain cannot use ``secure_mode`` (torchcsprng is not installable
  for this torch); the module docstring of :mod:`fedchain.privacy.training` says so once.
- "Optimal order is the largest alpha": the RDP bound is still a valid upper bound on epsilon,
  only perhaps not the tightest one.
- torch's "Full backward hook is firing when gradients are computed with respect to module
  outputs since no inputs require gradients" (``hooks`` and ``ghost`` modes): Opacus needs exactly
  the gradients with respect to each layer's output; the first layer's input never requires one.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["quiet_opacus"]

_HARMLESS = (
    r"Secure RNG turned off",
    r"Optimal order is the largest alpha",
    r"Full backward hook is firing when gradients are computed with respect to module outputs",
)


@contextmanager
def quiet_opacus() -> Iterator[None]:
    """Ignore the known-harmless Opacus warnings inside the ``with`` block."""
    with warnings.catch_warnings():
        for message in _HARMLESS:
            warnings.filterwarnings("ignore", message=message)
        yield
