// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.30;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {FedToken} from "./FedToken.sol";

/// @title ContributionLedger
/// @notice Records each federated-learning round (hashes, members, scores, DP parameters) and pays
/// token rewards by a published integer rule:
///
///     reward_i = rewardPool * score_i / totalScore   (floor; 0 when score_i or totalScore is 0)
///     treasuryAmount = rewardPool - sum_i reward_i
///
/// Payment (pull pattern): each round mints `sum_i reward_i` FedToken to this contract and credits
/// every member's claimable balance; the treasury remainder is minted straight to the treasury.
/// A member (or anyone, on its behalf) moves its credit into its own ERC-20 balance with `claim` /
/// `claimFor`. Hence, at every block:
///     token.totalSupply()            == sum of all rewardPools recorded
///     token.balanceOf(address(this)) == sum of claimable(member) over all members
///     balanceOf(member)              == token.balanceOf(member) + claimable(member)
/// Crediting a packed storage word that also holds the registration block costs one cold slot per
/// member (instead of a registration read plus an ERC-20 balance write and Transfer event).
///
/// Everything an auditor needs is on chain: a per-round header in storage (see `RoundHeader`),
/// one `MemberRecorded` event per member-round, one `RoundRecorded` event per round,
/// `MemberRegistered` / `MemberDeregistered` events (with the block) for registration history, and
/// each member's lifetime privacy budget (`setPrivacyBudgets`, set once per member by the admin,
/// read with `privacyBudget` or from the `PrivacyBudgetSet` events), against which an auditor
/// judges the epsilon it recomputes from the recorded DP parameters.
///
/// Fixed-point scales (see fedchain/ledger/fixedpoint.py): scores, epsilon and budgets (epsilon and
/// delta) are 1e18-scaled;
/// `dpParams` packs one member's DP-SGD parameters into one word, least significant bits first:
///   bits   0..47  noise multiplier  x 1e9   (uint48)
///   bits  48..111 sample rate       x 1e18  (uint64)
///   bits 112..143 steps                      (uint32)
///   bits 144..191 max grad norm     x 1e9   (uint48)
///   bits 192..255 delta             x 1e18  (uint64)
/// A zero word (and zero epsilon) means the member trained without DP.
///
/// Lineage is enforced on chain: `previousModelHash` must equal the last recorded `modelHash`
/// (zero for round 1). Members must be sorted by strictly increasing address, which detects
/// duplicates without storage.
contract ContributionLedger is AccessControl {
    /// @notice Role allowed to record rounds (the coordinator).
    bytes32 public constant RECORDER_ROLE = keccak256("RECORDER_ROLE");
    /// @notice Largest accepted reward pool (keeps packed claimable balances far from overflow).
    uint256 public constant MAX_REWARD_POOL = type(uint128).max;

    /// @notice The round header passed to `recordRound`.
    struct RoundInput {
        uint256 round;
        bytes32 aggregateHash;
        bytes32 modelHash;
        bytes32 previousModelHash;
        bytes32 updateMerkleRoot;
        uint256 rewardPool;
    }

    /// @notice What is stored per recorded round.
    struct RoundHeader {
        bytes32 aggregateHash;
        bytes32 modelHash;
        bytes32 previousModelHash;
        bytes32 updateMerkleRoot;
        /// keccak256 of the complete `recordRound` calldata: identifies the exact payload.
        bytes32 recordHash;
        uint256 rewardPool;
        uint256 totalScore;
        address recorder;
        uint64 blockNumber;
        uint32 memberCount;
    }

    /// @notice The reward token; this contract is its only minter.
    FedToken public immutable token;
    /// @notice Block in which this ledger was deployed (start of every log scan).
    uint256 public immutable deployBlock;
    /// @notice Receives the remainder of each round's pool.
    address public treasury;
    /// @notice Last recorded round number (0 before the first round).
    uint256 public lastRound;

    // member => claimable (bits 64..255) | registered-since block (bits 0..63, 0 = not registered)
    mapping(address member => uint256 packed) private _accounts;
    mapping(uint256 round => RoundHeader) private _rounds;
    // member => lifetime budget: epsilon (bits 128..255) | delta (bits 0..127), both 1e18 fixed
    // point; 0 = not set (a set budget has a non-zero epsilon).
    mapping(address member => uint256 packed) private _budgets;

    uint256 private constant _BLOCK_MASK = 0xFFFFFFFFFFFFFFFF;
    uint256 private constant _FIXED_ONE = 1e18; // a budget's delta must be below it

    event MemberRegistered(address indexed member, uint256 blockNumber);
    event MemberDeregistered(address indexed member, uint256 blockNumber);
    event TreasuryChanged(address indexed previousTreasury, address indexed newTreasury);
    event RoundRecorded(
        uint256 indexed round,
        bytes32 aggregateHash,
        bytes32 modelHash,
        bytes32 previousModelHash,
        bytes32 updateMerkleRoot,
        bytes32 recordHash,
        uint256 rewardPool,
        uint256 totalScore,
        uint256 memberCount,
        address treasury,
        uint256 treasuryAmount
    );
    event MemberRecorded(
        uint256 indexed round, address indexed member, uint256 score, uint256 reward, uint256 dpParams, uint256 epsilon
    );
    event Claimed(address indexed member, uint256 amount);
    event PrivacyBudgetSet(address indexed member, uint256 epsilon, uint256 delta);

    error ZeroAddress();
    error AlreadyRegistered(address member);
    error NotRegistered(address member);
    error UnregisteredMember(address member);
    error LengthMismatch();
    error DuplicateMember(address member);
    error MembersNotSorted(uint256 index);
    error WrongRound(uint256 expected, uint256 got);
    error RoundAlreadyRecorded(uint256 round);
    error BrokenLineage(bytes32 expected, bytes32 got);
    error PoolTooLarge(uint256 rewardPool);
    error UnknownRound(uint256 round);
    error BudgetAlreadySet(address member);
    error InvalidBudget(address member);

    constructor(
        address admin,
        address recorder,
        address treasury_,
        string memory tokenName,
        string memory tokenSymbol
    ) {
        if (admin == address(0) || recorder == address(0) || treasury_ == address(0)) revert ZeroAddress();
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(RECORDER_ROLE, recorder);
        treasury = treasury_;
        deployBlock = block.number;
        token = new FedToken(tokenName, tokenSymbol, address(this));
        emit TreasuryChanged(address(0), treasury_);
    }

    // ---- membership (admin) ----------------------------------------------------------------

    /// @notice Register members; each emits `MemberRegistered(member, block.number)`.
    function registerMembers(address[] calldata members) external onlyRole(DEFAULT_ADMIN_ROLE) {
        for (uint256 i; i < members.length; ++i) {
            address m = members[i];
            if (m == address(0)) revert ZeroAddress();
            uint256 packed = _accounts[m];
            if (packed & _BLOCK_MASK != 0) revert AlreadyRegistered(m);
            _accounts[m] = (packed & ~_BLOCK_MASK) | block.number;
            emit MemberRegistered(m, block.number);
        }
    }

    /// @notice Deregister members (their unclaimed credit stays claimable).
    function deregisterMembers(address[] calldata members) external onlyRole(DEFAULT_ADMIN_ROLE) {
        for (uint256 i; i < members.length; ++i) {
            address m = members[i];
            uint256 packed = _accounts[m];
            if (packed & _BLOCK_MASK == 0) revert NotRegistered(m);
            _accounts[m] = packed & ~_BLOCK_MASK;
            emit MemberDeregistered(m, block.number);
        }
    }

    /// @notice Set registered members' lifetime privacy budgets, once per member; each emits
    /// `PrivacyBudgetSet(member, epsilon, delta)`. A budget outlives deregistration.
    /// @param members registered member addresses.
    /// @param epsilons each member's total epsilon, 1e18 fixed point, in [1, 2**128).
    /// @param deltas each member's delta, 1e18 fixed point, in [1, 1e18).
    function setPrivacyBudgets(address[] calldata members, uint256[] calldata epsilons, uint256[] calldata deltas)
        external
        onlyRole(DEFAULT_ADMIN_ROLE)
    {
        uint256 n = members.length;
        if (epsilons.length != n || deltas.length != n) revert LengthMismatch();
        for (uint256 i; i < n; ++i) {
            address m = members[i];
            if (_accounts[m] & _BLOCK_MASK == 0) revert NotRegistered(m);
            if (_budgets[m] != 0) revert BudgetAlreadySet(m);
            uint256 epsilon = epsilons[i];
            uint256 delta = deltas[i];
            if (epsilon == 0 || epsilon >> 128 != 0 || delta == 0 || delta >= _FIXED_ONE) revert InvalidBudget(m);
            _budgets[m] = (epsilon << 128) | delta;
            emit PrivacyBudgetSet(m, epsilon, delta);
        }
    }

    /// @notice Change the treasury that receives each round's remainder.
    function setTreasury(address newTreasury) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (newTreasury == address(0)) revert ZeroAddress();
        emit TreasuryChanged(treasury, newTreasury);
        treasury = newTreasury;
    }

    // ---- recording (coordinator) -----------------------------------------------------------

    /// @notice Record round `input.round` (exactly `lastRound + 1`) and pay its rewards.
    /// @param members registered member addresses, strictly increasing.
    /// @param scores contribution scores, 1e18 fixed point, one per member.
    /// @param dpParams packed DP-SGD parameters, one word per member (layout in the contract doc).
    /// @param epsilons cumulative epsilon after the round, 1e18 fixed point (0: no DP).
    function recordRound(
        RoundInput calldata input,
        address[] calldata members,
        uint256[] calldata scores,
        uint256[] calldata dpParams,
        uint256[] calldata epsilons
    ) external onlyRole(RECORDER_ROLE) {
        uint256 n = members.length;
        if (scores.length != n || dpParams.length != n || epsilons.length != n) revert LengthMismatch();

        uint256 last = lastRound;
        uint256 round = input.round;
        if (round <= last) revert RoundAlreadyRecorded(round);
        if (round != last + 1) revert WrongRound(last + 1, round);
        bytes32 lastModel = last == 0 ? bytes32(0) : _rounds[last].modelHash;
        if (input.previousModelHash != lastModel) revert BrokenLineage(lastModel, input.previousModelHash);
        uint256 pool = input.rewardPool;
        if (pool > MAX_REWARD_POOL) revert PoolTooLarge(pool);

        // Validate members (sorted => no duplicates) and sum the scores.
        uint256 totalScore;
        address prev;
        for (uint256 i; i < n; ++i) {
            address m = members[i];
            if (i != 0 && m <= prev) {
                if (m == prev) revert DuplicateMember(m);
                revert MembersNotSorted(i);
            }
            if (_accounts[m] & _BLOCK_MASK == 0) revert UnregisteredMember(m);
            totalScore += scores[i];
            prev = m;
        }

        // Rewards by the published rule: credit, one event per member.
        uint256 paid;
        for (uint256 i; i < n; ++i) {
            address m = members[i];
            uint256 score = scores[i];
            uint256 reward = (score == 0 || totalScore == 0) ? 0 : Math.mulDiv(pool, score, totalScore);
            if (reward != 0) {
                _accounts[m] += reward << 64; // reward <= pool < 2**128: no overflow of the 192-bit field
                paid += reward;
            }
            emit MemberRecorded(round, m, score, reward, dpParams[i], epsilons[i]);
        }
        uint256 treasuryAmount = pool - paid;

        bytes32 recordHash = keccak256(msg.data);
        _rounds[round] = RoundHeader({
            aggregateHash: input.aggregateHash,
            modelHash: input.modelHash,
            previousModelHash: input.previousModelHash,
            updateMerkleRoot: input.updateMerkleRoot,
            recordHash: recordHash,
            rewardPool: pool,
            totalScore: totalScore,
            recorder: msg.sender,
            blockNumber: uint64(block.number),
            memberCount: uint32(n)
        });
        lastRound = round;

        address treasury_ = treasury;
        emit RoundRecorded(
            round,
            input.aggregateHash,
            input.modelHash,
            input.previousModelHash,
            input.updateMerkleRoot,
            recordHash,
            pool,
            totalScore,
            n,
            treasury_,
            treasuryAmount
        );

        if (paid != 0) token.mint(address(this), paid);
        if (treasuryAmount != 0) token.mint(treasury_, treasuryAmount);
    }

    // ---- claims (anyone) ---------------------------------------------------------------------

    /// @notice Move the caller's claimable credit into its ERC-20 balance.
    function claim() external returns (uint256 amount) {
        return _claim(msg.sender);
    }

    /// @notice Move each member's claimable credit into its own ERC-20 balance (anyone may pay).
    function claimFor(address[] calldata members) external {
        for (uint256 i; i < members.length; ++i) {
            _claim(members[i]);
        }
    }

    function _claim(address member) private returns (uint256 amount) {
        uint256 packed = _accounts[member];
        amount = packed >> 64;
        if (amount == 0) return 0;
        _accounts[member] = packed & _BLOCK_MASK;
        emit Claimed(member, amount);
        token.transfer(member, amount);
    }

    // ---- reads -------------------------------------------------------------------------------

    /// @notice The stored header of a recorded round; reverts `UnknownRound` otherwise.
    function getRound(uint256 round) external view returns (RoundHeader memory) {
        if (round == 0 || round > lastRound) revert UnknownRound(round);
        return _rounds[round];
    }

    /// @notice Model hash of the last recorded round (zero before the first round).
    function lastModelHash() external view returns (bytes32) {
        uint256 last = lastRound;
        return last == 0 ? bytes32(0) : _rounds[last].modelHash;
    }

    /// @notice Block in which `member` was (last) registered; 0 when it is not registered now.
    function registeredSince(address member) external view returns (uint256) {
        return _accounts[member] & _BLOCK_MASK;
    }

    /// @notice Whether `member` is registered now.
    function isRegistered(address member) external view returns (bool) {
        return _accounts[member] & _BLOCK_MASK != 0;
    }

    /// @notice Rewards credited to `member` and not yet claimed into its ERC-20 balance.
    function claimable(address member) external view returns (uint256) {
        return _accounts[member] >> 64;
    }

    /// @notice `member`'s lifetime privacy budget (1e18 fixed point); zeros when none was set.
    function privacyBudget(address member) external view returns (uint256 epsilon, uint256 delta) {
        uint256 packed = _budgets[member];
        return (packed >> 128, packed & type(uint128).max);
    }

    /// @notice All rewards `member` holds: its FedToken balance plus its unclaimed credit.
    function balanceOf(address member) external view returns (uint256) {
        return token.balanceOf(member) + (_accounts[member] >> 64);
    }
}
