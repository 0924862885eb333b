"""fedchain's fused DP-SGD step for models whose trainable layers are all ``nn.Linear``.

Opacus's ``DPOptimizer`` and grad-sample wrappers are general (any layer Opacus knows, gradient
accumulation, distributed training) and pay for it in per-step Python: on the demo MLP they add
about 3.5 times a whole non-private step (see :mod:`fedchain.privacy.training`). For the models a
fedchain member trains most often, an MLP of ``nn.Linear`` layers on ``(batch, features)``
rows, the same DP-SGD step fits in about twenty tensor operations, computed in one backward pass
("book-keeping" ghost clipping, Bu et al. 2022):

1. forward, keeping each trainable Linear ``l``'s input ``a_l`` and output ``z_l``;
2. ``L = sum_i loss_i`` (per-example losses summed) and ``b_l = dL/dz_l`` by one
   ``torch.autograd.grad`` call: row ``i`` of ``b_l`` is example ``i``'s own output gradient;
3. per-example squared gradient norms by the ghost-norm identity, exact for 2-D inputs (the
   formula of Opacus's ``compute_linear_norm_sample``):
   ``||g_i||^2 = sum_l ||a_li||^2 ||b_li||^2 (weight) + ||b_li||^2 (bias)``;
4. Opacus's clip factor ``c_i = min(1, C / (||g_i|| + 1e-6))``;
5. Opacus's noisy mean: ``grad = (sum_i c_i g_i + N(0, sigma^2 C^2 I)) / E`` with
   ``E = int(n * q)``, Opacus's ``expected_batch_size``; the noise is drawn from the noise
   generator one parameter at a time in parameter order, the very draws ``DPOptimizer`` makes,
   and the clipped sums are ``b_l^T diag(c) a_l`` (weight) and ``b_l^T c`` (bias), one matrix
   product each, so no per-example gradient is ever materialised;
6. the optimizer step, and one Opacus accountant step at ``(sigma, q)``.

Batches are Opacus's Poisson batches: :func:`poisson_epoch` draws each step's inclusion mask
as ``torch.rand(n, generator=g) < q``, exactly as ``UniformWithReplacementSampler`` does (the
whole epoch's masks in one call; the draws and batches are identical to those of Opacus's
``DPDataLoader``, which a test pins).

:func:`fused_incompatibilities` says why a model cannot use this step (a trainable layer that is
not ``nn.Linear``, parameters shared between layers, a Linear used twice in one forward pass,
an input that is not 2-D, a layer output modified in place); the training code then uses an
Opacus mode instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from fedchain.errors import PrivacyError
from fedchain.privacy.randomness import PrivacyRandomness

__all__ = ["FusedDPStep", "expected_batch_size", "fused_incompatibilities", "poisson_epoch", "steps_per_epoch"]


def poisson_epoch(
    num_examples: int, sample_rate: float, steps: int, generator: torch.Generator | PrivacyRandomness
) -> tuple[torch.Tensor, list[int]]:
    """One epoch of Poisson batches, drawn as Opacus's ``DPDataLoader`` draws them: ``(indices, sizes)``.

    Opacus's ``UniformWithReplacementSampler`` draws ``torch.rand(n, generator=g) < q`` at each
    step, after the loader's iterator (a torch ``DataLoader``'s) has drawn one 64-bit worker seed
    from the same generator. This draws that seed too, then the ``steps`` masks of the epoch in
    one call, which yields the same numbers in the same order (CPU ``uniform_`` fills serially):
    a seed gives the very batches of the Opacus path. Batch ``k`` is
    ``indices.split(sizes)[k]`` (ascending example indices, possibly empty).

    Given a :class:`~fedchain.privacy.randomness.PrivacyRandomness` instead of a generator, the
    masks are its :meth:`~fedchain.privacy.randomness.PrivacyRandomness.poisson_masks`.
    """
    if isinstance(generator, PrivacyRandomness):
        masks = generator.poisson_masks(steps, num_examples, sample_rate)
    else:
        torch.empty((), dtype=torch.int64).random_(generator=generator)  # the DataLoader iterator's seed
        masks = torch.rand((steps, num_examples), generator=generator) < sample_rate
    sizes: list[int] = masks.sum(dim=1).tolist()
    return masks.nonzero()[:, 1], sizes


def _trainable(module: nn.Module) -> list[nn.Parameter]:
    return [p for p in module.parameters(recurse=False) if p.requires_grad]


def _static_incompatibilities(model: nn.Module) -> list[str]:
    found = []
    owners: dict[int, list[str]] = {}
    for name, module in model.named_modules():
        label = name or "<model>"
        if _trainable(module) and type(module) is not nn.Linear:
            found.append(f"{label} ({type(module).__name__}) has trainable parameters and is not nn.Linear")
        for parameter in _trainable(module):
            owners.setdefault(id(parameter), []).append(label)
    for labels in owners.values():
        if len(labels) > 1:  # tied weights: per-layer norms do not add up to the parameter's norm
            found.append(f"layers {', '.join(labels)} share a trainable parameter")
    return found


@dataclass
class _Layer:
    module: nn.Linear
    weight: torch.Tensor | None  # the weight's slot in the flat gradient, if trainable
    bias: torch.Tensor | None


class _Tape:
    """Records each trainable Linear's (input, output) during one forward pass.

    A plain ``nn.Sequential`` without hooks of its own whose children are trainable Linears or
    parameter-free modules is run child by child (what ``Sequential.forward`` does), which
    saves the hook dispatch; any other model is run as is, with forward hooks on its Linears.
    """

    def __init__(self, model: nn.Module, linears: list[nn.Linear]) -> None:
        self.model = model
        self.linears = linears
        self.linear_set: set[nn.Module] = set(linears)
        self.records: list[tuple[nn.Module, torch.Tensor, torch.Tensor]] = []
        self.versions: list[int] = []  # each output's version counter when recorded
        self._handles: list[RemovableHandle] = []
        children = list(model.children()) if type(model) is nn.Sequential else []
        has_own_hooks = bool(model._forward_hooks or model._forward_pre_hooks)
        self.sequence: list[tuple[nn.Module, bool]] | None = None
        if (
            children
            and not has_own_hooks
            and len({id(child) for child in children}) == len(children)
            and all(
                type(child) is nn.Linear or not any(p.requires_grad for p in child.parameters()) for child in children
            )
        ):
            self.sequence = [(child, child in self.linear_set) for child in children]
        else:
            for linear in linears:
                self._handles.append(linear.register_forward_hook(self._hook))

    def _hook(self, module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        self.records.append((module, inputs[0].detach(), output))
        self.versions.append(output._version)

    def forward(self, xb: torch.Tensor) -> torch.Tensor:
        self.records = records = []
        self.versions = versions = []
        if self.sequence is None:
            out: torch.Tensor = self.model(xb)
            return out
        h = xb
        for child, tracked in self.sequence:
            if tracked:
                a = h.detach()
                h = child(h)
                records.append((child, a, h))
                versions.append(h._version)
            else:
                h = child(h)
        return h

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self.records = []
        self.versions = []

    def modified(self) -> bool:
        """Whether a recorded output was changed in place after its layer ran (e.g. ``ReLU(inplace=True)``)."""
        return any(z._version != version for (_, _, z), version in zip(self.records, self.versions, strict=True))

    def problems(self) -> list[str]:
        """What makes the last forward pass unusable for the ghost-norm identity."""
        found = []
        seen = [module for module, _, _ in self.records]
        for linear in self.linears:
            count = sum(module is linear for module in seen)
            if count != 1:
                found.append(
                    f"a Linear layer ran {count} times in one forward pass (the fused step needs exactly once)"
                )
        if self.modified():
            found.append(
                "a Linear layer's output was modified in place (e.g. by ReLU(inplace=True)); "
                "the fused step needs each layer's output gradient"
            )
        for module, a, z in self.records:
            if a.dim() != 2 or z.dim() != 2:
                found.append(
                    f"a Linear layer ({type(module).__name__} {tuple(a.shape[1:])}) got input of shape "
                    f"{tuple(a.shape)}; the fused step needs (batch, features)"
                )
        return found


def fused_incompatibilities(model: nn.Module, example: torch.Tensor) -> list[str]:
    """Why the fused step cannot train ``model`` (empty when it can).

    Checks the layers, then runs one forward pass on ``example`` (a few rows) in eval mode
    without gradients, so that no RNG is drawn and nothing is trained, and checks that every
    trainable Linear ran exactly once on a 2-D input.
    """
    found = _static_incompatibilities(model)
    linears = [m for m in model.modules() if type(m) is nn.Linear and _trainable(m)]
    if found or not linears:
        return found or ["the model has no trainable nn.Linear layer"]
    tape = _Tape(model, linears)
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            tape.forward(example)
        found = tape.problems()
    except Exception as exc:
        found = [f"the probe forward pass failed: {type(exc).__name__}: {exc}"]
    finally:
        model.train(was_training)
        tape.close()
    return found


class FusedDPStep:
    """The DP-SGD step of the module docstring, bound to one model and optimizer for one round.

    Args:
        model: the model; its trainable parameters must all belong to ``nn.Linear`` layers.
        optimizer: an optimizer over exactly the model's trainable parameters; their ``.grad``
            become views of one flat buffer that each step overwrites.
        noise_multiplier: sigma.
        max_grad_norm: the clipping norm C.
        expected_batch_size: Opacus's ``int(n * q)`` (the noisy sum is divided by it).
        noise_generator: where the Gaussian noise is drawn from: a ``torch.Generator`` (Opacus's
            draws, for a seeded round) or a :class:`~fedchain.privacy.randomness.PrivacyRandomness`.
        criterion: per-example loss with ``reduction="sum"``.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        *,
        noise_multiplier: float,
        max_grad_norm: float,
        expected_batch_size: int,
        noise_generator: torch.Generator | PrivacyRandomness,
        criterion: nn.Module,
    ) -> None:
        self.params = [p for p in model.parameters() if p.requires_grad]
        first = self.params[0]
        self.flat = torch.zeros(sum(p.numel() for p in self.params), dtype=first.dtype, device=first.device)
        slots: dict[int, torch.Tensor] = {}
        offset = 0
        for parameter in self.params:
            slot = self.flat[offset : offset + parameter.numel()].view_as(parameter)
            slots[id(parameter)] = slot
            offset += parameter.numel()
        self.slots = [slots[id(p)] for p in self.params]
        linears = [m for m in model.modules() if type(m) is nn.Linear and _trainable(m)]
        self.layers: dict[nn.Module, _Layer] = {}
        for linear in linears:
            weight = slots.get(id(linear.weight)) if linear.weight.requires_grad else None
            bias = slots.get(id(linear.bias)) if linear.bias is not None and linear.bias.requires_grad else None
            self.layers[linear] = _Layer(linear, weight, bias)
        self.tape = _Tape(model, linears)
        self.optimizer = optimizer
        self.criterion = criterion
        self.max_grad_norm = float(max_grad_norm)
        self.generator = noise_generator
        self.scale = 1.0 / max(1, int(expected_batch_size))
        self.noise_std = float(noise_multiplier) * self.max_grad_norm * self.scale
        for parameter, slot in zip(self.params, self.slots, strict=True):
            parameter.grad = slot
        # The first layer's input is the batch itself when the model is a Sequential starting
        # with a trainable Linear: its squared row norms can then be computed once per round.
        self.first_is_input = self.tape.sequence is not None and self.tape.sequence[0][1]

    def _noise(self) -> None:
        """``flat = N(0, (sigma C / E)^2)``, drawn per parameter in order, as ``DPOptimizer.add_noise`` does."""
        for slot in self.slots:
            if isinstance(self.generator, PrivacyRandomness):
                slot.copy_(self.generator.normal(slot.shape, std=self.noise_std, dtype=slot.dtype))
            else:
                torch.normal(0.0, self.noise_std, slot.shape, generator=self.generator, out=slot)

    def first_layer_factors(self, x: torch.Tensor) -> torch.Tensor | None:
        """Per-row ``||x_i||^2 (+ 1 for a bias)`` of the data, when :attr:`first_is_input`; else None.

        The first layer's contribution to example ``i``'s squared gradient norm is this factor
        times ``||b_i||^2``; computed once per round, it saves two operations per step.
        """
        if not self.first_is_input or self.tape.sequence is None:
            return None
        layer = self.layers[self.tape.sequence[0][0]]
        if layer.weight is None:
            return None
        factors = torch.linalg.vecdot(x, x)
        return factors.add_(1.0) if layer.bias is not None else factors

    def step(self, xb: torch.Tensor, yb: torch.Tensor, factors: torch.Tensor | None = None) -> torch.Tensor:
        """One DP-SGD step on a Poisson batch; returns the batch's summed loss (not detached).

        ``factors``: the batch rows of :meth:`first_layer_factors`, if it gave any.
        """
        self._noise()
        if xb.shape[0] == 0:  # an empty Poisson batch: zero clipped sum, noise only
            self.optimizer.step()
            return torch.zeros((), dtype=self.flat.dtype)
        out = self.tape.forward(xb)
        loss = self.criterion(out, yb)
        records = self.tape.records
        if len(records) != len(self.layers) or self.tape.modified():
            raise PrivacyError("; ".join(self.tape.problems()) or "the fused step lost track of a layer")
        backprops = torch.autograd.grad(loss, [z for _, _, z in records])
        layers = [self.layers[module] for module, _, _ in records]
        # Squared per-example gradient norms: sum over layers of ||a||^2 ||b||^2 + ||b||^2.
        sq_norms: torch.Tensor | None = None
        for (_, a, _), b, layer in zip(records, backprops, layers, strict=True):
            sq_b = torch.linalg.vecdot(b, b)
            if sq_norms is None and factors is not None:
                sq_norms = factors.mul(sq_b)
                continue
            if layer.weight is None:
                sq_norms = sq_b if sq_norms is None else sq_norms.add_(sq_b)
                continue
            sq_a = torch.linalg.vecdot(a, a)
            if sq_norms is None:
                sq_norms = torch.addcmul(sq_b, sq_a, sq_b) if layer.bias is not None else sq_a.mul_(sq_b)
            else:
                sq_norms.addcmul_(sq_a, sq_b)
                if layer.bias is not None:
                    sq_norms.add_(sq_b)
        assert sq_norms is not None
        # Opacus: clip_factor = (C / (norm + 1e-6)).clamp(max=1.0)
        clip = sq_norms.sqrt_().add_(1e-6).reciprocal_().mul_(self.max_grad_norm).clamp_(max=1.0)
        clip_col = clip.unsqueeze(1)
        for (_, a, _), b, layer in zip(records, backprops, layers, strict=True):
            b_t = b.T
            if layer.weight is not None:
                layer.weight.addmm_(b_t, a * clip_col, alpha=self.scale)
            if layer.bias is not None:
                layer.bias.addmv_(b_t, clip, alpha=self.scale)
        self.optimizer.step()
        return loss

    def close(self) -> None:
        """Remove hooks and the gradient views from the model's parameters."""
        self.tape.close()
        for parameter in self.params:
            parameter.grad = None


def expected_batch_size(num_examples: int, sample_rate: float) -> int:
    """Opacus's ``expected_batch_size = int(n * q)`` (at least 1: ``int`` can round 0.999... down to 0)."""
    return max(1, int(num_examples * sample_rate))


def steps_per_epoch(sample_rate: float) -> int:
    """Opacus's Poisson steps per epoch, ``int(1 / q)``."""
    return int(1 / sample_rate)
