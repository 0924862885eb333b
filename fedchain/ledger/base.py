"""The ``Ledger`` extension point and the records it returns.

A ledger is where rounds are recorded and rewards paid. :class:`LedgerReader` is everything an
auditor needs (rounds, member history, privacy spends recorded after their round, disputes,
registrations, privacy budgets, balances); :class:`Ledger` adds the writes the admin and the
coordinator make, and :meth:`Ledger.file_dispute`, which anyone may call with a member's signed
dispute. :class:`~fedchain.ledger.Web3Ledger` implements both against any
EVM chain; :class:`~fedchain.ledger.ExportedLedger` implements the reader over an exported run.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from fedchain.errors import RoundConflictError
from fedchain.ledger.fixedpoint import code_to_status, fixed_to_epsilon, fixed_to_score, unpack_dp
from fedchain.types import ZERO_HASH, Dispute, DPParams, MemberRoundRecord, Receipt, RoundRecord

__all__ = [
    "Ledger",
    "LedgerReader",
    "RecordedDispute",
    "RecordedMember",
    "RecordedRound",
    "RecordedSpend",
    "RegistrationEvent",
    "RoundConflictError",
]


class _PrivacySpend:
    """What a recorded member-round and a recorded spend both decode: status, DP parameters, epsilon."""

    status_code: int
    dp_word: int
    epsilon_fixed: int

    @property
    def status(self) -> str:
        """The status name (``"accepted"``, ``"late"``, ...; ``"unknown(N)"`` for a foreign code)."""
        return code_to_status(self.status_code)

    @property
    def dp(self) -> DPParams | None:
        """The decoded DP-SGD parameters, or None without DP."""
        return unpack_dp(self.dp_word)

    @property
    def epsilon(self) -> float | None:
        """The reported cumulative epsilon, or None without DP or when none was reported."""
        return fixed_to_epsilon(self.epsilon_fixed)


@dataclass(frozen=True)
class RecordedMember(_PrivacySpend):
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
        status_code: the member-round's status code (index in
            :data:`~fedchain.types.MEMBER_STATUSES`; ``0``, accepted, for ledgers that predate statuses).
    """

    server_round: int
    address: str
    score_fixed: int
    reward_wei: int
    dp_word: int
    epsilon_fixed: int
    block_number: int
    tx_hash: str
    status_code: int = 0

    @property
    def score(self) -> float:
        """The score as a float."""
        return fixed_to_score(self.score_fixed)


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
        scalars_commitment: commitment to the scalars the decrypt committee revealed (zero hash
            when none were, or for ledgers that predate it).
        disputes_at_record: disputes filed before the round was recorded, as its ``RoundRecorded``
            event says; when non-zero the contract paid nobody (the whole pool went to the treasury).
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
    scalars_commitment: str = ZERO_HASH
    disputes_at_record: int = 0

    @property
    def rewards_wei(self) -> dict[str, int]:
        """Reward per member address."""
        return {m.address: m.reward_wei for m in self.members}

    @property
    def withheld(self) -> bool:
        """Whether the round's rewards were withheld because it was disputed before it was recorded."""
        return self.disputes_at_record != 0


@dataclass(frozen=True)
class RecordedSpend(_PrivacySpend):
    """A privacy spend recorded after its round (``recordSpends``), decoded from ``SpendRecorded``.

    Attributes:
        server_round: the round the member trained in.
        address: checksummed member address.
        dp_word: the packed DP parameters (0 without DP).
        epsilon_fixed: the member's reported cumulative epsilon after the spend (1e18 fixed point;
            0 when not reported).
        status_code: the spend's status code (rejected, late or replayed).
        spend_id: the batch id (``0x`` hex) that makes a retried batch harmless.
        block_number: block of the transaction.
        log_index: position of the event in its block.
        tx_hash: the transaction.
    """

    server_round: int
    address: str
    dp_word: int
    epsilon_fixed: int
    status_code: int
    spend_id: str
    block_number: int
    log_index: int
    tx_hash: str


@dataclass(frozen=True)
class RecordedDispute:
    """A member's dispute of a round, decoded from ``RoundDisputed``.

    Attributes:
        server_round: the disputed round.
        member: checksummed address of the disputing member (the recovered signer).
        scalars_commitment: the commitment of the revealed scalars the member was shown.
        round_recorded: whether the round was already recorded when the dispute was filed (its
            rewards could then not be withheld).
        block_number: block of the filing transaction.
        log_index: position of the event in its block.
        tx_hash: the filing transaction.
    """

    server_round: int
    member: str
    scalars_commitment: str
    round_recorded: bool
    block_number: int
    log_index: int
    tx_hash: str


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

    Subclasses implement nine reads; :meth:`rounds` and :meth:`was_registered` build on them.

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
    def spends(self, server_round: int | None = None, *, address: str | None = None) -> list[RecordedSpend]:
        """Return the privacy spends recorded after their round (``recordSpends``), in chain order.

        These are not in :meth:`member_history` (which holds the entries of round records): a
        member's full privacy history is both.

        Args:
            server_round: only the spends of this round (default: all).
            address: only this member's spends (default: all members).
        """

    @abstractmethod
    def disputes(self, server_round: int | None = None) -> list[RecordedDispute]:
        """Return the members' disputes (``fileDispute``), in chain order.

        Args:
            server_round: only the disputes of this round (default: all).
        """

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
        matter), each with its status (:data:`~fedchain.types.MEMBER_STATUSES`): only an
        ``"accepted"`` member-round may have a non-zero score. If the round is already recorded
        with exactly this payload (scalars commitment and statuses included), the receipt of the
        original transaction is returned and nothing is paid again. A round disputed before it is
        recorded pays nobody (the receipt shows the whole pool going to the treasury).

        Args:
            record: the round; ``server_round`` must be ``last_round() + 1`` (or an already recorded
                identical round) and ``previous_model_hash`` the last recorded model hash.

        Returns:
            The receipt, with each member's reward and the treasury remainder read from the events.

        Raises:
            RoundConflictError: the round is recorded with a different payload.
            TransactionError: the chain refused the record (reason names the custom error, e.g.
                ``WrongRound(expected=3, got=5)``, ``UnregisteredMember(member=0x...)`` or
                ``ScoreWithoutAcceptance(member=0x..., status=1)``).
            ChainTimeoutError: no receipt arrived in time.
            ConfigError: a value cannot be encoded (negative score, bad hash, DP out of range,
                unknown status).
        """

    @abstractmethod
    def record_spends(
        self, server_round: int, members: Sequence[MemberRoundRecord], *, spend_id: str | None = None
    ) -> Receipt:
        """Record privacy spends found after ``server_round`` was recorded; no tokens move.

        For members that trained in a recorded round but are not in its record with that
        training: a late reply (``"late"``), a reply refused after recording (``"rejected"``),
        or training in a run of the round lost to a coordinator crash and replayed
        (``"replayed"``). Each member's ``dp`` and ``epsilon`` (its reported cumulative epsilon
        after the spend, or None) are recorded; ``score`` must be 0. The auditor's epsilon
        recomputation includes every spend.

        Idempotent: the batch is identified by ``spend_id`` (default: a hash of the round and the
        members' entries, order-independent). Sending a batch whose id is already recorded sends
        nothing and returns the receipt of the transaction that recorded it, so a coordinator may
        retry freely. Two genuinely distinct batches with identical contents (same member, round,
        DP parameters, epsilon and status) need distinct explicit ``spend_id`` values.

        Args:
            server_round: a recorded round (``1..last_round()``).
            members: the spends, one entry per member-round (status rejected, late or replayed).
            spend_id: names the batch: ``0x`` hex of 32 bytes is used as is, any other text is
                hashed (keccak256 of its UTF-8), e.g. ``f"late-{round}-{k}"``. Default: a hash of
                the round and the entries.

        Returns:
            The receipt (no rewards).

        Raises:
            ConfigError: no members, a non-zero score, a status that is not a spend's, or a value
                that cannot be encoded.
            TransactionError: the chain refused (``UnknownRound(round=N)``,
                ``UnregisteredMember(member=0x...)``, ``InvalidSpendStatus(...)``).
            ChainTimeoutError: no receipt arrived in time.
        """

    @abstractmethod
    def file_dispute(self, dispute: Dispute) -> Receipt:
        """Submit a member's signed dispute of a round (anyone may submit it).

        The contract recovers the signer from ``dispute.signature`` over
        :func:`fedchain.identity.signing.dispute_digest` for this ledger and chain, requires it to
        be registered, and records one dispute per (round, member). Disputed before it is
        recorded, the round pays nobody; disputed after, the dispute is on chain (the auditor
        fails the round) but rewards already credited are not taken back.

        Returns:
            The receipt of the filing transaction.

        Raises:
            ConfigError: the signature is malformed or is not ``dispute.member``'s over this
                ledger's dispute digest (nothing is sent).
            TransactionError: the chain refused (``UnregisteredDisputer(signer=0x...)``,
                ``DisputeAlreadyFiled(round=N, member=0x...)``,
                ``DisputeRoundOutOfRange(round=N, lastRound=M)``).
            ChainTimeoutError: no receipt arrived in time.
        """
