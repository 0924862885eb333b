"""The task registry: names to :class:`~fedchain.tasks.Task` classes, and dotted paths.

A :class:`~fedchain.registry.Registry` that also resolves ``package.module:Class`` (or
``package.module.Class``) to a :class:`~fedchain.tasks.Task` subclass; the functions below are
thin wrappers around it. The bundled tasks (:mod:`fedchain.tasks.builtin`) register on first lookup.

Example:
    >>> from fedchain.tasks import available_tasks, resolve_task
    >>> sorted(available_tasks())
    ['digits-mlp', 'mnist-cnn', 'mnist-wide']
    >>> resolve_task("imagenet")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    fedchain.errors.ConfigError: The 'task' parameter must be one of 'digits-mlp', ... or a dotted path. Got 'imagenet'.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from fedchain.errors import ConfigError
from fedchain.registry import Registry
from fedchain.tasks.base import Task

if TYPE_CHECKING:
    from fedchain.config import FedChainConfig

__all__ = ["DEFAULT_TASK", "available_tasks", "create_task", "register_task", "resolve_task"]

#: The task a run trains unless told otherwise (``make demo``).
DEFAULT_TASK = "digits-mlp"

_REGISTRY: Registry[type[Task]] = Registry(
    "task", parameter="task", builtins=["fedchain.tasks.builtin"], base=Task, dotted_paths=True
)

TaskT = TypeVar("TaskT", bound=type[Task])


def register_task(cls: TaskT) -> TaskT:
    """Class decorator: register ``cls`` under ``cls.name``.

    Raises:
        ConfigError: ``cls`` is not a Task subclass, has no name, or another class holds the name.
    """
    if not (isinstance(cls, type) and issubclass(cls, Task)):
        raise ConfigError("cls", "a Task subclass", cls)
    _REGISTRY.register(cls.name, cls)
    return cls


def available_tasks() -> dict[str, type[Task]]:
    """Registered tasks by name (sorted)."""
    return _REGISTRY.available()


def resolve_task(name: str) -> type[Task]:
    """The class registered under ``name``, or the Task subclass a dotted path names.

    Raises:
        ConfigError: an unknown name (the message lists the registered ones), or a dotted path that
            does not import or does not name a Task subclass.
    """
    if not isinstance(name, str) or not name:
        raise ConfigError("task", "a registered task name or a dotted path", name)
    return _REGISTRY.resolve(name)


def create_task(name: str | None = None, config: FedChainConfig | None = None) -> Task:
    """The task ``name`` (``config.task`` when omitted) built from ``config`` (the defaults when omitted).

    Example:
        >>> from fedchain.config import FedChainConfig
        >>> create_task(config=FedChainConfig(task="mnist-cnn")).input_shape
        (1, 28, 28)
    """
    if config is None:
        from fedchain.config import FedChainConfig

        config = FedChainConfig(task=name or DEFAULT_TASK)
    return resolve_task(name or config.task)(config)
