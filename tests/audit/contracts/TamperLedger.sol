// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.30;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {FedToken} from "./FedToken.sol"; // contracts/src/FedToken.sol, unchanged

/// @title TamperLedger (TEST ONLY: never deploy)
/// @notice A copy of fedchain's ContributionLedger (contracts/src/ContributionLedger.sol) with the
/// same ABI (functions, events, errors) plus switchable flaws, so the auditor's tests can build
/// chains that a correct ledger would refuse to produce and check that `fedchain audit` detects
/// them from chain data alone. `flaws` is a bitmask fixed at construction:
///   1  FLAW_EQUAL_SPLIT      pay pool / n to every member, ignoring the scores
///   2  FLAW_NO_LINEAGE       accept any previousModelHash
///   4  FLAW_NO_REGISTRATION  record and pay unregistered members
///   8  FLAW_ANY_ROUND        accept any round number above the last (gaps)
///   16 FLAW_ANYONE_RECORDS   let any account record (no RECORDER_ROLE check)
///   32 FLAW_EXTRA_MINT       mint 1 wei more to the treasury than the round's pool
contract TamperLedger is AccessControl {
    uint256 public constant FLAW_EQUAL_SPLIT = 1;
    uint256 public constant FLAW_NO_LINEAGE = 2;
    uint256 public constant FLAW_NO_REGISTRATION = 4;
    uint256 public constant FLAW_ANY_ROUND = 8;
    uint256 public constant FLAW_ANYONE_RECORDS = 16;
    uint256 public constant FLAW_EXTRA_MINT = 32;
    /// @notice The flaws switched on (bitmask above).
    uint256 public immutable flaws;

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

    uint256 private constant _BLOCK_MASK = 0xFFFFFFFFFFFFFFFF;

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

    constructor(
        address admin,
        address recorder,
        address treasury_,
        string memory tokenName,
        string memory tokenSymbol,
        uint256 flaws_
    ) {
        flaws = flaws_;
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
    ) external {
        if (flaws & FLAW_ANYONE_RECORDS == 0) _checkRole(RECORDER_ROLE);
        uint256 n = members.length;
        if (scores.length != n || dpParams.length != n || epsilons.length != n) revert LengthMismatch();

        uint256 last = lastRound;
        uint256 round = input.round;
        if (round <= last) revert RoundAlreadyRecorded(round);
        if (round != last + 1 && flaws & FLAW_ANY_ROUND == 0) revert WrongRound(last + 1, round);
        bytes32 lastModel = last == 0 ? bytes32(0) : _rounds[last].modelHash;
        if (input.previousModelHash != lastModel && flaws & FLAW_NO_LINEAGE == 0) {
            revert BrokenLineage(lastModel, input.previousModelHash);
        }
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
            if (_accounts[m] & _BLOCK_MASK == 0 && flaws & FLAW_NO_REGISTRATION == 0) revert UnregisteredMember(m);
            totalScore += scores[i];
            prev = m;
        }

        // Rewards by the published rule: credit, one event per member.
        uint256 paid;
        for (uint256 i; i < n; ++i) {
            address m = members[i];
            uint256 score = scores[i];
            uint256 reward = (score == 0 || totalScore == 0) ? 0 : Math.mulDiv(pool, score, totalScore);
            if (flaws & FLAW_EQUAL_SPLIT != 0) reward = pool / n;
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
        if (flaws & FLAW_EXTRA_MINT != 0) token.mint(treasury_, 1);
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

    /// @notice All rewards `member` holds: its FedToken balance plus its unclaimed credit.
    function balanceOf(address member) external view returns (uint256) {
        return token.balanceOf(member) + (_accounts[member] >> 64);
    }
}
