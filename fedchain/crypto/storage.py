"""Context files on disk: atomic writes, owner-only permissions for secret material.

Example:
    >>> import tempfile, pathlib
    >>> from fedchain.crypto import AGGREGATION, create_secret_context, export_secret_context
    >>> from fedchain.crypto import read_context, write_context
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "member.ctx"
    >>> write_context(path, export_secret_context(create_secret_context(AGGREGATION)), secret=True)
    >>> oct(path.stat().st_mode & 0o777)
    '0o600'
    >>> len(read_context(path)) > 0
    True
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from fedchain.crypto._wire import check_context_frame
from fedchain.errors import CryptoError, SerializationError

__all__ = ["read_context", "write_context"]

logger = logging.getLogger(__name__)

SECRET_FILE_MODE = 0o600
PUBLIC_FILE_MODE = 0o644


def write_context(path: str | os.PathLike[str], data: bytes, *, secret: bool) -> None:
    """Write serialized context bytes atomically (temporary file, fsync, rename).

    Args:
        path: destination file; its directory must exist.
        data: bytes from ``export_public_context`` or ``export_secret_context``.
        secret: whether ``data`` holds a secret key: the file is then created ``0600`` from the
            start (never readable by others, not even briefly); public contexts get ``0644``.

    Raises:
        CryptoError: when ``secret`` is False but the bytes hold a secret key, or the write fails.
        SerializationError: when ``data`` is not a TenSEAL context.

    Example:
        >>> import tempfile, pathlib
        >>> from fedchain.crypto import AGGREGATION, create_secret_context, export_public_context
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "public.ctx"
        >>> write_context(path, export_public_context(create_secret_context(AGGREGATION)), secret=False)
        >>> oct(path.stat().st_mode & 0o777)
        '0o644'
    """
    target = Path(path)
    has_secret = check_context_frame(data)
    if has_secret and not secret:
        raise CryptoError(f"{target}: these context bytes hold a secret key; write them with secret=True")
    mode = SECRET_FILE_MODE if secret else PUBLIC_FILE_MODE
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        try:
            os.fchmod(fd, mode)  # the umask may have narrowed the creation mode
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        os.replace(tmp, target)
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        raise CryptoError(f"cannot write context file {target}: {exc.strerror or exc}") from exc
    logger.info("wrote %s context file %s (%d bytes)", "secret" if secret else "public", target, len(data))


def read_context(path: str | os.PathLike[str]) -> bytes:
    """Read context bytes written by :func:`write_context`, checking they look like a context.

    Args:
        path: the context file.

    Returns:
        The file's bytes, for ``load_coordinator_context`` or ``load_member_context``.

    Raises:
        CryptoError: when the file is missing or unreadable.
        SerializationError: when the file is empty or not a TenSEAL context.

    Example:
        >>> read_context("/nonexistent/member.ctx")
        Traceback (most recent call last):
        ...
        fedchain.errors.CryptoError: context file /nonexistent/member.ctx does not exist
    """
    source = Path(path)
    try:
        data = source.read_bytes()
        mode = source.stat().st_mode
    except FileNotFoundError as exc:
        raise CryptoError(f"context file {source} does not exist") from exc
    except IsADirectoryError as exc:
        raise CryptoError(f"context file {source} is a directory") from exc
    except OSError as exc:
        raise CryptoError(f"cannot read context file {source}: {exc.strerror or exc}") from exc
    try:
        has_secret = check_context_frame(data)
    except SerializationError as exc:
        raise SerializationError(f"context file {source} is not a TenSEAL context: {exc}") from exc
    if has_secret and mode & (stat.S_IRWXG | stat.S_IRWXO):
        logger.warning(
            "context file %s holds a secret key but is accessible to others (mode %s); chmod 600 it",
            source,
            oct(mode & 0o777),
        )
    return data
