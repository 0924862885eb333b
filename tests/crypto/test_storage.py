from __future__ import annotations

import os
from pathlib import Path

import pytest
import tenseal as ts

from fedchain import crypto
from fedchain.errors import CryptoError, SerializationError


def test_secret_context_file_is_owner_only(agg_member: ts.Context, tmp_path: Path) -> None:
    path = tmp_path / "member.ctx"
    old = os.umask(0)  # even a permissive umask must not widen the secret file
    try:
        crypto.write_context(path, crypto.export_secret_context(agg_member), secret=True)
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o600
    assert crypto.load_member_context(crypto.read_context(path)).has_secret_key()
    assert [p.name for p in tmp_path.iterdir()] == ["member.ctx"]  # no temporary left behind


def test_public_context_file(agg_member: ts.Context, tmp_path: Path) -> None:
    path = tmp_path / "public.ctx"
    crypto.write_context(path, crypto.export_public_context(agg_member), secret=False)
    assert path.stat().st_mode & 0o777 == 0o644
    assert crypto.load_coordinator_context(crypto.read_context(path)).is_public()


def test_overwrite_replaces_atomically(agg_member: ts.Context, tmp_path: Path) -> None:
    path = tmp_path / "member.ctx"
    path.write_bytes(b"old")
    path.chmod(0o644)
    crypto.write_context(path, crypto.export_secret_context(agg_member), secret=True)
    assert path.stat().st_mode & 0o777 == 0o600


def test_secret_bytes_refused_as_public(agg_member: ts.Context, tmp_path: Path) -> None:
    path = tmp_path / "oops.ctx"
    with pytest.raises(CryptoError, match="hold a secret key; write them with secret=True"):
        crypto.write_context(path, crypto.export_secret_context(agg_member), secret=False)
    assert not path.exists()


def test_write_into_missing_directory(agg_member: ts.Context, tmp_path: Path) -> None:
    with pytest.raises(CryptoError, match="cannot write context file"):
        crypto.write_context(tmp_path / "no" / "x.ctx", crypto.export_public_context(agg_member), secret=False)


def test_read_errors_are_clear(tmp_path: Path) -> None:
    missing = tmp_path / "missing.ctx"
    with pytest.raises(CryptoError) as info:
        crypto.read_context(missing)
    assert str(info.value) == f"context file {missing} does not exist"
    with pytest.raises(CryptoError, match="is a directory"):
        crypto.read_context(tmp_path)
    empty = tmp_path / "empty.ctx"
    empty.write_bytes(b"")
    with pytest.raises(SerializationError, match="is not a TenSEAL context: context is empty"):
        crypto.read_context(empty)
    garbage = tmp_path / "garbage.ctx"
    garbage.write_bytes(b"\xff" * 64)
    with pytest.raises(SerializationError, match=f"context file {garbage} is not a TenSEAL context"):
        crypto.read_context(garbage)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "locked.ctx"
    path.write_bytes(b"x")
    path.chmod(0)
    with pytest.raises(CryptoError, match="cannot read context file"):
        crypto.read_context(path)


def test_world_readable_secret_file_warns(
    agg_member: ts.Context, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "member.ctx"
    crypto.write_context(path, crypto.export_secret_context(agg_member), secret=True)
    path.chmod(0o644)
    crypto.read_context(path)
    assert "accessible to others" in caplog.text
    assert "secret_key" not in caplog.text
