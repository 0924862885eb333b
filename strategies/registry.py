"""The strategy registry: names to :class:`~strategies.base.FedChainStrategy` classes.

Example:
    >>> from strategies.registry import available_strategies
    >>> "fedavg" in available_strategies()
    True
"""

from __future__ import annotations

import importlib

from fedchain.config import FedChainConfig
from fedchain.errors import ConfigError, StrategyError
from strategies.base import FedChainStrategy

__all__ = ["available_strategies", "create_strategy", "register_strategy", "resolve_strategy"]

_REGISTRY: dict[str, type[FedChainStrategy]] = {}


def register_strategy(cls: type[FedChainStrategy]) -> type[FedChainStrategy]:
    """Class decorator: register ``cls`` under ``cls.name``; a duplicate name is an error."""
    if not cls.name:
        raise StrategyError(f"{cls.__qualname__} has no 'name' class attribute")
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise StrategyError(f"a strategy named {cls.name!r} is already registered ({_REGISTRY[cls.name].__qualname__})")
    _REGISTRY[cls.name] = cls
    return cls


def available_strategies() -> dict[str, type[FedChainStrategy]]:
    """Registered strategies by name (sorted)."""
    _load_builtins()
    return dict(sorted(_REGISTRY.items()))


def resolve_strategy(name: str) -> type[FedChainStrategy]:
    """A registered name, or a dotted path ``package.module:Class`` / ``package.module.Class``."""
    _load_builtins()
    if name in _REGISTRY:
        return _REGISTRY[name]
    if "." in name or ":" in name:
        module_name, _, attr = name.replace(":", ".").rpartition(".")
        try:
            cls = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise ConfigError("strategy", "a registered name or an importable dotted path", name) from exc
        if not (isinstance(cls, type) and issubclass(cls, FedChainStrategy)):
            raise ConfigError("strategy", "a FedChainStrategy subclass", name)
        return cls
    raise ConfigError("strategy", "one of " + ", ".join(repr(n) for n in sorted(_REGISTRY)) + " or a dotted path", name)


def create_strategy(config: FedChainConfig) -> FedChainStrategy:
    """Instantiate the strategy named in ``config`` (raises StrategyError if it cannot run)."""
    return resolve_strategy(config.strategy)(config)


def _load_builtins() -> None:
    importlib.import_module("strategies.builtin")
