"""Provisioning: TLS, SuperNode keys and the coordinator wallet, with a manifest and safe modes; members enroll."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_ssh_private_key, load_ssh_public_key

from fedchain import crypto
from fedchain.errors import ConfigError, CryptoError
from fedchain.provision import (
    MANIFEST_FORMAT,
    ProvisionedFederation,
    provision_federation,
    provision_keys,
    read_wallet,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def federation(provisioned: ProvisionedFederation) -> ProvisionedFederation:
    return provisioned


@pytest.fixture(scope="module")
def accounts(federation: ProvisionedFederation) -> dict[int, object]:
    """Each member's wallet, opened once (scrypt takes about a second)."""
    return {bundle.member_id: read_wallet(bundle.wallet_keystore) for bundle in federation.members}


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


#: What a member creates in its own directory during the key ceremony (never the admin's, never listed).
MEMBER_MADE = {"wallet.json", "wallet.password", "transport.key", "enrollment.json", "member.ckks", "ckks-key.json"}


def test_every_file_is_in_the_manifest_with_its_recipient_and_mode(federation: ProvisionedFederation) -> None:
    manifest = json.loads(federation.manifest_path.read_text())
    assert manifest["format"] == MANIFEST_FORMAT and manifest["members"] == 3
    on_disk = {
        p.relative_to(federation.directory).as_posix()
        for p in federation.directory.rglob("*")
        if p.is_file() and p.name != "manifest.json"
    }
    made_by_members = {
        path
        for path in on_disk
        if path.startswith("members/") and (path.split("/")[2] in MEMBER_MADE or "/published/" in path)
    }
    assert len(made_by_members) >= 3 * len(MEMBER_MADE)
    listed = {entry["path"]: entry for entry in manifest["files"]}
    assert set(listed) == on_disk - made_by_members
    for path, entry in listed.items():
        mode = _mode(federation.directory / path)
        assert oct(mode) == entry["mode"]
        assert mode == (0o600 if entry["secret"] else 0o644), path
        if not entry["secret"]:
            assert entry["sha256"] == hashlib.sha256((federation.directory / path).read_bytes()).hexdigest()
        recipient = entry["recipient"]
        assert path in manifest["recipients"][recipient]["files"]
        if recipient.startswith("member-"):
            assert path.startswith(f"members/{recipient}/")  # a member's files are in its own directory
    secrets = {e["path"] for e in manifest["files"] if e["secret"]}
    assert {"admin/ca.key", "superlink/server.key", "coordinator/wallet.json", "coordinator/wallet.password"} <= secrets
    for member in range(3):
        assert f"members/member-{member}/supernode.key" in secrets
        for name in MEMBER_MADE:  # the admin never wrote a member's wallet or CKKS key
            assert f"members/member-{member}/{name}" not in listed
    for directory in [federation.directory, *[p for p in federation.directory.rglob("*") if p.is_dir()]]:
        if "published" not in directory.parts:  # the key holder's outbox: public files only
            assert _mode(directory) == 0o700, directory


def test_the_manifest_holds_no_secret(federation: ProvisionedFederation, accounts: dict[int, Any]) -> None:
    text = federation.manifest_path.read_text()
    for bundle in federation.members:
        password = bundle.wallet_password_file.read_text().strip()
        assert password not in text
        key = accounts[bundle.member_id].key.hex()
        assert key.removeprefix("0x") not in text
        assert bundle.supernode_key.read_text().splitlines()[1] not in text
    assert federation.superlink_key.read_text().splitlines()[1] not in text


def test_server_certificate_is_issued_by_the_ca_for_the_given_addresses(federation: ProvisionedFederation) -> None:
    ca = x509.load_pem_x509_certificate(federation.ca_certificate.read_bytes())
    server = x509.load_pem_x509_certificate(federation.superlink_certificate.read_bytes())
    server.verify_directly_issued_by(ca)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert not server.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    sans = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")]
    assert sans.get_values_for_type(x509.DNSName) == ["superlink"]
    key = load_pem_private_key(federation.superlink_key.read_bytes(), password=None)
    assert key.public_key().public_numbers() == server.public_key().public_numbers()  # type: ignore[union-attr]
    for bundle in federation.members:
        assert bundle.ca_certificate.read_bytes() == federation.ca_certificate.read_bytes()
    assert federation.superlink_ca_certificate.read_bytes() == federation.ca_certificate.read_bytes()


def test_supernode_keys_are_openssh_p256_pairs_flower_accepts(federation: ProvisionedFederation) -> None:
    from flwr.cli.supernode.register import try_load_public_key

    publics = set()
    for bundle in federation.members:
        private = load_ssh_private_key(bundle.supernode_key.read_bytes(), password=None)
        public = load_ssh_public_key(bundle.supernode_public_key.read_bytes())
        assert isinstance(private, ec.EllipticCurvePrivateKey) and isinstance(private.curve, ec.SECP256R1)
        assert private.public_key().public_numbers() == public.public_numbers()  # type: ignore[union-attr]
        assert bundle.supernode_public_key.read_text().startswith("ecdsa-sha2-nistp256 ")
        publics.add(try_load_public_key(bundle.supernode_public_key))  # what `flwr supernode register` reads
    assert len(publics) == 3


def test_wallets_open_with_their_password_and_match_the_manifest(
    federation: ProvisionedFederation, accounts: dict[int, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = json.loads(federation.manifest_path.read_text())
    addresses = set()
    for bundle in federation.members:
        assert accounts[bundle.member_id].address == bundle.address
        assert manifest["recipients"][f"member-{bundle.member_id}"]["address"] == bundle.address
        keystore = json.loads(bundle.wallet_keystore.read_text())
        assert keystore["crypto"]["kdf"] == "scrypt" and keystore["crypto"]["kdfparams"]["n"] == 2**18
        addresses.add(bundle.address)
    assert len(addresses) == 3 and federation.coordinator_address not in addresses
    bundle = federation.members[0]
    monkeypatch.setenv("WALLET_PW", bundle.wallet_password_file.read_text().strip())
    assert read_wallet(bundle.wallet_keystore, password_env="WALLET_PW").address == bundle.address
    with pytest.raises(ConfigError) as info:
        read_wallet(bundle.wallet_keystore, password="wrong")
    assert str(info.value) == "The 'wallet password' parameter must be the keystore's password. Got '<hidden>'."
    with pytest.raises(ConfigError, match="'wallet-password-env' parameter must be the name of a set"):
        read_wallet(bundle.wallet_keystore, password_env="FEDCHAIN_NOT_SET_ANYWHERE")


def test_ckks_custody_members_hold_the_secret_the_coordinator_cannot_decrypt(
    federation: ProvisionedFederation,
) -> None:
    # Attacks on the ceremony itself (forged enrollments, tampered shares): tests/crypto/test_key_ceremony.py.
    secret = crypto.load_member_context(crypto.read_context(federation.members[0].ckks_context))
    public = crypto.load_coordinator_context(crypto.read_context(federation.coordinator_context))
    assert not public.has_secret_key()
    assert not any(federation.coordinator_dir.glob("member.ckks"))
    with pytest.raises(CryptoError):
        crypto.load_member_context(crypto.read_context(federation.coordinator_context))
    contexts = {bundle.ckks_context.read_bytes() for bundle in federation.members}
    assert len(contexts) == 1  # one federation key: member 0 generated it, the others opened their shares
    assert secret.has_secret_key()
    manifest = json.loads(federation.manifest_path.read_text())
    assert manifest["ckks_key"]["key_holder"] == federation.members[0].address
    assert manifest["ckks_key"]["shares"] == ["member-1", "member-2"]


def test_a_freshly_provisioned_directory_has_no_ckks_key_and_no_member_wallet(tmp_path: Path) -> None:
    fresh = provision_federation(tmp_path / "fed", members=2)
    assert not fresh.enrolled and not fresh.keyed
    assert [bundle.address for bundle in fresh.members] == ["", ""]
    names = {p.name for p in fresh.directory.rglob("*") if p.is_file()}
    assert not names & {"member.ckks", "coordinator.ckks", "transport.key"}
    assert [p.parent.name for p in fresh.directory.rglob("wallet.json")] == ["coordinator"]
    about = json.loads(fresh.members[1].federation_file.read_text())
    assert about == {"federation_id": fresh.federation_id, "member_id": 1, "ckks": "aggregation"}
    assert len(fresh.federation_id) == 64


def test_load_reads_back_what_was_provisioned(federation: ProvisionedFederation) -> None:
    assert ProvisionedFederation.load(federation.directory) == federation


def test_provisioning_twice_is_refused_unless_forced(federation: ProvisionedFederation) -> None:
    with pytest.raises(ConfigError, match="already holds a manifest"):
        provision_federation(federation.directory, members=3)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"members": 0}, "The 'members' parameter must be an int in [1, inf). Got 0."),
        ({"members": 2, "addresses": []}, "The 'addresses' parameter must be a non-empty list"),
        ({"members": 2, "addresses": ["https://x:9093"]}, "The 'addresses' parameter must be IP addresses or DNS"),
        ({"members": 2, "valid_days": 0}, "The 'valid_days' parameter must be an int in [1, inf). Got 0."),
    ],
)
def test_invalid_options_are_named(tmp_path: Path, kwargs: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ConfigError) as info:
        provision_federation(tmp_path / "x", **kwargs)
    assert str(info.value).startswith(message)
    assert not (tmp_path / "x").exists()  # nothing written before validation passed


def test_provision_keys_still_writes_the_two_contexts_for_simulations(tmp_path: Path) -> None:
    paths = provision_keys(tmp_path / "keys", scoring=False)
    assert _mode(paths["member"]) == 0o600 and _mode(paths["coordinator"]) == 0o644


def test_the_script_provisions_and_prints_no_secret(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            *(sys.executable, "-m", "fedchain.deployment", "provision", str(tmp_path / "fed"), "--members", "2"),
            "--local-ceremony",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    federation = ProvisionedFederation.load(tmp_path / "fed")
    output = done.stdout + done.stderr
    assert "manifest" in output and "key ceremony" in output
    assert federation.enrolled and federation.keyed
    for bundle in federation.members:
        assert bundle.wallet_password_file.read_text().strip() not in output
        assert bundle.supernode_key.read_text().splitlines()[1] not in output
    again = subprocess.run(
        [sys.executable, "-m", "fedchain.deployment", "provision", str(tmp_path / "fed"), "--members", "2"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert again.returncode == 2 and "already holds a manifest" in again.stderr


def test_overwrite_replaces_every_key_and_drops_members_beyond_the_new_count(tmp_path: Path) -> None:
    first = provision_federation(tmp_path / "fed", members=2)
    old_ca = first.ca_certificate.read_bytes()
    old_supernode = first.members[0].supernode_key.read_bytes()
    second = provision_federation(tmp_path / "fed", members=1, overwrite=True)
    assert not (tmp_path / "fed" / "members" / "member-1").exists()
    assert second.members[0].supernode_key.read_bytes() != old_supernode
    assert second.federation_id != first.federation_id
    assert second.ca_certificate.read_bytes() != old_ca
    manifest = json.loads(second.manifest_path.read_text())
    on_disk = {p.relative_to(second.directory).as_posix() for p in second.directory.rglob("*") if p.is_file()}
    assert on_disk - {"manifest.json"} == {entry["path"] for entry in manifest["files"]}
