"""FedProx's proximal term, added by members to their local training (Li et al. 2020).

Flower's ``FedProx`` only sends ``proximal-mu`` in the train config; the member adds
``mu / 2 * ||w - w_global||^2`` to its local objective, i.e. ``mu * (w - w_global)`` to each gradient.

Under DP-SGD the term must not go through per-sample clipping: it does not depend on any example.
:meth:`ProximalTerm.attach` registers a step pre-hook on the torch optimizer that applies the
update, so the term is added to the final gradient: after backward in plain training, and under
DP after the per-sample gradients were clipped, summed, noised and scaled (Opacus's
``DPOptimizer`` runs its ``pre_step`` before calling the wrapped optimizer's ``step``; fedchain's
fused DP step writes the noised gradient before ``optimizer.step()``). The term is a function of
the current iterate (already a DP output) and of the global model the member received (public to
it), so adding it is post-processing: the privacy guarantee and the accountant's epsilon are
unchanged, and the accountant's own hook is left alone.

It lives with members' local training (:mod:`fedchain.privacy.training`, the task's plain
training), which adds it; ``fedchain.aggregation.proximal`` re-exports it for existing imports.

Example:
    >>> import torch
    >>> model = torch.nn.Linear(2, 1)
    >>> prox = ProximalTerm(model, mu=0.1)
    >>> with torch.no_grad():
    ...     _ = model.weight.add_(1.0)
    >>> round(float(prox.loss().detach()), 6)
    0.1
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from fedchain._validation import Interval
from fedchain.errors import StrategyError

__all__ = ["ProximalTerm"]

log = logging.getLogger(__name__)

_MU = Interval(float, 0, None, closed="left")


class ProximalTerm:
    """``mu / 2 * ||w - w_ref||^2`` over a model's trainable parameters, ``w_ref`` their values now.

    Build it right after loading the global model, before the first local step.

    Args:
        model: the model (or its parameters) about to be trained; its current values are the reference.
        mu: the proximal weight, >= 0 (0 makes every method a no-op).

    Raises:
        ConfigError: ``mu`` is negative, infinite or not a number.
    """

    def __init__(self, model: nn.Module | Iterable[torch.Tensor], *, mu: float) -> None:
        self.mu: float = _MU.check("proximal_mu", mu)
        parameters = model.parameters() if isinstance(model, nn.Module) else model
        self._pairs = [(p, p.detach().clone()) for p in parameters if p.requires_grad]
        if not self._pairs:
            raise StrategyError("the proximal term needs at least one trainable parameter")

    def loss(self) -> torch.Tensor:
        """``mu / 2 * sum ||p - p_ref||^2`` (differentiable), for plain training's loss."""
        total = sum(((p - ref) ** 2).sum() for p, ref in self._pairs)
        return 0.5 * self.mu * total  # type: ignore[return-value]

    @torch.no_grad()
    def add_to_gradients(self) -> None:
        """``p.grad += mu * (p - p_ref)`` for every parameter with a gradient (the term's exact gradient)."""
        if self.mu == 0.0:
            return
        for p, ref in self._pairs:
            if p.grad is not None:
                p.grad.add_(p.detach() - ref, alpha=self.mu)

    def attach(self, optimizer: torch.optim.Optimizer) -> Any:
        """Add the term's gradient right before every step of ``optimizer``; return the hook's handle.

        ``optimizer`` may be a plain torch optimizer (plain training, fedchain's fused DP step) or
        an Opacus ``DPOptimizer`` (the hook then goes on the optimizer it wraps). Either way the
        hook runs after the gradient is final: after backward, and under DP after per-sample
        clipping, noise and scaling, so the term is never clipped or noised.

        Raises:
            StrategyError: ``optimizer`` is not a torch optimizer, or it trains parameters this
                term does not cover (build the term from the model the optimizer trains).
        """
        inner = getattr(optimizer, "original_optimizer", optimizer)  # Opacus wraps the real one
        if not isinstance(inner, torch.optim.Optimizer):
            raise StrategyError(f"the proximal term attaches to a torch optimizer, not {type(optimizer).__name__}")
        covered = {id(p) for p, _ in self._pairs}
        trained = [p for group in inner.param_groups for p in group["params"] if p.requires_grad]
        missing = [tuple(p.shape) for p in trained if id(p) not in covered]
        if missing:
            raise StrategyError(
                f"the optimizer trains {len(missing)} parameter(s) the proximal term does not cover "
                f"(shapes {missing[:3]}): build the ProximalTerm from the model the optimizer trains"
            )

        def hook(_optimizer: Any, _args: Any, _kwargs: Any) -> None:
            self.add_to_gradients()

        log.debug("proximal term (mu=%g) attached to %s", self.mu, type(inner).__name__)
        return inner.register_step_pre_hook(hook)
