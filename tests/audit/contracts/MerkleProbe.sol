// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.30;

import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";

/// @title MerkleProbe (TEST ONLY)
/// @notice Checks fedchain.identity.merkle against OpenZeppelin's MerkleProof on a real EVM: the
/// leaf convention of a signed update digest and the verification of a Python-built proof.
contract MerkleProbe {
    /// @notice keccak256(bytes.concat(keccak256(abi.encode(round, member, digest)))).
    function leaf(uint256 round, address member, bytes32 digest) public pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(abi.encode(round, member, digest))));
    }

    /// @notice Whether `proof` shows the member's digest for `round` is under `root`.
    function verify(bytes32[] calldata proof, bytes32 root, uint256 round, address member, bytes32 digest)
        external
        pure
        returns (bool)
    {
        return MerkleProof.verifyCalldata(proof, root, leaf(round, member, digest));
    }
}
