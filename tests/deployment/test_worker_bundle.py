"""A malicious coordinator's app bundle never runs on a member (fedchain/deployment/worker.py).

The coordinator builds the app bundle (FAB) every task input carries, and chooses its
``[tool.flwr.app.components] clientapp`` reference and its files. Flower's ``flwr-clientapp``
installs that bundle and runs its code: whoever builds it runs code on every member, next to the
member's data, wallet and CKKS secret key. A member's privacy is decided by the member's own
node, so the member worker runs the ClientApp the member installed and configured
(``--client-app``, default ``clients.client_app:app``), refuses a bundle that names another, and
never puts a bundle's files on ``sys.path``.

These tests build real bundles with Flower's own builder, with only what the coordinator holds,
and hand them to the worker's loader as a task input would.
"""

from __future__ import annotations

import hashlib
import importlib
import sys
from pathlib import Path

import pytest
from flwr.cli.build import build_fab_from_files
from flwr.supercore.fab import Fab
from flwr.supercore.run import Run

from fedchain.deployment.worker import DEFAULT_CLIENT_APP, BundleRefusedError, MemberWorker

SHADOW = "fedchain_bundle_shadow_probe"  # a top-level module no environment has


def _bundle(tmp_path: Path, clientapp: str, files: dict[str, str]) -> tuple[Run, Fab]:
    """An app bundle as a coordinator would build it: its pyproject names ``clientapp``."""
    pyproject = f"""
[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "fedchain"
version = "0.1.0"

[tool.flwr.app]
publisher = "fedchain"

[tool.flwr.app.components]
serverapp = "strategies.server_app:app"
clientapp = "{clientapp}"

[tool.flwr.app.config]
num-server-rounds = 1
"""
    content, _ = build_fab_from_files(
        {"pyproject.toml": pyproject.encode(), **{k: v.encode() for k, v in files.items()}}
    )
    fab = Fab(hashlib.sha256(content).hexdigest(), content, {})
    run = Run.create_empty(1)
    run.fab_id, run.fab_version, run.fab_hash = "fedchain/fedchain", "0.1.0", fab.hash_str
    return run, fab


def _marker_code(marker: Path) -> str:
    return f"from pathlib import Path\nPath({str(marker)!r}).write_text('the coordinator ran code here')\n"


@pytest.fixture()
def flwr_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "flwr-home"
    monkeypatch.setenv("FLWR_HOME", str(home))
    monkeypatch.setattr(sys, "path", list(sys.path))  # restored after: a loader that edits it is contained
    return home


def test_a_bundle_naming_its_own_clientapp_is_refused_and_none_of_its_code_runs(
    tmp_path: Path, flwr_home: Path
) -> None:
    marker = tmp_path / "ran"
    run, fab = _bundle(
        tmp_path,
        "fedchain_evil_client:app",
        {"fedchain_evil_client.py": _marker_code(marker) + "from flwr.clientapp import ClientApp\napp = ClientApp()\n"},
    )
    with pytest.raises(BundleRefusedError, match=r"fedchain_evil_client:app.*clients\.client_app:app"):
        MemberWorker("127.0.0.1:9094")._client_app(run, fab)
    assert not marker.exists()
    assert "fedchain_evil_client" not in sys.modules


def test_a_bundle_shipping_its_own_copy_of_the_members_code_gets_the_installed_one(
    tmp_path: Path, flwr_home: Path
) -> None:
    marker = tmp_path / "ran"
    run, fab = _bundle(
        tmp_path,
        DEFAULT_CLIENT_APP,
        {
            "clients/__init__.py": _marker_code(marker),
            "clients/client_app.py": _marker_code(marker),
            f"{SHADOW}.py": _marker_code(marker),
        },
    )
    app = MemberWorker("127.0.0.1:9094")._client_app(run, fab)

    assert app is importlib.import_module("clients.client_app").app  # the member's installed ClientApp
    assert not marker.exists()
    with pytest.raises(ImportError):  # a module only the bundle has is not importable afterwards
        importlib.import_module(SHADOW)
    assert not any(str(flwr_home) in entry for entry in sys.path)
