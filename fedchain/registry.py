"""One generic registry: names to factories, with the errors every fedchain registry shares.

Strategies (:mod:`strategies.registry`), contribution scorers (:mod:`fedchain.contribution.registry`)
and server optimizers (:mod:`fedchain.aggregation.server_opt`) are each a :class:`Registry`;
their ``register_*`` / ``create_*`` functions are thin wrappers around it.

- :meth:`Registry.register` refuses a name another factory holds (registering the same factory again
  is harmless) and an empty name.
- :meth:`Registry.resolve` refuses an unknown name with a :class:`~fedchain.errors.ConfigError` that
  lists the names the registry holds, read from the registry itself, never typed by hand.
- A registry built with ``dotted_paths=True`` also resolves ``package.module:Name`` and
  ``package.module.Name``.

Example:
    >>> from fedchain.registry import Registry
    >>> shapes = Registry[type]("shape", parameter="shape")
    >>> _ = shapes.register("box", dict)
    >>> shapes.names()
    ['box']
    >>> shapes.create("box", side=2)
    {'side': 2}
    >>> shapes.create("ball")
    Traceback (most recent call last):
    ...
    fedchain.errors.ConfigError: The 'shape' parameter must be one of 'box'. Got 'ball'.
    >>> _ = shapes.register("box", list)
    Traceback (most recent call last):
    ...
    fedchain.errors.ConfigError: The 'name' parameter must be a shape name not registered yet. Got 'box'. ...
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

from fedchain.errors import ConfigError

__all__ = ["Registry"]

T = TypeVar("T", bound=Callable[..., Any])


class Registry(Generic[T]):
    """Names to factories (usually classes) of one kind.

    Args:
        kind: what the registry holds, in words (``"strategy"``, ``"scorer"``...); used in messages.
        parameter: the option an unknown name was given for (``"strategy"``, ``"member_update"``...).
        builtins: modules imported before the first lookup, so their decorators have registered.
        base: when given, dotted paths must name a subclass of it.
        dotted_paths: whether :meth:`resolve` also accepts an importable dotted path.
    """

    def __init__(
        self,
        kind: str,
        *,
        parameter: str,
        builtins: Iterable[str] = (),
        base: type | None = None,
        dotted_paths: bool = False,
    ) -> None:
        self.kind = kind
        self.parameter = parameter
        self.base = base
        self.dotted_paths = dotted_paths
        self._builtins = tuple(builtins)
        self._entries: dict[str, T] = {}

    def register(self, name: str, factory: T) -> T:
        """Register ``factory`` under ``name`` and return it.

        Raises:
            ConfigError: ``name`` is empty, or another factory holds it already.
        """
        label = getattr(factory, "__qualname__", repr(factory))
        if not name:
            raise ConfigError("name", f"a non-empty {self.kind} name", name, hint=label)
        holder = self._entries.get(name)
        if holder is not None and holder is not factory:
            where = f"{getattr(holder, '__module__', '?')}.{getattr(holder, '__qualname__', repr(holder))}"
            raise ConfigError(
                "name", f"a {self.kind} name not registered yet", name, hint=f"{where} is registered under it."
            )
        self._entries[name] = factory
        return factory

    def names(self) -> list[str]:
        """The registered names, sorted."""
        self._load_builtins()
        return sorted(self._entries)

    def available(self) -> dict[str, T]:
        """The registered factories by name, sorted by name."""
        self._load_builtins()
        return dict(sorted(self._entries.items()))

    def resolve(self, name: str) -> T:
        """The factory registered under ``name`` (or, if allowed, the one a dotted path names).

        Raises:
            ConfigError: an unknown name (the message lists the registered names), or a dotted path
                that does not import or does not name a subclass of ``base``.
        """
        self._load_builtins()
        if name in self._entries:
            return self._entries[name]
        if self.dotted_paths and isinstance(name, str) and ("." in name or ":" in name):
            return self._import(name)
        constraint = "one of " + ", ".join(repr(n) for n in sorted(self._entries))
        if self.dotted_paths:
            constraint += " or a dotted path"
        raise ConfigError(self.parameter, constraint, name)

    def create(self, name: str, /, *args: Any, **kwargs: Any) -> Any:
        """Call the factory :meth:`resolve` finds with ``args`` and ``kwargs``."""
        return self.resolve(name)(*args, **kwargs)

    def pop(self, name: str, default: T | None = None) -> T | None:
        """Unregister ``name`` (tests and examples clean up with it); ``default`` when absent."""
        return self._entries.pop(name, default)

    def __delitem__(self, name: str) -> None:
        del self._entries[name]

    def __contains__(self, name: object) -> bool:
        self._load_builtins()
        return name in self._entries

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, names={sorted(self._entries)})"

    def _import(self, path: str) -> T:
        module_name, _, attr = path.replace(":", ".").rpartition(".")
        try:
            factory = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError, ValueError) as exc:
            raise ConfigError(self.parameter, "a registered name or an importable dotted path", path) from exc
        if self.base is not None and not (isinstance(factory, type) and issubclass(factory, self.base)):
            raise ConfigError(self.parameter, f"a {self.base.__name__} subclass", path)
        return factory

    def _load_builtins(self) -> None:
        for module in self._builtins:
            importlib.import_module(module)
