"""fedchain.identity.merkle: sorted-pair keccak trees that OpenZeppelin's MerkleProof accepts."""

from __future__ import annotations

import random
from typing import Any

import pytest
from eth_utils import to_checksum_address
from hypothesis import given, settings
from hypothesis import strategies as st

from fedchain.errors import ConfigError
from fedchain.identity.merkle import hash_pair, merkle_proof, merkle_root, update_leaf, verify_proof
from fedchain.ledger import Chain

from .helpers import addresses, deploy_variant, variant

MEMBERS = addresses(9, seed="merkle")


def leaves_for(n: int, server_round: int = 4) -> tuple[list[bytes], list[bytes]]:
    digests = [bytes([i + 1]) * 32 for i in range(n)]
    return [update_leaf(server_round, MEMBERS[i], digests[i]) for i in range(n)], digests


@settings(max_examples=40, deadline=None)
@given(st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=33, unique=True), st.randoms())
def test_every_leaf_proves_and_the_root_ignores_order(leaves: list[bytes], rng: random.Random) -> None:
    root = merkle_root(leaves)
    shuffled = list(leaves)
    rng.shuffle(shuffled)
    assert merkle_root(shuffled) == root
    for index, leaf in enumerate(leaves):
        proof = merkle_proof(leaves, index)
        assert len(proof) <= max(1, len(leaves) - 1).bit_length()
        assert verify_proof(root, leaf, proof)


def test_a_proof_does_not_verify_another_leaf_or_a_changed_proof() -> None:
    leaves, _ = leaves_for(6)
    root = merkle_root(leaves)
    proof = merkle_proof(leaves, 2)
    assert verify_proof(root, leaves[2], proof)
    assert not verify_proof(root, leaves[3], proof)
    tampered = [proof[0][:-1] + bytes([proof[0][-1] ^ 1]), *proof[1:]]
    assert not verify_proof(root, leaves[2], tampered)
    assert not verify_proof(root, leaves[2], proof[:-1])


def test_the_leaf_binds_round_member_and_digest() -> None:
    digest = b"\x07" * 32
    leaf = update_leaf(3, MEMBERS[0], digest)
    assert leaf == update_leaf(3, MEMBERS[0].lower(), "0x" + digest.hex())
    assert leaf != update_leaf(4, MEMBERS[0], digest)
    assert leaf != update_leaf(3, MEMBERS[1], digest)
    assert leaf != update_leaf(3, MEMBERS[0], b"\x08" * 32)


def test_single_leaf_and_pair() -> None:
    (leaf,), _ = leaves_for(1)
    assert merkle_root([leaf]) == leaf and merkle_proof([leaf], 0) == []
    a, b = leaves_for(2)[0]
    assert merkle_root([a, b]) == hash_pair(a, b) == hash_pair(b, a)


@pytest.mark.parametrize(
    ("call", "parameter"),
    [
        (lambda: merkle_root([]), "leaves"),
        (lambda: merkle_root([b"short"]), "leaves"),
        (lambda: merkle_proof(leaves_for(3)[0], 3), "index"),
        (lambda: update_leaf(0, MEMBERS[0], bytes(32)), "server_round"),
        (lambda: update_leaf(1, "0x1234", bytes(32)), "member"),
        (lambda: update_leaf(1, MEMBERS[0], "0xzz"), "digest"),
        (lambda: verify_proof(bytes(31), bytes(32), []), "root"),
    ],
)
def test_malformed_input_is_a_config_error(call: object, parameter: str) -> None:
    with pytest.raises(ConfigError) as info:
        call()  # type: ignore[operator]
    assert info.value.parameter == parameter


@pytest.fixture(scope="module")
def probe(chain: Chain) -> Any:
    """OpenZeppelin's MerkleProof.verifyCalldata on the embedded EVM (tests/audit/contracts/MerkleProbe.sol)."""
    address = to_checksum_address(deploy_variant(chain, "MerkleProbe"))
    return chain.w3.eth.contract(address=address, abi=variant("MerkleProbe")["abi"])


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 9])
def test_openzeppelin_merkle_proof_accepts_our_proofs(probe: Any, n: int) -> None:
    leaves, digests = leaves_for(n)
    root = merkle_root(leaves)
    for i in range(n):
        assert bytes(probe.functions.leaf(4, MEMBERS[i], digests[i]).call()) == leaves[i]
        proof = merkle_proof(leaves, i)
        assert probe.functions.verify(proof, root, 4, MEMBERS[i], digests[i]).call() is True
        assert probe.functions.verify(proof, root, 5, MEMBERS[i], digests[i]).call() is False
