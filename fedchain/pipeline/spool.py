"""Members' ciphertexts kept on disk for the decrypt committee, read back one member at a time.

Under HE with a committee (the norm bound, a scorer that needs scalars) the coordinator needs each
kept member's ``Enc(n_i delta_i)`` again after the replies are in: to build the committee's scalar
requests and to re-sum without the members the bound excludes. Holding every member's ciphertext
in memory would make the coordinator's peak memory grow with the number of members, so each
accepted update is appended to one spool file per round as it arrives and read back when needed.
What is read back is checked against the SHA-256 of what was written: a spool altered on disk
during the round raises instead of entering the committee's requests or the sum.

The file holds raw ciphertext bytes only (no pickle); the index (offsets, chunk sizes, hashes)
stays in memory. :meth:`CiphertextSpool.close` deletes the file; the spool is a context manager.

Example:
    >>> with CiphertextSpool(None, prefix="round-1-") as spool:
    ...     spool.write("0xaa", [b"one", b"two"])
    ...     spool.write("0xbb", [b"three"])
    ...     spool["0xbb"], list(spool.subset(["0xbb", "0xaa"]))
    ([b'three'], ['0xbb', '0xaa'])
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from fedchain.errors import IntegrityError

__all__ = ["SPOOL_SUFFIX", "CiphertextSpool", "remove_stale_spools"]

log = logging.getLogger(__name__)

#: File name suffix of a round's spool (what :func:`remove_stale_spools` deletes).
SPOOL_SUFFIX = ".ciphertexts"


@dataclass(frozen=True)
class _Entry:
    offset: int
    sizes: tuple[int, ...]
    sha256: bytes


class CiphertextSpool(Mapping[str, list[bytes]]):
    """A round's accepted ciphertexts on disk: member address -> its chunks, read lazily.

    Args:
        directory: where the spool file goes (created if missing); None: the system's temp dir.
        prefix: the file name's prefix (e.g. ``"round-3-"``).
    """

    def __init__(self, directory: str | Path | None, *, prefix: str) -> None:
        if directory is not None:
            Path(directory).mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=prefix, suffix=SPOOL_SUFFIX, dir=directory)
        self.path = Path(name)
        self._file = os.fdopen(fd, "w+b")
        self._index: dict[str, _Entry] = {}
        self._end = 0
        self._last: tuple[str, list[bytes]] | None = None  # build_scalar_requests reads a member twice

    def write(self, address: str, chunks: Sequence[bytes]) -> None:
        """Append ``address``'s chunks (one member, written once)."""
        if address in self._index:
            raise ValueError(f"{address}'s ciphertext is already in the spool")
        digest = hashlib.sha256()
        self._file.seek(self._end)
        for chunk in chunks:
            self._file.write(chunk)
            digest.update(chunk)
        self._index[address] = _Entry(self._end, tuple(len(c) for c in chunks), digest.digest())
        self._end += sum(len(c) for c in chunks)

    def __getitem__(self, address: str) -> list[bytes]:
        if self._last is not None and self._last[0] == address:
            return self._last[1]
        entry = self._index[address]
        self._file.flush()
        self._file.seek(entry.offset)
        chunks = [self._file.read(size) for size in entry.sizes]
        digest = hashlib.sha256()
        for chunk in chunks:
            digest.update(chunk)
        if [len(c) for c in chunks] != list(entry.sizes) or digest.digest() != entry.sha256:
            what = f"the spooled ciphertext of {address} ({self.path})"
            raise IntegrityError(what, entry.sha256.hex(), digest.hexdigest())
        self._last = (address, chunks)
        return chunks

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)

    def subset(self, addresses: Sequence[str]) -> Mapping[str, list[bytes]]:
        """A lazy view of ``addresses`` only, in that order."""
        return _Subset(self, tuple(addresses))

    def close(self) -> None:
        """Delete the spool file (safe to call twice)."""
        self._last = None
        self._index.clear()
        if not self._file.closed:
            self._file.close()
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> CiphertextSpool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class _Subset(Mapping[str, list[bytes]]):
    spool: CiphertextSpool
    addresses: tuple[str, ...]

    def __getitem__(self, address: str) -> list[bytes]:
        if address not in self.addresses:
            raise KeyError(address)
        return self.spool[address]

    def __iter__(self) -> Iterator[str]:
        return iter(self.addresses)

    def __len__(self) -> int:
        return len(self.addresses)


def remove_stale_spools(directory: str | Path | None) -> int:
    """Delete spool files a crashed coordinator left in ``directory``; return how many."""
    if directory is None or not Path(directory).is_dir():
        return 0
    stale = list(Path(directory).glob(f"round-*{SPOOL_SUFFIX}"))
    for path in stale:
        path.unlink(missing_ok=True)
    if stale:
        log.info("removed %d stale ciphertext spool files from %s", len(stale), directory)
    return len(stale)
