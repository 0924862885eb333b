"""The strategy registry: names to :class:`~strategies.base.FedChainStrategy` classes.

A :class:`~fedchain.registry.Registry` that also resolves dotted paths; the functions below are
thin wrappers around it.

Example:
    >>> from strategies.registry import available_strategies
    >>> "fedavg" in available_strategies()
    True
"""

from __future__ import annotations

from fedchain.config import FedChainConfig
from fedchain.registry import Registry
from strategies.base import FedChainStrategy

__all__ = ["available_strategies", "create_strategy", "register_strategy", "resolve_strategy"]

_REGISTRY: Registry[type[FedChainStrategy]] = Registry(
    "strategy", parameter="strategy", builtins=["strategies.builtin"], base=FedChainStrategy, dotted_paths=True
)


def register_strategy(cls: type[FedChainStrategy]) -> type[FedChainStrategy]:
    """Class decorator: register ``cls`` under ``cls.name``.

    Raises:
        ConfigError: ``cls`` has no name, or another class holds the name already.
    """
    return _REGISTRY.register(cls.name, cls)


def available_strategies() -> dict[str, type[FedChainStrategy]]:
    """Registered strategies by name (sorted)."""
    return _REGISTRY.available()


def resolve_strategy(name: str) -> type[FedChainStrategy]:
    """A registered name, or a dotted path ``package.module:Class`` / ``package.module.Class``.

    Raises:
        ConfigError: an unknown name (the message lists the registered ones) or a bad dotted path.
    """
    return _REGISTRY.resolve(name)


def create_strategy(config: FedChainConfig) -> FedChainStrategy:
    """Instantiate the strategy named in ``config`` (raises StrategyError if it cannot run)."""
    return resolve_strategy(config.strategy)(config)
