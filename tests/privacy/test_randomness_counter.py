"""SecureRandomness's ChaCha20 block counter starts at 0: a round's draws never overflow it.

``cryptography``'s ChaCha20 reads the first 4 bytes of its 16-byte nonce as the 32-bit block
counter. Taken from ``os.urandom`` they made the keystream's length a lottery: a member of a
1M-parameter ``mnist-wide`` deployment (1 GiB of draws a round) failed with "the 32-bit counter
portion of the nonce would overflow". Here ``os.urandom`` returns all-0xff bytes, the worst
counter a random start could give: the draws must still succeed.
"""

from __future__ import annotations

import pytest

from fedchain.privacy import randomness
from fedchain.privacy.randomness import SecureRandomness


def test_the_block_counter_does_not_come_from_the_random_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(randomness.os, "urandom", lambda n: b"\xff" * n)
    worst = SecureRandomness()
    draws = worst.uniform((4096,))  # 32 KiB of keystream: 512 blocks past a counter of 0xffffffff
    assert draws.shape == (4096,) and bool(((draws >= 0) & (draws < 1)).all())
    assert 0.45 < float(draws.mean()) < 0.55
