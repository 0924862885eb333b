"""Can DP-SGD train this model? Each layer at fault, what Opacus says, and the fix.

DP-SGD needs a per-example gradient of every trainable parameter, and no layer that mixes the
examples of a batch. Two things decide whether a model qualifies:

- Opacus's module validators (``opacus.validators.ModuleValidator``): BatchNorm mixes the
  examples of a batch (its running statistics travel with the model even when frozen);
  ``nn.LSTM``, ``nn.GRU`` and ``nn.MultiheadAttention`` need Opacus's drop-in ``DPLSTM``,
  ``DPGRU`` and ``DPMultiheadAttention``; InstanceNorm must not track running statistics.
  ``ModuleValidator.fix`` replaces each of these.
- a per-sample gradient rule for each trainable layer in the chosen ``grad_sample_mode``:

  ==============  ===========================================================================
  mode            trainable layers it can train
  ==============  ===========================================================================
  ``fused``       ``nn.Linear`` only, each on ``(batch, features)`` rows, no tied weights
  ``ew``          torch's ExpandedWeights rules: Linear, Conv1d/2d/3d, Embedding, GroupNorm,
                  LayerNorm, InstanceNorm1d/2d/3d (and modules built of them, e.g. DPLSTM)
  ``hooks``       Opacus's grad samplers (the ``ew`` layers, RMSNorm, EmbeddingBag, DP layers),
                  any other layer by Opacus's functorch fallback, except a trainable layer
                  holding buffers (a buffer is not private)
  ``ghost``       as ``hooks`` (Linear and Embedding by ghost norms, the rest per sample)
  ``functorch``   as ``hooks``, all by ``vmap`` (no EmbeddingBag)
  ``auto``        any of the above: what :func:`~fedchain.privacy.train_private` picks
  ==============  ===========================================================================

:func:`dp_compatibility` lists the problems (empty when the model is fine) and
:func:`check_dp_compatible` raises :class:`~fedchain.errors.DPIncompatibleModelError` with them.
:func:`~fedchain.privacy.train_private` calls it before any step and any budget check.

Example:
    >>> from torch import nn
    >>> from fedchain.privacy import dp_compatibility
    >>> model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(16, 2))
    >>> print(dp_compatibility(model)[0])  # doctest: +NORMALIZE_WHITESPACE
    1 (BatchNorm2d): BatchNorm mixes the examples of a batch (Opacus: "BatchNorm cannot support
    training with differential privacy."); replace it with GroupNorm
    (opacus.validators.ModuleValidator.fix does this)
    >>> dp_compatibility(nn.Sequential(nn.Conv2d(1, 4, 3), nn.GroupNorm(2, 4)))
    []
"""

from __future__ import annotations

import re
from collections.abc import Callable

from opacus.grad_sample.grad_sample_module_fast_gradient_clipping import GradSampleModuleFastGradientClipping
from opacus.validators import ModuleValidator
from torch import nn

from fedchain.errors import ConfigError, DPIncompatibleModelError
from fedchain.privacy._fused import _static_incompatibilities
from fedchain.privacy._registry import GRAD_SAMPLE_MODES

__all__ = ["check_dp_compatible", "dp_compatibility", "incompatible_layers", "opacus_mode_for"]

#: The Opacus modes that between them train every model ``"auto"`` accepts (ghost trains a subset of hooks').
_GENERAL_MODES = ("ew", "hooks")

_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)
_INSTANCE_NORMS = (nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)

#: Layer types whose functional form torch's ExpandedWeights (Opacus ``"ew"``) has a rule for.
_EW_LAYERS: tuple[type[nn.Module], ...] = (
    nn.Linear,
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.Embedding,
    nn.GroupNorm,
    nn.LayerNorm,
    *_INSTANCE_NORMS,
)

#: Why a layer Opacus's validators reject is a problem, and how to fix it, by layer type.
_WHY_AND_FIX: tuple[tuple[tuple[type[nn.Module], ...], str, str], ...] = (
    (
        _BATCH_NORMS,
        "BatchNorm mixes the examples of a batch",
        "replace it with GroupNorm (opacus.validators.ModuleValidator.fix does this)",
    ),
    (
        _INSTANCE_NORMS,
        "its running statistics mix the examples and are not private",
        "build it with track_running_stats=False (opacus.validators.ModuleValidator.fix does this)",
    ),
    (
        (nn.LSTM,),
        "nn.LSTM's fused kernel gives Opacus no per-layer inputs",
        "replace it with opacus.layers.DPLSTM, a drop-in (opacus.validators.ModuleValidator.fix does this)",
    ),
    (
        (nn.GRU,),
        "nn.GRU's fused kernel gives Opacus no per-layer inputs",
        "replace it with opacus.layers.DPGRU, a drop-in (opacus.validators.ModuleValidator.fix does this)",
    ),
    (
        (nn.MultiheadAttention,),
        "nn.MultiheadAttention calls its weights outside its submodules",
        "replace it with opacus.layers.DPMultiheadAttention, a drop-in "
        "(opacus.validators.ModuleValidator.fix does this)",
    ),
)


_FUSED_FIX = "the fused step trains nn.Linear only; use 'auto' (falls back to Opacus) or an Opacus mode such as 'ew'"


def _label(name: str, module: nn.Module) -> str:
    return f"{name or '<model>'} ({type(module).__name__})"


def _trainable(module: nn.Module) -> bool:
    return any(p.requires_grad for p in module.parameters(recurse=False))


def _mixes_examples(module: nn.Module) -> bool:
    return isinstance(module, _BATCH_NORMS) or (
        isinstance(module, _INSTANCE_NORMS) and bool(module.track_running_stats)
    )


def _first_sentence(text: str) -> str:
    match = re.match(r"(.+?[.!])(\s|$)", " ".join(text.split()))
    return match.group(1) if match else text.strip()


def _validator_problems(model: nn.Module) -> list[tuple[str, str]]:
    """``(label, problem)`` for each layer one of Opacus's module validators rejects.

    A validator runs on each trainable layer (as Opacus does) and on each layer keeping running
    statistics, trainable or not: those statistics mix examples and travel with the model.
    """
    found: list[tuple[str, str]] = []
    for name, module in model.named_modules():
        validator: Callable[[nn.Module], list[Exception]] | None = ModuleValidator.VALIDATORS.get(type(module))
        if validator is None or not (_trainable(module) or _mixes_examples(module)):
            continue
        errors = validator(module)
        if not errors:
            continue
        opacus_says = _first_sentence(str(errors[0]))
        why, fix = next(
            ((w, f) for kinds, w, f in _WHY_AND_FIX if isinstance(module, kinds)),
            (
                "Opacus refuses it",
                "opacus.validators.ModuleValidator.fix replaces it"
                if type(module) in ModuleValidator.FIXERS
                else "replace it with a layer Opacus supports",
            ),
        )
        label = _label(name, module)
        found.append((label, f'{label}: {why} (Opacus: "{opacus_says}"); {fix}'))
    return found


def _mode_problems(model: nn.Module, mode: str) -> list[tuple[str, str]]:
    """``(label, problem)`` for each trainable layer ``mode`` has no per-sample gradient rule for."""
    if mode == "fused":
        return [
            (
                "",
                f"{problem}: {_FUSED_FIX}",
            )
            for problem in _static_incompatibilities(model)
        ]
    found: list[tuple[str, str]] = []
    for name, module in model.named_modules():
        if not _trainable(module):
            continue
        label = _label(name, module)
        kind = type(module).__name__
        if mode == "ew" and not isinstance(module, _EW_LAYERS):
            found.append(
                (
                    label,
                    f"{label}: torch's ExpandedWeights (Opacus 'ew') has no per-sample gradient rule for {kind}; "
                    "use grad_sample_mode 'hooks' (or 'auto'), which computes it with Opacus's functorch fallback",
                )
            )
        elif mode in ("hooks", "ghost", "functorch") and any(True for _ in module.buffers(recurse=False)):
            found.append(
                (
                    label,
                    f"{label}: Opacus's {mode!r} mode refuses a trainable layer holding buffers (Opacus: "
                    '"Model contains a trainable layer with buffers that Opacus doesn\'t currently support"); '
                    "freeze it (requires_grad_(False)), move its buffers out of it, or use grad_sample_mode 'ew'",
                )
            )
        elif mode == "functorch" and isinstance(module, nn.EmbeddingBag):
            found.append(
                (
                    label,
                    f"{label}: Opacus's functorch mode cannot vmap {kind} "
                    "(Opacus: \"Functorch does not support EmbeddingBag yet\"); use grad_sample_mode 'hooks'",
                )
            )
    return found


def _shares_parameters(model: nn.Module) -> bool:
    owners: dict[int, int] = {}
    for module in model.modules():
        for parameter in module.parameters(recurse=False):
            if parameter.requires_grad:
                owners[id(parameter)] = owners.get(id(parameter), 0) + 1
    return any(count > 1 for count in owners.values())


def _ghost_pays(model: nn.Module) -> bool:
    """Ghost clipping for a model with a trainable Embedding whose every trainable layer Opacus samples natively.

    Per-sample gradients of an embedding table are ``batch x vocabulary x dim`` numbers;
    ghost clipping gets their norms from the activations and backprops alone, then takes a
    second backward pass for the clipped sum. Tied weights are not supported there.
    """
    layers = [module for module in model.modules() if _trainable(module)]
    native = (*GradSampleModuleFastGradientClipping.NORM_SAMPLERS, *GradSampleModuleFastGradientClipping.GRAD_SAMPLERS)
    return (
        any(type(module) is nn.Embedding for module in layers)
        and all(type(module) in native for module in layers)
        and not _shares_parameters(model)
        and not _mode_problems(model, "ghost")
    )


def opacus_mode_for(model: nn.Module) -> str:
    """The Opacus mode ``"auto"`` uses for a model the fused step cannot train (measured choice).

    ``"ghost"`` when the model has a trainable ``nn.Embedding`` and Opacus has a native rule for
    every trainable layer (no tied weights): its per-sample embedding gradients are never built;
    else ``"ew"`` when ExpandedWeights has a rule for every trainable layer (Conv, norms, Linear);
    else ``"hooks"`` (Opacus's functorch fallback covers the rest). Figures in
    :mod:`fedchain.privacy.training` and ``bench/bench_dp_models.py``.

    Example:
        >>> from torch import nn
        >>> opacus_mode_for(nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(8, 2)))
        'ew'
        >>> opacus_mode_for(nn.Sequential(nn.Embedding(100, 8), nn.Flatten(), nn.Linear(40, 2)))
        'ghost'
        >>> opacus_mode_for(nn.Sequential(nn.Linear(4, 4), nn.PReLU(), nn.Linear(4, 2)))
        'hooks'
    """
    if _ghost_pays(model):
        return "ghost"
    return "ew" if not _mode_problems(model, "ew") else "hooks"


def dp_compatibility(model: nn.Module, *, grad_sample_mode: str = "auto") -> list[str]:
    """Why DP-SGD cannot train ``model`` in ``grad_sample_mode``: one line per problem, empty when it can.

    Each line names the submodule by its dotted name and type, says what Opacus says about it,
    and gives the fix, e.g. ``"features.1 (BatchNorm2d): BatchNorm mixes the examples of a
    batch (Opacus: ...); replace it with GroupNorm (opacus.validators.ModuleValidator.fix does
    this)"``. Only the model's structure is checked (no forward pass): ``"fused"`` also needs
    its Linear layers to run on ``(batch, features)`` rows, which :func:`train_private` checks
    on the data, falling back to Opacus under ``"auto"``.

    Args:
        model: the model to check (its train/eval mode does not matter: training sets train mode).
        grad_sample_mode: one of :data:`~fedchain.privacy.GRAD_SAMPLE_MODES`; ``"auto"`` (the
            default) accepts a model any mode can train.

    Returns:
        The problems, in module order; ``[]`` when DP-SGD can train the model.

    Raises:
        ConfigError: ``grad_sample_mode`` is not a known mode, or ``model`` is not a module.

    Example:
        >>> from torch import nn
        >>> dp_compatibility(nn.Sequential(nn.Embedding(100, 8), nn.Flatten(), nn.Linear(40, 2)))
        []
        >>> print(dp_compatibility(nn.Sequential(nn.Linear(4, 4), nn.PReLU()), grad_sample_mode="ew")[0])
        ... # doctest: +ELLIPSIS
        1 (PReLU): torch's ExpandedWeights (Opacus 'ew') has no per-sample gradient rule for PReLU; use ...
    """
    if not isinstance(model, nn.Module):
        raise ConfigError("model", "a torch.nn.Module", model)
    if grad_sample_mode not in GRAD_SAMPLE_MODES:
        raise ConfigError("grad_sample_mode", f"one of {', '.join(map(repr, GRAD_SAMPLE_MODES))}", grad_sample_mode)
    refused = _validator_problems(model)
    found = [problem for _, problem in refused]
    if not any(p.requires_grad for p in model.parameters()):
        return [*found, "<model>: it has no trainable parameters; DP-SGD has nothing to train"]
    if grad_sample_mode == "auto":
        if not _static_incompatibilities(model) or any(not _mode_problems(model, m) for m in _GENERAL_MODES):
            return found
        grad_sample_mode = _GENERAL_MODES[-1]  # the most general mode auto picks says what is left
    rejected = {label for label, _ in refused}  # a layer the validators reject is listed once
    return found + [problem for label, problem in _mode_problems(model, grad_sample_mode) if label not in rejected]


def check_dp_compatible(model: nn.Module, *, grad_sample_mode: str = "auto", hint: str = "") -> None:
    """Raise :class:`~fedchain.errors.DPIncompatibleModelError` if DP-SGD cannot train ``model``.

    The error lists every problem :func:`dp_compatibility` finds, one per line.

    Args:
        model: the model to check.
        grad_sample_mode: the mode to check for (``"auto"``: any mode fedchain can pick).
        hint: a sentence appended to the message (e.g. a member-specific fix).

    Raises:
        DPIncompatibleModelError: DP-SGD cannot train the model (``problems`` lists why).
        ConfigError: ``grad_sample_mode`` is not a known mode.

    Example:
        >>> from torch import nn
        >>> check_dp_compatible(nn.Sequential(nn.Conv2d(1, 4, 3), nn.GroupNorm(2, 4)))
        >>> check_dp_compatible(nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4)))
        ... # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        fedchain.errors.DPIncompatibleModelError: DP-SGD (grad_sample_mode 'auto') cannot train this model:
          - 1 (BatchNorm1d): BatchNorm mixes the examples of a batch (Opacus: ...); replace it with GroupNorm ...
    """
    problems = dp_compatibility(model, grad_sample_mode=grad_sample_mode)
    if problems:
        raise DPIncompatibleModelError(problems, grad_sample_mode, hint)


def incompatible_layers(model: nn.Module) -> list[str]:
    """Names of the layers Opacus's validators reject, as ``"name (Type)"`` (what ``ModuleValidator.fix`` replaces).

    BatchNorm layers are always listed, trainable or not: their running statistics mix
    examples of a batch and travel with the model, which per-sample DP cannot account for.

    Example:
        >>> from torch import nn
        >>> incompatible_layers(nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4)))
        ['1 (BatchNorm1d)']
    """
    return [label for label, _ in _validator_problems(model)]
