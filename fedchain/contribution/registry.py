"""The scorer registry: names to :class:`~fedchain.contribution.ContributionScorer` classes.

Example:
    >>> from fedchain.contribution import available_scorers, check_scorer_allowed
    >>> sorted(available_scorers())
    ['cosine', 'data_size', 'gtg_shapley', 'loo']
    >>> check_scorer_allowed("loo", he=True)
    Traceback (most recent call last):
    ...
    fedchain.errors.ConfigError: The 'scorer' parameter must be one of 'cosine', 'data_size' when HE is on. ...
"""

from __future__ import annotations

from typing import Any, TypeVar

from fedchain.contribution.base import ContributionScorer
from fedchain.errors import ConfigError
from fedchain.registry import Registry

__all__ = ["available_scorers", "check_scorer_allowed", "create_scorer", "register_scorer", "resolve_scorer"]

_REGISTRY: Registry[type[ContributionScorer]] = Registry(
    "scorer", parameter="scorer", builtins=["fedchain.contribution.scorers"], base=ContributionScorer
)

ScorerT = TypeVar("ScorerT", bound=type[ContributionScorer])


def register_scorer(cls: ScorerT) -> ScorerT:
    """Class decorator: register ``cls`` under ``cls.name``.

    Raises:
        ConfigError: when ``cls`` has no name, or another class holds the name already.

    Example:
        >>> from fedchain.contribution import ContributionScorer, register_scorer
        >>> @register_scorer
        ... class Again(ContributionScorer):
        ...     name = "data_size"
        ...     def score(self, inputs):
        ...         return {}
        Traceback (most recent call last):
        ...
        fedchain.errors.ConfigError: The 'name' parameter must be a scorer name not registered yet. Got 'data_size'. ...
    """
    if not (isinstance(cls, type) and issubclass(cls, ContributionScorer)):
        raise ConfigError("cls", "a ContributionScorer subclass", cls)
    _REGISTRY.register(cls.name, cls)
    return cls


def available_scorers() -> dict[str, type[ContributionScorer]]:
    """Registered scorers by name (sorted)."""
    return _REGISTRY.available()


def _names(classes: dict[str, type[ContributionScorer]]) -> str:
    return ", ".join(repr(name) for name in classes)


def resolve_scorer(name: str) -> type[ContributionScorer]:
    """The class registered under ``name``.

    Raises:
        ConfigError: for an unknown name; the message lists every registered name.
    """
    return _REGISTRY.resolve(name)


def create_scorer(name: str, **options: Any) -> ContributionScorer:
    """Instantiate the scorer registered under ``name`` with ``options``.

    Raises:
        ConfigError: for an unknown name or an invalid option.

    Example:
        >>> from fedchain.contribution import create_scorer
        >>> create_scorer("cosine").needs_scalars
        True
        >>> create_scorer("shapley")
        Traceback (most recent call last):
        ...
        fedchain.errors.ConfigError: The 'scorer' parameter must be one of 'cosine', 'data_size', ... Got 'shapley'.
    """
    return resolve_scorer(name)(**options)


def check_scorer_allowed(name: str, *, he: bool, he_scoring: bool | None = None) -> type[ContributionScorer]:
    """Refuse a scorer that cannot run in this mode, before the run starts.

    Args:
        name: the configured scorer.
        he: whether HE is on.
        he_scoring: whether the CKKS parameters allow encrypted inner products (SCORING). None skips
            that check (e.g. when the caller turns SCORING on itself for such scorers).

    Returns:
        The scorer class.

    Raises:
        ConfigError: for an unknown name; under HE for a scorer that needs plaintext updates, or one
            that needs encrypted inner products while ``he_scoring`` is False. The message names the
            scorers that would work.
    """
    cls = resolve_scorer(name)
    if not he:
        return cls
    if cls.needs_plaintext:
        usable = {n: c for n, c in available_scorers().items() if not c.needs_plaintext}
        raise ConfigError(
            "scorer",
            f"one of {_names(usable)} when HE is on",
            name,
            hint=(
                f"{name!r} needs individual plaintext updates"
                f"{' and a validation set' if cls.needs_validation else ''}, and under HE the coordinator "
                "only holds ciphertexts: use --no-he to score with it."
            ),
        )
    if cls.needs_scalars and he_scoring is False:
        raise ConfigError(
            "he_scoring",
            f"true for scorer {name!r} under HE",
            he_scoring,
            hint=(
                f"{name!r} needs encrypted inner products, which need the SCORING CKKS parameters: "
                "drop --no-he-scoring (it is on by default under HE), or use --scorer data_size."
            ),
        )
    return cls
