"""The auditor: verify a federation from the chain alone.

An auditor needs nothing from the coordinator or the members: only a JSON-RPC URL and the ledger
address (or, for a finished run on the embedded chain, its exported ``chain.json``). For every
recorded round it checks (names are the ``check`` of each :class:`AuditFinding`, see :data:`CHECKS`):

* ``rounds.*``: numbers contiguous from 1; recorded by an account holding ``RECORDER_ROLE``;
  member counts consistent and no duplicates;
* ``members.registered``: every recorded (paid) member was registered when the round was recorded;
* ``rewards.*`` and ``token.supply``: each reward is the published rule
  (:func:`fedchain.rewards.proportional_rewards`) applied to the recorded scores, rewards plus the
  treasury remainder equal the pool, and the token supply equals everything ever paid;
* ``lineage.*``: each round's previous-model hash is the prior round's model hash;
* ``privacy.*``: each member's cumulative epsilon, recomputed with Opacus's accountant from the
  recorded DP parameters, matches what it reported (within :data:`EPSILON_TOLERANCE`) and never
  exceeds its budget: the one the admin set on chain (``setPrivacyBudgets``), else one given as an
  option or read from a run's config (a given budget must agree with the chain's);
* ``updates.*``: the signed-update Merkle root is committed (the zero root is a warning) and a
  member's digest + proof verify against it (:func:`prove_inclusion`);
* ``model.file``: a model file is the one recorded for a round.

The reading is in :mod:`fedchain.audit.source`, the checks are pure functions in
:mod:`fedchain.audit.checks`; the CLI (``fedchain audit``, ``fedchain report``) is in
:mod:`fedchain.audit.cli`.

Example:
    >>> from fedchain.audit import audit_ledger
    >>> from fedchain.ledger import Web3Ledger, connect
    >>> from fedchain.types import MemberRoundRecord, RoundRecord, ZERO_HASH
    >>> ledger = Web3Ledger.deploy(connect("embedded"))
    >>> alice = "0x" + "aa" * 20
    >>> ledger.register_members([alice])
    >>> _ = ledger.record_round(RoundRecord(1, "01" * 32, "02" * 32, ZERO_HASH,
    ...     (MemberRoundRecord(alice, 1.0),), reward_pool_wei=1000))
    >>> report = audit_ledger(ledger)
    >>> report.ok, report.failures, sorted({f.check for f in report.warnings})
    (True, [], ['privacy.record', 'updates.merkle_root'])
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fedchain._lazy import lazy_exports

if TYPE_CHECKING:
    from fedchain.audit.auditor import (
        audit_ledger,
        audit_rpc,
        audit_run,
        load_budgets,
        model_finding,
        prove_inclusion,
        run_budget,
    )
    from fedchain.audit.checks import EPSILON_TOLERANCE, MemberBudget
    from fedchain.audit.export import write_csv
    from fedchain.audit.findings import CHECKS, AuditFinding, AuditReport, MemberRoundAudit, RoundAudit
    from fedchain.audit.plots import write_report
    from fedchain.audit.source import LedgerSnapshot, open_rpc, open_run, read_snapshot

__all__ = [
    "CHECKS",
    "EPSILON_TOLERANCE",
    "AuditFinding",
    "AuditReport",
    "LedgerSnapshot",
    "MemberBudget",
    "MemberRoundAudit",
    "RoundAudit",
    "audit_ledger",
    "audit_rpc",
    "audit_run",
    "load_budgets",
    "model_finding",
    "open_rpc",
    "open_run",
    "prove_inclusion",
    "read_snapshot",
    "run_budget",
    "write_csv",
    "write_report",
]

# The checks import web3 (ledger) and SciPy (the epsilon computation): load them on first use, so that importing
# fedchain.audit.cli (the `fedchain` command) stays fast.
_HOME = {
    **dict.fromkeys(
        ("audit_ledger", "audit_rpc", "audit_run", "load_budgets", "model_finding", "prove_inclusion", "run_budget"),
        "auditor",
    ),
    **dict.fromkeys(("EPSILON_TOLERANCE", "MemberBudget"), "checks"),
    "write_csv": "export",
    **dict.fromkeys(("CHECKS", "AuditFinding", "AuditReport", "MemberRoundAudit", "RoundAudit"), "findings"),
    "write_report": "plots",
    **dict.fromkeys(("LedgerSnapshot", "open_rpc", "open_run", "read_snapshot"), "source"),
}


__getattr__, __dir__ = lazy_exports(__name__, _HOME)
