"""The ``Ledger`` extension point and the records it returns.

A ledger is where rounds are recorded and rewards paid. :class:`LedgerReader` is everything an
auditor needs (rounds, member history, registrations, privacy budgets, balances); :class:`Ledger`
adds the writes the admin and the coordinator make. :class:`~fedchain.ledger.Web3Ledger` implements both against any
EVM chain; :class:`~fedchain.ledger.ExportedLedger` implements the reader over an exported run.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from fedchain.errors import LedgerError
from fedchain.ledger.fixedpoint import fixed_to_epsilon, fixed_to_score, unpack_dp
from fedchain.types import DPParams, Receipt, RoundRecord

__all__ = [
    "Ledger",
    "LedgerReader",
    "RecordedMember",
    "RecordedRound",
    "RegistrationEvent",
    "RoundConflictError",
]


class RoundConflictError(LedgerError):
    """A round is already recorded on chain with a different payload.

    Retrying the *identical* record is not an error (the existing receipt is returned); this error
    means the coordinator tried to rewrite history.

    Attributes:
        server_round: the round concerned.
        recorded_hash: ``recordHash`` stored on chain for the round.
        attempted_hash: ``recordHash`` of the payload that was refused.
    """

    def __init__(self, server_round: int, recorded_hash: str, attempted_hash: str) -> None:
        self.server_round = server_round
        self.recorded_hash = recorded_hash
        self.attempted_hash = attempted_hash
        super().__init__(
            f"round {server_round} is already recorded with a different payload "
            f"(recorded recordHash {recorded_hash}, attempted {attempted_hash})"
        )


@dataclass(frozen=True)
class RecordedMember:
    """One member's entry of a recorded round, decoded from its ``MemberRecorded`` event.

    Attributes:
        server_round: the round.
        address: checksummed member address.
        score_fixed: the score as recorded (1e18 fixed point).
        reward_wei: the reward credited to the member.
        dp_word: the packed DP parameters as recorded (0 without DP).
        epsilon_fixed: cumulative epsilon as recorded (1e18 fixed point, 0 without DP).
        block_number: block of the recording transaction.
        tx_hash: hash of the recording transaction.
    """

    server_round: int
    address: str
    score_fixed: int
    reward_wei: int
    dp_word: int
    epsilon_fixed: int
    block_number: int
    tx_hash: str

    @property
    def score(self) -> float:
        """The score as a float."""
        return fixed_to_score(self.score_fixed)

    @property
    def dp(self) -> DPParams | None:
        """The decoded DP-SGD parameters, or None without DP."""
        return unpack_dp(self.dp_word)

    @property
    def epsilon(self) -> float | None:
        """The recorded cumulative epsilon, or None without DP."""
        return fixed_to_epsilon(self.epsilon_fixed)


@dataclass(frozen=True)
class RecordedRound:
    """A recorded round: the header stored on chain plus its members' events.

    Attributes:
        server_round: round number.
        aggregate_hash: hex hash of the aggregate.
        model_hash: hex hash of the round's global model.
        previous_model_hash: hex model hash of the previous round (zero hash for round 1).
        update_merkle_root: Merkle root of the signed update digests.
        record_hash: keccak256 of the ``recordRound`` calldata (identifies the exact payload).
        reward_pool_wei: the pool split in the round.
        total_score_fixed: sum of the recorded scores (fixed point).
        member_count: number of members recorded.
        recorder: address that recorded the round.
        treasury: treasury address that received the remainder.
        treasury_wei: remainder paid to the treasury.
        block_number: block of the recording transaction.
        tx_hash: hash of the recording transaction.
        members: the members' entries in recorded order (ascending address).
    """

    server_round: int
    aggregate_hash: str
    model_hash: str
    previous_model_hash: str
    update_merkle_root: str
    record_hash: str
    reward_pool_wei: int
    total_score_fixed: int
    member_count: int
    recorder: str
    treasury: str
    treasury_wei: int
    block_number: int
    tx_hash: str
    members: tuple[RecordedMember, ...]

    @property
    def rewards_wei(self) -> dict[str, int]:
        """Reward per member address."""
        return {m.address: m.reward_wei for m in self.members}


@dataclass(frozen=True)
class RegistrationEvent:
    """A ``MemberRegistered`` (``registered=True``) or ``MemberDeregistered`` event.

    Attributes:
        address: checksummed member address.
        registered: True for a registration, False for a deregistration.
        block_number: block in which it took effect.
        log_index: position of the event in its block.
        tx_hash: the transaction that emitted it.
    """

    address: str
    registered: bool
    block_number: int
    log_index: int
    tx_hash: str


class LedgerReader(ABC):
    """Read access to recorded rounds, registrations and balances.

    Subclasses implement seven reads; :meth:`rounds` and :meth:`was_registered` build on them.

    Example:
        >>> from fedchain.ledger import connect, Web3Ledger
        >>> ledger = Web3Ledger.deploy(connect("embedded"))
        >>> ledger.last_round(), ledger.total_supply()
        (0, 0)
    """

    @property
    @abstractmethod
    def address(self) -> str:
        """Checksummed address of the ``ContributionLedger`` contract."""

    @abstractmethod
    def last_round(self) -> int:
        """Return the last recorded round number (0 before the first round)."""

    @abstractmethod
    def get_round(self, server_round: int) -> RecordedRound:
        """Return a recorded round with all its members.

        Raises:
            LedgerError: the round is not recorded.
        """

    @abstractmethod
    def member_history(self, address: str) -> list[RecordedMember]:
        """Return every recorded entry of one member, in round order (empty when none)."""

    @abstractmethod
    def registrations(self) -> list[RegistrationEvent]:
        """Return every registration and deregistration, in chain order."""

    @abstractmethod
    def privacy_budget(self, address: str) -> tuple[float, float] | None:
        """Return a member's lifetime privacy budget ``(epsilon, delta)`` as set on chain.

        Returns:
            The budget, or None when none was set for ``address``, or when the ledger predates
            budgets (its contract has no ``privacyBudget``).
        """

    @abstractmethod
    def balance_of(self, address: str) -> int:
        """Return the FedToken an address holds, in wei: its ERC-20 balance plus unclaimed credit."""

    @abstractmethod
    def total_supply(self) -> int:
        """Return the FedToken total supply in wei (equals the sum of all recorded reward pools)."""

    def rounds(self) -> list[RecordedRound]:
        """Return every recorded round, in order."""
        return [self.get_round(n) for n in range(1, self.last_round() + 1)]

    def was_registered(self, address: str, *, block_number: int) -> bool:
        """Whether ``address`` was registered at the end of block ``block_number``.

        Example:
            >>> from fedchain.ledger import Web3Ledger, connect
            >>> ledger = Web3Ledger.deploy(connect("embedded"))
            >>> ledger.was_registered("0x" + "11" * 20, block_number=1)
            False
        """
        state = False
        wanted = address.lower()
        for event in self.registrations():
            if event.block_number > block_number:
                break
            if event.address.lower() == wanted:
                state = event.registered
        return state


class Ledger(LedgerReader):
    """A ledger the admin and the coordinator write: registration, privacy budgets, round recording.

    Example:
        >>> from fedchain.ledger import connect, Web3Ledger
        >>> from fedchain.types import MemberRoundRecord, RoundRecord, ZERO_HASH
        >>> ledger = Web3Ledger.deploy(connect("embedded"))
        >>> member = "0x" + "11" * 20
        >>> ledger.register_members([member])
        >>> record = RoundRecord(server_round=1, aggregate_hash="aa" * 32, model_hash="bb" * 32,
        ...     previous_model_hash=ZERO_HASH, members=(MemberRoundRecord(member, 1.0),),
        ...     reward_pool_wei=10**18)
        >>> ledger.record_round(record).rewards_wei
        {'0x1111111111111111111111111111111111111111': 1000000000000000000}
    """

    @abstractmethod
    def register_members(self, addresses: Sequence[str]) -> None:
        """Register member addresses (admin only); each emits ``MemberRegistered``.

        Raises:
            TransactionError: an address is already registered or zero (reason names the error),
                or the signer is not the admin.
        """

    @abstractmethod
    def deregister_members(self, addresses: Sequence[str]) -> None:
        """Deregister member addresses (admin only); their unclaimed credit stays claimable.

        Raises:
            TransactionError: an address is not registered, or the signer is not the admin.
        """

    @abstractmethod
    def set_privacy_budgets(self, budgets: Mapping[str, tuple[float, float]]) -> None:
        """Set registered members' lifetime privacy budgets (admin only, once per member).

        Each emits ``PrivacyBudgetSet(member, epsilon, delta)``; :meth:`privacy_budget` reads it back,
        and an auditor judges each member's recomputed epsilon against it.

        Args:
            budgets: member address -> ``(epsilon, delta)``, epsilon in (0, inf), delta in (0, 1).

        Raises:
            ConfigError: an address is malformed, or an epsilon or delta is out of range (the
                message names the member).
            TransactionError: the chain refused (reason names the custom error:
                ``NotRegistered(member=0x...)``, ``BudgetAlreadySet(member=0x...)``), or the signer
                is not the admin.
        """

    @abstractmethod
    def record_round(self, record: RoundRecord) -> Receipt:
        """Record a round and pay its rewards; idempotent for an identical record.

        Members are recorded in ascending address order (the order of ``record.members`` does not
        matter). If the round is already recorded with exactly this payload, the receipt of the
        original transaction is returned and nothing is paid again.

        Args:
            record: the round; ``server_round`` must be ``last_round() + 1`` (or an already recorded
                identical round) and ``previous_model_hash`` the last recorded model hash.

        Returns:
            The receipt, with each member's reward and the treasury remainder read from the events.

        Raises:
            RoundConflictError: the round is recorded with a different payload.
            TransactionError: the chain refused the record (reason names the custom error, e.g.
                ``WrongRound(expected=3, got=5)`` or ``UnregisteredMember(member=0x...)``).
            ChainTimeoutError: no receipt arrived in time.
            ConfigError: a value cannot be encoded (negative score, bad hash, DP out of range).
        """
