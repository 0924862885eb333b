"""``/metrics`` over HTTP: prometheus_client's server, on loopback unless told otherwise.

Example:
    >>> from prometheus_client import CollectorRegistry, Counter
    >>> registry = CollectorRegistry()
    >>> _ = Counter("fedchain_example", "An example.", registry=registry)
    >>> with serve(0, registry=registry) as server:  # port 0: any free port
    ...     import urllib.request
    ...     body = urllib.request.urlopen(server.url, timeout=5).read().decode()
    >>> "fedchain_example_total 0.0" in body
    True
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server

from fedchain._validation import Interval
from fedchain.errors import ConfigError

__all__ = ["MetricsServer", "serve", "serve_member_state"]

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"


@dataclass
class MetricsServer:
    """A running ``/metrics`` endpoint; :meth:`close` (or ``with``) stops it and frees the port.

    Attributes:
        host: the address it listens on.
        port: the port it listens on (the real one when 0 was asked for).
    """

    host: str
    port: int
    _server: Any = field(repr=False)
    _thread: threading.Thread = field(repr=False)

    @property
    def url(self) -> str:
        """``http://host:port/metrics``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        """Stop serving and release the socket (idempotent)."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def serve(port: int, host: str = LOOPBACK, *, registry: CollectorRegistry) -> MetricsServer:
    """Serve ``registry`` at ``http://host:port/metrics`` from a daemon thread.

    Args:
        port: TCP port; 0 picks a free one (read it from the handle).
        host: listen address; loopback by default. Another address exposes the metrics (member
            addresses, epsilon) to the network and is logged as a warning.
        registry: the registry to expose (e.g. ``CoordinatorMetrics().registry``).

    Returns:
        The running server's handle.

    Raises:
        ConfigError: the port or host is invalid, or the port cannot be bound.

    Example:
        >>> from fedchain.telemetry import CoordinatorMetrics
        >>> server = CoordinatorMetrics().serve(0)
        >>> server.url.startswith("http://127.0.0.1:")
        True
        >>> server.close()
    """
    port = Interval(int, 0, 65535, closed="both").check("metrics_port", port)
    try:
        is_loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        if not isinstance(host, str) or not host:
            raise ConfigError("metrics_host", "an IP address or host name", host) from None
        is_loopback = host == "localhost"
    if not is_loopback:
        log.warning("serving metrics on %s: reachable beyond this machine", host)
    try:
        server, thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise ConfigError("metrics_port", f"a free port on {host} ({exc.strerror or exc})", port) from None
    bound = int(server.server_port)
    log.info("metrics at http://%s:%d/metrics", host, bound)
    return MetricsServer(host=host, port=bound, _server=server, _thread=thread)


def serve_member_state(state_file: str | Path, port: int, host: str = LOOPBACK) -> MetricsServer:
    """Serve a member's saved metrics state (``<state-dir>/metrics.json``), re-read at each scrape.

    Example::

        server = serve_member_state("state/member-0/metrics.json", 9101)
    """
    from fedchain.telemetry.member import MemberStateCollector

    registry = CollectorRegistry()
    registry.register(MemberStateCollector(state_file))
    return serve(port, host, registry=registry)
