"""Provisioning: every key, certificate and wallet a federation needs, in one step.

:func:`provision_federation` is what an organization's admin runs once
(``fedchain provision DIR --members N``). It writes, with owner-only permissions for secrets
(files ``0600``, directories ``0700``) and never printing or logging a secret:

* a TLS certificate authority and the SuperLink's server certificate, whose subject alternative
  names are the addresses nodes will dial (IP addresses and DNS names);
* one SuperNode authentication key pair per member (ECDSA P-384 in OpenSSH format, which
  ``flower-supernode --auth-supernode-private-key`` and ``flwr supernode register`` read);
* the federation's CKKS contexts: the secret member context (one copy per member) and the
  coordinator's public context, which cannot decrypt;
* one chain wallet per member and one for the coordinator: an encrypted JSON keystore (scrypt)
  and a generated password file beside it;
* ``manifest.json``: which file goes to whom (admin, SuperLink, coordinator, each member), each
  file's purpose, mode and whether it is secret, and the public facts (wallet addresses, SuperNode
  public keys, certificate SANs). The manifest holds no secret.

Layout::

    DIR/manifest.json
    DIR/admin/ca.key, ca.crt                                   keeps the CA key offline
    DIR/superlink/ca.crt, server.crt, server.key               flower-superlink --ssl-*
    DIR/coordinator/coordinator.ckks, wallet.json, wallet.password
    DIR/members/member-<i>/ca.crt, supernode.key, supernode.pub, member.ckks,
                           wallet.json, wallet.password

:func:`provision_keys` (``fedchain provision keys DIR``) creates only the two CKKS contexts.

Example::

    from fedchain.provision import provision_federation
    federation = provision_federation("runs/fed", members=3)
    federation.members[0].address          # the member's chain address (public)
    federation.members[0].supernode_key    # runs/fed/members/member-0/supernode.key (0600)
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import ipaddress
import json
import logging
import os
import re
import secrets
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedchain._io import atomic_write_bytes, atomic_write_json
from fedchain._validation import Interval
from fedchain.errors import ConfigError

__all__ = [
    "DEFAULT_ADDRESSES",
    "MANIFEST_FILENAME",
    "MANIFEST_FORMAT",
    "MemberBundle",
    "ProvisionedFederation",
    "provision_federation",
    "provision_keys",
    "read_wallet",
]

log = logging.getLogger(__name__)

#: Subject alternative names of the SuperLink certificate unless told otherwise: loopback.
DEFAULT_ADDRESSES: tuple[str, ...] = ("127.0.0.1", "localhost")
MANIFEST_FILENAME = "manifest.json"
MANIFEST_FORMAT = "fedchain-provision/1"
#: scrypt work factor of the wallet keystores (geth's "standard" setting: about 0.7 s to open).
SCRYPT_N = 2**18
_SECRET_MODE = 0o600
_PUBLIC_MODE = 0o644
_DIR_MODE = 0o700
_DNS_NAME = re.compile(
    r"(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)


def provision_keys(directory: str | Path, *, scoring: bool = False) -> dict[str, Path]:
    """Create ``member.ckks`` (secret, 0600) and ``coordinator.ckks`` (public) in ``directory``.

    Args:
        directory: where to write; created with mode 0700 if missing.
        scoring: use the parameters with one multiplicative level (encrypted scoring), else the
            cheaper addition-only parameters.

    Returns:
        ``{"member": path, "coordinator": path}``.

    Example::

        paths = provision_keys("runs/keys", scoring=False)
        paths["coordinator"]  # runs/keys/coordinator.ckks
    """
    from fedchain import crypto

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True, mode=_DIR_MODE)
    secret = crypto.create_secret_context(crypto.SCORING if scoring else crypto.AGGREGATION)
    paths = {"member": directory / "member.ckks", "coordinator": directory / "coordinator.ckks"}
    crypto.write_context(paths["member"], crypto.export_secret_context(secret), secret=True)
    crypto.write_context(paths["coordinator"], crypto.export_public_context(secret), secret=False)
    return paths


# ------------------------------------------------------------------------------------ results


@dataclass(frozen=True)
class MemberBundle:
    """What one member organization receives (all paths inside its own directory).

    Attributes:
        member_id: the member's stable number (its ``member-id`` node config).
        directory: ``DIR/members/member-<id>``; everything below goes to this member only.
        address: the member's chain address (public; the admin registers it on chain).
        ca_certificate: the federation CA certificate (``--root-certificates``).
        supernode_key: SuperNode authentication private key, OpenSSH format (secret).
        supernode_public_key: its public key (``flwr supernode register``).
        ckks_context: the federation's secret CKKS context (``ckks-context`` node config; secret).
        wallet_keystore: encrypted JSON keystore of the member's chain key (secret).
        wallet_password_file: the keystore's password (secret).
    """

    member_id: int
    directory: Path
    address: str
    ca_certificate: Path
    supernode_key: Path
    supernode_public_key: Path
    ckks_context: Path
    wallet_keystore: Path
    wallet_password_file: Path


@dataclass(frozen=True)
class ProvisionedFederation:
    """A provisioned federation directory, as written by :func:`provision_federation`.

    Attributes:
        directory: the root directory.
        manifest_path: ``DIR/manifest.json``.
        addresses: subject alternative names of the SuperLink certificate.
        ca_certificate: ``DIR/admin/ca.crt`` (public).
        ca_key: ``DIR/admin/ca.key`` (secret; stays with the admin).
        superlink_ca_certificate: ``DIR/superlink/ca.crt`` (``--ssl-ca-certfile``).
        superlink_certificate: ``DIR/superlink/server.crt`` (``--ssl-certfile``).
        superlink_key: ``DIR/superlink/server.key`` (``--ssl-keyfile``; secret).
        coordinator_context: ``DIR/coordinator/coordinator.ckks`` (public CKKS context).
        coordinator_address: the coordinator's chain address (gets the recorder role).
        coordinator_keystore: ``DIR/coordinator/wallet.json`` (secret).
        coordinator_password_file: ``DIR/coordinator/wallet.password`` (secret).
        members: one bundle per member, by member id.
    """

    directory: Path
    manifest_path: Path
    addresses: tuple[str, ...]
    ca_certificate: Path
    ca_key: Path
    superlink_ca_certificate: Path
    superlink_certificate: Path
    superlink_key: Path
    coordinator_context: Path
    coordinator_address: str
    coordinator_keystore: Path
    coordinator_password_file: Path
    members: tuple[MemberBundle, ...]

    @property
    def coordinator_dir(self) -> Path:
        """The coordinator's directory (``he-keys-dir`` of the run: it holds no secret CKKS key)."""
        return self.coordinator_context.parent

    @classmethod
    def load(cls, directory: str | Path) -> ProvisionedFederation:
        """Read a provisioned directory back from its manifest.

        Raises:
            ConfigError: ``directory`` holds no fedchain manifest.

        Example::

            federation = ProvisionedFederation.load("runs/fed")
            [m.address for m in federation.members]
        """
        root = Path(directory)
        manifest_path = root / MANIFEST_FILENAME
        try:
            manifest = json.loads(manifest_path.read_text("utf-8"))
        except (OSError, ValueError):
            raise ConfigError(
                "directory",
                f"a directory provisioned by `fedchain provision` (with {MANIFEST_FILENAME})",
                str(root),
            ) from None
        if manifest.get("format") != MANIFEST_FORMAT:
            raise ConfigError("manifest format", repr(MANIFEST_FORMAT), manifest.get("format"))
        return _from_manifest(root, manifest)


# ------------------------------------------------------------------------------ provisioning


def provision_federation(
    directory: str | Path,
    *,
    members: int,
    addresses: Sequence[str] = DEFAULT_ADDRESSES,
    scoring: bool = False,
    valid_days: int = 365,
    overwrite: bool = False,
) -> ProvisionedFederation:
    """Create a federation's TLS, SuperNode, CKKS and wallet material and its manifest.

    Args:
        directory: where to write (created 0700). It must not already hold a manifest unless
            ``overwrite``: provisioning twice would replace keys members already hold.
        members: number of member organizations (member ids ``0 .. members-1``).
        addresses: the addresses nodes use to reach the SuperLink: IP addresses and DNS names,
            written as the server certificate's subject alternative names.
        scoring: CKKS parameters with one multiplicative level (encrypted scoring) instead of
            the cheaper addition-only ones.
        valid_days: validity of the CA and server certificates, in days.
        overwrite: replace an existing provisioned directory (every key is new; directories of
            members beyond ``members`` are deleted).

    Returns:
        The provisioned federation (paths, addresses).

    Raises:
        ConfigError: an argument is invalid, or ``directory`` is already provisioned.

    Example::

        federation = provision_federation("runs/fed", members=3, addresses=["127.0.0.1", "superlink"])
        federation.superlink_certificate   # runs/fed/superlink/server.crt
    """
    members = Interval(int, 1, None, closed="left").check("members", members)
    valid_days = Interval(int, 1, None, closed="left").check("valid_days", valid_days)
    sans = _check_addresses(addresses)
    root = Path(directory)
    if (root / MANIFEST_FILENAME).exists() and not overwrite:
        raise ConfigError(
            "directory",
            "a directory that is not provisioned yet",
            str(root),
            hint="It already holds a manifest: replace every key in it with overwrite=True (--force).",
        )
    root.mkdir(parents=True, exist_ok=True, mode=_DIR_MODE)
    os.chmod(root, _DIR_MODE)
    files: list[dict[str, Any]] = []

    def write(path: Path, data: bytes, *, recipient: str, secret: bool, purpose: str) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True, mode=_DIR_MODE)
        atomic_write_bytes(path, data, mode=_SECRET_MODE if secret else _PUBLIC_MODE)
        files.append(_file_entry(root, path, recipient, secret, purpose))
        return path

    # TLS: a CA kept by the admin, and the SuperLink's server certificate.
    ca_key, ca_cert = _make_ca(valid_days)
    server_key, server_cert = _make_server_certificate(ca_key, ca_cert, sans, valid_days)
    ca_pem = _cert_pem(ca_cert)
    ca_key_path = write(root / "admin/ca.key", _key_pem(ca_key), recipient="admin", secret=True, purpose="TLS CA key")
    ca_path = write(root / "admin/ca.crt", ca_pem, recipient="admin", secret=False, purpose="TLS CA certificate")
    sl_ca = write(root / "superlink/ca.crt", ca_pem, recipient="superlink", secret=False, purpose="--ssl-ca-certfile")
    sl_cert = write(
        root / "superlink/server.crt",
        _cert_pem(server_cert),
        recipient="superlink",
        secret=False,
        purpose="--ssl-certfile (SAN: " + ", ".join(sans) + ")",
    )
    sl_key = write(
        root / "superlink/server.key", _key_pem(server_key), recipient="superlink", secret=True, purpose="--ssl-keyfile"
    )

    # CKKS: one secret context for all members, a public one for the coordinator.
    from fedchain import crypto

    context = crypto.create_secret_context(crypto.SCORING if scoring else crypto.AGGREGATION)
    public_bytes = crypto.export_public_context(context)
    secret_bytes = crypto.export_secret_context(context)
    coordinator_dir = root / "coordinator"
    coordinator_dir.mkdir(parents=True, exist_ok=True, mode=_DIR_MODE)
    coordinator_ckks = coordinator_dir / "coordinator.ckks"
    crypto.write_context(coordinator_ckks, public_bytes, secret=False)
    files.append(_file_entry(root, coordinator_ckks, "coordinator", False, "public CKKS context (he-keys-dir)"))

    coordinator_wallet = _write_wallet(root, coordinator_dir, "coordinator", files)

    members_dir = root / "members"
    members_dir.mkdir(exist_ok=True, mode=_DIR_MODE)
    wanted = {f"member-{member_id}" for member_id in range(members)}
    for stale in sorted(members_dir.glob("member-*")):  # overwrite: members beyond the new count go too
        if stale.name not in wanted and stale.is_dir():
            shutil.rmtree(stale)
    bundles: list[MemberBundle] = []
    for member_id in range(members):
        recipient = f"member-{member_id}"
        home = members_dir / recipient
        home.mkdir(exist_ok=True, mode=_DIR_MODE)
        ca_copy = write(home / "ca.crt", ca_pem, recipient=recipient, secret=False, purpose="--root-certificates")
        private_ssh, public_ssh = _make_supernode_keys(comment=f"fedchain-{recipient}")
        key_path = write(
            home / "supernode.key",
            private_ssh,
            recipient=recipient,
            secret=True,
            purpose="--auth-supernode-private-key",
        )
        pub_path = write(
            home / "supernode.pub",
            public_ssh,
            recipient=recipient,
            secret=False,
            purpose="flwr supernode register (the admin registers it)",
        )
        ckks_path = home / "member.ckks"
        crypto.write_context(ckks_path, secret_bytes, secret=True)
        files.append(_file_entry(root, ckks_path, recipient, True, "secret CKKS context (ckks-context node config)"))
        wallet = _write_wallet(root, home, recipient, files)
        bundles.append(
            MemberBundle(
                member_id=member_id,
                directory=home,
                address=wallet[0],
                ca_certificate=ca_copy,
                supernode_key=key_path,
                supernode_public_key=pub_path,
                ckks_context=ckks_path,
                wallet_keystore=wallet[1],
                wallet_password_file=wallet[2],
            )
        )

    manifest = _manifest(sans, scoring, valid_days, coordinator_wallet[0], bundles, files)
    manifest_path = root / MANIFEST_FILENAME
    atomic_write_json(manifest_path, manifest, mode=_PUBLIC_MODE)
    log.info("provisioned %d members in %s", members, root)
    return ProvisionedFederation(
        directory=root,
        manifest_path=manifest_path,
        addresses=tuple(sans),
        ca_certificate=ca_path,
        ca_key=ca_key_path,
        superlink_ca_certificate=sl_ca,
        superlink_certificate=sl_cert,
        superlink_key=sl_key,
        coordinator_context=coordinator_ckks,
        coordinator_address=coordinator_wallet[0],
        coordinator_keystore=coordinator_wallet[1],
        coordinator_password_file=coordinator_wallet[2],
        members=tuple(bundles),
    )


def read_wallet(keystore: str | Path, *, password: str | None = None, password_env: str | None = None) -> Any:
    """Open an encrypted keystore written by :func:`provision_federation`.

    The password is ``password``, else the environment variable ``password_env``, else the
    ``wallet.password`` file next to the keystore. Neither key nor password is ever logged.

    Args:
        keystore: path of the JSON keystore.
        password: the password itself.
        password_env: name of an environment variable holding the password.

    Returns:
        The ``eth_account`` ``LocalAccount`` (``.address``, ``.key``).

    Raises:
        ConfigError: the keystore is unreadable, no password is available, or it is wrong.

    Example::

        account = read_wallet("runs/fed/members/member-0/wallet.json")
        account.address
    """
    from eth_account import Account

    path = Path(keystore)
    try:
        keyfile = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        raise ConfigError("wallet-keystore", "a readable JSON keystore file", str(path)) from None
    secret = password
    if secret is None and password_env:
        secret = os.environ.get(password_env)
        if secret is None:
            raise ConfigError("wallet-password-env", "the name of a set environment variable", password_env)
    if secret is None:
        password_file = path.with_name("wallet.password")
        try:
            secret = password_file.read_text("utf-8").strip()
        except OSError:
            raise ConfigError(
                "wallet password", f"given, in an environment variable, or in {password_file}", None
            ) from None
    try:
        key = Account.decrypt(keyfile, secret)
    except ValueError:
        raise ConfigError("wallet password", "the keystore's password", "<hidden>") from None
    return Account.from_key(key)


# ---------------------------------------------------------------------------------- helpers


def _check_addresses(addresses: Sequence[str]) -> list[str]:
    if isinstance(addresses, str) or not addresses:
        raise ConfigError("addresses", "a non-empty list of IP addresses or DNS names", addresses)
    out: list[str] = []
    for address in addresses:
        try:
            ipaddress.ip_address(address)
        except ValueError:
            if not isinstance(address, str) or not _DNS_NAME.fullmatch(address):
                raise ConfigError("addresses", "IP addresses or DNS names (no port, no scheme)", address) from None
        if address not in out:
            out.append(address)
    return out


def _file_entry(root: Path, path: Path, recipient: str, secret: bool, purpose: str) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "path": path.relative_to(root).as_posix(),
        "recipient": recipient,
        "secret": secret,
        "mode": oct(_SECRET_MODE if secret else _PUBLIC_MODE),
        "purpose": purpose,
    }
    if not secret:
        entry["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    return entry


def _write_wallet(root: Path, home: Path, recipient: str, files: list[dict[str, Any]]) -> tuple[str, Path, Path]:
    """A fresh chain key as an encrypted keystore plus its generated password (both 0600)."""
    from eth_account import Account

    account = Account.create()
    password = secrets.token_urlsafe(24)
    keystore = Account.encrypt(account.key, password, kdf="scrypt", iterations=SCRYPT_N)
    keystore_path = home / "wallet.json"
    password_path = home / "wallet.password"
    atomic_write_json(keystore_path, keystore, mode=_SECRET_MODE)
    atomic_write_bytes(password_path, (password + "\n").encode(), mode=_SECRET_MODE)
    files.append(_file_entry(root, keystore_path, recipient, True, "chain wallet (encrypted keystore, scrypt)"))
    files.append(_file_entry(root, password_path, recipient, True, "the wallet keystore's password"))
    return str(account.address), keystore_path, password_path


def _manifest(
    sans: list[str],
    scoring: bool,
    valid_days: int,
    coordinator_address: str,
    bundles: list[MemberBundle],
    files: list[dict[str, Any]],
) -> dict[str, Any]:
    def owned(recipient: str) -> list[str]:
        return [entry["path"] for entry in files if entry["recipient"] == recipient]

    recipients: dict[str, Any] = {
        "admin": {
            "role": "runs the provisioner; keeps the CA key offline; registers SuperNode keys and wallets",
            "files": owned("admin"),
        },
        "superlink": {
            "role": "the Flower SuperLink (TLS server, SuperNode authentication)",
            "files": owned("superlink"),
        },
        "coordinator": {
            "role": "the ServerApp: public CKKS context (cannot decrypt) and the recorder wallet",
            "address": coordinator_address,
            "files": owned("coordinator"),
        },
    }
    for bundle in bundles:
        recipient = f"member-{bundle.member_id}"
        recipients[recipient] = {
            "role": "a member organization's SuperNode",
            "member_id": bundle.member_id,
            "address": bundle.address,
            "supernode_public_key": bundle.supernode_public_key.read_text("utf-8").strip(),
            "files": owned(recipient),
        }
    return {
        "format": MANIFEST_FORMAT,
        "created": _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat(),
        "members": len(bundles),
        "tls": {"subject_alternative_names": sans, "valid_days": valid_days},
        "ckks": "scoring" if scoring else "aggregation",
        "recipients": recipients,
        "files": files,
    }


def _from_manifest(root: Path, manifest: dict[str, Any]) -> ProvisionedFederation:
    recipients = manifest["recipients"]
    bundles = []
    for member_id in range(int(manifest["members"])):
        home = root / "members" / f"member-{member_id}"
        bundles.append(
            MemberBundle(
                member_id=member_id,
                directory=home,
                address=recipients[f"member-{member_id}"]["address"],
                ca_certificate=home / "ca.crt",
                supernode_key=home / "supernode.key",
                supernode_public_key=home / "supernode.pub",
                ckks_context=home / "member.ckks",
                wallet_keystore=home / "wallet.json",
                wallet_password_file=home / "wallet.password",
            )
        )
    return ProvisionedFederation(
        directory=root,
        manifest_path=root / MANIFEST_FILENAME,
        addresses=tuple(manifest["tls"]["subject_alternative_names"]),
        ca_certificate=root / "admin/ca.crt",
        ca_key=root / "admin/ca.key",
        superlink_ca_certificate=root / "superlink/ca.crt",
        superlink_certificate=root / "superlink/server.crt",
        superlink_key=root / "superlink/server.key",
        coordinator_context=root / "coordinator/coordinator.ckks",
        coordinator_address=recipients["coordinator"]["address"],
        coordinator_keystore=root / "coordinator/wallet.json",
        coordinator_password_file=root / "coordinator/wallet.password",
        members=tuple(bundles),
    )


# ---- X.509 and OpenSSH material (cryptography) -------------------------------------------


def _make_ca(valid_days: int) -> tuple[Any, Any]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP384R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fedchain federation CA")])
    now = _dt.datetime.now(_dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(minutes=5))
        .not_valid_after(now + _dt.timedelta(days=valid_days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA384())
    )
    return key, cert


def _make_server_certificate(ca_key: Any, ca_cert: Any, sans: list[str], valid_days: int) -> tuple[Any, Any]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP384R1())
    names: list[x509.GeneralName] = []
    for address in sans:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(address)))
        except ValueError:
            names.append(x509.DNSName(address))
    now = _dt.datetime.now(_dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, sans[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(minutes=5))
        .not_valid_after(now + _dt.timedelta(days=valid_days))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA384())
    )
    return key, cert


def _make_supernode_keys(*, comment: str) -> tuple[bytes, bytes]:
    """ECDSA P-384 key pair in OpenSSH format (what ``ssh-keygen -t ecdsa -b 384`` writes)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP384R1())
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return private, public + f" {comment}\n".encode()


def _key_pem(key: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


def _cert_pem(cert: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return bytes(cert.public_bytes(serialization.Encoding.PEM))
