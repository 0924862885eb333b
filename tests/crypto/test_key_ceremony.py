"""The CKKS key ceremony, attacked with only what each party holds.

The admin (who provisions) and the coordinator (who may be the same organization) relay every
enrollment, sealed share and the public context, and hold their own wallets. None of that may
decrypt a member's update, and nothing they can forge, substitute or alter may be accepted by a
member or by the key holder.
"""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tenseal as ts

from fedchain import crypto
from fedchain.crypto.ceremony import (
    Enrollment,
    SealedShare,
    create_enrollment,
    generate_federation_context,
    generate_transport_key,
    open_share,
    seal_share,
    transport_public_key,
)
from fedchain.errors import CeremonyError, ConfigError, CryptoError
from fedchain.keyceremony import enroll, generate_key, open_key, run_local_ceremony
from fedchain.provision import (
    ProvisionedFederation,
    provision_federation,
    read_wallet,
    record_enrollments,
    relay_federation_key,
)

#: What the admin and the coordinator hold after the ceremony: everything outside members/.
ADMIN_SIDE = ("manifest.json", "admin", "superlink", "coordinator", "ceremony")


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> ProvisionedFederation:
    directory = tmp_path_factory.mktemp("ceremony") / "fed"
    provision_federation(directory, members=3)
    return run_local_ceremony(directory)


@pytest.fixture(scope="module")
def update() -> np.ndarray:
    return np.random.default_rng(7).normal(size=5000)


@pytest.fixture(scope="module")
def member1_ciphertext(federation: ProvisionedFederation, update: np.ndarray) -> list[bytes]:
    """A real update of member 1, encrypted with the key it opened from its share."""
    ctx = crypto.load_member_context(crypto.read_context(federation.members[1].ckks_context))
    return crypto.encrypt_update(ctx, update)


def _admin_files(federation: ProvisionedFederation) -> list[Path]:
    files: list[Path] = []
    for name in ADMIN_SIDE:
        path = federation.directory / name
        files += [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return files


def _copy_json(path: Path, tmp_path: Path, **changes: Any) -> Path:
    data = json.loads(path.read_text())
    data.update(changes)
    target = tmp_path / path.name
    target.write_text(json.dumps(data))
    return target


# ------------------------------------------------------------------ the admin's output cannot decrypt


def test_no_file_the_admin_or_coordinator_holds_decrypts_a_members_ciphertext(
    federation: ProvisionedFederation, member1_ciphertext: list[bytes], update: np.ndarray
) -> None:
    files = _admin_files(federation)
    assert federation.coordinator_context in files and len(files) == 14  # see ADMIN_SIDE
    secret_bytes = federation.members[1].ckks_context.read_bytes()
    loaded = 0
    for path in files:
        data = path.read_bytes()
        assert secret_bytes not in data, path
        try:
            ctx = ts.context_from(data)
        except Exception:  # not a TenSEAL context (JSON, PEM, keystores)
            continue
        loaded += 1
        assert not ctx.is_private() and not ctx.has_secret_key(), path
        vector = ts.ckks_vector_from(ctx, member1_ciphertext[0])
        with pytest.raises(ValueError, match=r"doesn.t hold a secret_key"):
            vector.decrypt()
        with pytest.raises(CryptoError):
            crypto.load_member_context(data)
        with pytest.raises(CryptoError):
            crypto.decrypt_update(ctx, member1_ciphertext, len(update))
    assert loaded == 1  # coordinator.ckks, the only context among them

    # The sealed shares are the only encrypted key material on that side: the admin's and the
    # coordinator's own keys (their wallets) open none of them.
    share = SealedShare.from_json(json.loads((federation.ceremony_dir / "shares/member-1.share.json").read_text()))
    coordinator = read_wallet(federation.coordinator_keystore)
    stranger = generate_transport_key()
    for key_holder in (share.sender, coordinator.address):
        with pytest.raises(CeremonyError):
            open_share(
                share,
                federation_id=federation.federation_id,
                transport_key=stranger,
                address=share.recipient,
                key_holder=key_holder,
                public_context=federation.coordinator_context.read_bytes(),
            )


def test_the_manifest_never_listed_a_ckks_secret_or_a_member_wallet(federation: ProvisionedFederation) -> None:
    manifest = json.loads(federation.manifest_path.read_text())
    listed = {entry["path"] for entry in manifest["files"]}
    for bundle in federation.members:
        home = bundle.directory.relative_to(federation.directory).as_posix()
        for name in ("member.ckks", "wallet.json", "wallet.password", "transport.key"):
            assert f"{home}/{name}" not in listed
    assert {e["path"] for e in manifest["files"] if e["secret"]} == {
        "admin/ca.key",
        "superlink/server.key",
        "coordinator/wallet.json",
        "coordinator/wallet.password",
        *[f"members/member-{i}/supernode.key" for i in range(3)],
    }
    assert manifest["ckks_key"]["key_holder"] == federation.members[0].address


def test_a_member_that_opened_its_share_decrypts_another_members_ciphertext(
    federation: ProvisionedFederation, member1_ciphertext: list[bytes], update: np.ndarray
) -> None:
    for bundle in (federation.members[0], federation.members[2]):  # the key holder and a share opener
        ctx = crypto.load_member_context(crypto.read_context(bundle.ckks_context))
        assert ctx.is_private()
        np.testing.assert_allclose(crypto.decrypt_update(ctx, member1_ciphertext, len(update)), update, atol=1e-4)
    # ... and the coordinator can still add ciphertexts with the public context it was relayed.
    public = crypto.load_coordinator_context(crypto.read_context(federation.coordinator_context))
    total = crypto.sum_encrypted(public, [member1_ciphertext, member1_ciphertext], expected_chunks=2)
    ctx = crypto.load_member_context(crypto.read_context(federation.members[2].ckks_context))
    np.testing.assert_allclose(crypto.decrypt_update(ctx, total, len(update)), 2 * update, atol=1e-4)


# ------------------------------------------------------------- the relay substitutes an enrollment


def test_a_substituted_transport_key_in_an_enrollment_is_refused(
    federation: ProvisionedFederation, tmp_path: Path
) -> None:
    relayed = sorted((federation.ceremony_dir / "enrollments").glob("member-*.json"))
    attacker = generate_transport_key()
    forged = _copy_json(relayed[1], tmp_path, transport_key=transport_public_key(attacker))
    addresses = [b.address for b in federation.members]
    with pytest.raises(CeremonyError, match="is not signed by that address: its transport key or address was subst"):
        generate_key(
            federation.members[0].directory,
            enrollments=[relayed[0], forged, relayed[2]],
            out_dir=tmp_path / "out",
            expected_members=addresses,
        )
    with pytest.raises(CeremonyError, match="not signed by that address"):
        record_enrollments(federation.directory, [forged])  # the admin's own check refuses it too
    assert not (tmp_path / "out" / "coordinator.ckks").exists()


def test_an_enrollment_signed_by_the_relays_own_wallet_is_refused(
    federation: ProvisionedFederation, tmp_path: Path
) -> None:
    coordinator = read_wallet(federation.coordinator_keystore)
    own = create_enrollment(
        federation_id=federation.federation_id,
        wallet_key=bytes(coordinator.key),
        transport_key=generate_transport_key(),
        member_id=1,
    )
    forged = tmp_path / "member-1.json"
    forged.write_text(json.dumps(own.to_json()))
    relayed = sorted((federation.ceremony_dir / "enrollments").glob("member-*.json"))
    with pytest.raises(CeremonyError, match=f"enrollment of {coordinator.address}, which is not one of the expected"):
        generate_key(
            federation.members[0].directory,
            enrollments=[relayed[0], forged, relayed[2]],
            out_dir=tmp_path / "out",
            expected_members=[b.address for b in federation.members],
        )
    with pytest.raises(CeremonyError, match="no enrollment from expected members"):  # withheld
        generate_key(
            federation.members[0].directory,
            enrollments=[relayed[0], relayed[2]],
            out_dir=tmp_path / "out",
            expected_members=[b.address for b in federation.members],
        )
    with pytest.raises(ConfigError, match="one address per member slot"):  # the admin cannot re-slot a member
        record_enrollments(federation.directory, [forged])


def test_an_enrollment_from_another_federation_is_refused(federation: ProvisionedFederation, tmp_path: Path) -> None:
    wallet = read_wallet(federation.members[1].wallet_keystore)
    other = create_enrollment(
        federation_id="ab" * 32, wallet_key=bytes(wallet.key), transport_key=generate_transport_key(), member_id=1
    )
    path = tmp_path / "member-1.json"
    path.write_text(json.dumps(other.to_json()))
    with pytest.raises(CeremonyError, match=r"is for federation abababababababab\.\.\., not this one"):
        generate_key(federation.members[0].directory, enrollments=[path], out_dir=tmp_path / "out")


# --------------------------------------------------------------------- the relay alters a share


def _open(federation: ProvisionedFederation, member: int, share: Path, **kwargs: Any) -> Path:
    options: dict[str, Any] = {
        "share": share,
        "public_context": federation.coordinator_context,
        "key_holder": federation.members[0].address,
    }
    options.update(kwargs)
    return open_key(federation.members[member].directory, **options)


def test_a_tampered_share_is_refused(federation: ProvisionedFederation, tmp_path: Path) -> None:
    original = federation.ceremony_dir / "shares" / "member-1.share.json"
    data = json.loads(original.read_text())
    raw = bytearray(base64.b64decode(data["ciphertext"]))
    raw[100] ^= 1
    tampered = _copy_json(original, tmp_path, ciphertext=base64.b64encode(bytes(raw)).decode())
    before = federation.members[1].ckks_context.read_bytes()
    with pytest.raises(CeremonyError, match="was altered after the key holder sealed it"):
        _open(federation, 1, tampered)
    relabelled = _copy_json(original, tmp_path, preset="scoring")
    with pytest.raises(CeremonyError, match="altered after the key holder sealed it"):
        _open(federation, 1, relabelled)
    assert federation.members[1].ckks_context.read_bytes() == before  # nothing was overwritten


def test_a_share_for_another_member_is_refused(federation: ProvisionedFederation) -> None:
    share_of_1 = federation.ceremony_dir / "shares" / "member-1.share.json"
    with pytest.raises(CeremonyError, match=f"this share is for {federation.members[1].address}, not for this member"):
        _open(federation, 2, share_of_1)


def test_a_share_for_another_transport_key_or_with_another_public_context_is_refused(
    federation: ProvisionedFederation, tmp_path: Path
) -> None:
    # A share sealed to the address of member 1 but the relay's transport key (a substituted enrollment).
    wallet = read_wallet(federation.members[1].wallet_keystore)
    fake = create_enrollment(
        federation_id=federation.federation_id, wallet_key=bytes(wallet.key), transport_key=generate_transport_key()
    )
    secret, public = generate_federation_context(crypto.AGGREGATION)
    holder = read_wallet(federation.members[0].wallet_keystore)
    share = seal_share(
        secret,
        federation_id=federation.federation_id,
        preset="aggregation",
        public_context=public,
        sender_key=bytes(holder.key),
        recipient=fake,
    )
    path = tmp_path / "other-key.share.json"
    path.write_text(json.dumps(share.to_json()))
    with pytest.raises(CeremonyError, match=r"is sealed to transport key .* not this member's"):
        _open(federation, 1, path)
    # The coordinator publishes a public context of its own next to a genuine share.
    swapped = tmp_path / "coordinator.ckks"
    swapped.write_bytes(public)
    with pytest.raises(CeremonyError, match="public context published for the coordinator is not the one"):
        _open(federation, 1, federation.ceremony_dir / "shares" / "member-1.share.json", public_context=swapped)


def test_the_coordinator_cannot_play_key_holder(federation: ProvisionedFederation, tmp_path: Path) -> None:
    """A coordinator that makes its own key and seals it to the members' real enrollments is refused."""
    coordinator = read_wallet(federation.coordinator_keystore)
    enrollment = Enrollment.from_json(json.loads(federation.members[1].enrollment.read_text()))
    secret, public = generate_federation_context(crypto.AGGREGATION)
    share = seal_share(
        secret,
        federation_id=federation.federation_id,
        preset="aggregation",
        public_context=public,
        sender_key=bytes(coordinator.key),
        recipient=enrollment,
    )
    (tmp_path / "share.json").write_text(json.dumps(share.to_json()))
    (tmp_path / "coordinator.ckks").write_bytes(public)
    with pytest.raises(CeremonyError, match=f"generated by {coordinator.address}, not by the key holder"):
        _open(federation, 1, tmp_path / "share.json", public_context=tmp_path / "coordinator.ckks")


def test_a_wrong_password_is_refused_by_name(federation: ProvisionedFederation) -> None:
    share = federation.ceremony_dir / "shares" / "member-1.share.json"
    with pytest.raises(CeremonyError, match="cannot open the transport key: wrong password"):
        _open(federation, 1, share, password="not-the-password")
    with pytest.raises(ConfigError, match="'wallet password' parameter must be the keystore's password"):
        enroll(federation.members[1].directory, password="not-the-password")


def test_the_admin_refuses_to_relay_a_secret_context(federation: ProvisionedFederation, tmp_path: Path) -> None:
    (tmp_path / "shares").mkdir()
    shutil.copy(federation.members[1].ckks_context, tmp_path / "coordinator.ckks")
    with pytest.raises(CryptoError, match="refusing a context that holds a CKKS secret key"):
        relay_federation_key(federation.directory, tmp_path)


def test_scoring_keys_reach_members_and_the_coordinator_can_score(tmp_path: Path) -> None:
    directory = tmp_path / "fed"
    provision_federation(directory, members=2, scoring=True)
    federation = run_local_ceremony(directory, key_holder=1)
    public = crypto.load_coordinator_context(crypto.read_context(federation.coordinator_context))
    assert public.has_galois_keys() and public.has_relin_keys()
    member0 = crypto.load_member_context(crypto.read_context(federation.members[0].ckks_context))
    x = np.linspace(-1, 1, 100)
    chunks = crypto.encrypt_update(member0, x)
    value = crypto.decrypt_scalars(member0, crypto.encrypted_dot(public, chunks, chunks), 1)[0]
    assert value == pytest.approx(float(x @ x), rel=1e-4)
    record = json.loads((federation.members[0].directory / "ckks-key.json").read_text())
    assert record["key_holder"] == federation.members[1].address and record["ckks"] == "scoring"
