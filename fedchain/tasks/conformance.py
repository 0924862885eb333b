"""The conformance suite every fedchain task must pass.

Each check takes a built :class:`~fedchain.tasks.Task` and raises :class:`TaskConformanceError`
naming the check and the task when the task breaks a promise the federation relies on:

* ``check_dp_layers``: DP-SGD can train the model (:func:`fedchain.privacy.check_dp_compatible`:
  no BatchNorm, a per-sample gradient rule for every trainable layer); the error names each
  layer and its fix.
* ``check_deterministic``: two builds with the same seed have the same parameter names, order,
  shapes, dtypes (float32) and values, so every member and the coordinator start from one model;
  building leaves torch's global generator as it was; the weights round-trip through
  ``get_weights`` / ``set_weights``.
* ``check_data``: the bundled split (or the given examples) has shape ``(n, *input_shape)``,
  float32, finite, and integer labels in ``[0, num_classes)``.
* ``check_forward``: a batch gives finite logits of shape ``(batch, num_classes)``.
* ``check_evaluate``: ``evaluate`` returns a pair of real numbers: a finite, non-negative loss
  and an accuracy in ``[0, 1]``.
* ``check_training``: one real step of :func:`fedchain.privacy.train_plain` and of
  :func:`fedchain.privacy.train_private` (Opacus or the fused step, an in-memory accountant)
  train the model and change its weights; the DP step's ``grad_sample_mode`` is reported.

:func:`check_task` runs them all on a few examples and returns a :class:`TaskReport`.

Example:
    >>> from fedchain.tasks import check_task
    >>> report = check_task("digits-mlp")
    >>> report.parameters, report.dp_path
    (4810, 'fused')
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from fedchain.errors import FedChainError

if TYPE_CHECKING:
    from fedchain.config import FedChainConfig
    from fedchain.tasks.base import Task

__all__ = ["TaskConformanceError", "TaskReport", "check_task", "task_checks"]

#: Examples the checks use (from the task's bundled split unless given).
EXAMPLES = 24
#: The global generator's seed while ``check_deterministic`` watches it.
_UNRELATED_SEED = 0x5EED_F00D


class TaskConformanceError(FedChainError):
    """A task failed a conformance check.

    Attributes:
        check: the check's name, e.g. ``"check_dp_layers"``.
        task: the task's name (or ``module:Class``).
    """

    def __init__(self, check: str, task: str, message: str) -> None:
        self.check = check
        self.task = task
        super().__init__(f"{check} failed for task {task!r}: {message}")


@dataclass(frozen=True)
class TaskReport:
    """What :func:`check_task` found about a conforming task.

    Attributes:
        name: the task's name.
        parameters: trainable parameters of its model.
        input_shape: shape of one example.
        num_classes: the model's outputs.
        dp_path: the ``grad_sample_mode`` DP-SGD used (``"fused"``, ``"ew"``, ``"hooks"``...).
        checks: the checks passed, in order.
    """

    name: str
    parameters: int
    input_shape: tuple[int, ...]
    num_classes: int
    dp_path: str
    checks: tuple[str, ...]


@dataclass
class _Probe:
    """The task under test and what the checks share."""

    task: Task
    x: np.ndarray
    y: np.ndarray
    seed: int
    dp_path: str = ""

    def fail(self, check: str, message: str) -> TaskConformanceError:
        return TaskConformanceError(check, self.task.label, message)


def check_dp_layers(probe: _Probe) -> None:
    """DP-SGD can train the model: :func:`fedchain.privacy.check_dp_compatible` finds nothing."""
    from fedchain.privacy import check_dp_compatible

    try:
        check_dp_compatible(probe.task.build_model(seed=probe.seed))
    except FedChainError as exc:
        raise probe.fail("check_dp_layers", str(exc)) from exc


def check_deterministic(probe: _Probe) -> None:
    """Same seed, same model (names, order, shapes, float32 values); the global RNG untouched; weights round-trip."""
    import torch

    task, check = probe.task, "check_deterministic"
    caller = torch.random.get_rng_state()
    try:
        torch.manual_seed(_UNRELATED_SEED)  # a state no build with the probe's seed leaves behind
        before = torch.random.get_rng_state()
        first = task.get_weights(task.build_model(seed=probe.seed))
        moved = not torch.equal(before, torch.random.get_rng_state())
    finally:
        torch.random.set_rng_state(caller)
    if moved:
        raise probe.fail(
            check, "build_model changed torch's global random generator: seed and restore it (Task.build_model does)"
        )
    second = task.get_weights(task.build_model(seed=probe.seed))
    if list(first) != list(second):
        raise probe.fail(check, f"parameter names or order differ between two builds: {list(first)} vs {list(second)}")
    if not first:
        raise probe.fail(check, "the model has no parameters")
    for name, array in first.items():
        other = second[name]
        if array.dtype != np.float32:
            raise probe.fail(check, f"parameter {name!r} is {array.dtype}, not float32 (weights travel as float32)")
        if array.shape != other.shape:
            raise probe.fail(
                check, f"parameter {name!r} has shape {array.shape} in one build, {other.shape} in another"
            )
        if not np.array_equal(array, other):
            raise probe.fail(
                check,
                f"two builds with seed {probe.seed} differ at parameter {name!r}: make_model must draw its initial "
                "weights from torch's global generator only (build_model seeds it), not from numpy, Python's "
                "random, a fresh torch.Generator or the clock",
            )
    model = task.build_model(seed=probe.seed + 1)
    task.set_weights(model, first)
    again = task.get_weights(model)
    if list(again) != list(first) or not all(np.array_equal(again[k], first[k]) for k in first):
        raise probe.fail(check, "set_weights followed by get_weights does not give the same weights back")


def check_data(probe: _Probe) -> None:
    """The examples are ``(n, *input_shape)`` float32 and finite; labels are integers in ``[0, num_classes)``."""
    task, x, y, check = probe.task, probe.x, probe.y, "check_data"
    shape = tuple(task.input_shape)
    if tuple(x.shape[1:]) != shape:
        raise probe.fail(check, f"examples have shape {tuple(x.shape[1:])}, the task's input_shape is {shape}")
    if x.dtype != np.float32 or not np.all(np.isfinite(x)):
        raise probe.fail(
            check, f"examples must be finite float32 (got {x.dtype}, finite: {bool(np.isfinite(x).all())})"
        )
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= task.num_classes:
        raise probe.fail(
            check, f"labels must be integers in [0, {task.num_classes}); got {y.dtype} in [{y.min()}, {y.max()}]"
        )


def check_forward(probe: _Probe) -> None:
    """A batch of examples gives finite logits of shape ``(batch, num_classes)``."""
    import torch

    task, check = probe.task, "check_forward"
    model = task.build_model(seed=probe.seed)
    model.eval()
    with torch.no_grad():
        try:
            logits = model(torch.tensor(probe.x))
        except Exception as exc:  # the model's own error, whatever it is, is the finding
            raise probe.fail(check, f"forward on a batch of shape {probe.x.shape} raised {exc!r}") from exc
    expected = (len(probe.x), task.num_classes)
    if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != expected:
        got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise probe.fail(check, f"forward gave {got}, expected logits of shape (batch, num_classes) = {expected}")
    if not torch.isfinite(logits).all():
        raise probe.fail(check, "forward gave non-finite logits")


def check_evaluate(probe: _Probe) -> None:
    """``evaluate`` returns ``(loss, accuracy)``: real numbers, a finite loss >= 0 and an accuracy in [0, 1]."""
    task, check = probe.task, "check_evaluate"
    result: Any = task.evaluate(task.build_model(seed=probe.seed), probe.x, probe.y)
    if not (isinstance(result, tuple | list) and len(result) == 2):
        raise probe.fail(check, f"evaluate returned {result!r}; it must return a pair (loss, accuracy)")
    loss, accuracy = result
    if not all(isinstance(v, int | float | np.floating | np.integer) and not isinstance(v, bool) for v in result):
        raise probe.fail(check, f"evaluate returned ({loss!r}, {accuracy!r}); loss and accuracy must be real numbers")
    if not math.isfinite(float(loss)) or float(loss) < 0:
        raise probe.fail(check, f"evaluate returned loss {loss!r}; it must be finite and >= 0")
    if not 0.0 <= float(accuracy) <= 1.0:
        raise probe.fail(check, f"evaluate returned accuracy {accuracy!r}; it must be a share in [0, 1], not a percent")


def check_training(probe: _Probe) -> None:
    """One real ``train_plain`` step and one real ``train_private`` step change the weights; records the DP path."""
    from fedchain.privacy import DPConfig, PrivacyAccountant, PrivacyBudget, train_plain, train_private
    from fedchain.serialization import flatten

    task, check = probe.task, "check_training"
    hyper: dict[str, Any] = {"epochs": 1, "batch_size": max(1, len(probe.y) // 2), "learning_rate": 0.05}
    start = flatten(task.get_weights(task.build_model(seed=probe.seed)))
    try:
        plain = train_plain(task.build_model(seed=probe.seed), probe.x, probe.y, seed=probe.seed, **hyper)
        config = DPConfig(budget=PrivacyBudget(epsilon=1e6, delta=1e-9), noise_multiplier=0.5)
        private = train_private(
            task.build_model(seed=probe.seed),
            probe.x,
            probe.y,
            config=config,
            accountant=PrivacyAccountant(),
            seed=probe.seed,
            **hyper,
        )
    except Exception as exc:  # the training error, whatever it is, is the finding
        raise probe.fail(check, f"training failed: {exc}") from exc
    for label, result in (("train_plain", plain), ("train_private", private)):
        trained = flatten(task.get_weights(result.model))
        if trained.shape != start.shape or np.array_equal(trained, start):
            raise probe.fail(check, f"{label} left the weights unchanged (no trainable parameters reached?)")
        if not np.all(np.isfinite(trained)):
            raise probe.fail(check, f"{label} gave non-finite weights")
    probe.dp_path = str(private.grad_sample_mode)


#: The checks, in the order :func:`check_task` runs them.
CHECKS: tuple[Callable[[_Probe], None], ...] = (
    check_dp_layers,
    check_deterministic,
    check_data,
    check_forward,
    check_evaluate,
    check_training,
)


def task_checks() -> list[str]:
    """The names of the checks, in order."""
    return [check.__name__ for check in CHECKS]


def check_task(
    task: Task | type[Task] | str,
    *,
    config: FedChainConfig | None = None,
    examples: tuple[np.ndarray, np.ndarray] | None = None,
    seed: int = 0,
    checks: Sequence[str] | None = None,
) -> TaskReport:
    """Run the conformance checks on ``task``; raise :class:`TaskConformanceError` on the first failure.

    Args:
        task: a built task, a Task subclass, or a registry name / dotted path.
        config: the configuration to build it from (a subclass or name only); its ``task`` need not match.
        examples: ``(x, y)`` to check with; default: the first :data:`EXAMPLES` of the task's
            bundled training split.
        seed: the model seed the checks build with.
        checks: names of the checks to run (default: all of :func:`task_checks`).

    Returns:
        What the checks found (parameter count, DP path...).

    Raises:
        TaskConformanceError: the first check that fails, naming it, the task and the problem.
        ConfigError: an unknown task name or check name.
    """
    from fedchain._validation import OneOf
    from fedchain.tasks.base import Task
    from fedchain.tasks.registry import resolve_task

    if isinstance(task, str):
        task = resolve_task(task)
    if isinstance(task, type):
        if config is None:
            from fedchain.config import FedChainConfig

            config = FedChainConfig()
        task = task(config)
    if not isinstance(task, Task):
        raise TaskConformanceError("check_task", repr(task), "not a Task instance, subclass or name")
    if examples is None:
        x_train, y_train, _, _ = task.load_split()
        x, y = x_train[:EXAMPLES], y_train[:EXAMPLES]
    else:
        x, y = np.asarray(examples[0]), np.asarray(examples[1])
    probe = _Probe(task=task, x=x, y=y, seed=seed)
    selected = list(checks) if checks is not None else task_checks()
    for name in selected:
        OneOf(tuple(task_checks())).check("check", name)
    for check in CHECKS:
        if check.__name__ in selected:
            check(probe)
    return TaskReport(
        name=task.label,
        parameters=task.parameter_count(task.build_model(seed=seed)),
        input_shape=tuple(task.input_shape),
        num_classes=task.num_classes,
        dp_path=probe.dp_path,
        checks=tuple(c.__name__ for c in CHECKS if c.__name__ in selected),
    )
