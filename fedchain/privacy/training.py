"""One round of local training on a member's private data, with DP-SGD or without.

:func:`train_private` runs DP-SGD with Poisson sampling, per-sample gradient clipping, Gaussian
noise and an Opacus accountant counting the round's steps; the round is then appended to the
member's :class:`~fedchain.privacy.PrivacyAccountant`. Before any training it checks that the round
fits the member's budget and raises :class:`~fedchain.errors.BudgetExhaustedError` if not (the
node turns that into a "declined" reply). :func:`train_plain` is the same call without DP and
returns the same :class:`TrainResult`, so a node writes one training call either way.

Two implementations of the same DP-SGD step (``DPConfig.grad_sample_mode``):

- ``"fused"`` (:mod:`fedchain.privacy._fused`), for models whose trainable layers are all
  ``nn.Linear`` on ``(batch, features)`` rows: per-example gradient norms by the ghost-norm
  identity, clipped sums by one weighted matrix product per layer, Opacus's clip factor,
  expected batch size and noise draws, batches drawn exactly as Opacus's ``DPDataLoader`` draws
  them, one Opacus accountant step per step. For a seed it trains the same model as Opacus
  (``tests/privacy/test_fused.py``: identical batches, clipped sums and noise to 1e-6, whole
  rounds to 1e-5).
- Opacus itself: ``PrivacyEngine.make_private`` (``DPDataLoader``, a grad-sample wrapper in
  ``"ew"``, ``"hooks"``, ``"ghost"`` or ``"functorch"`` mode, ``DPOptimizer``), for any layer
  Opacus supports: Conv, GroupNorm/LayerNorm/InstanceNorm, Embedding (on int64 token ids),
  Opacus's DP layers, and with ``"hooks"`` any layer holding no buffers. For a seed it trains the
  same model as the textbook Opacus loop (``tests/privacy/test_opacus_models.py``: a CNN and an
  embedding model, each mode, to 1e-5).

Before anything else (the budget check included), :func:`~fedchain.privacy.check_dp_compatible`
refuses a model DP-SGD cannot train, naming each layer, what Opacus says and the fix
(:mod:`fedchain.privacy.compatibility`).

``"auto"`` (the default) picks ``"fused"`` when the model allows it, else
:func:`~fedchain.privacy.opacus_mode_for`: ``"ghost"`` for a model with an ``nn.Embedding``
(no tied weights, a native Opacus rule for every layer), ``"ew"`` when ExpandedWeights has a rule
for every trainable layer, ``"hooks"`` otherwise. Measured (``bench/bench_dp_models.py``, 512
rows, batch 64, process CPU ms per epoch, one torch thread, shared 2-core machine):

===============================  =======  ======  ======  ======  =========  ===============
model (parameters)               plain    ew      hooks   ghost   functorch  auto
===============================  =======  ======  ======  ======  =========  ===============
CNN, mnist-cnn's (20,586)        104      214     232     262     300        ew, 2.0x
Embedding(2000, 16) (32,170)     3.6      34.8    40.5    46.0    49.2       ghost, 12.7x
Embedding(10000, 32) (320,330)   4.7      874     868     61.2    794        ghost, 13.3x
===============================  =======  ======  ======  ======  =========  ===============

``ew`` is the fastest Opacus mode for the CNN (as for the MLP below); ghost clipping never builds
the ``batch x vocabulary x dim`` per-sample embedding gradients, 14x faster than ``ew`` at 320k
parameters and 1.4x at 80k, at most ~1.3x slower below ~50k where a step costs tens of ms.

Speed of the Linear-only path (``bench/bench_privacy.py``, 2-core shared CPU, one torch thread,
digits MLP 64-64-10, batch 32, SGD momentum; process CPU ms per epoch at 1,437 rows / 150 rows,
the marginal cost of an epoch in whole calls, fastest of 5 interleaved repeats):

=====================  ============  =======================================================
path                   ms/epoch      note
=====================  ============  =======================================================
no DP (train_plain)    6.19 / 0.68   the baseline: same model, data, batch loop and optimizer
DP ``fused``           8.97 / 1.02   1.45x / 1.51x: what ``auto`` picks for this model
DP ``ew``              28.0 / 3.06   4.5x: Opacus, ExpandedWeights (torch built-in)
DP ``hooks``           33.0 / 3.67   5.4x: Opacus's most general mode
DP ``ghost``           37.8 / 4.26   6.2x: two backward passes; pays off only for wide layers
DP ``functorch``       70.4 / 7.60   11x: vmap per step
=====================  ============  =======================================================

The model is so small (4,810 parameters, batches of ~32) that time goes to per-step Python and
operator dispatch, not arithmetic: Opacus's optimizer and grad-sample hooks alone cost about 3.5
non-private steps. The fused step is about twenty tensor operations on top of a non-private step
(Poisson batch, two per-layer norms, the clip factor, a noise draw per parameter tensor, one
matrix product per layer), and about 15 us of its ~65 us extra per step is drawing the Gaussian
noise itself. 1.5x is therefore about the floor for DP-SGD on this model in eager PyTorch, not
a margin: the ratio moves a few hundredths with the machine's load and thread count (see
``bench/results/privacy.json``). Both paths gather each epoch's batches with one index, so the
comparison is like for like.

Randomness (:mod:`fedchain.privacy.randomness`): by default, ``seed=None``, Poisson sampling and
the noise come from :class:`~fedchain.privacy.randomness.SecureRandomness`, a ChaCha20 keystream
keyed from ``os.urandom`` each round, each Gaussian value the sum of four samples as in Opacus's
``secure_mode`` (which itself needs ``torchcsprng``, not installable for this torch). With ``seed``
set (tests and replayable simulations only: whoever knows the seed can strip the noise), they come
from two ``torch.Generator`` objects seeded from it, Opacus's very draws, and torch's global RNG is
forked and seeded for the round (dropout), so a round is reproducible on the same machine, thread
count and torch build (float summation order can differ across those).

Example:
    >>> import numpy as np, torch
    >>> from fedchain.privacy import DPConfig, PrivacyAccountant, PrivacyBudget, train_private
    >>> rng = np.random.default_rng(0)
    >>> x, y = rng.normal(size=(120, 8)).astype("float32"), rng.integers(0, 2, 120)
    >>> model = torch.nn.Sequential(torch.nn.Linear(8, 2))
    >>> config = DPConfig(budget=PrivacyBudget(epsilon=8.0, delta=1e-5), planned_rounds=10)
    >>> accountant = PrivacyAccountant()
    >>> result = train_private(
    ...     model, x, y, epochs=1, batch_size=32, learning_rate=0.1, momentum=0.0,
    ...     config=config, accountant=accountant, seed=0,
    ... )
    >>> result.dp.steps, len(accountant), 0 < result.epsilon <= 8.0
    (4, 1, True)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from opacus import PrivacyEngine
from opacus.accountants import create_accountant
from opacus.optimizers.optimizer import _check_processed_flag, _mark_as_processed
from opacus.utils.uniform_sampler import UniformWithReplacementSampler
from opacus.validators import ModuleValidator
from torch import nn
from torch.utils.data import DataLoader, Dataset

from fedchain._validation import Interval
from fedchain.errors import BudgetExhaustedError, ConfigError, DataError, DPIncompatibleModelError, PrivacyError
from fedchain.privacy._fused import (
    FusedDPStep,
    expected_batch_size,
    fused_incompatibilities,
    poisson_epoch,
    steps_per_epoch,
)
from fedchain.privacy._quiet import quiet_opacus
from fedchain.privacy.accountant import PrivacyAccountant
from fedchain.privacy.accounting import plan_round
from fedchain.privacy.compatibility import check_dp_compatible, incompatible_layers, opacus_mode_for
from fedchain.privacy.config import DPConfig, check_delta, positive_float
from fedchain.privacy.randomness import PrivacyRandomness, SecureRandomness, SeededRandomness
from fedchain.types import DPParams

__all__ = ["TrainResult", "incompatible_layers", "train_plain", "train_private"]

log = logging.getLogger(__name__)

_OPACUS_PARAM_ATTRS = ("grad_sample", "summed_grad", "_forward_counter", "_current_grad_sample", "_norm_sample")


@dataclass(frozen=True)
class TrainResult:
    """What one round of local training produced.

    Attributes:
        model: the trained module: the one passed in, trained in place, unless incompatible
            layers were replaced (``fix_incompatible_layers``), in which case the fixed copy.
        num_examples: the member's training examples ``n`` (its aggregation weight).
        train_loss: mean training loss over the examples drawn in the last epoch (not
            differentially private: a node should not publish it where that matters).
        steps: optimizer steps taken.
        duration_s: wall time of the call, in seconds.
        dp: the round's DP parameters (None without DP).
        epsilon: the member's cumulative epsilon after the round (None without DP).
        grad_sample_mode: how per-sample gradients were computed: ``"fused"`` or an Opacus
            mode (what ``"auto"`` resolved to); None without DP.
        secure_noise: True when the round's DP sampling and noise came from the CSPRNG
            (:class:`~fedchain.privacy.randomness.SecureRandomness`), False for a seeded round
            (reproducible by whoever knows the seed); None without DP.
    """

    model: nn.Module
    num_examples: int
    train_loss: float
    steps: int
    duration_s: float
    dp: DPParams | None = None
    epsilon: float | None = None
    grad_sample_mode: str | None = None
    secure_noise: bool | None = None


class _Rows(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Rows of two tensors; a DataLoader fetches a whole batch with one index (``__getitems__``)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x = x
        self.y = y

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[index], self.y[index]

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.as_tensor(indices, dtype=torch.long)
        return self.x[index], self.y[index]


def _whole_batch(batch: Any) -> Any:
    """Collate for :class:`_Rows`: the batch is already a pair of tensors."""
    return batch


def _feature_dtype(x_train: Any) -> tuple[Any, torch.dtype]:
    """``x`` as an array and the dtype a model gets it in: int64 for integers (token ids), float32 else."""
    if isinstance(x_train, torch.Tensor):
        x_train = x_train.detach().cpu().numpy()
    array = np.asarray(x_train)
    if array.dtype.kind in "iu":
        return array.astype(np.int64, copy=False), torch.int64
    return array.astype(np.float32, copy=False), torch.float32


def _as_tensors(x_train: Any, y_train: Any, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Copies of the data as tensors on ``device``: float32 features (or int64 ids) of shape ``(n, ...)``."""
    try:
        array, dtype = _feature_dtype(x_train)
        # torch.tensor copies: callers' arrays may be read-only (and must not be trained on in place).
        x = torch.tensor(array, dtype=dtype, device=device)
        y = torch.tensor(np.asarray(y_train, dtype=np.int64), device=device)
    except (TypeError, ValueError) as exc:
        raise DataError(f"training data must be numeric arrays: {exc}") from exc
    if x.ndim < 2 or y.ndim != 1:
        raise DataError(
            f"training data must be x of shape (n, features...) and y of shape (n,); "
            f"got x {tuple(x.shape)} and y {tuple(y.shape)}"
        )
    if x.shape[0] != y.shape[0]:
        raise DataError(f"x_train has {x.shape[0]} rows but y_train has {y.shape[0]} labels")
    if x.shape[0] == 0:
        raise DataError("no training examples: a member with empty training data cannot train a round")
    return x, y


_PROXIMAL_MU = Interval(float, 0, None, closed="left")


def _check_hyperparameters(*, epochs: int, batch_size: int, learning_rate: float, momentum: float) -> None:
    Interval(int, 1, None, closed="left").check("epochs", epochs)
    Interval(int, 1, None, closed="left").check("batch_size", batch_size)
    positive_float("learning_rate", learning_rate)
    Interval(float, 0, 1, closed="left").check("momentum", momentum)


def _device_of(model: nn.Module) -> torch.device:
    for parameter in model.parameters():
        return parameter.device
    return torch.device("cpu")


def _seeds(seed: int | None) -> tuple[int, int, int]:
    """Independent seeds for shuffling and torch's global RNG in plain training (OS entropy if None)."""
    if seed is not None:
        seed = Interval(int, 0, None, closed="left").check("seed", seed)
    sampling, noise, global_ = np.random.SeedSequence(seed).generate_state(3)
    return int(sampling), int(noise), int(global_)


def _randomness(seed: int | None, randomness: PrivacyRandomness | None) -> PrivacyRandomness:
    """The round's DP randomness: ``randomness``, seeded from ``seed`` (testing), or the CSPRNG."""
    if randomness is not None:
        if seed is not None:
            raise ConfigError("seed", "None when randomness is given (the randomness decides the draws)", seed)
        if not isinstance(randomness, PrivacyRandomness):
            raise ConfigError("randomness", "a PrivacyRandomness", randomness)
        return randomness
    return SecureRandomness() if seed is None else SeededRandomness(seed)


@contextmanager
def _round_rng(seed: int) -> Iterator[None]:
    """Seed torch's global RNG for the round without disturbing the caller's RNG state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _dp_compatible(model: nn.Module, *, fix: bool, mode: str) -> nn.Module:
    """``model``, or Opacus's fixed copy when asked; raises DPIncompatibleModelError before any step."""
    bad = incompatible_layers(model)
    if not (bad and fix):
        hint = (
            "Replace them in the task's model for every member, or set fix_incompatible_layers=True "
            "to have Opacus replace them on this member (its trained model then differs from the federation's)"
        )
        check_dp_compatible(model, grad_sample_mode=mode, hint=hint if bad else "")
        return model
    fixed = ModuleValidator.fix(model)
    check_dp_compatible(fixed, grad_sample_mode=mode, hint="(after opacus.validators.ModuleValidator.fix)")
    log.warning(
        "replaced layer(s) DP-SGD cannot train: %s (Opacus ModuleValidator.fix); the trained model's "
        "architecture now differs from the model passed in",
        ", ".join(bad),
    )
    return fixed


def _noise_only_step(optimizer: Any, *, ghost: bool) -> None:
    """An optimizer step for an empty Poisson batch: zero clipped sum, noise, accounting.

    Skipping the step would reveal that the batch was empty, which depends on whether one
    example was sampled; a noise-only step keeps the mechanism the accountant assumes.
    """
    for parameter in optimizer.params:
        if ghost:
            parameter.grad = torch.zeros_like(parameter)
        else:
            parameter.grad_sample = torch.zeros((0, *parameter.shape), dtype=parameter.dtype, device=parameter.device)
    optimizer.step()


def _strip_opacus(model: nn.Module) -> None:
    for parameter in model.parameters():
        for attr in _OPACUS_PARAM_ATTRS:
            if hasattr(parameter, attr):
                delattr(parameter, attr)
        parameter.grad = None


@dataclass(frozen=True)
class _Round:
    """What both training paths need to run one planned DP round."""

    model: nn.Module
    x: torch.Tensor
    y: torch.Tensor
    plan: DPParams
    epochs: int
    batch_size: int
    learning_rate: float
    momentum: float
    accountant: str
    randomness: PrivacyRandomness
    proximal_mu: float = 0.0

    def attach_proximal(self, optimizer: Any) -> None:
        """FedProx: add ``mu * (w - w_start)`` to each noised gradient (post-processing, no privacy cost)."""
        if self.proximal_mu > 0:
            from fedchain.privacy.proximal import ProximalTerm

            ProximalTerm(self.model, mu=self.proximal_mu).attach(optimizer)


def _resolve_mode(requested: str, model: nn.Module, x: torch.Tensor) -> str:
    """``"auto"`` -> ``"fused"`` when the fused step can train ``model``, else :func:`opacus_mode_for`."""
    if requested not in ("auto", "fused"):
        return requested
    problems = fused_incompatibilities(model, x[:2])
    if not problems:
        return "fused"
    if requested == "fused":
        raise DPIncompatibleModelError(
            [
                f"{problem}: use 'auto' (falls back to Opacus) or an Opacus mode such as 'ew' or 'hooks'"
                for problem in problems
            ],
            "fused",
        )
    mode = opacus_mode_for(model)
    log.debug("grad_sample_mode 'auto' uses Opacus %r: %s", mode, "; ".join(problems))
    return mode


def _train_fused(job: _Round, taken: list[tuple[float, float, int]]) -> tuple[torch.Tensor, int]:
    """The fused path (:mod:`fedchain.privacy._fused`); appends the accounted steps to ``taken``."""
    plan, x, y = job.plan, job.x, job.y
    n = int(x.shape[0])
    trainable = [p for p in job.model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(trainable, lr=job.learning_rate, momentum=job.momentum)
    job.attach_proximal(optimizer)
    accountant = create_accountant(job.accountant)
    randomness = job.randomness
    sampling: torch.Generator | PrivacyRandomness = (
        randomness.sampling if isinstance(randomness, SeededRandomness) else randomness
    )
    step = FusedDPStep(
        job.model,
        optimizer,
        noise_multiplier=plan.noise_multiplier,
        max_grad_norm=plan.max_grad_norm,
        expected_batch_size=expected_batch_size(n, plan.sample_rate),
        noise_generator=randomness.noise if isinstance(randomness, SeededRandomness) else randomness,
        criterion=nn.CrossEntropyLoss(reduction="sum"),
    )
    factors = step.first_layer_factors(x)
    loss_sum = torch.zeros((), dtype=torch.float64)
    seen = 0
    try:
        for epoch in range(job.epochs):
            index, sizes = poisson_epoch(n, plan.sample_rate, steps_per_epoch(plan.sample_rate), sampling)
            index = index.to(x.device)
            xs, ys = x[index].split(sizes), y[index].split(sizes)
            fs = factors[index].split(sizes) if factors is not None else [None] * len(sizes)
            for xb, yb, fb in zip(xs, ys, fs, strict=True):
                batch_loss = step.step(xb, yb, fb)
                accountant.step(noise_multiplier=plan.noise_multiplier, sample_rate=plan.sample_rate)
                if epoch == job.epochs - 1:
                    loss_sum += batch_loss.detach()
                    seen += int(xb.shape[0])
    except (RuntimeError, NotImplementedError) as exc:
        raise PrivacyError(f"DP training failed in grad_sample_mode 'fused' (try 'ew'): {exc}") from exc
    finally:
        taken.extend(accountant.history)
        step.close()
    return loss_sum, seen


class _SecurePoissonSampler(UniformWithReplacementSampler):
    """Opacus's Poisson sampler drawing its masks from a :class:`PrivacyRandomness`."""

    randomness: PrivacyRandomness

    def __iter__(self) -> Iterator[list[int]]:
        for _ in range(self.steps):
            mask = self.randomness.poisson_masks(1, self.num_samples, self.sample_rate)[0]
            yield mask.nonzero(as_tuple=False).reshape(-1).tolist()


def _draw_from(randomness: PrivacyRandomness, optimizer: Any, loader: Any) -> None:
    """Make Opacus's loader and optimizer draw their Poisson masks and noise from ``randomness``.

    Opacus draws both from ``torch.Generator`` objects (its own secure mode needs torchcsprng);
    this swaps the sampler's draw for ``randomness`` and the optimizer's ``add_noise`` for the
    same computation (``p.grad = summed_grad + N(0, (sigma C)^2)``) over ``randomness``.
    """
    sampler = loader.batch_sampler
    if type(sampler) is not UniformWithReplacementSampler:
        raise PrivacyError(  # pragma: no cover - guards against Opacus changes
            f"Opacus's Poisson loader uses {type(sampler).__name__}; cannot draw its masks securely"
        )
    sampler.__class__ = _SecurePoissonSampler
    sampler.randomness = randomness

    def add_noise() -> None:
        multiplier = getattr(optimizer, "_adjusted_noise_multiplier", optimizer.noise_multiplier)
        std = multiplier * optimizer.max_grad_norm
        for p in optimizer.params:
            _check_processed_flag(p.summed_grad)
            noise = randomness.normal(p.summed_grad.shape, std=std, dtype=p.summed_grad.dtype)
            p.grad = (p.summed_grad + noise.to(p.summed_grad.device)).view_as(p)
            _mark_as_processed(p.summed_grad)

    optimizer.add_noise = add_noise


def _train_opacus(job: _Round, mode: str, taken: list[tuple[float, float, int]]) -> tuple[torch.Tensor, int]:
    """Opacus's path: ``PrivacyEngine.make_private`` in ``mode``; appends the accounted steps to ``taken``."""
    plan, model = job.plan, job.model
    ghost = mode == "ghost"
    seeded = job.randomness if isinstance(job.randomness, SeededRandomness) else None
    loader = DataLoader(
        _Rows(job.x, job.y),
        batch_size=job.batch_size,
        collate_fn=_whole_batch,
        generator=seeded.sampling if seeded is not None else None,
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=job.learning_rate, momentum=job.momentum)
    job.attach_proximal(optimizer)  # on the torch optimizer: runs after Opacus clipped and noised
    criterion: Any = nn.CrossEntropyLoss()
    engine: PrivacyEngine | None = None
    dp_model: Any = None
    loss_sum = torch.zeros((), dtype=torch.float64)
    seen = 0
    try:
        engine = PrivacyEngine(accountant=job.accountant)
        try:
            wrapped = engine.make_private(
                module=model,
                optimizer=optimizer,
                criterion=criterion,
                data_loader=loader,
                noise_multiplier=plan.noise_multiplier,
                max_grad_norm=plan.max_grad_norm,
                poisson_sampling=True,
                grad_sample_mode=mode,
                noise_generator=seeded.noise if seeded is not None else None,
            )
        except (ValueError, NotImplementedError) as exc:
            raise PrivacyError(f"Opacus cannot make this model private in {mode!r} mode: {exc}") from exc
        if ghost:
            dp_model, dp_optimizer, criterion, dp_loader = wrapped
        else:
            dp_model, dp_optimizer, dp_loader = wrapped
        if seeded is None:
            _draw_from(job.randomness, dp_optimizer, dp_loader)
        if dp_loader.sample_rate != plan.sample_rate or len(dp_loader) * job.epochs != plan.steps:
            raise PrivacyError(  # pragma: no cover - guards the plan against Opacus changes
                f"Opacus samples at rate {dp_loader.sample_rate} for {len(dp_loader)} steps per "
                f"epoch; the round was planned at {plan.sample_rate} for {plan.steps} steps"
            )
        for epoch in range(job.epochs):
            last_epoch = epoch == job.epochs - 1
            for xb, yb in dp_loader:
                dp_optimizer.zero_grad(set_to_none=True)
                if xb.shape[0] == 0:
                    _noise_only_step(dp_optimizer, ghost=ghost)
                    continue
                loss = criterion(dp_model(xb), yb)
                loss.backward()
                dp_optimizer.step()
                if last_epoch:
                    loss_sum += loss.detach() * xb.shape[0]
                    seen += int(xb.shape[0])
    except (RuntimeError, NotImplementedError) as exc:
        hint = {
            "ew": " (try grad_sample_mode='hooks')",
            "functorch": " (try grad_sample_mode='hooks')",
            "ghost": " (try grad_sample_mode='ew' or 'hooks': ghost clipping refuses a layer used twice)",
        }.get(mode, "")
        raise PrivacyError(f"DP training failed in grad_sample_mode {mode!r}{hint}: {exc}") from exc
    finally:
        if engine is not None:
            taken.extend(engine.accountant.history)
        if dp_model is not None:
            dp_model.cleanup()
        _strip_opacus(model)
    return loss_sum, seen


def train_private(
    model: nn.Module,
    x_train: np.ndarray | torch.Tensor,
    y_train: np.ndarray | torch.Tensor,
    *,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    momentum: float = 0.0,
    config: DPConfig,
    accountant: PrivacyAccountant,
    seed: int | None = None,
    randomness: PrivacyRandomness | None = None,
    proximal_mu: float = 0.0,
) -> TrainResult:
    """Train ``model`` in place for one round with DP-SGD and record the round in ``accountant``.

    Steps: validate the data and options; check ``delta < 1/n``; work out the round's DP
    parameters (:func:`~fedchain.privacy.plan_round`: Poisson rate ``1/ceil(n/batch_size)``,
    ``epochs * ceil(n/batch_size)`` steps, fixed or calibrated noise); refuse if the round would
    take the accountant past the budget; train (SGD with momentum, cross-entropy loss) with the
    fused DP step or Opacus, as ``config.grad_sample_mode`` says (``"auto"``: fused when the
    model allows it); append the steps actually taken to the accountant (saved at once if it has a
    path), also when training fails part-way.

    Args:
        model: a classifier taking ``x`` rows and returning logits; set to training mode.
        x_train: features, shape ``(n, ...)``: rows, images ``(n, C, H, W)``, or integer token ids
            ``(n, seq)`` (kept as int64; any other dtype becomes float32).
        y_train: integer labels, shape ``(n,)``.
        epochs: local epochs (>= 1); an epoch is ``ceil(n / batch_size)`` Poisson batches.
        batch_size: expected batch size (>= 1).
        learning_rate: SGD learning rate (> 0).
        momentum: SGD momentum in [0, 1).
        config: the member's DP config.
        accountant: the member's lifetime privacy accountant; must use ``config.accountant``.
        seed: makes the round reproducible (testing only: whoever knows the seed can replay the
            noise; see :mod:`fedchain.privacy.randomness`); None (the default) draws sampling and
            noise from the CSPRNG.
        randomness: the round's DP randomness, instead of ``seed``.
        proximal_mu: FedProx's ``mu`` (0: off). Its gradient ``mu * (w - w_start)`` is added after
            clipping and noise: it depends on no example, so epsilon is unchanged
            (:mod:`fedchain.privacy.proximal`).

    Returns:
        The trained model, the round's ``DPParams`` and the cumulative epsilon after it.

    Raises:
        DataError: no training examples, or x and y do not match.
        ConfigError: an option is invalid, or ``delta >= 1/n``.
        BudgetExhaustedError: the round would exceed the budget (nothing trained or recorded).
        DPIncompatibleModelError: the model has layers DP-SGD cannot train in the mode (nothing
            trained or recorded; with ``fix_incompatible_layers``, after Opacus's fix).
        PrivacyError: the accountant uses another accountant than the config, or training failed
            (``DPIncompatibleModelError`` also when ``"fused"`` was asked for and the probe
            forward pass shows it cannot train the model).

    Example:
        >>> import numpy as np, torch
        >>> from fedchain.privacy import DPConfig, PrivacyAccountant, PrivacyBudget, train_private
        >>> x, y = np.zeros((64, 4), "float32"), np.arange(64) % 2
        >>> config = DPConfig(budget=PrivacyBudget(epsilon=1.0, delta=1e-5), noise_multiplier=5.0)
        >>> result = train_private(torch.nn.Linear(4, 2), x, y, epochs=1, batch_size=16,
        ...                        learning_rate=0.1, config=config, accountant=PrivacyAccountant(), seed=1)
        >>> result.dp
        DPParams(noise_multiplier=5.0, sample_rate=0.25, steps=4, max_grad_norm=1.0, delta=1e-05)
        >>> result.grad_sample_mode
        'fused'
    """
    started = time.perf_counter()
    if not isinstance(config, DPConfig):
        raise ConfigError("config", "a DPConfig", config)
    if not isinstance(accountant, PrivacyAccountant):
        raise ConfigError("accountant", "a PrivacyAccountant", accountant)
    _check_hyperparameters(epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, momentum=momentum)
    proximal_mu = _PROXIMAL_MU.check("proximal_mu", proximal_mu)
    model = _dp_compatible(model, fix=config.fix_incompatible_layers, mode=config.grad_sample_mode)
    x, y = _as_tensors(x_train, y_train, _device_of(model))
    n = int(x.shape[0])
    delta = check_delta(config.budget.delta, n)
    if accountant.accountant != config.accountant:
        raise PrivacyError(
            f"the member's ledger uses the {accountant.accountant!r} accountant but the config asks for "
            f"{config.accountant!r}; a member's epsilon must be computed with one accountant for life"
        )
    plan = plan_round(config, num_examples=n, epochs=epochs, batch_size=batch_size)
    spent = accountant.epsilon(delta)
    after = accountant.epsilon_after(
        noise_multiplier=plan.noise_multiplier, sample_rate=plan.sample_rate, steps=plan.steps, delta=delta
    )
    if after > config.budget.epsilon:
        raise BudgetExhaustedError(spent, after, config.budget.epsilon)

    model.train()
    mode = _resolve_mode(config.grad_sample_mode, model, x)
    source = _randomness(seed, randomness)
    global_seed = source.global_seed if isinstance(source, SeededRandomness) else _seeds(None)[2]
    round_ = _Round(
        model=model,
        x=x,
        y=y,
        plan=plan,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        momentum=momentum,
        accountant=config.accountant,
        randomness=source,
        proximal_mu=proximal_mu,
    )
    taken: list[tuple[float, float, int]] = []
    with quiet_opacus(), _round_rng(global_seed):
        try:
            if mode == "fused":
                loss_sum, seen = _train_fused(round_, taken)
            else:
                loss_sum, seen = _train_opacus(round_, mode, taken)
        finally:
            for noise_multiplier, sample_rate, steps in taken:
                accountant.record(noise_multiplier=noise_multiplier, sample_rate=sample_rate, steps=steps)

    steps_taken = sum(entry[2] for entry in taken)
    dp = DPParams(
        noise_multiplier=plan.noise_multiplier,
        sample_rate=plan.sample_rate,
        steps=steps_taken,
        max_grad_norm=plan.max_grad_norm,
        delta=delta,
    )
    epsilon = accountant.epsilon(delta)
    log.info(
        "DP round: n=%d sigma=%.4f q=%.4g steps=%d C=%g -> epsilon %.4f of %.4g (delta %.3g, %s, %s)",
        n,
        dp.noise_multiplier,
        dp.sample_rate,
        dp.steps,
        dp.max_grad_norm,
        epsilon,
        config.budget.epsilon,
        delta,
        config.accountant,
        mode,
    )
    return TrainResult(
        model=model,
        num_examples=n,
        train_loss=float(loss_sum) / seen if seen else float("nan"),
        steps=steps_taken,
        duration_s=time.perf_counter() - started,
        dp=dp,
        epsilon=epsilon,
        grad_sample_mode=mode,
        secure_noise=source.secure,
    )


def train_plain(
    model: nn.Module,
    x_train: np.ndarray | torch.Tensor,
    y_train: np.ndarray | torch.Tensor,
    *,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    momentum: float = 0.0,
    seed: int | None = None,
    proximal_mu: float = 0.0,
) -> TrainResult:
    """Train ``model`` in place for one round without DP; same arguments and result as :func:`train_private`.

    Each epoch visits every example once in a shuffled order, ``ceil(n / batch_size)`` batches
    (like ``DataLoader(shuffle=True)``), gathered once per epoch as the fused DP path gathers its
    Poisson batches, so the two differ by DP alone.

    Args:
        model: a classifier taking ``x`` rows and returning logits.
        x_train: features, shape ``(n, ...)``; integer token ids are kept as int64, the rest float32.
        y_train: integer labels, shape ``(n,)``.
        epochs: local epochs (>= 1).
        batch_size: batch size (>= 1).
        learning_rate: SGD learning rate (> 0).
        momentum: SGD momentum in [0, 1).
        seed: makes the round reproducible; None for OS entropy.
        proximal_mu: FedProx's ``mu`` (0: off); its gradient ``mu * (w - w_start)`` is added to
            every step, as in :func:`train_private`.

    Returns:
        The trained model and its loss; ``dp`` and ``epsilon`` are None.

    Raises:
        DataError: no training examples, or x and y do not match.
        ConfigError: an option is invalid.

    Example:
        >>> import numpy as np, torch
        >>> from fedchain.privacy import train_plain
        >>> x, y = np.zeros((64, 4), "float32"), np.arange(64) % 2
        >>> result = train_plain(torch.nn.Linear(4, 2), x, y, epochs=2, batch_size=16, learning_rate=0.1, seed=0)
        >>> result.steps, result.dp, result.epsilon
        (8, None, None)
    """
    started = time.perf_counter()
    _check_hyperparameters(epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, momentum=momentum)
    proximal_mu = _PROXIMAL_MU.check("proximal_mu", proximal_mu)
    x, y = _as_tensors(x_train, y_train, _device_of(model))
    n = int(x.shape[0])
    sampling_seed, _, global_seed = _seeds(seed)
    generator = torch.Generator().manual_seed(sampling_seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=learning_rate, momentum=momentum)
    if proximal_mu > 0:
        from fedchain.privacy.proximal import ProximalTerm

        ProximalTerm(model, mu=proximal_mu).attach(optimizer)  # adds mu * (w - w_start) before each step
    criterion = nn.CrossEntropyLoss()
    model.train()
    loss_sum = torch.zeros((), dtype=torch.float64)
    seen = steps = 0
    with _round_rng(global_seed):
        for epoch in range(epochs):
            order = torch.randperm(n, generator=generator).to(x.device)
            for xb, yb in zip(x[order].split(batch_size), y[order].split(batch_size), strict=True):
                optimizer.zero_grad(set_to_none=True)
                loss = criterion(model(xb), yb)
                loss.backward()
                optimizer.step()
                steps += 1
                if epoch == epochs - 1:
                    loss_sum += loss.detach() * xb.shape[0]
                    seen += int(xb.shape[0])
    return TrainResult(
        model=model,
        num_examples=n,
        train_loss=float(loss_sum) / seen,
        steps=steps,
        duration_s=time.perf_counter() - started,
    )
