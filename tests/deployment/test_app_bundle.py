"""The Flower app bundle (FAB) that `flwr run` ships to every SuperNode with each message."""

from __future__ import annotations

import io
import subprocess
import zipfile
from pathlib import Path

from flwr.cli.build import build_fab_from_files

REPO = Path(__file__).resolve().parents[2]


def _fresh_clone_files() -> dict[str, bytes | Path]:
    """The files a fresh clone holds: tracked ones only (no caches, no .venv, no node_modules)."""
    listed = subprocess.run(["git", "ls-files"], cwd=REPO, check=True, capture_output=True, text=True).stdout.split()
    return {name: REPO / name for name in listed if (REPO / name).is_file()}


def test_bundle_builds_from_a_fresh_clone_and_holds_only_the_app_entry_points() -> None:
    fab, _ = build_fab_from_files(_fresh_clone_files())

    names = zipfile.ZipFile(io.BytesIO(fab)).namelist()
    shipped = {name.split("/")[0] for name in names if "/" in name} - {".info"}
    assert shipped == {"clients", "strategies"}
    assert "clients/client_app.py" in names
    assert "strategies/server_app.py" in names
    assert not any(name.startswith("fedchain/") for name in names)
    # Every ClientApp message's task input holds the whole bundle.
    assert len(fab) < 300_000, f"app bundle grew to {len(fab)} bytes"
