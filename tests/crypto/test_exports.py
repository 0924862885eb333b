from __future__ import annotations

import re
from pathlib import Path

import fedchain.crypto as crypto

ROOT = Path(__file__).resolve().parents[2]


def test_all_is_sorted_and_complete() -> None:
    assert crypto.__all__ == sorted(crypto.__all__)
    for name in crypto.__all__:
        assert hasattr(crypto, name), name


def test_tenseal_is_imported_only_in_the_crypto_package() -> None:
    pattern = re.compile(r"^\s*(import tenseal|from tenseal)", re.MULTILINE)
    offenders = [
        str(path.relative_to(ROOT))
        for folder in ("fedchain", "strategies", "clients")
        for path in (ROOT / folder).rglob("*.py")
        if pattern.search(path.read_text(encoding="utf-8")) and "fedchain/crypto" not in path.as_posix()
    ]
    assert offenders == []
