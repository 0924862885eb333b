"""Recording a round: staged in the checkpoint, put on chain with retries, proven, never lost or paid twice.

For each round the coordinator hands the :class:`Recorder` the round's summary and
:class:`~fedchain.types.RoundRecord` (built by ``fedchain.pipeline``)::

    relay disputes ─► stage (checkpoint, status "staged", the record inside)
        ─► record_round with retries and backoff (held in out_dir/pending/round-N.json until it lands)
        ─► receipt: rewards per member, gas, block
        ─► late / replayed privacy spends (recordSpends)
        ─► Merkle inclusion proofs (out_dir/proofs/round-N/<address>.json)
        ─► checkpoint, status "recorded"

A crash between "staged" and "recorded" is repaired on resume (:meth:`Recorder.record_staged`):
recording an identical round again returns the existing receipt and never pays twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from fedchain._io import atomic_write_json
from fedchain.checkpoint import FINGERPRINT_FIELDS, Checkpoint
from fedchain.config import FedChainConfig
from fedchain.errors import ConfigError, FedChainError, LedgerError, RoundConflictError
from fedchain.faults import CoordinatorFaults
from fedchain.identity.merkle import merkle_proof
from fedchain.pipeline import AcceptedUpdate, StageClock, update_leaves
from fedchain.results import RoundSummary
from fedchain.serialization import Weights
from fedchain.types import Aggregate, Dispute, DPParams, MemberRoundRecord, Receipt, RoundRecord, record_to_json

__all__ = ["DurableState", "RecordSink", "Recorder", "fingerprint", "write_inclusion_proofs"]

log = logging.getLogger(__name__)


class RecordSink(Protocol):
    """Where rounds are recorded (``fedchain.ledger.Ledger``)."""

    def record_round(self, record: RoundRecord) -> Receipt:
        """Record ``record``; return the receipt with the rewards paid."""
        ...


@dataclass(frozen=True)
class DurableState:
    """What the coordinator holds across rounds, as the checkpoint stores it.

    Attributes:
        model_hash: the global model's hash after the round.
        weights: plaintext mode: the global model (None under HE: the coordinator holds none).
        aggregates: HE mode: every round's encrypted aggregate (members that missed one get it).
        known_rounds: per node id, the last round whose model it has.
        server_state: plaintext mode: the strategy's arrays (e.g. FedAdam's moments).
        earlier_rounds: the summaries (``to_dict``) of the rounds before this one.
    """

    model_hash: str
    weights: Weights | None = None
    aggregates: dict[int, Aggregate] = field(default_factory=dict)
    known_rounds: dict[int, int] = field(default_factory=dict)
    server_state: dict[str, Any] | None = None
    earlier_rounds: tuple[dict[str, Any], ...] = ()


def fingerprint(config: FedChainConfig) -> dict[str, Any]:
    """The options a resumed run must share with the checkpointed one."""
    values = config.to_dict()
    return {name: values[name] for name in FINGERPRINT_FIELDS}


@dataclass
class Recorder:
    """Records the coordinator's rounds on the ledger and keeps the checkpoint.

    Attributes:
        config: the run configuration (``out-dir``, ``chain-attempts``, ``chain-backoff-s``).
        ledger: where rounds are recorded and paid; None records nothing (the checkpoint is still kept).
        ledger_address: the ledger's address (kept in the checkpoint).
        faults: fault injection (tests and the simulation runner only): ``kill:N:sent``.
        resumed_at: the first round run after a resume (its unrecorded spends are ``replayed``).
    """

    config: FedChainConfig
    ledger: RecordSink | None = None
    ledger_address: str | None = None
    faults: CoordinatorFaults | None = None
    resumed_at: int = 0
    #: DP spends the chain holds per member address (read once from the ledger, then counted).
    _spend_counts: dict[str, int] = field(init=False, default_factory=dict, repr=False)

    # ----------------------------------------------------------------------------------- a round
    def finish(
        self,
        summary: RoundSummary,
        record: RoundRecord,
        *,
        state: DurableState,
        disputes: Sequence[Dispute] = (),
        late_spends: Sequence[MemberRoundRecord] = (),
        clock: StageClock | None = None,
    ) -> RoundSummary:
        """Relay disputes, stage the round, record it (and the late spends), then mark it recorded.

        Returns:
            ``summary`` with the receipt applied (transaction, gas, each member's reward).
        """
        self.relay_disputes(summary.server_round, disputes)
        on_chain = record if self.ledger is not None else None
        self.checkpoint(summary, state, status="staged", record=on_chain)
        if self.faults is not None:
            self.faults.arm_ledger(self.ledger, summary.server_round)
        if on_chain is not None:
            if clock is not None:
                with clock("record"):
                    receipt = self.record_with_retries(on_chain)
            else:
                receipt = self.record_with_retries(on_chain)
            summary = apply_receipt(summary, receipt)
            self.record_spends(summary.server_round, on_chain, list(late_spends))
            if self.config.out_dir:
                write_inclusion_proofs(summary, self.config.out_dir)
        self.checkpoint(summary, state, status="recorded")
        return summary

    def record_staged(self, summary: RoundSummary, record: RoundRecord | None, state: DurableState) -> RoundSummary:
        """On resume: record a round that was staged but not confirmed, then mark it recorded."""
        log.warning("round %d was staged but not confirmed: recording it now", summary.server_round)
        if self.ledger is not None and record is not None:
            summary = apply_receipt(summary, self.record_with_retries(record))
        self.checkpoint(summary, state, status="recorded")
        return summary

    def record_with_retries(self, record: RoundRecord) -> Receipt:
        """Record ``record``, retrying with exponential backoff; the round is held on disk until it lands.

        The record is written to ``out_dir/pending/round-N.json`` before the first attempt and removed
        once the receipt is in, so a round whose recording failed is never lost. Retrying is safe:
        ``Ledger.record_round`` returns the existing receipt for an identical recorded round and
        never pays twice.

        Raises:
            LedgerError: after ``chain_attempts`` failures, naming the round and the last error.
        """
        assert self.ledger is not None
        pending = self._pending_path(record.server_round)
        if pending is not None:
            atomic_write_json(pending, record_to_json(record))
        delay = self.config.chain_backoff_s
        for attempt in range(1, self.config.chain_attempts + 1):
            try:
                receipt = self.ledger.record_round(record)
                break
            except (ConfigError, RoundConflictError):
                raise  # the payload itself is wrong: retrying cannot help
            except Exception as exc:  # RPC down or slow, dropped or reverted transaction
                if attempt == self.config.chain_attempts:
                    raise LedgerError(
                        f"round {record.server_round} was not recorded after {attempt} attempts "
                        f"(last error: {exc}); it is held in {pending}"
                    ) from exc
                log.warning(
                    "round %d: recording failed (attempt %d/%d): %s; retrying in %.1f s",
                    record.server_round,
                    attempt,
                    self.config.chain_attempts,
                    exc,
                    delay,
                )
                time.sleep(delay)
                delay *= 2
        if pending is not None:
            pending.unlink(missing_ok=True)
        return receipt

    def _pending_path(self, server_round: int) -> Path | None:
        return Path(self.config.out_dir) / "pending" / f"round-{server_round}.json" if self.config.out_dir else None

    def checkpoint(
        self, summary: RoundSummary, state: DurableState, *, status: str, record: RoundRecord | None = None
    ) -> None:
        """Write the checkpoint after ``summary``'s round with ``status`` (``staged`` or ``recorded``)."""
        if not self.config.out_dir:
            return
        Checkpoint(
            server_round=summary.server_round,
            status=status,
            model_hash=state.model_hash,
            weights=state.weights,
            aggregates=state.aggregates,
            known_rounds=state.known_rounds,
            rounds=[*state.earlier_rounds, summary.to_dict()],
            record=record,
            ledger_address=self.ledger_address,
            fingerprint=fingerprint(self.config),
            server_state=state.server_state,
        ).save(self.config.out_dir)

    # ---------------------------------------------------------------------------------- disputes
    def relay_disputes(self, server_round: int, disputes: Sequence[Dispute]) -> None:
        """File each member's valid dispute on chain (the round then pays nobody there either)."""
        if not disputes:
            return
        file_dispute = getattr(self.ledger, "file_dispute", None)
        if file_dispute is None:
            if self.ledger is not None:
                log.warning("round %d: this ledger cannot take disputes: rewards withheld off chain only", server_round)
            return
        for dispute in disputes:
            try:
                file_dispute(dispute)
            except Exception as exc:  # e.g. the member filed it itself already
                log.warning("round %d: relaying the dispute of %s failed: %s", server_round, dispute.member, exc)

    # ----------------------------------------------------------------------------- privacy spends
    def unrecorded_spends(self, server_round: int, updates: Sequence[AcceptedUpdate]) -> list[MemberRoundRecord]:
        """Spends members report that the chain does not show yet (a late reply, a replayed round).

        A member's reply carries its accountant's whole history; its last entry is this round's
        (recorded with the round). Entries between what the chain already holds for the member
        and this round's were charged in rounds whose reply never counted: they are recorded as
        ``late``, or ``replayed`` in the first round after a resume.
        """
        if self.ledger is None or not hasattr(self.ledger, "record_spends"):
            return []
        status = "replayed" if server_round == self.resumed_at else "late"
        spends: list[MemberRoundRecord] = []
        for update in updates:
            member, history = update.member, update.spend_history
            if member.dp is None or not history:
                continue
            on_chain = self.spends_on_chain(member.address)
            for sigma, sample_rate, steps in history[on_chain : len(history) - 1]:
                dp = DPParams(sigma, sample_rate, steps, member.dp.max_grad_norm, member.dp.delta)
                spends.append(MemberRoundRecord(address=member.address, score=0.0, dp=dp, status=status))
        return spends

    def spends_on_chain(self, address: str) -> int:
        """How many DP member-rounds (with spends) the chain holds for ``address``; read once, then counted.

        The read is retried like a recording (``chain_attempts``, ``chain_backoff_s``): a chain
        that is unreachable for a while holds the round instead of ending the run.
        """
        if address not in self._spend_counts:
            ledger: Any = self.ledger

            def read() -> int:
                rounds = sum(1 for m in ledger.member_history(address) if m.dp is not None)
                return rounds + sum(1 for spend in ledger.spends(address=address) if spend.dp is not None)

            delay = self.config.chain_backoff_s
            for attempt in range(1, self.config.chain_attempts + 1):
                try:
                    self._spend_counts[address] = read()
                    break
                except Exception as exc:  # RPC down or slow
                    if attempt == self.config.chain_attempts:
                        raise LedgerError(
                            f"the spends of {address} could not be read after {attempt} attempts (last error: {exc})"
                        ) from exc
                    log.warning("reading the spends of %s failed (attempt %d): %s; retrying in %.1f s",
                                address, attempt, exc, delay)  # fmt: skip
                    time.sleep(delay)
                    delay *= 2
        return self._spend_counts[address]

    def record_spends(self, server_round: int, record: RoundRecord | None, spends: list[MemberRoundRecord]) -> None:
        """After round ``server_round`` is recorded: record the late spends, and count every spend now on chain."""
        if record is not None:
            for member in record.members:
                if member.dp is not None and member.address in self._spend_counts:
                    self._spend_counts[member.address] += 1
        record_spends = getattr(self.ledger, "record_spends", None)
        if not spends or record_spends is None:
            return
        # A replayed spend belongs to this round (its lost first run); a late one to an earlier
        # round, at latest the previous one (the auditor orders spends by the round they name).
        spend_round = server_round if spends[0].status == "replayed" else max(1, server_round - 1)
        try:  # the batch id makes a retried batch harmless (Ledger.record_spends)
            record_spends(spend_round, spends, spend_id=f"fedchain-spends-{server_round}")
        except FedChainError as exc:  # counted again from the member's next reply
            log.warning("round %d: %d late privacy spends not recorded: %s", server_round, len(spends), exc)
            return
        for spend in spends:
            self._spend_counts[spend.address] = self._spend_counts.get(spend.address, 0) + 1
        log.info(
            "round %d: recorded %d privacy spends the chain lacked (%s)", server_round, len(spends), spends[0].status
        )


def apply_receipt(summary: RoundSummary, receipt: Receipt) -> RoundSummary:
    """``summary`` with the transaction, gas and each member's reward from ``receipt``."""
    return replace(
        summary,
        tx_hash=receipt.tx_hash,
        gas_used=receipt.gas_used,
        block_number=receipt.block_number,
        treasury_wei=receipt.treasury_wei,
        members=[replace(m, reward_wei=receipt.rewards_wei.get(m.address, 0)) for m in summary.members],
    )


def write_inclusion_proofs(summary: RoundSummary, out_dir: str | Path) -> None:
    """Write each member's digest and Merkle proof to ``out_dir/proofs/round-N/<address>.json``.

    A member (or anyone) verifies inclusion with
    ``fedchain audit prove --member ADDR --round N --proof-file FILE``.
    """
    entries = update_leaves(summary.server_round, summary.members)
    leaves = [leaf for _, leaf in entries]
    for index, (member, _) in enumerate(entries):
        proof = ["0x" + node.hex() for node in merkle_proof(leaves, index)]
        path = Path(out_dir) / "proofs" / f"round-{summary.server_round}" / f"{member.address}.json"
        atomic_write_json(path, {"round": summary.server_round, "digest": member.update_digest, "proof": proof})
