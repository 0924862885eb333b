from __future__ import annotations

import re
from pathlib import Path

import fedchain.privacy as privacy

ROOT = Path(__file__).resolve().parents[2]


def test_all_is_sorted_and_exported() -> None:
    assert privacy.__all__ == sorted(privacy.__all__, key=str)
    for name in privacy.__all__:
        assert hasattr(privacy, name), name


def test_public_callables_have_docstrings_with_examples() -> None:
    for name in privacy.__all__:
        obj = getattr(privacy, name)
        if callable(obj) and not name.isupper() and name != "HistoryEntry":
            assert obj.__doc__ and ("Example" in obj.__doc__ or name == "TrainResult"), name


def test_opacus_is_imported_only_by_the_privacy_package() -> None:
    pattern = re.compile(r"^\s*(import opacus|from opacus)", re.MULTILINE)
    offenders = [
        str(path.relative_to(ROOT))
        for folder in ("fedchain", "clients", "strategies")
        if (ROOT / folder).is_dir()
        for path in (ROOT / folder).rglob("*.py")
        if pattern.search(path.read_text(encoding="utf-8", errors="replace"))
        and (ROOT / "fedchain" / "privacy") not in path.parents
    ]
    assert offenders == []
