"""Members' chain wallets: new keys and encrypted keystore files (eth_account's, in one place).

Example:
    >>> key = new_private_key()
    >>> keyfile = encrypt_key(key, "pw", iterations=2)
    >>> decrypt_key(keyfile, "pw") == key
    True
"""

from __future__ import annotations

from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount

__all__ = ["account_from_key", "decrypt_key", "encrypt_key", "new_private_key"]


def new_private_key() -> bytes:
    """A fresh random chain private key (32 bytes, from the OS's CSPRNG via eth_account)."""
    return bytes(Account.create().key)


def encrypt_key(private_key: bytes, password: str, *, iterations: int) -> dict[str, Any]:
    """The Web3 Secret Storage (scrypt) keystore of ``private_key`` under ``password``."""
    return dict(Account.encrypt(private_key, password, kdf="scrypt", iterations=iterations))


def decrypt_key(keyfile: Any, password: str) -> bytes:
    """The private key in a keystore.

    Raises:
        ValueError: wrong password or a malformed keystore (as eth_account raises it).
    """
    return bytes(Account.decrypt(keyfile, password))


def account_from_key(private_key: bytes) -> LocalAccount:
    """eth_account's ``LocalAccount`` of ``private_key`` (``.address``, ``.key``; what web3 signs with)."""
    return Account.from_key(private_key)
