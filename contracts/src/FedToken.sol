// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.30;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title FedToken
/// @notice The federation's reward token. Only one address, fixed at construction, can mint:
/// the ContributionLedger that deploys it. There is no other way to create tokens, so the
/// total supply always equals the sum of the rewards the ledger has paid (members + treasury).
contract FedToken is ERC20 {
    /// @notice The only address allowed to mint (the ContributionLedger).
    address public immutable minter;

    /// @notice The caller is not the minter.
    error NotMinter(address caller);

    constructor(string memory name_, string memory symbol_, address minter_) ERC20(name_, symbol_) {
        minter = minter_;
    }

    modifier onlyMinter() {
        if (msg.sender != minter) revert NotMinter(msg.sender);
        _;
    }

    /// @notice Mint `amount` to `to`.
    function mint(address to, uint256 amount) external onlyMinter {
        _mint(to, amount);
    }
}
