"""Encryption and decryption over forked worker processes (fedchain.crypto._parallel)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import tenseal as ts

from fedchain import crypto
from fedchain.crypto._parallel import WORKERS_ENV, map_forked, resolve_workers
from fedchain.errors import ConfigError, CryptoError, SerializationError

LENGTH = 8 * 4096 - 100  # 8 chunks, the last one padded


def _children() -> set[int]:
    """Live child processes of this process (every thread's), from /proc."""
    found: set[int] = set()
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        try:
            found.update(int(pid) for pid in (task / "children").read_text().split())
        except OSError:
            continue
    return found


@pytest.fixture
def flat() -> np.ndarray:
    return np.random.default_rng(3).normal(scale=5.0, size=LENGTH)


def test_parallel_encrypt_serial_decrypt(agg_member: ts.Context, flat: np.ndarray) -> None:
    before = _children()
    parallel = crypto.encrypt_update(agg_member, flat, workers=2, min_parallel_chunks=2)
    serial = crypto.encrypt_update(agg_member, flat, workers=1)
    assert len(parallel) == len(serial) == 8
    # seeded in both: one polynomial plus a seed, zstd-compressed (sizes vary by a few bytes)
    for a, b in zip(parallel, serial, strict=True):
        assert abs(len(a) - len(b)) < 100 and len(a) < 64_000
    assert len(set(parallel)) == 8  # fresh randomness in every worker: no two chunks alike
    result = crypto.decrypt_update(agg_member, parallel, LENGTH, workers=1)
    np.testing.assert_allclose(result, flat, rtol=0, atol=1e-5)
    assert _children() == before


def test_serial_encrypt_parallel_decrypt_equals_serial(agg_member: ts.Context, flat: np.ndarray) -> None:
    chunks = crypto.encrypt_update(agg_member, flat, workers=0)
    serial = crypto.decrypt_update(agg_member, chunks, LENGTH, workers=1)
    parallel = crypto.decrypt_update(agg_member, chunks, LENGTH, workers=2, min_parallel_chunks=2)
    assert np.array_equal(parallel, serial)
    np.testing.assert_allclose(parallel, flat, rtol=0, atol=1e-5)


def test_workers_zero_stay_serial_under_parallel_encryption(agg_member: ts.Context) -> None:
    zeros = crypto.encrypt_update(agg_member, np.zeros(LENGTH), workers=3, min_parallel_chunks=2)
    assert len(set(zeros)) == 8  # same plaintext in every chunk: only the seeds and noise differ


def test_parallel_decrypt_raises_what_serial_raises(agg_member: ts.Context, flat: np.ndarray) -> None:
    chunks = crypto.encrypt_update(agg_member, flat, workers=1)
    broken = [*chunks[:5], b"junk", chunks[6], b"more junk"]
    with pytest.raises(SerializationError) as serial:
        crypto.decrypt_update(agg_member, broken, LENGTH, workers=1)
    with pytest.raises(SerializationError) as parallel:
        crypto.decrypt_update(agg_member, broken, LENGTH, workers=2, min_parallel_chunks=2)
    assert str(parallel.value) == str(serial.value) and str(serial.value).startswith("chunk 5: ")
    other = crypto.create_secret_context(crypto.AGGREGATION)  # another key: the padding check fires
    with pytest.raises(CryptoError, match="padding slots are not zero"):
        crypto.decrypt_update(other, chunks, LENGTH, workers=2, min_parallel_chunks=2)


def test_a_crashed_worker_raises_crypto_error() -> None:
    before = _children()

    def task(position: int) -> bytes:
        if position == 5:
            os.kill(os.getpid(), signal.SIGKILL)
        return bytes([position])

    with pytest.raises(CryptoError, match=r"killed by signal SIGKILL\) stopped before position 5"):
        map_forked(task, 8, 2, timeout=30)
    assert _children() == before


def test_a_stuck_worker_is_killed_at_the_timeout() -> None:
    before = _children()

    def task(position: int) -> bytes:
        time.sleep(60)
        return b""

    start = time.monotonic()
    with pytest.raises(CryptoError, match="did not finish within"):
        map_forked(task, 4, 2, timeout=1.0)
    assert time.monotonic() - start < 30
    assert _children() == before


def test_worker_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(WORKERS_ENV, "3")
    assert resolve_workers(None, 100) == 3
    assert resolve_workers(None, 10) == 1  # below the threshold
    monkeypatch.setenv(WORKERS_ENV, "0")
    assert resolve_workers(None, 100) == 1
    monkeypatch.setenv(WORKERS_ENV, "many")
    with pytest.raises(ConfigError, match=WORKERS_ENV):
        resolve_workers(None, 100)
    monkeypatch.delenv(WORKERS_ENV)
    monkeypatch.setenv("FEDCHAIN_SIMULATION", "1")
    assert resolve_workers(None, 100) == 1
    monkeypatch.delenv("FEDCHAIN_SIMULATION")
    assert resolve_workers(None, 100) == min(100, len(os.sched_getaffinity(0)))
    with pytest.raises(ConfigError, match="workers"):
        resolve_workers(-1, 100)
