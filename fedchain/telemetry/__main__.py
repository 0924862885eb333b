"""A member's metrics exporter: ``python -m fedchain.telemetry member --state-dir DIR --port P``.

It serves ``DIR/metrics.json`` (written by the member's node after each message) at
``http://HOST:P/metrics`` until it receives SIGTERM or SIGINT. It runs next to the SuperNode,
because Flower starts a short-lived process per message and those cannot hold a server.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from pathlib import Path

from fedchain.telemetry.member import MEMBER_STATE_FILENAME
from fedchain.telemetry.server import LOOPBACK, serve_member_state


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and serve until a termination signal."""
    parser = argparse.ArgumentParser(prog="python -m fedchain.telemetry", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    member = commands.add_parser("member", help="serve a member node's metrics state")
    member.add_argument("--state-dir", type=Path, required=True, help="the node's state-dir")
    member.add_argument("--port", type=int, required=True, help="TCP port of /metrics")
    member.add_argument("--host", default=LOOPBACK, help="listen address (default: loopback)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    server = serve_member_state(args.state_dir / MEMBER_STATE_FILENAME, args.port, args.host)
    try:
        stop.wait()
    finally:
        server.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
