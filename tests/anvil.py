"""A real anvil node on loopback for tests: started by PID, stopped by PID, state optionally kept on disk."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fedchain.deployment import anvil_binary

__all__ = ["ANVIL_KEY_0", "ANVIL_KEY_1", "ANVIL_KEY_2", "free_port", "running_anvil", "start_anvil", "stop_anvil"]

# anvil's first default account: a public, well-known development key (never holds real funds).
ANVIL_KEY_0 = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
# Its second and third default accounts (separate admin / coordinator / treasury keys in tests).
ANVIL_KEY_1 = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
ANVIL_KEY_2 = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3d71c3c5f8dda6f0"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_anvil(port: int, state: Path | None = None) -> subprocess.Popen[bytes]:
    """Start anvil on 127.0.0.1:``port`` (``--state`` loads and, on SIGTERM, saves its chain); skip if absent."""
    binary = anvil_binary()
    if binary is None:
        pytest.skip("anvil is not installed: run `cd contracts && npm ci` (installs @foundry-rs/anvil 1.7.1)")
    args = [str(binary), "--host", "127.0.0.1", "--port", str(port), "--silent"]
    if state is not None:
        args += ["--state", str(state)]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"anvil did not start on 127.0.0.1:{port} (exit code {process.poll()})")
            time.sleep(0.05)


def stop_anvil(process: subprocess.Popen[bytes]) -> None:
    """Stop the process this helper started (anvil writes ``--state`` on SIGTERM)."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@contextlib.contextmanager
def running_anvil(state: Path | None = None) -> Iterator[str]:
    """A running anvil for the block; yields its URL."""
    port = free_port()
    process = start_anvil(port, state)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_anvil(process)
