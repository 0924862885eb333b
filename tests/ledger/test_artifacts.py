"""The committed artifacts match the Solidity sources (hash always; bytecode when Node is set up)."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from fedchain.ledger._abi import CONTRACT_NAMES, load_artifact

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = ROOT / "contracts"
NODE_MODULES = CONTRACTS / "node_modules"


def own_source_hashes() -> dict[str, str]:
    return {
        f"contracts/src/{p.name}": hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((CONTRACTS / "src").glob("*.sol"))
    }


@pytest.mark.parametrize("name", CONTRACT_NAMES)
def test_artifact_records_the_current_sources(name: str) -> None:
    artifact = load_artifact(name)
    hashes = own_source_hashes()
    assert artifact["sources"] == hashes, "sources changed: run `make contracts` and commit the artifacts"
    lines = "".join(f"{k.removeprefix('contracts/')}:{v}\n" for k, v in sorted(hashes.items()))
    assert artifact["sourceHash"] == hashlib.sha256(lines.encode()).hexdigest()
    package = json.loads((CONTRACTS / "package.json").read_text())
    assert artifact["compiler"]["version"].startswith(package["dependencies"]["solc"] + "+commit.")
    assert artifact["settings"]["evmVersion"] == "prague"
    assert artifact["settings"]["optimizer"]["enabled"] is True
    assert artifact["bytecode"].startswith("0x") and len(artifact["bytecode"]) > 1000


def test_openzeppelin_sources_match_when_installed() -> None:
    if not NODE_MODULES.is_dir():
        pytest.skip("contracts/node_modules is not installed (run `cd contracts && npm ci`)")
    for name in CONTRACT_NAMES:
        for path, digest in load_artifact(name)["dependencies"].items():
            assert hashlib.sha256((NODE_MODULES / path).read_bytes()).hexdigest() == digest, path


def test_recompiling_reproduces_the_committed_bytecode(tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not on PATH: cannot recompile (the source-hash test still ran)")
    if not (NODE_MODULES / "solc").is_dir():
        pytest.skip("contracts/node_modules is not installed (run `cd contracts && npm ci`)")
    subprocess.run(
        [node, str(ROOT / "scripts" / "compile_contracts.mjs")],
        cwd=CONTRACTS,
        env={"PATH": str(Path(node).parent), "FEDCHAIN_ARTIFACTS_DIR": str(tmp_path)},
        check=True,
        capture_output=True,
        timeout=120,
    )
    for name in CONTRACT_NAMES:
        fresh = json.loads((tmp_path / f"{name}.json").read_text())
        committed = load_artifact(name)
        assert fresh["bytecode"] == committed["bytecode"], f"{name}: run `make contracts`"
        assert fresh["deployedBytecode"] == committed["deployedBytecode"]
        assert fresh["abi"] == committed["abi"]
