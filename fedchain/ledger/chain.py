"""Connections to an EVM chain: the embedded eth-tester chain or any JSON-RPC URL.

Keys are resolved once, here, and never logged or shown in a ``repr``. For a JSON-RPC URL the
signing key comes from, in order: the ``private_key`` argument, the ``keystore`` argument (an
encrypted JSON keystore, password from ``password`` or ``$FEDCHAIN_KEYSTORE_PASSWORD``),
``$FEDCHAIN_PRIVATE_KEY``, or ``$FEDCHAIN_KEYSTORE`` (+ ``$FEDCHAIN_KEYSTORE_PASSWORD``).
The embedded chain signs with its first pre-funded test account.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import EthereumTesterProvider, HTTPProvider, Web3

from fedchain.errors import ConfigError, LedgerError

__all__ = ["KEY_ENV", "KEYSTORE_ENV", "KEYSTORE_PASSWORD_ENV", "Chain", "connect"]

logger = logging.getLogger(__name__)

KEY_ENV = "FEDCHAIN_PRIVATE_KEY"
KEYSTORE_ENV = "FEDCHAIN_KEYSTORE"
KEYSTORE_PASSWORD_ENV = "FEDCHAIN_KEYSTORE_PASSWORD"
_HIDDEN = "<hidden>"


@dataclass(frozen=True)
class Chain:
    """A connected chain and the local account that signs transactions.

    Attributes:
        w3: the web3 instance.
        account: the signing account (its key is never logged or printed).
        target: ``"embedded"`` or the JSON-RPC URL.
        chain_id: the chain id.
        test_accounts: pre-funded accounts of the embedded chain (empty for a URL).
    """

    w3: Web3 = field(repr=False)
    account: LocalAccount = field(repr=False)
    target: str
    chain_id: int
    test_accounts: tuple[LocalAccount, ...] = field(default=(), repr=False)

    @property
    def address(self) -> str:
        """Checksummed address of the signing account."""
        return str(self.account.address)

    @property
    def is_embedded(self) -> bool:
        """Whether this is the in-process eth-tester chain."""
        return self.target == "embedded"

    def with_account(self, account: LocalAccount) -> Chain:
        """The same chain, signing with another account (e.g. a separate coordinator key).

        Example:
            >>> chain = connect("embedded")
            >>> chain.with_account(chain.test_accounts[1]).address == chain.test_accounts[1].address
            True
        """
        return replace(self, account=account)

    def __repr__(self) -> str:
        return f"Chain(target={self.target!r}, chain_id={self.chain_id}, address={self.address})"


def connect(
    target: str = "embedded",
    *,
    private_key: str | None = None,
    keystore: str | Path | None = None,
    password: str | None = None,
    request_timeout_s: float = 30.0,
) -> Chain:
    """Connect to the embedded chain or a JSON-RPC node.

    Args:
        target: ``"embedded"`` (eth-tester/py-evm in process, fresh chain) or an ``http(s)://`` URL.
        private_key: hex signing key for a URL target (else see the module docstring).
        keystore: path of an encrypted JSON keystore holding the signing key.
        password: the keystore password (else ``$FEDCHAIN_KEYSTORE_PASSWORD``).
        request_timeout_s: HTTP request timeout for a URL target.

    Returns:
        The connected :class:`Chain`.

    Raises:
        ConfigError: the target is not ``"embedded"`` or an http(s) URL, or no usable key is given.
        LedgerError: the node does not answer.

    Example:
        >>> chain = connect("embedded")
        >>> chain.is_embedded, chain.w3.eth.block_number
        (True, 0)
    """
    if target == "embedded":
        provider = EthereumTesterProvider()
        w3 = Web3(provider)
        tester = provider.ethereum_tester
        if tester is None:  # pragma: no cover - EthereumTesterProvider always creates one
            raise LedgerError("eth-tester did not start")
        keys = tester.backend.account_keys
        accounts = tuple(Account.from_key(k.to_bytes()) for k in keys)
        logger.debug("embedded chain started; signer %s", accounts[0].address)
        return Chain(w3=w3, account=accounts[0], target=target, chain_id=w3.eth.chain_id, test_accounts=accounts)
    if not isinstance(target, str) or not target.startswith(("http://", "https://")):
        raise ConfigError("chain", "'embedded' or an http(s):// JSON-RPC URL", target)
    account = _resolve_account(private_key, keystore, password)
    w3 = Web3(HTTPProvider(target, request_kwargs={"timeout": request_timeout_s}))
    try:
        chain_id = w3.eth.chain_id
    except Exception as exc:  # connection refused, DNS, HTTP errors: all mean "no node here"
        raise LedgerError(f"no JSON-RPC node answers at {target}: {exc}") from exc
    logger.info("connected to %s (chain id %d) as %s", target, chain_id, account.address)
    return Chain(w3=w3, account=account, target=target, chain_id=chain_id)


def _resolve_account(private_key: str | None, keystore: str | Path | None, password: str | None) -> LocalAccount:
    if private_key is not None:
        return _from_key(private_key, "private_key")
    if keystore is not None:
        return _from_keystore(Path(keystore), password)
    env_key = os.environ.get(KEY_ENV)
    if env_key:
        return _from_key(env_key, KEY_ENV)
    env_keystore = os.environ.get(KEYSTORE_ENV)
    if env_keystore:
        return _from_keystore(Path(env_keystore), password)
    raise ConfigError(
        "private key",
        f"given by private_key, keystore, ${KEY_ENV} or ${KEYSTORE_ENV} for a JSON-RPC chain",
        None,
    )


def _from_key(key: str, source: str) -> LocalAccount:
    try:
        return Account.from_key(key.strip())
    except Exception:  # any parse failure; the key itself must not appear in the message
        raise ConfigError(source, "a 32-byte hex private key", _HIDDEN) from None


def _from_keystore(path: Path, password: str | None) -> LocalAccount:
    secret = password if password is not None else os.environ.get(KEYSTORE_PASSWORD_ENV)
    if secret is None:
        raise ConfigError("password", f"given, or set in ${KEYSTORE_PASSWORD_ENV}, to open a keystore", None)
    try:
        keyfile = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError("keystore", "a readable JSON keystore file", str(path)) from exc
    try:
        key = Account.decrypt(keyfile, secret)
    except ValueError:
        raise ConfigError("password", "the keystore's password", _HIDDEN) from None
    return Account.from_key(key)
