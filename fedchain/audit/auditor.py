"""Audit entry points: a ledger, a finished run, or a live chain -> :class:`AuditReport`.

Example:
    >>> from fedchain.ledger import Web3Ledger, connect
    >>> report = audit_ledger(Web3Ledger.deploy(connect("embedded")))
    >>> report.ok, [f.check for f in report.findings]
    (True, ['rounds.contiguous', 'rounds.disputes', 'token.supply'])
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fedchain.audit.checks import (
    MemberBudget,
    check_disputes,
    check_export_snapshot,
    check_inclusion,
    check_lineage,
    check_member_statuses,
    check_model_bytes,
    check_privacy_budget,
    check_privacy_epsilon,
    check_privacy_records,
    check_recorders,
    check_registration,
    check_rewards,
    check_round_members,
    check_round_sequence,
    check_token_supply,
    check_update_roots,
    check_withheld,
    member_rows,
    privacy_history,
    round_rows,
)
from fedchain.audit.findings import AuditFinding, AuditReport
from fedchain.audit.source import LedgerSnapshot, open_rpc, open_run, read_snapshot
from fedchain.errors import AuditError, ConfigError, FedChainError, LedgerError
from fedchain.ledger import LedgerReader

__all__ = [
    "BudgetsArg",
    "audit_ledger",
    "audit_rpc",
    "audit_run",
    "load_budgets",
    "model_finding",
    "prove_inclusion",
    "run_budget",
]

logger = logging.getLogger(__name__)

#: Per-member budgets: address -> MemberBudget or an ``(epsilon, delta)`` pair.
BudgetsArg = Mapping[str, MemberBudget | tuple[float, float | None]]

#: Largest model file the auditor reads (1 GiB), as :func:`fedchain.serialization.load_model`.
_MAX_MODEL_BYTES = 1 << 30


def _as_budget(value: MemberBudget | tuple[float, float | None] | Sequence[Any], name: str) -> MemberBudget:
    if isinstance(value, MemberBudget):
        return value
    if isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2:
        return MemberBudget(value[0], value[1])
    raise ConfigError(name, "a MemberBudget or an (epsilon, delta) pair", value)


def model_finding(path: str | Path, *, recorded_hash: str, server_round: int) -> AuditFinding:
    """Read a model file and check it against a recorded model hash (see :func:`check_model_bytes`).

    Raises:
        ConfigError: the file does not exist or is larger than 1 GiB.

    Example::

        model_finding("runs/demo/model.safetensors", recorded_hash=round_.model_hash, server_round=5)
    """
    file = Path(path)
    if not file.is_file():
        raise ConfigError("model", "an existing model file", str(path))
    if file.stat().st_size > _MAX_MODEL_BYTES:
        raise ConfigError("model", f"a model file of at most {_MAX_MODEL_BYTES} bytes", str(path))
    data = file.read_bytes()
    canonical: str | None = None
    try:
        from safetensors.numpy import load

        from fedchain.serialization import model_hash

        canonical = model_hash(load(data))
    except Exception:  # not valid safetensors: only the raw hash can match
        canonical = None
    return check_model_bytes(data, recorded_hash=recorded_hash, server_round=server_round, canonical_hash=canonical)


def _model_findings(
    snapshot: LedgerSnapshot, model_file: str | Path | None, model_round: int | None
) -> list[AuditFinding]:
    if model_file is None:
        if model_round is not None:
            raise ConfigError("round", "given only together with --model", model_round)
        return []
    server_round = snapshot.last_round if model_round is None else model_round
    if isinstance(server_round, bool) or not isinstance(server_round, int) or server_round < 1:
        raise ConfigError("round", "an int in [1, inf)", model_round)
    recorded = next((r for r in snapshot.rounds if r.server_round == server_round), None)
    if recorded is None:
        return [
            AuditFinding(
                "model.file",
                False,
                round=server_round,
                field="model_hash",
                message=f"round {server_round} is not recorded (last recorded round: {snapshot.last_round})",
            )
        ]
    return [model_finding(model_file, recorded_hash=recorded.model_hash, server_round=server_round)]


def audit_ledger(
    reader: LedgerReader,
    *,
    budgets: BudgetsArg | None = None,
    default_budget: MemberBudget | tuple[float, float | None] | None = None,
    budget_source: str | None = None,
    accountant: str = "rdp",
    model_file: str | Path | None = None,
    model_round: int | None = None,
    strict: bool = False,
    target: str | None = None,
) -> AuditReport:
    """Audit every round of a ledger from chain data alone.

    Args:
        reader: a live :class:`~fedchain.ledger.Web3Ledger` or an :class:`~fedchain.ledger.ExportedLedger`.
        budgets: per-member privacy budgets given off chain (address -> budget). A member's
            on-chain budget (``setPrivacyBudgets``) takes precedence, and one given here must agree
            with it (a disagreement is a ``privacy.budget`` failure naming both values).
        default_budget: the off-chain budget of members not in ``budgets``.
        budget_source: how to describe where the off-chain budgets came from in the report. The
            report's ``budget_source`` is ``"chain"`` when the chain holds budgets and none are
            given, ``"chain + SOURCE"`` when both, and SOURCE alone when the chain holds none.
        accountant: the privacy accountant members used (``"rdp"`` or ``"prv"``); not on chain.
        model_file: a model file to check against the model hash of ``model_round``.
        model_round: the round ``model_file`` claims to be (default: the last recorded round).
        strict: whether warnings (things that could not be verified) fail the audit.
        target: how to name the audited chain in the report.

    Returns:
        The report; ``report.ok`` is the verdict.

    Raises:
        ConfigError: an option is invalid (unknown accountant, bad budget, missing model file).
        AuditError: the ledger cannot be read.

    Example:
        >>> from fedchain.ledger import Web3Ledger, connect
        >>> ledger = Web3Ledger.deploy(connect("embedded"))
        >>> audit_ledger(ledger, default_budget=(8.0, 1e-5)).budget_source
        'given'
        >>> ledger.register_members(["0x" + "11" * 20])
        >>> ledger.set_privacy_budgets({"0x" + "11" * 20: (8.0, 1e-5)})
        >>> audit_ledger(ledger).budget_source, audit_ledger(ledger, default_budget=(8.0, 1e-5)).budget_source
        ('chain', 'chain + given')
    """
    member_budgets = {str(k): _as_budget(v, "budgets") for k, v in (budgets or {}).items()}
    default = None if default_budget is None else _as_budget(default_budget, "default_budget")
    given = bool(member_budgets) or default is not None
    off_chain = budget_source if budget_source is not None else ("given" if given else "none")
    snapshot = read_snapshot(reader, target=target)
    chain_budgets = {address: MemberBudget(*budget) for address, budget in snapshot.budgets.items()}
    budget_source = off_chain
    if chain_budgets:
        budget_source = f"chain + {off_chain}" if given else "chain"
    history = privacy_history(snapshot, accountant=accountant)
    findings: list[AuditFinding] = []
    findings += check_round_sequence(snapshot)
    findings += check_recorders(snapshot)
    findings += check_round_members(snapshot)
    findings += check_disputes(snapshot)
    findings += check_registration(snapshot)
    findings += check_rewards(snapshot)
    findings += check_member_statuses(snapshot)
    findings += check_withheld(snapshot)
    findings += check_token_supply(snapshot)
    findings += check_export_snapshot(snapshot)
    findings += check_lineage(snapshot)
    findings += check_privacy_records(history)
    findings += check_privacy_epsilon(history)
    findings += check_privacy_budget(
        history, budgets=member_budgets, default_budget=default, chain_budgets=chain_budgets, given_source=off_chain
    )
    findings += check_update_roots(snapshot)
    findings += _model_findings(snapshot, model_file, model_round)
    report = AuditReport(
        findings=tuple(findings),
        target=snapshot.target,
        ledger_address=snapshot.ledger_address,
        chain_id=snapshot.chain_id,
        accountant=accountant,
        budget_source=budget_source,
        strict=strict,
        rounds=round_rows(snapshot),
        members=member_rows(
            snapshot, history, budgets=member_budgets, default_budget=default, chain_budgets=chain_budgets
        ),
    )
    for failure in report.failures:
        logger.info("audit: %s", failure)
    logger.info(
        "audit of %s: %d checks, %d failed, %d warnings",
        snapshot.target,
        len(report.findings),
        len(report.failures),
        len(report.warnings),
    )
    return report


def run_budget(run_dir: str | Path) -> MemberBudget | None:
    """The budget every member of a simulated run was configured with, from ``result.json``.

    This is an off-chain fallback for members without an on-chain budget (and a cross-check of
    those with one): the report says so.

    Returns:
        ``MemberBudget(epsilon, delta)`` from the run's config, or None without DP or without a
        readable ``result.json``.

    Example::

        run_budget("runs/demo")  # MemberBudget(epsilon=8.0, delta=1e-05)
    """
    path = Path(run_dir) / "result.json"
    try:
        config = json.loads(path.read_text("utf-8")).get("config", {})
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(config, dict) or not config.get("dp") or config.get("epsilon") is None:
        return None
    try:
        return MemberBudget(float(config["epsilon"]), None if config.get("delta") is None else float(config["delta"]))
    except (ConfigError, TypeError, ValueError):
        return None


def load_budgets(path: str | Path) -> dict[str, MemberBudget]:
    """Read per-member budgets from JSON: ``{"0xADDR": {"epsilon": 8, "delta": 1e-5}, ...}``.

    ``delta`` is optional; an entry may also be a bare epsilon number.

    Raises:
        ConfigError: the file is missing, not JSON, or an entry is malformed.

    Example::

        load_budgets("budgets.json")["0xAbC..."].epsilon
    """
    try:
        document = json.loads(Path(path).read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError("budgets", "a readable JSON file of address -> {epsilon, delta}", str(path)) from exc
    if not isinstance(document, dict):
        raise ConfigError("budgets", "a JSON object of address -> {epsilon, delta}", type(document).__name__)
    budgets: dict[str, MemberBudget] = {}
    for address, entry in document.items():
        if isinstance(entry, int | float) and not isinstance(entry, bool):
            budgets[str(address)] = MemberBudget(entry)
        elif isinstance(entry, dict) and "epsilon" in entry:
            budgets[str(address)] = MemberBudget(entry["epsilon"], entry.get("delta"))
        else:
            raise ConfigError("budgets", "entries {'epsilon': E, 'delta': D} or a number", {address: entry})
    return budgets


def _resolve_budgets(
    budgets: BudgetsArg | None,
    default_budget: MemberBudget | tuple[float, float | None] | None,
    fallback: MemberBudget | None,
    fallback_name: str,
) -> tuple[BudgetsArg | None, MemberBudget | tuple[float, float | None] | None, str]:
    if budgets or default_budget is not None:
        return budgets, default_budget, "given"
    if fallback is not None:
        return None, fallback, fallback_name
    return None, None, "none"


def audit_run(
    run_dir: str | Path,
    *,
    budgets: BudgetsArg | None = None,
    default_budget: MemberBudget | tuple[float, float | None] | None = None,
    accountant: str = "rdp",
    model_file: str | Path | None = None,
    model_round: int | None = None,
    strict: bool = False,
) -> AuditReport:
    """Audit a finished run on the embedded chain from its exported chain (``RUN_DIR/chain.json``).

    Members' on-chain budgets (in the export's ``PrivacyBudgetSet`` logs) are used where set. Without
    ``budgets``/``default_budget`` the off-chain budget is taken from ``RUN_DIR/result.json``'s config
    (used for members without an on-chain budget, and checked against the others) and the report's
    ``budget_source`` says so (``"chain + result.json config (off-chain)"``, or without budgets on
    chain ``"result.json config (off-chain)"``). Without
    ``model_file``, ``RUN_DIR/model.safetensors`` (when present) is checked against the last round.

    Raises:
        ConfigError: the directory holds no ``chain.json``, or an option is invalid.
        AuditError: the export cannot be read.

    Example::

        report = audit_run("runs/demo")
        report.ok, len(report.failures)
    """
    reader = open_run(run_dir)
    directory = Path(run_dir)
    if model_file is None and model_round is None and (directory / "model.safetensors").is_file():
        model_file = directory / "model.safetensors"
    budgets, default_budget, source = _resolve_budgets(
        budgets, default_budget, run_budget(directory), "result.json config (off-chain)"
    )
    return audit_ledger(
        reader,
        budgets=budgets,
        default_budget=default_budget,
        budget_source=source,
        accountant=accountant,
        model_file=model_file,
        model_round=model_round,
        strict=strict,
        target=f"run {directory}",
    )


def audit_rpc(
    url: str,
    ledger_address: str,
    *,
    budgets: BudgetsArg | None = None,
    default_budget: MemberBudget | tuple[float, float | None] | None = None,
    accountant: str = "rdp",
    model_file: str | Path | None = None,
    model_round: int | None = None,
    strict: bool = False,
) -> AuditReport:
    """Audit a ledger on a live chain over JSON-RPC (read only: no key needed).

    Raises:
        ConfigError: the URL, the address or an option is invalid.
        AuditError: no node answers or there is no ledger at the address.

    Example::

        audit_rpc("http://127.0.0.1:8545", "0x5FbDB2315678afecb367f032d93F642f64180aa3").ok
    """
    return audit_ledger(
        open_rpc(url, ledger_address),
        budgets=budgets,
        default_budget=default_budget,
        accountant=accountant,
        model_file=model_file,
        model_round=model_round,
        strict=strict,
        target=url,
    )


def prove_inclusion(
    reader: LedgerReader,
    *,
    member: str,
    server_round: int,
    digest: bytes | str,
    proof: Sequence[bytes | str],
) -> list[AuditFinding]:
    """Verify that a member's signed update digest is committed in a round's Merkle root.

    Args:
        reader: the ledger.
        member: the member's address.
        server_round: the round.
        digest: the update digest the member signed (32 bytes or hex).
        proof: the Merkle proof (sibling hashes, bottom up) the coordinator gave the member.

    Returns:
        ``updates.inclusion`` findings: the member is recorded in the round; the proof verifies.

    Raises:
        ConfigError: the round is not recorded, or a value is malformed.
        AuditError: the ledger cannot be read.

    Example::

        prove_inclusion(open_run("runs/demo"), member="0x...", server_round=3, digest="0x...", proof=[...])
    """
    if isinstance(server_round, bool) or not isinstance(server_round, int) or server_round < 1:
        raise ConfigError("round", "an int in [1, inf)", server_round)
    try:
        last = reader.last_round()
        if server_round > last:
            raise ConfigError("round", f"a recorded round in [1, {last}]", server_round)
        recorded = reader.get_round(server_round)
    except LedgerError as exc:
        raise AuditError(f"cannot read round {server_round}: {exc}") from exc
    except ConfigError:
        raise
    except FedChainError as exc:  # pragma: no cover - readers raise LedgerError
        raise AuditError(str(exc)) from exc
    return check_inclusion(recorded, member=member, digest=digest, proof=proof)
