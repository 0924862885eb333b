"""Provisioning: the admin's side of a federation (TLS, SuperNode keys, the coordinator's wallet).

:func:`provision_federation` is what the federation's admin runs once
(``fedchain provision DIR --members N``). It writes, with owner-only permissions for secrets
(files ``0600``, directories ``0700``) and never printing or logging a secret:

* a TLS certificate authority and the SuperLink's server certificate, whose subject alternative
  names are the addresses nodes will dial (IP addresses and DNS names); the federation id is the
  SHA-256 of the CA certificate (:func:`federation_id_of`);
* one SuperNode authentication key pair per member (ECDSA P-256 in OpenSSH format, which
  ``flower-supernode --auth-supernode-private-key`` and ``flwr supernode register`` read; the
  SuperLink verifies a signature with it on every Fleet call, see :func:`_make_supernode_keys`);
* the coordinator's chain wallet: an encrypted JSON keystore (scrypt) and a password file;
* ``manifest.json``: which file goes to whom (admin, SuperLink, coordinator, each member), each
  file's purpose, mode and whether it is secret, and the public facts (SuperNode public keys,
  certificate SANs, the federation id, the CKKS preset; member addresses once they enroll). The
  manifest holds no secret.

The admin creates **no CKKS key and no member wallet**. Each member generates its own wallet and
transport key and enrolls (``fedchain member enroll``); one member, the key holder, generates the
federation's CKKS key (``fedchain member keygen``) and seals it to each enrolled member; the admin
only relays what the members publish (:func:`record_enrollments`, :func:`relay_federation_key`;
see :mod:`fedchain.keyceremony` and docs/joining.md). The admin's and coordinator's directories
hold enrollments, sealed shares and the public ``coordinator.ckks``: nothing that decrypts.

Layout (a member's files travel to that member; the local launcher keeps them side by side)::

    DIR/manifest.json
    DIR/admin/ca.key, ca.crt                                   keeps the CA key offline
    DIR/superlink/ca.crt, server.crt, server.key               flower-superlink --ssl-*
    DIR/coordinator/wallet.json, wallet.password               + coordinator.ckks (relayed)
    DIR/ceremony/enrollments/member-<i>.json                   relayed to the key holder
    DIR/ceremony/shares/member-<i>.share.json                  relayed to member i
    DIR/members/member-<i>/ca.crt, supernode.key, supernode.pub, federation.json
        (the member adds wallet.json, wallet.password, transport.key, enrollment.json, member.ckks)

:func:`provision_keys` (``fedchain provision keys DIR``) creates both CKKS contexts in one place: for
simulations on one machine only, where one party plays every member.

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
    "MEMBER_FEDERATION_FILENAME",
    "MemberBundle",
    "ProvisionedFederation",
    "create_wallet",
    "federation_id_of",
    "provision_federation",
    "provision_keys",
    "read_wallet",
    "record_enrollments",
    "relay_federation_key",
    "wallet_password",
]

log = logging.getLogger(__name__)

#: Subject alternative names of the SuperLink certificate unless told otherwise: loopback.
DEFAULT_ADDRESSES: tuple[str, ...] = ("127.0.0.1", "localhost")
MANIFEST_FILENAME = "manifest.json"
MANIFEST_FORMAT = "fedchain-provision/2"
#: The public file in each member's directory: federation id, member id, CKKS preset.
MEMBER_FEDERATION_FILENAME = "federation.json"
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

    For simulations on one machine only (``fedchain run``, ``flwr run .``): whoever runs this holds
    the secret key. A federation of organizations uses the member key ceremony instead
    (:mod:`fedchain.keyceremony`), in which the admin never holds it.

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
    from fedchain.crypto.ceremony import generate_federation_context

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True, mode=_DIR_MODE)
    secret, public = generate_federation_context(crypto.SCORING if scoring else crypto.AGGREGATION)
    paths = {"member": directory / "member.ckks", "coordinator": directory / "coordinator.ckks"}
    crypto.write_context(paths["member"], secret, secret=True)
    crypto.write_context(paths["coordinator"], public, secret=False)
    return paths


# ------------------------------------------------------------------------------------ results


@dataclass(frozen=True)
class MemberBundle:
    """One member organization's directory (all paths inside it).

    Attributes:
        member_id: the member's stable number (its ``member-id`` node config).
        directory: ``DIR/members/member-<id>``; everything below goes to this member only.
        address: the member's chain address from its verified enrollment (public; the admin
            registers it on chain); ``""`` until the member has enrolled.
        ca_certificate: the federation CA certificate (``--root-certificates``).
        supernode_key: SuperNode authentication private key, OpenSSH format (secret).
        supernode_public_key: its public key (``flwr supernode register``).
        ckks_context: the federation's secret CKKS context (``ckks-context`` node config; secret),
            written by the member itself when it opens its share (or generates the key).
        wallet_keystore: encrypted JSON keystore of the member's chain key (secret; the member's own).
        wallet_password_file: the keystore's password (secret; the member's own).
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

    @property
    def enrollment(self) -> Path:
        """``enrollment.json``: the member's signed address and transport key (public; goes to the admin)."""
        return self.directory / "enrollment.json"

    @property
    def transport_key(self) -> Path:
        """``transport.key``: the member's X25519 key, encrypted with its wallet password (secret)."""
        return self.directory / "transport.key"

    @property
    def federation_file(self) -> Path:
        """``federation.json``: federation id, member id and CKKS preset, from the admin (public)."""
        return self.directory / MEMBER_FEDERATION_FILENAME


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
        coordinator_context: ``DIR/coordinator/coordinator.ckks`` (public CKKS context, published by
            the key holder and relayed by the admin).
        coordinator_address: the coordinator's chain address (gets the recorder role).
        coordinator_keystore: ``DIR/coordinator/wallet.json`` (secret).
        coordinator_password_file: ``DIR/coordinator/wallet.password`` (secret).
        members: one bundle per member, by member id.
        federation_id: SHA-256 (hex) of the CA certificate; enrollments and shares are bound to it.
        ckks_preset: ``"aggregation"`` or ``"scoring"``: the parameters the key holder must use.
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
    federation_id: str = ""
    ckks_preset: str = "aggregation"

    @property
    def ceremony_dir(self) -> Path:
        """``DIR/ceremony``: enrollments and sealed shares the admin relays (public material only)."""
        return self.directory / "ceremony"

    @property
    def enrolled(self) -> bool:
        """Whether every member's enrollment is recorded (their addresses are known)."""
        return all(bundle.address for bundle in self.members)

    @property
    def keyed(self) -> bool:
        """Whether the key ceremony is complete: public context relayed, every member holds the key."""
        return self.coordinator_context.is_file() and all(b.ckks_context.is_file() for b in self.members)

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
            raise ConfigError(
                "manifest format",
                repr(MANIFEST_FORMAT),
                manifest.get("format"),
                hint="Provisioned by an older fedchain, whose admin generated the CKKS key: provision again "
                "(--force) and run the member key ceremony.",
            )
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
    """Create the admin's material of a federation (TLS, SuperNode keys, coordinator wallet) and its manifest.

    No CKKS key and no member wallet: members create theirs and enroll (:mod:`fedchain.keyceremony`).

    Args:
        directory: where to write (created 0700). It must not already hold a manifest unless
            ``overwrite``: provisioning twice would replace keys members already hold.
        members: number of member organizations (member ids ``0 .. members-1``).
        addresses: the addresses nodes use to reach the SuperLink: IP addresses and DNS names,
            written as the server certificate's subject alternative names.
        scoring: ask the key holder for CKKS parameters with one multiplicative level (encrypted
            scoring) instead of the cheaper addition-only ones (recorded in the manifest and in
            each member's ``federation.json``).
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

    federation_id = federation_id_of(ca_pem)
    preset = "scoring" if scoring else "aggregation"
    coordinator_dir = root / "coordinator"
    coordinator_dir.mkdir(parents=True, exist_ok=True, mode=_DIR_MODE)
    # overwrite: the public context of the previous federation must not survive
    (coordinator_dir / "coordinator.ckks").unlink(missing_ok=True)
    coordinator_wallet = _write_wallet(root, coordinator_dir, "coordinator", files)
    if (root / "ceremony").exists():
        shutil.rmtree(root / "ceremony")
    for sub in ("ceremony", "ceremony/enrollments", "ceremony/shares"):
        (root / sub).mkdir(exist_ok=True, mode=_DIR_MODE)

    members_dir = root / "members"
    members_dir.mkdir(exist_ok=True, mode=_DIR_MODE)
    wanted = {f"member-{member_id}" for member_id in range(members)}
    for stale in sorted(members_dir.glob("member-*")):  # overwrite: every member starts afresh
        if stale.is_dir() and (overwrite or stale.name not in wanted):
            shutil.rmtree(stale)
    bundles: list[MemberBundle] = []
    for member_id in range(members):
        recipient = f"member-{member_id}"
        home = members_dir / recipient
        home.mkdir(exist_ok=True, mode=_DIR_MODE)
        write(home / "ca.crt", ca_pem, recipient=recipient, secret=False, purpose="--root-certificates")
        private_ssh, public_ssh = _make_supernode_keys(comment=f"fedchain-{recipient}")
        write(
            home / "supernode.key",
            private_ssh,
            recipient=recipient,
            secret=True,
            purpose="--auth-supernode-private-key",
        )
        write(
            home / "supernode.pub",
            public_ssh,
            recipient=recipient,
            secret=False,
            purpose="flwr supernode register (the admin registers it)",
        )
        about = {"federation_id": federation_id, "member_id": member_id, "ckks": preset}
        write(
            home / MEMBER_FEDERATION_FILENAME,
            (json.dumps(about, indent=2) + "\n").encode(),
            recipient=recipient,
            secret=False,
            purpose="federation id, member id and CKKS preset (fedchain member enroll / keygen read it)",
        )
        bundles.append(_bundle(home, member_id, ""))

    manifest = _manifest(sans, scoring, valid_days, coordinator_wallet[0], bundles, files, federation_id)
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
        coordinator_context=coordinator_dir / "coordinator.ckks",
        coordinator_address=coordinator_wallet[0],
        coordinator_keystore=coordinator_wallet[1],
        coordinator_password_file=coordinator_wallet[2],
        members=tuple(bundles),
        federation_id=federation_id,
        ckks_preset=preset,
    )


def federation_id_of(ca_certificate: bytes | str | Path) -> str:
    """The federation id: SHA-256 (hex) of the CA certificate's DER encoding.

    Every member holds the CA certificate, so each computes the id itself; enrollments and sealed
    key shares are bound to it and cannot be replayed into another federation.

    Args:
        ca_certificate: the PEM bytes, or the path of ``ca.crt``.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    pem = ca_certificate if isinstance(ca_certificate, bytes) else Path(ca_certificate).read_bytes()
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError:
        raise ConfigError("ca-certificate", "a PEM X.509 certificate (the federation's ca.crt)", None) from None
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def create_wallet(home: str | Path, *, password: str | None = None) -> tuple[str, Path, Path, bytes]:
    """A fresh chain key in ``home``: ``wallet.json`` (scrypt keystore) and ``wallet.password`` (both 0600).

    A member runs this on its own machine (``fedchain member enroll`` does when it finds no
    wallet): its key is never seen by the admin.

    Args:
        home: the directory (created 0700).
        password: the keystore password; a random one is generated when None.

    Returns:
        ``(address, keystore path, password file, private key bytes)``.
    """
    from fedchain.identity.wallet import account_from_key, encrypt_key, new_private_key

    home = Path(home)
    home.mkdir(parents=True, exist_ok=True, mode=_DIR_MODE)
    account = account_from_key(new_private_key())
    secret = password or secrets.token_urlsafe(24)
    keystore = encrypt_key(account.key, secret, iterations=SCRYPT_N)
    keystore_path = home / "wallet.json"
    password_path = home / "wallet.password"
    atomic_write_json(keystore_path, keystore, mode=_SECRET_MODE)
    atomic_write_bytes(password_path, (secret + "\n").encode(), mode=_SECRET_MODE)
    return str(account.address), keystore_path, password_path, bytes(account.key)


def wallet_password(keystore: str | Path, *, password: str | None = None, password_env: str | None = None) -> str:
    """The password of ``keystore``: ``password``, else ``$password_env``, else ``wallet.password`` beside it.

    Raises:
        ConfigError: no password is available.
    """
    if password is not None:
        return password
    if password_env:
        secret = os.environ.get(password_env)
        if secret is None:
            raise ConfigError("wallet-password-env", "the name of a set environment variable", password_env)
        return secret
    password_file = Path(keystore).with_name("wallet.password")
    try:
        return password_file.read_text("utf-8").strip()
    except OSError:
        raise ConfigError(
            "wallet password", f"given, in an environment variable, or in {password_file}", None
        ) from None


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
    from fedchain.identity.wallet import account_from_key, decrypt_key

    path = Path(keystore)
    try:
        keyfile = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        raise ConfigError("wallet-keystore", "a readable JSON keystore file", str(path)) from None
    secret = wallet_password(path, password=password, password_env=password_env)
    try:
        key = decrypt_key(keyfile, secret)
    except ValueError:
        raise ConfigError("wallet password", "the keystore's password", "<hidden>") from None
    return account_from_key(key)


# ------------------------------------------------------------------- the admin relays the key ceremony


def record_enrollments(directory: str | Path, enrollments: Sequence[str | Path]) -> ProvisionedFederation:
    """Check members' enrollments and record their addresses (the admin's step; nothing secret).

    Each enrollment must be for this federation, signed by the address it names, and name a
    provisioned member id; an address may hold one member slot only, and a recorded member cannot be
    re-enrolled under another address (provision again to replace a member). Accepted enrollments are
    copied to ``DIR/ceremony/enrollments/member-<id>.json`` (relayed to the key holder) and their
    addresses written into the manifest (the ledger registers them).

    Args:
        directory: the provisioned federation directory.
        enrollments: ``enrollment.json`` files the members sent.

    Returns:
        The federation, reloaded.

    Raises:
        CeremonyError: an enrollment is forged, altered or for another federation.
        ConfigError: an enrollment names no provisioned member, or takes another member's slot.
    """
    from fedchain.crypto.ceremony import Enrollment, verify_enrollment

    federation = ProvisionedFederation.load(directory)
    manifest = json.loads(federation.manifest_path.read_text("utf-8"))
    recipients = manifest["recipients"]
    taken = {
        r["address"].lower(): name for name, r in recipients.items() if name.startswith("member-") and r["address"]
    }
    for source in enrollments:
        enrollment = verify_enrollment(
            Enrollment.from_json(_read_json(Path(source), "enrollment")), federation_id=federation.federation_id
        )
        slot = f"member-{enrollment.member_id}"
        if enrollment.member_id is None or slot not in recipients:
            raise ConfigError("enrollment member_id", f"a provisioned member id (0..{manifest['members'] - 1})", slot)
        owner = taken.get(enrollment.address.lower())
        recorded = recipients[slot]["address"]
        if (owner is not None and owner != slot) or (recorded and recorded.lower() != enrollment.address.lower()):
            raise ConfigError(
                "enrollment",
                f"one address per member slot ({slot} is {recorded or 'free'}; {enrollment.address} holds "
                f"{owner or 'none'})",
                enrollment.address,
                hint="Re-enrolling a member under a new address needs a new provisioning (--force).",
            )
        target = federation.ceremony_dir / "enrollments" / f"{slot}.json"
        atomic_write_json(target, enrollment.to_json(), mode=_PUBLIC_MODE)
        recipients[slot]["address"] = enrollment.address
        recipients[slot]["transport_key"] = enrollment.transport_key
        taken[enrollment.address.lower()] = slot
        purpose = f"{slot}'s enrollment (relayed to the key holder)"
        _upsert_file(manifest, federation.directory, target, "admin", purpose)
    atomic_write_json(federation.manifest_path, manifest, mode=_PUBLIC_MODE)
    log.info("recorded %d enrollments in %s", len(enrollments), federation.directory)
    return ProvisionedFederation.load(directory)


def relay_federation_key(directory: str | Path, published: str | Path) -> ProvisionedFederation:
    """Install what the key holder published: the public context for the coordinator, a sealed share per member.

    ``published`` holds ``coordinator.ckks`` and ``shares/*.share.json`` (``fedchain member keygen
    --out``). The public context must hold no secret key; each share must be for this federation, for
    an enrolled member's address and transport key, and sealed with this public context. Shares go to
    ``DIR/ceremony/shares/member-<id>.share.json`` (the admin sends each to its member), the public
    context to ``DIR/coordinator/coordinator.ckks``. The admin can open none of them.

    Returns:
        The federation, reloaded.

    Raises:
        CryptoError: ``coordinator.ckks`` holds a secret key or is not a context.
        CeremonyError: a share is for another federation, an unknown member, or another public context.
    """
    from fedchain import crypto
    from fedchain.crypto.ceremony import SealedShare, context_fingerprint
    from fedchain.errors import CeremonyError

    federation = ProvisionedFederation.load(directory)
    source = Path(published)
    public = crypto.read_context(source / "coordinator.ckks")
    crypto.load_coordinator_context(public)  # refuses a context that carries a secret key
    fingerprint = context_fingerprint(public)
    manifest = json.loads(federation.manifest_path.read_text("utf-8"))
    members = {
        r["address"].lower(): (name, r.get("transport_key"))
        for name, r in manifest["recipients"].items()
        if name.startswith("member-") and r.get("address")
    }
    shares: dict[str, SealedShare] = {}
    key_holders = set()
    for path in sorted((source / "shares").glob("*.share.json")):
        share = SealedShare.from_json(_read_json(path, "sealed share"))
        if share.federation_id != federation.federation_id or share.public_context_sha256 != fingerprint:
            raise CeremonyError(f"{path.name}: sealed for another federation or another public context")
        slot, transport = members.get(share.recipient.lower(), (None, None))
        if slot is None or transport != share.recipient_key:
            raise CeremonyError(f"{path.name}: sealed to {share.recipient}, which is not an enrolled member's key")
        shares[slot] = share
        key_holders.add(share.sender)
    if len(key_holders) > 1:
        raise CeremonyError(f"shares from several key holders: {sorted(key_holders)}")
    shares_dir = federation.ceremony_dir / "shares"
    for stale in shares_dir.glob("*.share.json"):
        stale.unlink()
    for slot, share in sorted(shares.items()):
        target = shares_dir / f"{slot}.share.json"
        atomic_write_json(target, share.to_json(), mode=_PUBLIC_MODE)
        _upsert_file(manifest, federation.directory, target, "admin", f"{slot}'s sealed CKKS key (relay to {slot})")
    crypto.write_context(federation.coordinator_context, public, secret=False)
    purpose = "public CKKS context (he-keys-dir), published by the key holder"
    _upsert_file(manifest, federation.directory, federation.coordinator_context, "coordinator", purpose)
    manifest["ckks_key"] = {
        "key_holder": next(iter(key_holders), None),
        "public_context_sha256": fingerprint,
        "shares": sorted(shares),
    }
    atomic_write_json(federation.manifest_path, manifest, mode=_PUBLIC_MODE)
    log.info("relayed the federation key: %d sealed shares, public context %s", len(shares), fingerprint[:16])
    return ProvisionedFederation.load(directory)


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        raise ConfigError(what, "a readable JSON file", str(path)) from None


def _upsert_file(manifest: dict[str, Any], root: Path, path: Path, recipient: str, purpose: str) -> None:
    entry = _file_entry(root, path, recipient, False, purpose)
    files = [e for e in manifest["files"] if e["path"] != entry["path"]]
    manifest["files"] = [*files, entry]
    owned = manifest["recipients"][recipient]["files"]
    if entry["path"] not in owned:
        owned.append(entry["path"])


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
    address, keystore_path, password_path, _ = create_wallet(home)
    files.append(_file_entry(root, keystore_path, recipient, True, "chain wallet (encrypted keystore, scrypt)"))
    files.append(_file_entry(root, password_path, recipient, True, "the wallet keystore's password"))
    return address, keystore_path, password_path


def _bundle(home: Path, member_id: int, address: str) -> MemberBundle:
    return MemberBundle(
        member_id=member_id,
        directory=home,
        address=address,
        ca_certificate=home / "ca.crt",
        supernode_key=home / "supernode.key",
        supernode_public_key=home / "supernode.pub",
        ckks_context=home / "member.ckks",
        wallet_keystore=home / "wallet.json",
        wallet_password_file=home / "wallet.password",
    )


def _manifest(
    sans: list[str],
    scoring: bool,
    valid_days: int,
    coordinator_address: str,
    bundles: list[MemberBundle],
    files: list[dict[str, Any]],
    federation_id: str,
) -> dict[str, Any]:
    def owned(recipient: str) -> list[str]:
        return [entry["path"] for entry in files if entry["recipient"] == recipient]

    recipients: dict[str, Any] = {
        "admin": {
            "role": "runs the provisioner; keeps the CA key offline; registers SuperNode keys and the members' "
            "enrolled wallets; relays enrollments and sealed CKKS shares (holds no CKKS secret)",
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
            "role": "a member organization's SuperNode (creates its own wallet, transport key and enrollment)",
            "member_id": bundle.member_id,
            "address": bundle.address or None,
            "supernode_public_key": bundle.supernode_public_key.read_text("utf-8").strip(),
            "files": owned(recipient),
        }
    return {
        "format": MANIFEST_FORMAT,
        "created": _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat(),
        "members": len(bundles),
        "federation_id": federation_id,
        "tls": {"subject_alternative_names": sans, "valid_days": valid_days},
        "ckks": "scoring" if scoring else "aggregation",
        "recipients": recipients,
        "files": files,
    }


def _from_manifest(root: Path, manifest: dict[str, Any]) -> ProvisionedFederation:
    recipients = manifest["recipients"]
    bundles = [
        _bundle(
            root / "members" / f"member-{member_id}", member_id, recipients[f"member-{member_id}"].get("address") or ""
        )
        for member_id in range(int(manifest["members"]))
    ]
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
        federation_id=manifest["federation_id"],
        ckks_preset=manifest["ckks"],
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
    """ECDSA P-256 key pair in OpenSSH format (what ``ssh-keygen -t ecdsa`` writes by default).

    The SuperNode signs, and the SuperLink verifies, a timestamp with this key on every Fleet API
    call (polls, object pushes and pulls): hundreds of calls a round. P-256 (128-bit security, the
    level of the CKKS parameters and ``ssh-keygen``'s default) verifies in about 0.2 ms where P-384
    takes 1.0-1.6 ms, and signs 10x faster; with P-384 the verification was a tenth of a busy
    SuperLink's CPU. Flower accepts any NIST curve
    (``flwr.supercore.primitives.asymmetric.uses_nist_ec_curve``), so P-384 keys provisioned
    earlier keep working.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
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
