"""A member's lifetime privacy accounting: every DP round it ever trained, persisted between rounds.

:class:`PrivacyAccountant` holds an Opacus accountant's ``history`` (one ``(noise_multiplier,
sample_rate, steps)`` entry per round) and answers epsilon questions through
:func:`~fedchain.privacy.accounting.compute_epsilon`, the same function an auditor uses on the
parameters recorded on chain. Its state is a small JSON document with a checksum:

.. code-block:: json

    {"format": "fedchain-privacy-ledger", "version": 1, "accountant": "rdp",
     "history": [[1.1, 0.2, 15], ...], "checksum": "<sha256 of accountant and history>"}

It goes into the node's state directory (:meth:`PrivacyAccountant.save`, atomic) or into Flower's
``Context.state`` (:meth:`PrivacyAccountant.to_json` in a ``ConfigRecord``). A file that cannot be read,
is not valid JSON, fails its checksum or its schema raises :class:`~fedchain.errors.PrivacyError`:
the accountant never falls back to an empty history, because that would silently reset the
member's epsilon to zero.

It is an accountant (Opacus's sense: a history of mechanisms and the epsilon they add up to), not
the chain's :class:`~fedchain.ledger.Ledger`. Its state file keeps the name it had before the class
was renamed (format ``fedchain-privacy-ledger``, "privacy ledger" in messages), so state a member
saved earlier still loads.

Example:
    >>> from fedchain.privacy import PrivacyAccountant
    >>> ledger = PrivacyAccountant()
    >>> ledger.record(noise_multiplier=1.1, sample_rate=0.2, steps=15)
    >>> round(ledger.epsilon(1e-5), 4)
    5.6694
    >>> PrivacyAccountant.from_json(ledger.to_json()).history
    ((1.1, 0.2, 15),)
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from fedchain._io import atomic_write_bytes
from fedchain._validation import OneOf
from fedchain.errors import ConfigError, PrivacyError
from fedchain.privacy._registry import ACCOUNTANT_NAMES
from fedchain.privacy.accounting import HistoryEntry, compute_epsilon, normalize_history
from fedchain.types import DPParams

__all__ = ["PrivacyAccountant"]

log = logging.getLogger(__name__)

_FORMAT = "fedchain-privacy-ledger"
_VERSION = 1


def _checksum(accountant: str, history: Iterable[HistoryEntry]) -> str:
    canonical = json.dumps(
        {"accountant": accountant, "history": [list(entry) for entry in history]},
        sort_keys=True,
        separators=(",", ":"),
        allow_nan=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


class PrivacyAccountant:
    """The cumulative privacy spend of one member over the federation's lifetime.

    Args:
        accountant: the accountant all epsilons are computed with (``"rdp"`` or ``"prv"``).
        history: rounds already spent, as ``(noise_multiplier, sample_rate, steps)`` entries.
        path: when set, every :meth:`record` saves the ledger to this file atomically before it
            returns, so a spent round is on disk before the update it paid for is sent.

    Example:
        >>> ledger = PrivacyAccountant("rdp", history=[(1.1, 0.2, 15)])
        >>> ledger.epsilon_after(noise_multiplier=1.1, sample_rate=0.2, steps=15, delta=1e-5) > ledger.epsilon(1e-5)
        True
    """

    def __init__(
        self,
        accountant: str = "rdp",
        *,
        history: Iterable[HistoryEntry | DPParams] = (),
        path: str | Path | None = None,
    ) -> None:
        self._accountant = OneOf(ACCOUNTANT_NAMES).check("accountant", accountant)
        self._history: list[HistoryEntry] = normalize_history(history)
        self.path: Path | None = Path(path) if path is not None else None

    # ------------------------------------------------------------------ reading
    @property
    def accountant(self) -> str:
        """The accountant name, e.g. ``"rdp"``."""
        return self._accountant

    @property
    def history(self) -> tuple[HistoryEntry, ...]:
        """Every round spent so far, oldest first."""
        return tuple(self._history)

    def __len__(self) -> int:
        """Number of rounds recorded."""
        return len(self._history)

    def __repr__(self) -> str:
        return f"PrivacyAccountant(accountant={self._accountant!r}, rounds={len(self._history)}, path={self.path})"

    def epsilon(self, delta: float) -> float:
        """Cumulative epsilon of all recorded rounds at ``delta`` (0.0 before the first round).

        Example:
            >>> PrivacyAccountant().epsilon(1e-5)
            0.0
        """
        return compute_epsilon(self._history, delta, self._accountant)

    def epsilon_after(self, *, noise_multiplier: float, sample_rate: float, steps: int, delta: float) -> float:
        """Cumulative epsilon if one more round with these parameters were recorded; no change.

        Example:
            >>> ledger = PrivacyAccountant()
            >>> round(ledger.epsilon_after(noise_multiplier=1.1, sample_rate=0.2, steps=15, delta=1e-5), 4)
            5.6694
            >>> len(ledger)
            0
        """
        return compute_epsilon([*self._history, (noise_multiplier, sample_rate, steps)], delta, self._accountant)

    # ------------------------------------------------------------------ writing
    def record(self, *, noise_multiplier: float, sample_rate: float, steps: int) -> None:
        """Append one round that was trained (saved to :attr:`path` at once when it is set).

        Raises:
            PrivacyError: the parameters are malformed, or the ledger could not be saved (the
                round stays recorded in memory).
        """
        (entry,) = normalize_history([(noise_multiplier, sample_rate, steps)])
        self._history.append(entry)
        log.debug("recorded DP round %d: %s", len(self._history), entry)
        if self.path is not None:
            self.save(self.path)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """A JSON-safe snapshot of the ledger (with a checksum over accountant and history).

        Example:
            >>> sorted(PrivacyAccountant().state_dict())
            ['accountant', 'checksum', 'format', 'history', 'version']
        """
        return {
            "format": _FORMAT,
            "version": _VERSION,
            "accountant": self._accountant,
            "history": [list(entry) for entry in self._history],
            "checksum": _checksum(self._accountant, self._history),
        }

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any], *, path: str | Path | None = None) -> PrivacyAccountant:
        """Rebuild a ledger from :meth:`state_dict`, refusing anything malformed or altered.

        Raises:
            PrivacyError: wrong format or version, unknown accountant, malformed history or a
                checksum mismatch. Never returns an empty ledger in place of a damaged one.
        """
        where = f" in {path}" if path is not None else ""
        if not isinstance(state, Mapping):
            raise PrivacyError(f"privacy ledger state{where} must be a JSON object, got {type(state).__name__}")
        if state.get("format") != _FORMAT or state.get("version") != _VERSION:
            raise PrivacyError(
                f"privacy ledger state{where} has format {state.get('format')!r} version "
                f"{state.get('version')!r}; expected {_FORMAT!r} version {_VERSION}"
            )
        history = state.get("history")
        if not isinstance(history, list):
            raise PrivacyError(f"privacy ledger state{where} has no 'history' list")
        try:
            ledger = cls(state.get("accountant", ""), history=history, path=path)
        except ConfigError as exc:
            raise PrivacyError(f"privacy ledger state{where}: {exc}") from exc
        except PrivacyError as exc:
            raise PrivacyError(f"privacy ledger state{where}: {exc}") from exc
        expected = _checksum(ledger.accountant, ledger.history)
        if state.get("checksum") != expected:
            raise PrivacyError(
                f"privacy ledger state{where} fails its checksum (recorded {state.get('checksum')!r}, "
                f"content hashes to {expected!r}): it was altered or damaged; restore it from a backup "
                "rather than starting over, which would reset this member's epsilon to zero"
            )
        return ledger

    def to_json(self) -> str:
        """The state as a compact JSON string (e.g. for a Flower ``ConfigRecord``)."""
        return json.dumps(self.state_dict(), separators=(",", ":"), allow_nan=False)

    @classmethod
    def from_json(cls, text: str | bytes, *, path: str | Path | None = None) -> PrivacyAccountant:
        """Rebuild a ledger from :meth:`to_json` output.

        Raises:
            PrivacyError: the text is not valid JSON or not a valid ledger state.
        """
        where = f" {path}" if path is not None else ""
        try:
            state = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise PrivacyError(
                f"privacy ledger{where} is corrupted (not valid JSON: {exc}); restore it from a backup "
                "rather than starting over, which would reset this member's epsilon to zero"
            ) from exc
        return cls.from_state_dict(state, path=path)

    def save(self, path: str | Path) -> None:
        """Write the ledger to ``path`` atomically (temporary file, fsync, rename).

        Raises:
            PrivacyError: the file could not be written.
        """
        try:
            atomic_write_bytes(Path(path), (self.to_json() + "\n").encode())
        except OSError as exc:
            raise PrivacyError(f"cannot save privacy ledger to {path}: {exc}") from exc

    @classmethod
    def load(cls, path: str | Path) -> PrivacyAccountant:
        """Read a ledger saved by :meth:`save`; the returned ledger saves back to ``path`` on record.

        Raises:
            PrivacyError: the file is missing, unreadable, corrupted or fails its checksum.

        Example:
            >>> import tempfile, pathlib
            >>> path = pathlib.Path(tempfile.mkdtemp()) / "privacy.json"
            >>> PrivacyAccountant(history=[(1.1, 0.2, 15)]).save(path)
            >>> PrivacyAccountant.load(path).history
            ((1.1, 0.2, 15),)
        """
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise PrivacyError(f"cannot read privacy ledger {path}: {exc}") from exc
        return cls.from_json(data, path=path)

    @classmethod
    def open(cls, path: str | Path, *, accountant: str = "rdp") -> PrivacyAccountant:
        """Load the ledger at ``path``, or start an empty one there if no file exists yet.

        Only a missing file starts a new ledger (and it is written at once); an unreadable or
        damaged one raises. Keep the state directory durable: deleting the file resets epsilon.

        Raises:
            PrivacyError: the file exists but cannot be used, or its accountant differs from
                ``accountant``.
        """
        path = Path(path)
        if not path.exists():
            log.info("no privacy ledger at %s: starting a new one (%s accountant)", path, accountant)
            ledger = cls(accountant, path=path)
            ledger.save(path)
            return ledger
        ledger = cls.load(path)
        if ledger.accountant != accountant:
            raise PrivacyError(
                f"privacy ledger {path} was kept with the {ledger.accountant!r} accountant, not "
                f"{accountant!r}; a member's epsilon must be computed with one accountant for life"
            )
        return ledger
