"""Tasks: what a federation trains, on which data, with which local settings (a plug-in, like strategies).

=============  ===============================================================================
module         what it holds
=============  ===============================================================================
base           :class:`Task` (the plug-in's base class) and :class:`TrainingDefaults`
registry       :func:`register_task`, :func:`resolve_task` (names and dotted paths), :func:`get_task`
builtin        the bundled tasks: ``digits-mlp`` (default), ``mnist-cnn``, ``mnist-wide``
models         their PyTorch models
conformance    :func:`check_task`: the checks every task must pass
=============  ===============================================================================

Choose one with the run config's ``task`` option (``fedchain run --task mnist-cnn``); list them
with ``fedchain tasks``; write your own as docs/tasks.md shows.

Example:
    >>> from fedchain.tasks import get_task
    >>> task = get_task("mnist-cnn")
    >>> task.input_shape, task.parameter_count(task.build_model(seed=0))
    ((1, 28, 28), 20586)
"""

from fedchain.tasks.base import TRAINING_FIELDS, Task, TrainingDefaults
from fedchain.tasks.conformance import TaskConformanceError, TaskReport, check_task, task_checks
from fedchain.tasks.registry import DEFAULT_TASK, available_tasks, create_task, register_task, resolve_task

#: Another name for :func:`create_task`.
get_task = create_task

__all__ = [
    "DEFAULT_TASK",
    "TRAINING_FIELDS",
    "Task",
    "TaskConformanceError",
    "TaskReport",
    "TrainingDefaults",
    "available_tasks",
    "check_task",
    "create_task",
    "get_task",
    "register_task",
    "resolve_task",
    "task_checks",
]
