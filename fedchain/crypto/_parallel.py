"""Chunk work over the member's cores, in forked worker processes (SEAL holds the GIL: threads do not help).

TenSEAL's bindings of SEAL's encoder, encryptor and decryptor hold Python's GIL for the whole call,
so threads over chunks run no faster than one (measured in ``bench/bench_he_scale.py``). Processes
do. :func:`map_forked` forks ``workers`` children *for one call*; each computes a contiguous range of
chunks and writes its results back through its own pipe as raw frames (``position``, ``length``,
bytes), then leaves with ``os._exit``. Nothing is serialized to reach the children: they inherit the
member's context, the encryptor and the inputs (the padded float64 values, or the ciphertext bytes)
in memory, copy-on-write, so the secret key is never written anywhere nor pickled; what comes back
is ciphertext bytes or raw float64 bytes, never pickle.

Why fork per call and not a long-lived pool: a fork costs milliseconds (page tables of the parent),
against about 0.3 s of work per 100 chunks; a per-call fork needs no pool lifetime, no atexit hook,
no re-keying when a context changes, and leaves no process behind (every child is reaped before the
call returns, on success, error, crash or timeout). Fork safety: the parent forks while holding the
GIL, and every SEAL call made through TenSEAL holds the GIL too, so no other thread is inside SEAL
(holding its memory pool's lock) at that moment; the children run SEAL, numpy copies and ``os``
calls only (no torch, no OpenMP, no gRPC), and never return into the caller's Python stack. They
never run Python's garbage collector (it is off from before the fork; the parent turns it back on):
a collection in a child could free an unreachable TenSEAL context, whose destructor waits for its
thread pool's threads, which do not exist in the child, and hangs (seen in the tests). SEAL
draws a fresh seed from the OS (``std::random_device``) for every encryption, so children do not
share randomness (the tests check every chunk differs).

When it runs (:func:`resolve_workers`): ``workers`` > 1 and at least ``min_chunks`` chunks. The
default number of workers is ``FEDCHAIN_HE_WORKERS`` when set (0 or 1: serial), else 1 in a
simulation (``FEDCHAIN_SIMULATION=1``, or Ray running in this process: simulated members share the
machine's cores, and Flower's simulation runs them in Ray actors, which should not fork), else the
cores this process may use (``os.sched_getaffinity``). ``fedchain.crypto`` reads
``FEDCHAIN_SIMULATION`` itself, because a stage package does not import ``fedchain.simulation``.

Example:
    >>> map_forked(lambda i: str(i).encode() * 2, 4, workers=2)
    [b'00', b'11', b'22', b'33']
"""

from __future__ import annotations

import contextlib
import gc
import os
import selectors
import signal
import struct
import sys
import time
from collections.abc import Callable

from fedchain.errors import ConfigError, CryptoError, FedChainError, SerializationError

__all__ = [
    "PARALLEL_MIN_CHUNKS",
    "SIMULATION_ENV",
    "WORKERS_ENV",
    "map_forked",
    "resolve_workers",
    "usable_cores",
]

#: Environment variable: worker processes for encryption and decryption (0 or 1: serial).
WORKERS_ENV = "FEDCHAIN_HE_WORKERS"
#: Set to "1" by fedchain's simulation runner (read here directly: see the module docstring).
SIMULATION_ENV = "FEDCHAIN_SIMULATION"
#: Fewest chunks worth forking for (64 chunks: about 0.26M values, 0.2 s of serial work).
PARALLEL_MIN_CHUNKS = 64

#: Seconds a call may take, beyond which its workers are killed: a backstop against a stuck child.
_BASE_TIMEOUT_S = 60.0
_PER_CHUNK_TIMEOUT_S = 0.5

_HEADER = struct.Struct("<BQQ")  # kind, position, payload length
_OK, _ERROR = 0, 1
_ERRORS: dict[str, type[FedChainError]] = {"SerializationError": SerializationError, "CryptoError": CryptoError}


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask), at least 1.

    Example:
        >>> usable_cores() >= 1
        True
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _default_workers() -> int:
    raw = os.environ.get(WORKERS_ENV, "").strip()
    if raw:
        try:
            value = int(raw)
        except ValueError:
            value = -1
        if value < 0:
            raise ConfigError(WORKERS_ENV, "an int in [0, inf) (0 or 1: serial)", raw)
        return value
    if os.environ.get(SIMULATION_ENV) == "1" or _ray_running():
        return 1
    return usable_cores()


def _ray_running() -> bool:
    """Whether Ray runs in this process (Flower's simulation runs ClientApps in Ray actors); never imports Ray."""
    ray = sys.modules.get("ray")
    if ray is None:
        return False
    try:
        return bool(ray.is_initialized())
    except Exception:  # a partly imported or shut-down Ray: stay serial all the same
        return True


def resolve_workers(workers: int | None, chunks: int, min_chunks: int = PARALLEL_MIN_CHUNKS) -> int:
    """How many processes to use for ``chunks`` chunks: 1 means serial, in this process.

    Args:
        workers: processes wanted; None: ``FEDCHAIN_HE_WORKERS``, else 1 in a simulation, else the
            usable cores.
        chunks: chunks to process.
        min_chunks: below this many chunks, serial (forking does not pay).

    Raises:
        ConfigError: when ``workers``, ``min_chunks`` or ``FEDCHAIN_HE_WORKERS`` is not an int >= 0.

    Example:
        >>> resolve_workers(2, 100), resolve_workers(2, 10), resolve_workers(0, 100), resolve_workers(8, 3, 1)
        (2, 1, 1, 3)
    """
    if workers is None:
        workers = _default_workers()
    elif isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise ConfigError("workers", "an int in [0, inf) (0 or 1: serial), or None", workers)
    if isinstance(min_chunks, bool) or not isinstance(min_chunks, int) or min_chunks < 1:
        raise ConfigError("min_chunks", "an int in [1, inf)", min_chunks)
    if workers <= 1 or chunks < min_chunks:
        return 1
    return min(workers, chunks)


def _child(task: Callable[[int], bytes], start: int, stop: int, fd: int) -> None:
    """A worker's whole life: compute ``task(start..stop-1)``, write frames, never return."""
    code = 0
    try:
        for position in range(start, stop):
            try:
                payload = task(position)
                kind = _OK
            except FedChainError as exc:
                payload, kind, code = f"{type(exc).__name__}\0{exc}".encode(), _ERROR, 1
            view = memoryview(_HEADER.pack(kind, position, len(payload)) + payload)
            while view:
                view = view[os.write(fd, view) :]
            if kind == _ERROR:
                break
    except BaseException:  # anything else (or a closed pipe): the parent sees missing frames
        code = 2
    finally:
        os._exit(code)


def _parse(buffer: bytearray, start: int, stop: int, results: list[bytes | None]) -> FedChainError | None:
    """Frames of one worker into ``results``; returns the error it reported, if any."""
    offset = 0
    while offset + _HEADER.size <= len(buffer):
        kind, position, length = _HEADER.unpack_from(buffer, offset)
        offset += _HEADER.size
        if not start <= position < stop or offset + length > len(buffer):
            break
        payload = bytes(buffer[offset : offset + length])
        offset += length
        if kind == _OK:
            results[position] = payload
            continue
        name, _, message = payload.decode(errors="replace").partition("\0")
        error = _ERRORS.get(name)
        return error(message) if error else CryptoError(f"a worker process failed: {name}: {message}")
    return None


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = str(number)
        return f"killed by signal {name}"
    return f"exit status {os.waitstatus_to_exitcode(status)}"


def map_forked(task: Callable[[int], bytes], count: int, workers: int, *, timeout: float | None = None) -> list[bytes]:
    """``[task(0), ..., task(count - 1)]`` computed by ``workers`` forked processes.

    Each worker takes a contiguous range of positions. ``task`` must only compute (it runs in a
    child: side effects stay there) and raise :class:`~fedchain.errors.FedChainError` subclasses for
    bad input: the one at the lowest position is raised here, as a serial loop would raise it
    (``SerializationError`` and ``CryptoError`` keep their class). Every child is reaped before
    this returns or raises.

    Args:
        task: position -> bytes.
        count: positions, >= 1.
        workers: processes, >= 1 (at most ``count`` are started).
        timeout: seconds before the workers are killed; default 60 s + 0.5 s per position.

    Raises:
        CryptoError: a worker crashed, exited early or timed out (no hang), or ``os.fork`` failed.
        SerializationError: ``task`` raised it for some position (the lowest such one).
    """
    workers = max(1, min(workers, count))
    limit = _BASE_TIMEOUT_S + _PER_CHUNK_TIMEOUT_S * count if timeout is None else timeout
    bounds = [(count * k // workers, count * (k + 1) // workers) for k in range(workers)]
    children: dict[int, tuple[int, int, int]] = {}  # pid -> (read fd, start, stop)
    buffers: dict[int, bytearray] = {}
    statuses: dict[int, int] = {}
    selector = selectors.DefaultSelector()
    collecting = gc.isenabled()
    gc.disable()  # the children must never collect: see the module docstring
    try:
        for start, stop in bounds:
            read_fd, write_fd = os.pipe()
            try:
                pid = os.fork()
            except OSError as exc:
                os.close(read_fd)
                os.close(write_fd)
                raise CryptoError(f"could not start a worker process: {exc}") from exc
            if pid == 0:  # the child: drop the parent's ends, work, exit
                os.close(read_fd)
                for other_fd, _, _ in children.values():
                    os.close(other_fd)
                _child(task, start, stop, write_fd)
            os.close(write_fd)
            children[pid] = (read_fd, start, stop)
            buffers[read_fd] = bytearray()
            selector.register(read_fd, selectors.EVENT_READ)
        if collecting:
            gc.enable()
        deadline = time.monotonic() + limit
        open_fds = len(children)
        while open_fds:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CryptoError(f"worker processes did not finish within {limit:.0f} s; killed them")
            for key, _ in selector.select(left):
                chunk = os.read(key.fd, 1 << 20)
                if chunk:
                    buffers[key.fd] += chunk
                else:
                    selector.unregister(key.fd)
                    open_fds -= 1
        for pid in children:
            statuses[pid] = os.waitpid(pid, 0)[1]
    finally:
        if collecting:
            gc.enable()
        for pid in children:
            if pid not in statuses:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                with contextlib.suppress(ChildProcessError):
                    statuses[pid] = os.waitpid(pid, 0)[1]
        selector.close()
        for read_fd, _, _ in children.values():
            os.close(read_fd)
    results: list[bytes | None] = [None] * count
    errors: list[tuple[int, FedChainError]] = []
    for pid, (read_fd, start, stop) in children.items():
        error = _parse(buffers[read_fd], start, stop, results)
        if error is not None:
            position = next(p for p in range(start, stop) if results[p] is None)
            errors.append((position, error))
        elif any(results[p] is None for p in range(start, stop)):
            missing = next(p for p in range(start, stop) if results[p] is None)
            how = _describe(statuses.get(pid, 0))
            errors.append((missing, CryptoError(f"a worker process ({how}) stopped before position {missing}")))
    if errors:
        raise min(errors, key=lambda item: item[0])[1]
    return [r for r in results if r is not None]
