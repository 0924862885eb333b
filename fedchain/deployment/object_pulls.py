"""Flower's object pulls, retried at the pace of a warm process instead of Flower's 1 s first wait.

In Flower 1.42 a message crosses the SuperLink as a message header (``PushMessages``) followed by
its objects (``PushObject``, two at a time). Whoever pulls it (the SuperNode pulling an
instruction, the ServerApp's grid pulling a reply, a ClientApp pulling its input from the
SuperNode) can see the header before the last object has landed; ``pull_objects`` then retries
the missing object after ``PULL_INITIAL_BACKOFF`` (1 s), then 2, 4... up to 10 s. A process
started per message rarely noticed; warm ones (fedchain's worker, the SuperNode at fedchain's
cadence) see it on most messages: profiling a 3-member DP+HE round showed 0.8-1.2 s waits on a
push that finished some 20 ms after the header (docs/architecture.md, "Deployment round time").

:func:`fast_object_pulls` retries after 10 ms, doubling up to 0.5 s; only the pace changes, and
Flower's overall limit (``PULL_MAX_TIME``, 2 hours) stays, so a slow link still delivers a large
message. :func:`install_fast_object_pulls` swaps it into the Flower modules that pull.

Example:
    >>> from fedchain.deployment.object_pulls import PULL_FIRST_S, fast_object_pulls
    >>> calls = []
    >>> pull = fast_object_pulls(lambda ids, fn, **kw: calls.append(kw) or {})
    >>> pull(["a"], lambda object_id: b"")
    {}
    >>> calls[0]["initial_backoff"] == PULL_FIRST_S
    True
"""

from __future__ import annotations

import importlib
import inspect
import logging
from collections.abc import Callable
from typing import Any

__all__ = ["PULLING_MODULES", "PULL_CAP_S", "PULL_FIRST_S", "fast_object_pulls", "install_fast_object_pulls"]

log = logging.getLogger(__name__)

#: First retry of an object not there yet (seconds); then doubling up to :data:`PULL_CAP_S`.
PULL_FIRST_S = 0.01
PULL_CAP_S = 0.5
#: Flower 1.42's modules that call ``pull_objects`` with its default pace: the SuperNode's loop
#: (instructions from the SuperLink) and the ServerApp's grid (replies).
PULLING_MODULES = ("flwr.supernode.start_client_internal", "flwr.superlink.grid.http_grid")


def fast_object_pulls(pull_objects: Callable[..., dict[str, bytes]]) -> Callable[..., dict[str, bytes]]:
    """``pull_objects`` retrying at :data:`PULL_FIRST_S` doubling to :data:`PULL_CAP_S`, bounded by time only.

    Flower bounds a pull by 500 tries per object and 2 hours; at this pace 500 tries would be
    about 4 minutes, so the tries bound is lifted and the 2-hour one kept. A caller's own
    ``initial_backoff``/``backoff_cap`` win.
    """

    def pull(*args: Any, **kwargs: Any) -> dict[str, bytes]:
        kwargs.setdefault("initial_backoff", PULL_FIRST_S)
        kwargs.setdefault("backoff_cap", PULL_CAP_S)
        kwargs.setdefault("max_tries_per_object", None)
        return pull_objects(*args, **kwargs)

    pull.__wrapped__ = pull_objects  # type: ignore[attr-defined]
    return pull


def install_fast_object_pulls(modules: tuple[str, ...] = PULLING_MODULES) -> list[str]:
    """Pull objects at the fast pace in ``modules`` (in this process); the modules changed.

    A module is left alone (and a warning logged) when it cannot be imported, has no
    ``pull_objects``, or its ``pull_objects`` lacks the keywords above (another Flower).
    Installing twice changes nothing.
    """
    installed = []
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            log.warning("Flower module %s not found (%s): its object pulls keep Flower's pace", name, exc)
            continue
        current: Callable[..., dict[str, bytes]] | None = getattr(module, "pull_objects", None)
        original: Callable[..., dict[str, bytes]] | None = getattr(current, "__wrapped__", current)
        if original is None or not _takes_pace(original):
            log.warning("%s.pull_objects is not the one fedchain knows: its object pulls keep Flower's pace", name)
            continue
        if current is original:
            module.pull_objects = fast_object_pulls(original)  # type: ignore[attr-defined, unused-ignore]
        installed.append(name)
    return installed


def _takes_pace(function: Callable[..., Any]) -> bool:
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False
    return {"initial_backoff", "backoff_cap", "max_tries_per_object"} <= parameters.keys()
