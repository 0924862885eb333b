// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.30;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {MessageHashUtils} from "@openzeppelin/contracts/utils/cryptography/MessageHashUtils.sol";
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
///
/// Every privacy spend is on chain. Each member-round carries a status code (the order of
/// fedchain.types.MEMBER_STATUSES): 0 accepted, 1 rejected, 2 late, 3 skipped, 4 replayed. Only an
/// accepted member-round may have a non-zero score (`ScoreWithoutAcceptance`), so only it can
/// earn; the others are recorded with their DP parameters so that an auditor's epsilon
/// recomputation includes them. Spends found after their round was recorded (a late reply, a
/// round trained again after a coordinator crash) are added with `recordSpends`: one
/// `SpendRecorded` event per member, no tokens move, and a batch id makes a retry harmless.
///
/// Disputes. The decrypt committee's revealed scalars are committed per round
/// (`RoundInput.scalarsCommitment`, emitted in `RoundRecorded`; the stored `recordHash` covers
/// it). A member whose own scalars do not match signs (EIP-191)
///     digest = keccak256(abi.encode("fedchain-dispute-v1", chainid, address(this), round, commitment))
/// and anyone submits it with `fileDispute`; the contract recovers the signer, which must be
/// registered, and records one dispute per (round, member). A round disputed before it is
/// recorded pays nobody: `recordRound` sends its whole pool to the treasury and says so
/// (`RoundRecorded.disputes`). Residual risk: a dispute of an already recorded round is recorded
/// (an auditor fails that round) but cannot claw back rewards already credited; and any one
/// registered member can withhold the rewards of the next round by disputing it (the dispute is
/// signed, public and attributable, so the admin can deregister a member that abuses it).
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
    // member => lifetime budget: epsilon (bits 128..255) | delta (bits 0..127), both 1e18 fixed
    // point; 0 = not set (a set budget has a non-zero epsilon).
    mapping(address member => uint256 packed) private _budgets;
    mapping(uint256 round => uint256 count) private _disputeCounts;
    mapping(uint256 round => mapping(address member => bool)) private _disputed;
    mapping(bytes32 spendId => bool) private _spendBatches;

    uint256 private constant _BLOCK_MASK = 0xFFFFFFFFFFFFFFFF;
    uint256 private constant _FIXED_ONE = 1e18; // a budget's delta must be below it
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
    ) external onlyRole(RECORDER_ROLE) {
        uint256 n = members.length;
        if (scores.length != n || dpParams.length != n || epsilons.length != n || statuses.length != n) {
            revert LengthMismatch();
        }

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
            uint256 status = statuses[i];
            uint256 score = scores[i];
            if (status != _ACCEPTED) {
                if (status > _MAX_STATUS) revert InvalidStatus(m, status);
                if (score != 0) revert ScoreWithoutAcceptance(m, status);
            }
            totalScore += score;
            prev = m;
        }

        // Rewards by the published rule (none in a disputed round): credit, one event per member.
        uint256 disputes = _disputeCounts[round];
        uint256 paid;
        for (uint256 i; i < n; ++i) {
            address m = members[i];
            uint256 score = scores[i];
            uint256 reward =
                (disputes != 0 || score == 0 || totalScore == 0) ? 0 : Math.mulDiv(pool, score, totalScore);
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
