"""Progress listeners: how a ServerApp running in this process reports each round to the CLI.

Example:
    >>> seen = []
    >>> with listening(seen.append):
    ...     publish("round")
    >>> seen
    ['round']
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["listening", "publish"]

log = logging.getLogger(__name__)
_listeners: list[Callable[[Any], None]] = []


@contextlib.contextmanager
def listening(listener: Callable[[Any], None]) -> Iterator[None]:
    """Register ``listener`` for events published in this process while the block runs."""
    _listeners.append(listener)
    try:
        yield
    finally:
        _listeners.remove(listener)


def publish(event: Any) -> None:
    """Send ``event`` to every listener; a failing listener is logged, never raised."""
    for listener in list(_listeners):
        try:
            listener(event)
        except Exception:  # a display problem must not stop a federation
            log.exception("progress listener failed")
