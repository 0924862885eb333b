"""The on-chain contribution ledger: contracts, a ``Ledger`` interface, and web3.py adapters.

fedchain records every round on an EVM chain with two contracts (sources in ``contracts/src``,
compiled artifacts committed under ``fedchain/ledger/artifacts``, so no Node is needed here):

* ``ContributionLedger`` (OpenZeppelin ``AccessControl``): the admin registers member addresses
  and sets each member's lifetime privacy budget ``(epsilon, delta)`` once (``setPrivacyBudgets``,
  read back with ``privacyBudget``; :meth:`Web3Ledger.set_privacy_budgets` /
  :meth:`LedgerReader.privacy_budget`), so an auditor can judge privacy spend from the chain alone;
  the coordinator (``RECORDER_ROLE``) calls ``recordRound`` with the round number (exactly the
  next one), aggregate/model/previous-model hashes (lineage is enforced on chain), the signed-update
  Merkle root, the reward pool and, per member, score, packed DP parameters and cumulative epsilon
  (fixed point: :mod:`fedchain.ledger.fixedpoint`). The contract pays
  ``reward_i = pool * score_i // total_score`` (the mirror is :func:`fedchain.rewards.proportional_rewards`),
  the remainder to the treasury, stores a round header and emits one ``MemberRecorded`` per member
  (with its status: only ``"accepted"`` may score) and one ``RoundRecorded`` per round (with the
  committee's scalars commitment). Privacy spends found after their round are added with
  ``recordSpends`` (:meth:`Web3Ledger.record_spends`); anyone submits a member's signed dispute with
  ``fileDispute`` (:meth:`Web3Ledger.file_dispute`), and a round disputed before it is recorded pays
  nobody. Errors are named: ``WrongRound``, ``RoundAlreadyRecorded``,
  ``UnregisteredMember``, ``DuplicateMember``, ``MembersNotSorted``, ``LengthMismatch``,
  ``BrokenLineage``, ``PoolTooLarge``, ``BudgetAlreadySet``, ``InvalidBudget``, ``InvalidStatus``,
  ``ScoreWithoutAcceptance``, ``InvalidSpendStatus``, ``SpendsAlreadyRecorded``,
  ``DisputeRoundOutOfRange``, ``UnregisteredDisputer``, ``DisputeAlreadyFiled``...
* ``FedToken`` (OpenZeppelin ``ERC20``), deployed by the ledger, which is its only minter.

Rewards are pull payments: a round mints the members' total to the ledger and credits each member
(one packed storage word holds registration block and credit), the treasury remainder is minted to
the treasury directly, and ``claim``/``claimFor`` move credit into ERC-20 balances. ``balance_of``
(on chain: ``ContributionLedger.balanceOf``) is ERC-20 balance plus credit; total supply always
equals the sum of recorded pools. This keeps record + reward near 11.1k gas per member-round (bench/results/gas.json).

Chains: ``connect("embedded")`` runs eth-tester/py-evm in process (the default; nothing else to
install); ``connect("http://...")`` uses any JSON-RPC node with a key from the environment or an
encrypted keystore (:mod:`fedchain.ledger.chain`). The embedded chain disappears with its process:
:func:`export_ledger` writes all ledger and token logs, round headers, addresses and a state
snapshot to ``RUN_DIR/chain.json``, and :class:`ExportedLedger` reads it back as a read-only
:class:`LedgerReader` for the auditor.

Example:
    >>> from fedchain.ledger import Web3Ledger, connect
    >>> from fedchain.types import MemberRoundRecord, RoundRecord, ZERO_HASH
    >>> ledger = Web3Ledger.deploy(connect("embedded"))
    >>> alice, bob = "0x" + "aa" * 20, "0x" + "bb" * 20
    >>> ledger.register_members([alice, bob])
    >>> record = RoundRecord(server_round=1, aggregate_hash="01" * 32, model_hash="02" * 32,
    ...     previous_model_hash=ZERO_HASH, reward_pool_wei=1000,
    ...     members=(MemberRoundRecord(alice, 2.0), MemberRoundRecord(bob, 1.0)))
    >>> receipt = ledger.record_round(record)
    >>> sorted(receipt.rewards_wei.values()), receipt.treasury_wei
    ([333, 666], 1)
    >>> ledger.record_round(record).tx_hash == receipt.tx_hash  # idempotent retry
    True
"""

from __future__ import annotations

from fedchain.ledger.base import (
    Ledger,
    LedgerReader,
    RecordedDispute,
    RecordedMember,
    RecordedRound,
    RecordedSpend,
    RegistrationEvent,
    RoundConflictError,
)
from fedchain.ledger.chain import Chain, connect
from fedchain.ledger.export import EXPORT_FILENAME, ExportedLedger, export_ledger
from fedchain.ledger.web3_ledger import Web3Ledger

__all__ = [
    "Chain",
    "EXPORT_FILENAME",
    "ExportedLedger",
    "Ledger",
    "LedgerReader",
    "RecordedDispute",
    "RecordedMember",
    "RecordedRound",
    "RecordedSpend",
    "RegistrationEvent",
    "RoundConflictError",
    "Web3Ledger",
    "connect",
    "export_ledger",
]
