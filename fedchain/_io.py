"""Atomic file writes: a reader sees the old file or the new one, never half of one.

Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "state.json"
    >>> atomic_write_bytes(path, b"{}")
    >>> path.read_bytes()
    b'{}'
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["atomic_write_bytes", "atomic_write_json"]


def atomic_write_bytes(path: str | Path, data: bytes, *, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` through a temporary file, fsync and rename.

    Args:
        path: destination; its directory is created if missing.
        data: the bytes to write.
        mode: permission bits of the new file (``0o600`` for secrets).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | Path, payload: Any, *, mode: int = 0o644) -> None:
    """Write ``payload`` as indented JSON, atomically."""
    atomic_write_bytes(path, (json.dumps(payload, indent=2, sort_keys=False) + "\n").encode(), mode=mode)
