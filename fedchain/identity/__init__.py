"""Member identities: chain keys and addresses.

In simulation each member's key is derived from the run seed and its member id, so runs are
reproducible; in a real federation each organization's key comes from its own encrypted
keystore (see ``fedchain provision``). Keys never appear in logs or results.

Example:
    >>> key = simulated_member_key(seed=0, member_id=1)
    >>> address_of(key).startswith("0x"), len(address_of(key))
    (True, 42)
"""

from __future__ import annotations

import hashlib

__all__ = ["address_of", "simulated_coordinator_key", "simulated_member_addresses", "simulated_member_key"]


def simulated_member_key(*, seed: int, member_id: int) -> bytes:
    """A deterministic 32-byte private key for simulated member ``member_id`` (testing only)."""
    return hashlib.sha256(f"fedchain/simulated-member/{seed}/{member_id}".encode()).digest()


def simulated_coordinator_key(*, seed: int) -> bytes:
    """A deterministic 32-byte private key for the simulated coordinator (testing only)."""
    return hashlib.sha256(f"fedchain/simulated-coordinator/{seed}".encode()).digest()


def address_of(private_key: bytes) -> str:
    """The checksummed Ethereum address of ``private_key``."""
    from eth_account import Account

    return str(Account.from_key(private_key).address)


def simulated_member_addresses(*, seed: int, count: int) -> list[str]:
    """Addresses of simulated members ``0 .. count - 1`` (keys from :func:`simulated_member_key`; testing only)."""
    return [address_of(simulated_member_key(seed=seed, member_id=i)) for i in range(count)]
