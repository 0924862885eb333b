// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.30;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {MessageHashUtils} from "@openzeppelin/contracts/utils/cryptography/MessageHashUtils.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {FedToken} from "./FedToken.sol"; // contracts/src/FedToken.sol, unchanged

/// @title TamperLedger (TEST ONLY: never deploy)
/// @notice A copy of fedchain's ContributionLedger (contracts/src/ContributionLedger.sol) with the
/// same ABI (functions, events, errors) except the privacy budgets, plus switchable flaws, so the
/// auditor's tests can build chains that a correct ledger would refuse to produce and check that
/// `fedchain audit` detects them from chain data alone. `flaws` is a bitmask fixed at construction:
///   1   FLAW_EQUAL_SPLIT      pay pool / n to every member, ignoring the scores
///   2   FLAW_NO_LINEAGE       accept any previousModelHash
///   4   FLAW_NO_REGISTRATION  record and pay unregistered members
///   8   FLAW_ANY_ROUND        accept any round number above the last (gaps)
///   16  FLAW_ANYONE_RECORDS   let any account record (no RECORDER_ROLE check)
///   32  FLAW_EXTRA_MINT       mint 1 wei more to the treasury than the round's pool
///   64  FLAW_PAY_ANY_STATUS   accept (and pay) a score on a member-round that was not accepted
///   128 FLAW_PAY_DISPUTED     pay a round disputed before it was recorded, reporting 0 disputes
contract TamperLedger is AccessControl {
    uint256 public constant FLAW_EQUAL_SPLIT = 1;
    uint256 public constant FLAW_NO_LINEAGE = 2;
    uint256 public constant FLAW_NO_REGISTRATION = 4;
    uint256 public constant FLAW_ANY_ROUND = 8;
    uint256 public constant FLAW_ANYONE_RECORDS = 16;
    uint256 public constant FLAW_EXTRA_MINT = 32;
    uint256 public constant FLAW_PAY_ANY_STATUS = 64;
    uint256 public constant FLAW_PAY_DISPUTED = 128;
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
        /// keccak256 commitment to the scalars the decrypt committee revealed (zero when none).
        bytes32 scalarsCommitment;
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
    mapping(uint256 round => uint256 count) private _disputeCounts;
    mapping(uint256 round => mapping(address member => bool)) private _disputed;
    mapping(bytes32 spendId => bool) private _spendBatches;

    uint256 private constant _BLOCK_MASK = 0xFFFFFFFFFFFFFFFF;
    // Member-round status codes (fedchain.types.MEMBER_STATUSES order).
    uint256 private constant _ACCEPTED = 0;
    uint256 private constant _REJECTED = 1;
    uint256 private constant _LATE = 2;
    uint256 private constant _REPLAYED = 4;
    uint256 private constant _MAX_STATUS = 4;

    event MemberRegistered(address indexed member, uint256 blockNumber);
    event MemberDeregistered(address indexed member, uint256 blockNumber);
    event TreasuryChanged(address indexed previousTreasury, address indexed newTreasury);
    event RoundRecorded(
        uint256 indexed round,
        bytes32 aggregateHash,
        bytes32 modelHash,
        bytes32 previousModelHash,
        bytes32 updateMerkleRoot,
        bytes32 scalarsCommitment,
        bytes32 recordHash,
        uint256 rewardPool,
        uint256 totalScore,
        uint256 memberCount,
        address treasury,
        uint256 treasuryAmount,
        uint256 disputes
    );
    event MemberRecorded(
        uint256 indexed round,
        address indexed member,
        uint256 score,
        uint256 reward,
        uint256 dpParams,
        uint256 epsilon,
        uint256 status
    );
    event SpendRecorded(
        uint256 indexed round,
        address indexed member,
        bytes32 indexed spendId,
        uint256 dpParams,
        uint256 epsilon,
        uint256 status
    );
    event RoundDisputed(uint256 indexed round, address indexed member, bytes32 scalarsCommitment, bool roundRecorded);
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
    error InvalidStatus(address member, uint256 status);
    error ScoreWithoutAcceptance(address member, uint256 status);
    error InvalidSpendStatus(address member, uint256 status);
    error SpendsAlreadyRecorded(bytes32 spendId);
    error DisputeRoundOutOfRange(uint256 round, uint256 lastRound);
    error UnregisteredDisputer(address signer);
    error DisputeAlreadyFiled(uint256 round, address member);

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

    /// @notice Record round `input.round` (exactly `lastRound + 1`) and pay its rewards. A round
    /// disputed before it is recorded (`disputeCount(round) != 0`) pays nobody: the whole pool goes
    /// to the treasury and `RoundRecorded.disputes` says why.
    /// @param members registered member addresses, strictly increasing.
    /// @param scores contribution scores, 1e18 fixed point, one per member (0 unless accepted).
    /// @param dpParams packed DP-SGD parameters, one word per member (layout in the contract doc).
    /// @param epsilons cumulative epsilon after the round, 1e18 fixed point (0: no DP).
    /// @param statuses member-round status codes (0 accepted ... 4 replayed, see the contract doc).
    function recordRound(
        RoundInput calldata input,
        address[] calldata members,
        uint256[] calldata scores,
        uint256[] calldata dpParams,
        uint256[] calldata epsilons,
        uint256[] calldata statuses
    ) external {
        if (flaws & FLAW_ANYONE_RECORDS == 0) _checkRole(RECORDER_ROLE);
        uint256 n = members.length;
        if (scores.length != n || dpParams.length != n || epsilons.length != n || statuses.length != n) {
            revert LengthMismatch();
        }

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
            uint256 status = statuses[i];
            uint256 score = scores[i];
            if (status != _ACCEPTED) {
                if (status > _MAX_STATUS) revert InvalidStatus(m, status);
                if (score != 0 && flaws & FLAW_PAY_ANY_STATUS == 0) revert ScoreWithoutAcceptance(m, status);
            }
            totalScore += score;
            prev = m;
        }

        // Rewards by the published rule (none in a disputed round): credit, one event per member.
        uint256 disputes = flaws & FLAW_PAY_DISPUTED == 0 ? _disputeCounts[round] : 0;
        uint256 paid;
        for (uint256 i; i < n; ++i) {
            address m = members[i];
            uint256 score = scores[i];
            uint256 reward = _reward(pool, score, totalScore, disputes, n);
            if (reward != 0) {
                _accounts[m] += reward << 64; // reward <= pool < 2**128: no overflow of the 192-bit field
                paid += reward;
            }
            emit MemberRecorded(round, m, score, reward, dpParams[i], epsilons[i], statuses[i]);
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
            input.scalarsCommitment,
            recordHash,
            pool,
            totalScore,
            n,
            treasury_,
            treasuryAmount,
            disputes
        );

        if (paid != 0) token.mint(address(this), paid);
        if (treasuryAmount != 0) token.mint(treasury_, treasuryAmount);
        if (flaws & FLAW_EXTRA_MINT != 0) token.mint(treasury_, 1);
    }

    /// @notice Record privacy spends found after their round was recorded: members that trained
    /// in `round` but whose reply came late (status 2), was refused (1), or belonged to a run of
    /// the round lost to a coordinator crash and replayed (4). No tokens move; each member emits
    /// `SpendRecorded`. `spendId` names the batch (any unique value; fedchain hashes the batch's
    /// contents): a second batch with the same id reverts `SpendsAlreadyRecorded`, so a retry of
    /// a batch that already landed cannot record its spends twice.
    /// @param round a recorded round (1..lastRound).
    /// @param spendId unique id of this batch.
    /// @param members registered member addresses (any order).
    /// @param dpParams packed DP-SGD parameters of each spend (layout in the contract doc).
    /// @param epsilons each member's reported cumulative epsilon after the spend (0: not reported).
    /// @param statuses each spend's status code: rejected, late or replayed.
    function recordSpends(
        uint256 round,
        bytes32 spendId,
        address[] calldata members,
        uint256[] calldata dpParams,
        uint256[] calldata epsilons,
        uint256[] calldata statuses
    ) external onlyRole(RECORDER_ROLE) {
        uint256 n = members.length;
        if (dpParams.length != n || epsilons.length != n || statuses.length != n) revert LengthMismatch();
        if (round == 0 || round > lastRound) revert UnknownRound(round);
        if (_spendBatches[spendId]) revert SpendsAlreadyRecorded(spendId);
        _spendBatches[spendId] = true;
        for (uint256 i; i < n; ++i) {
            address m = members[i];
            if (_accounts[m] & _BLOCK_MASK == 0) revert UnregisteredMember(m);
            uint256 status = statuses[i];
            if (status > _MAX_STATUS) revert InvalidStatus(m, status);
            if (status != _REJECTED && status != _LATE && status != _REPLAYED) revert InvalidSpendStatus(m, status);
            emit SpendRecorded(round, m, spendId, dpParams[i], epsilons[i], status);
        }
    }

    // ---- disputes (anyone submits a member's signed dispute) ---------------------------------

    /// @notice File a member's signed dispute of `round`'s revealed scalars. Anyone may submit it;
    /// the signer (recovered from `signature`, EIP-191 over `disputeDigest(round, commitment)`)
    /// must be registered and is the disputing member. One dispute per (round, member). A round
    /// may be disputed from the moment it is next to be recorded (`lastRound + 1`): disputed before
    /// it is recorded, it pays nobody; disputed after, the dispute is recorded (an auditor fails
    /// the round) but rewards already credited stay credited.
    /// @return member the disputing member.
    function fileDispute(uint256 round, bytes32 scalarsCommitment, bytes calldata signature)
        external
        returns (address member)
    {
        uint256 last = lastRound;
        if (round == 0 || round > last + 1) revert DisputeRoundOutOfRange(round, last);
        bytes32 digest = disputeDigest(round, scalarsCommitment);
        member = ECDSA.recover(MessageHashUtils.toEthSignedMessageHash(digest), signature);
        if (_accounts[member] & _BLOCK_MASK == 0) revert UnregisteredDisputer(member);
        if (_disputed[round][member]) revert DisputeAlreadyFiled(round, member);
        _disputed[round][member] = true;
        ++_disputeCounts[round];
        emit RoundDisputed(round, member, scalarsCommitment, round <= last);
    }

    /// @notice What a member signs (EIP-191) to dispute `round`: keccak256 of
    /// abi.encode("fedchain-dispute-v1", chainid, this ledger, round, commitment).
    function disputeDigest(uint256 round, bytes32 scalarsCommitment) public view returns (bytes32) {
        return keccak256(abi.encode("fedchain-dispute-v1", block.chainid, address(this), round, scalarsCommitment));
    }

    function _reward(uint256 pool, uint256 score, uint256 totalScore, uint256 disputes, uint256 n)
        private
        view
        returns (uint256)
    {
        if (flaws & FLAW_EQUAL_SPLIT != 0) return pool / n;
        return (disputes != 0 || score == 0 || totalScore == 0) ? 0 : Math.mulDiv(pool, score, totalScore);
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

    /// @notice Number of disputes filed against `round`.
    function disputeCount(uint256 round) external view returns (uint256) {
        return _disputeCounts[round];
    }

    /// @notice Whether `member` disputed `round`.
    function isDisputed(uint256 round, address member) external view returns (bool) {
        return _disputed[round][member];
    }

    /// @notice Whether a `recordSpends` batch with this id was recorded.
    function spendsRecorded(bytes32 spendId) external view returns (bool) {
        return _spendBatches[spendId];
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
