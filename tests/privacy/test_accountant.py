from __future__ import annotations

import json
from pathlib import Path

import pytest

from fedchain.errors import PrivacyError
from fedchain.privacy import PrivacyAccountant, compute_epsilon

DELTA = 1e-5
ROUNDS = [(1.1, 0.2, 15), (1.1, 0.2, 15), (0.9, 0.1, 30)]


@pytest.fixture
def ledger() -> PrivacyAccountant:
    ledger = PrivacyAccountant("rdp")
    for sigma, rate, steps in ROUNDS:
        ledger.record(noise_multiplier=sigma, sample_rate=rate, steps=steps)
    return ledger


def test_new_ledger_has_spent_nothing() -> None:
    ledger = PrivacyAccountant()
    assert len(ledger) == 0 and ledger.history == () and ledger.epsilon(DELTA) == 0.0


def test_epsilon_is_cumulative_and_matches_the_pure_function(ledger: PrivacyAccountant) -> None:
    assert ledger.history == tuple(ROUNDS)
    assert ledger.epsilon(DELTA) == compute_epsilon(ROUNDS, DELTA)


def test_epsilon_after_does_not_mutate(ledger: PrivacyAccountant) -> None:
    before = ledger.epsilon(DELTA)
    after = ledger.epsilon_after(noise_multiplier=1.1, sample_rate=0.2, steps=15, delta=DELTA)
    assert after > before
    assert ledger.history == tuple(ROUNDS) and ledger.epsilon(DELTA) == before
    ledger.record(noise_multiplier=1.1, sample_rate=0.2, steps=15)
    assert ledger.epsilon(DELTA) == after


def test_state_dict_round_trip(ledger: PrivacyAccountant) -> None:
    state = ledger.state_dict()
    assert json.loads(json.dumps(state)) == state  # JSON-safe
    restored = PrivacyAccountant.from_state_dict(state)
    assert restored.history == ledger.history and restored.accountant == "rdp"
    assert restored.epsilon(DELTA) == ledger.epsilon(DELTA)
    assert PrivacyAccountant.from_json(ledger.to_json()).history == ledger.history


def test_file_round_trip_is_exact(ledger: PrivacyAccountant, tmp_path: Path) -> None:
    path = tmp_path / "state" / "privacy.json"
    ledger.save(path)
    loaded = PrivacyAccountant.load(path)
    assert loaded.history == ledger.history
    assert loaded.epsilon(DELTA) == ledger.epsilon(DELTA)
    assert loaded.path == path
    assert [p.name for p in path.parent.iterdir()] == ["privacy.json"]  # no temporary left behind


def test_open_starts_a_ledger_and_record_saves_it(tmp_path: Path) -> None:
    path = tmp_path / "privacy.json"
    ledger = PrivacyAccountant.open(path)
    assert path.exists() and len(ledger) == 0
    ledger.record(noise_multiplier=1.1, sample_rate=0.2, steps=15)
    assert PrivacyAccountant.open(path).history == ((1.1, 0.2, 15),)


def test_open_refuses_another_accountant(tmp_path: Path) -> None:
    path = tmp_path / "privacy.json"
    PrivacyAccountant.open(path, accountant="prv")
    with pytest.raises(PrivacyError, match="kept with the 'prv' accountant, not 'rdp'"):
        PrivacyAccountant.open(path, accountant="rdp")


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"", "is corrupted (not valid JSON"),
        (b'{"format": "fedchain-privacy-ledger", "version": 1, "accountant": "rdp", "hist', "is corrupted"),
        (b"\xff\xfe\x00garbage", "is corrupted"),
        (b"[1, 2, 3]", "must be a JSON object"),
        (b'{"format": "something-else", "version": 1}', "expected 'fedchain-privacy-ledger' version 1"),
    ],
)
def test_corrupted_file_raises_and_never_resets(tmp_path: Path, content: bytes, fragment: str) -> None:
    path = tmp_path / "privacy.json"
    path.write_bytes(content)
    with pytest.raises(PrivacyError) as info:
        PrivacyAccountant.load(path)
    assert fragment in str(info.value) and str(path) in str(info.value)
    with pytest.raises(PrivacyError):  # open() must not start over either
        PrivacyAccountant.open(path)


def test_tampered_history_fails_the_checksum(ledger: PrivacyAccountant, tmp_path: Path) -> None:
    path = tmp_path / "privacy.json"
    ledger.save(path)
    state = json.loads(path.read_text())
    state["history"] = state["history"][:1]  # someone drops two rounds to "free" budget
    path.write_text(json.dumps(state))
    with pytest.raises(PrivacyError) as info:
        PrivacyAccountant.load(path)
    assert "fails its checksum" in str(info.value)
    assert "reset this member's epsilon to zero" in str(info.value)


def test_malformed_history_in_state_is_named(ledger: PrivacyAccountant) -> None:
    state = ledger.state_dict()
    state["history"][1] = [1.1, 0.2, -3]
    with pytest.raises(PrivacyError, match="history entry 1: The 'steps' parameter must be an int"):
        PrivacyAccountant.from_state_dict(state)


def test_missing_file_is_an_error_for_load(tmp_path: Path) -> None:
    with pytest.raises(PrivacyError, match="cannot read privacy ledger"):
        PrivacyAccountant.load(tmp_path / "absent.json")


def test_unwritable_path_is_a_privacy_error(ledger: PrivacyAccountant, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(PrivacyError, match="cannot save privacy ledger"):
        ledger.save(blocker / "privacy.json")
