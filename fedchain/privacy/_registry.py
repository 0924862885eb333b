"""The names fedchain accepts for Opacus accountants and per-sample gradient modes.

Error messages list these tuples, so they are the single source of what exists.
"""

from __future__ import annotations

__all__ = ["ACCOUNTANT_NAMES", "GRAD_SAMPLE_MODES"]

#: Opacus accountants fedchain supports (``opacus.accountants`` mechanism names). ``"gdp"`` is left
#: out: Opacus itself warns that its Gaussian-DP bound is inaccurate at small sample rates.
ACCOUNTANT_NAMES: tuple[str, ...] = ("prv", "rdp")

#: How DP-SGD computes clipped per-sample gradients. ``"fused"``: fedchain's one-pass step for
#: models whose trainable layers are all ``nn.Linear`` (:mod:`fedchain.privacy._fused`);
#: ``"auto"``: ``"fused"`` when the model allows it, else the Opacus mode
#: :func:`~fedchain.privacy.opacus_mode_for` picks (``"ghost"`` for embedding models, ``"ew"``
#: for CNNs, ``"hooks"`` for layers ExpandedWeights lacks); the others are Opacus
#: ``grad_sample_mode`` values for single-process training (``PrivacyEngine.make_private``).
GRAD_SAMPLE_MODES: tuple[str, ...] = ("auto", "ew", "functorch", "fused", "ghost", "hooks")
