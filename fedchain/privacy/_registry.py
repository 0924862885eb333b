"""The names fedchain accepts for Opacus accountants and per-sample gradient modes.

Error messages list these tuples, so they are the single source of what exists.
"""

from __future__ import annotations

__all__ = ["ACCOUNTANT_NAMES", "GRAD_SAMPLE_MODES"]

#: Opacus accountants fedchain supports (``opacus.accountants`` mechanism names). ``"gdp"`` is left
#: out: Opacus itself warns that its Gaussian-DP bound is inaccurate at small sample rates.
ACCOUNTANT_NAMES: tuple[str, ...] = ("prv", "rdp")

#: Opacus ``grad_sample_mode`` values fedchain supports for single-process training.
GRAD_SAMPLE_MODES: tuple[str, ...] = ("ew", "functorch", "ghost", "hooks")
