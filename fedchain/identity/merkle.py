"""Merkle commitments of signed update digests, verifiable with OpenZeppelin's ``MerkleProof``.

Each round the coordinator commits the digests of the signed updates it accepted as one
``bytes32`` root on chain (``RoundRecord.update_merkle_root``). A member later proves its update
was included from its own digest and a short proof, and anyone can check that proof against the
root read from the chain (``fedchain audit prove``), in Python with :func:`verify_proof` or in
Solidity with OpenZeppelin's ``MerkleProof.verify``.

Conventions (the same as OpenZeppelin's ``StandardMerkleTree``):

* a leaf is double-hashed: ``keccak256(bytes.concat(keccak256(abi.encode(values...))))``, so a
  64-byte internal node can never be passed off as a leaf (second-preimage protection);
  :func:`update_leaf` encodes ``(uint256 round, address member, bytes32 digest)``, which binds the
  digest to the member and the round;
* an internal node is the keccak256 of its two children **sorted** (``Hashes.commutativeKeccak256``),
  so a proof is just the list of sibling hashes, bottom up, with no left/right flags;
* leaves are sorted before the tree is built, so the root does not depend on the order in which
  updates arrived; a level with an odd count carries its last node up unchanged.

Example:
    >>> digests = [bytes([i]) * 32 for i in range(1, 4)]
    >>> members = ["0x" + f"{i:02x}" * 20 for i in range(1, 4)]
    >>> leaves = [update_leaf(7, m, d) for m, d in zip(members, digests)]
    >>> root = merkle_root(leaves)
    >>> verify_proof(root, leaves[1], merkle_proof(leaves, 1))
    True
    >>> verify_proof(root, update_leaf(8, members[1], digests[1]), merkle_proof(leaves, 1))
    False
"""

from __future__ import annotations

from collections.abc import Sequence

from eth_utils import keccak

from fedchain.errors import ConfigError

__all__ = [
    "hash_pair",
    "merkle_proof",
    "merkle_root",
    "parse_bytes32",
    "update_leaf",
    "verify_proof",
]


def parse_bytes32(value: bytes | str, *, name: str = "hash") -> bytes:
    """A 32-byte value given as bytes or as hex (with or without ``0x``).

    Raises:
        ConfigError: the value is not exactly 32 bytes.

    Example:
        >>> parse_bytes32("0x" + "ab" * 32) == bytes([0xAB]) * 32
        True
    """
    if isinstance(value, bytes | bytearray):
        raw = bytes(value)
    elif isinstance(value, str):
        text = value[2:] if value[:2].lower() == "0x" else value
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raw = b""
    else:
        raw = b""
    if len(raw) != 32:
        raise ConfigError(name, "32 bytes (64 hex digits, optional 0x)", value)
    return raw


def _address_word(member: str) -> bytes:
    text = member[2:] if isinstance(member, str) and member[:2].lower() == "0x" else member
    try:
        raw = bytes.fromhex(text) if isinstance(text, str) else b""
    except ValueError:
        raw = b""
    if len(raw) != 20:
        raise ConfigError("member", "a 20-byte hex address", member)
    return bytes(12) + raw


def update_leaf(server_round: int, member: str, digest: bytes | str) -> bytes:
    """The leaf committing one member's signed update digest in one round.

    ``keccak256(bytes.concat(keccak256(abi.encode(uint256 round, address member, bytes32 digest))))``.

    Args:
        server_round: the round (>= 1).
        member: the member's chain address (hex; case does not matter).
        digest: the update digest the member signed (32 bytes or hex).

    Returns:
        The 32-byte leaf.

    Raises:
        ConfigError: a value cannot be encoded.

    Example:
        >>> update_leaf(1, "0x" + "11" * 20, bytes(32)).hex()[:16]
        '82f00051ffcee98f'
    """
    if isinstance(server_round, bool) or not isinstance(server_round, int) or not 1 <= server_round < 2**256:
        raise ConfigError("server_round", "an int in [1, 2**256)", server_round)
    encoded = server_round.to_bytes(32, "big") + _address_word(member) + parse_bytes32(digest, name="digest")
    return bytes(keccak(keccak(encoded)))


def hash_pair(a: bytes, b: bytes) -> bytes:
    """keccak256 of two nodes in ascending order (OpenZeppelin ``Hashes.commutativeKeccak256``).

    Example:
        >>> a, b = bytes(32), bytes([1]) * 32
        >>> hash_pair(a, b) == hash_pair(b, a) != hash_pair(a, a)
        True
    """
    return bytes(keccak(a + b if a <= b else b + a))


def _levels(leaves: Sequence[bytes | str]) -> list[list[bytes]]:
    if isinstance(leaves, str | bytes) or len(leaves) == 0:
        raise ConfigError("leaves", "a non-empty sequence of 32-byte leaves", leaves)
    level = sorted(parse_bytes32(leaf, name="leaves") for leaf in leaves)
    levels = [level]
    while len(level) > 1:
        paired = [hash_pair(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
        levels.append(level)
    return levels


def merkle_root(leaves: Sequence[bytes | str]) -> bytes:
    """The root of the sorted-leaf, sorted-pair keccak tree over ``leaves``.

    A single leaf is its own root. There is no root of nothing: a round without signed updates
    records the zero hash instead, which :mod:`fedchain.audit` reports as "not committed".

    Raises:
        ConfigError: ``leaves`` is empty or a leaf is not 32 bytes.

    Example:
        >>> leaf = update_leaf(1, "0x" + "11" * 20, bytes(32))
        >>> merkle_root([leaf]) == leaf
        True
    """
    return _levels(leaves)[-1][0]


def merkle_proof(leaves: Sequence[bytes | str], index: int) -> list[bytes]:
    """The proof for ``leaves[index]``: sibling hashes from the leaf up to the root.

    Args:
        leaves: every leaf of the tree, in any order (the same set :func:`merkle_root` got).
        index: position of the leaf to prove in ``leaves`` as given.

    Returns:
        The sibling hashes, bottom up (empty for a one-leaf tree).

    Raises:
        ConfigError: ``index`` is out of range, or as :func:`merkle_root`.

    Example:
        >>> leaves = [update_leaf(1, "0x" + f"{i:02x}" * 20, bytes(32)) for i in range(1, 6)]
        >>> len(merkle_proof(leaves, 4)) <= 3
        True
    """
    levels = _levels(leaves)
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(leaves):
        raise ConfigError("index", f"an int in [0, {len(leaves) - 1}]", index)
    position = levels[0].index(parse_bytes32(leaves[index], name="leaves"))
    proof: list[bytes] = []
    for level in levels[:-1]:
        sibling = position ^ 1
        if sibling < len(level):
            proof.append(level[sibling])
        position //= 2
    return proof


def verify_proof(root: bytes | str, leaf: bytes | str, proof: Sequence[bytes | str]) -> bool:
    """Whether ``proof`` shows ``leaf`` is in the tree with ``root`` (``MerkleProof.verify``).

    Raises:
        ConfigError: the root, the leaf or a proof element is not 32 bytes.

    Example:
        >>> leaf = update_leaf(1, "0x" + "11" * 20, bytes(32))
        >>> verify_proof(leaf, leaf, [])
        True
    """
    node = parse_bytes32(leaf, name="leaf")
    for sibling in proof:
        node = hash_pair(node, parse_bytes32(sibling, name="proof"))
    return node == parse_bytes32(root, name="root")
