"""The key ceremony through the command line, as docs/joining.md tells each party to run it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from fedchain import crypto
from fedchain.cli import app
from fedchain.provision import ProvisionedFederation

runner = CliRunner()


def _ok(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_admin_members_and_key_holder_run_the_ceremony_and_errors_are_one_line(tmp_path: Path) -> None:
    fed = tmp_path / "fed"
    out = _ok("provision", str(fed), "--members", "3")
    assert "fedchain member enroll" in out
    federation = ProvisionedFederation.load(fed)
    homes = [bundle.directory for bundle in federation.members]

    # Each member, on its own machine: a wallet of its own, a transport key, a signed enrollment.
    for home in homes:
        assert "send" in _ok("member", "enroll", str(home))
    addresses = [json.loads((home / "enrollment.json").read_text())["address"] for home in homes]

    # The admin records the enrollments and relays them; the key holder (member 0) generates the key.
    _ok("provision", "collect", str(fed), *[str(home / "enrollment.json") for home in homes])
    published = tmp_path / "published"
    keygen = [
        *("member", "keygen", str(homes[0]), "--enrollment", str(fed / "ceremony" / "enrollments")),
        *("--out", str(published), "--member", addresses[1], "--member", addresses[2]),
    ]
    assert f"key holder      {addresses[0]}" in _ok(*keygen)
    _ok("provision", "relay", str(fed), str(published))
    shares = fed / "ceremony" / "shares"
    public = fed / "coordinator" / "coordinator.ckks"

    # A member opening another member's share, or naming the wrong key holder: one line, exit 1.
    wrong = runner.invoke(
        app,
        [
            *("member", "open-key", str(homes[2]), "--share", str(shares / "member-1.share.json")),
            *("--public-context", str(public), "--key-holder", addresses[0]),
        ],
    )
    assert wrong.exit_code == 1 and "Traceback" not in wrong.output
    assert f"this share is for {addresses[1]}, not for this member ({addresses[2]})" in wrong.output
    impostor = runner.invoke(
        app,
        [
            *("member", "open-key", str(homes[1]), "--share", str(shares / "member-1.share.json")),
            *("--public-context", str(public), "--key-holder", addresses[2]),
        ],
    )
    assert impostor.exit_code == 1 and f"not by the key holder {addresses[2]}" in impostor.output

    for member in (1, 2):
        _ok(
            *("member", "open-key", str(homes[member]), "--share", str(shares / f"member-{member}.share.json")),
            *("--public-context", str(public), "--key-holder", addresses[0]),
        )
    federation = ProvisionedFederation.load(fed)
    assert federation.enrolled and federation.keyed
    assert [bundle.address for bundle in federation.members] == addresses
    x = np.arange(10.0)
    a, b = (crypto.load_member_context(crypto.read_context(bundle.ckks_context)) for bundle in federation.members[1:])
    np.testing.assert_allclose(crypto.decrypt_update(b, crypto.encrypt_update(a, x), 10), x, atol=1e-4)


@pytest.mark.parametrize("command", ["enroll", "keygen", "open-key"])
def test_a_member_directory_without_its_files_is_named(tmp_path: Path, command: str) -> None:
    args = {
        "enroll": [],
        "keygen": ["--enrollment", str(tmp_path), "--out", str(tmp_path / "out")],
        "open-key": ["--share", "s.json", "--public-context", "c.ckks", "--key-holder", "0x" + "11" * 20],
    }[command]
    result = runner.invoke(app, ["member", command, str(tmp_path), *args])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "MEMBER_DIR argument must be" in result.output
