"""The auditor's commands: ``fedchain audit``, ``fedchain audit prove`` and ``fedchain report``.

Registered in the main CLI (``fedchain/cli.py``) as::

    app.add_typer(audit_app, name="audit")
    app.command("report")(report_command)

Exit status: 0 when every check holds, 1 when a check fails (or, with ``--strict``, warns), 2 on
a bad option or an audit that cannot be carried out (no chain at the URL, no ledger at the
address, no ``chain.json`` in the run directory), with one line naming the option.

Example::

    fedchain audit --run runs/demo
    fedchain audit --rpc http://127.0.0.1:8545 --ledger 0x5FbD... --json
    fedchain audit --run runs/demo --model runs/demo/model.safetensors --round 10 --csv audit-csv
    fedchain audit --run runs/demo --html runs/demo/audit-html
    fedchain audit prove --run runs/demo --member 0xAbC... --round 3 --digest 0x... --proof-file proof.json
    fedchain report runs/demo
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from fedchain.errors import ConfigError, FedChainError

if TYPE_CHECKING:
    from fedchain.audit.findings import AuditFinding, AuditReport
    from fedchain.ledger import LedgerReader

__all__ = ["audit_app", "report_command"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

audit_app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
)
_console = Console()
_err = Console(stderr=True)

_OPTION_NAMES = {
    "epsilon_budget": "--epsilon-budget",
    "delta_budget": "--delta-budget",
    "budgets": "--budgets",
    "accountant": "--accountant",
    "round": "--round",
    "server_round": "--round",
    "model": "--model",
    "run": "--run",
    "rpc": "--rpc",
    "ledger": "--ledger",
    "member": "--member",
    "digest": "--digest",
    "proof": "--proof-file",
    "leaf": "--digest",
    "root": "--proof-file",
}


def _fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    _err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _option_message(exc: ConfigError) -> str:
    return exc.cli_message({parameter: f"'{option}' option" for parameter, option in _OPTION_NAMES.items()})


def _quiet(verbose: bool) -> None:
    """Library logs at WARNING (INFO with --verbose); third-party chatter off unless verbose."""
    level = logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    for name in ("opacus", "web3", "urllib3"):
        logging.getLogger(name).setLevel(level if verbose else logging.ERROR)


def _open_reader(run: Path | None, rpc: str | None, ledger: str | None) -> LedgerReader:
    from fedchain.audit.source import open_rpc, open_run

    if run is not None and (rpc is not None or ledger is not None):
        raise ConfigError("run", "used without --rpc/--ledger (audit one chain at a time)", str(run))
    if run is not None:
        return open_run(run)
    if rpc is None and ledger is None:
        raise ConfigError("run", "given (a run directory), or --rpc URL with --ledger ADDRESS", None)
    if rpc is None:
        raise ConfigError("rpc", "given together with --ledger", None)
    if ledger is None:
        raise ConfigError("ledger", "given together with --rpc (the ContributionLedger address)", None)
    return open_rpc(rpc, ledger)


# ---- output ------------------------------------------------------------------------------------

_GROUPS = {
    "rounds": ("rounds.",),
    "registration": ("members.registered",),
    "rewards": ("rewards.",),
    "lineage": ("lineage.",),
    "privacy": ("privacy.",),
    "merkle": ("updates.",),
    "model": ("model.",),
}


def _worst(findings: Iterable[AuditFinding]) -> str | None:
    statuses = {f.status for f in findings}
    for status in ("fail", "warn", "pass"):
        if status in statuses:
            return status
    return None


def _verdict(findings: Sequence[AuditFinding]) -> str:
    """``ok``, or the check groups that failed / warned, e.g. ``FAIL rewards; warn merkle``."""
    failed = [
        g
        for g, prefixes in _GROUPS.items()
        if any(f.status == "fail" and f.check.startswith(prefixes) for f in findings)
    ]
    warned = [
        g
        for g, prefixes in _GROUPS.items()
        if any(f.status == "warn" and f.check.startswith(prefixes) for f in findings)
    ]
    parts = []
    if failed:
        parts.append(f"[bold red]FAIL {', '.join(failed)}[/]")
    if warned:
        parts.append(f"[yellow]warn {', '.join(warned)}[/]")
    if parts:
        return "; ".join(parts)
    return "[green]ok[/]" if findings else "[dim]-[/]"


def _fed(wei: int) -> str:
    return f"{wei / 10**18:,.4f}"


def _eps(value: float | None) -> str:
    return "-" if value is None else f"{value:.6f}"


def _short(text: str) -> str:
    return f"{text[:6]}…{text[-4:]}" if len(text) > 12 else text


def _round_table(report: AuditReport) -> Table:
    table = Table(title=f"rounds of ledger {report.ledger_address}")
    for column in ("round", "block", "members", "statuses", "pool (FED)", "disputes", "model hash"):
        table.add_column(column, justify="right")
    table.add_column("verdict")
    for row in report.rounds:
        about = [f for f in report.findings if f.round == row.server_round]
        table.add_row(
            str(row.server_round),
            str(row.block_number),
            str(row.member_count),
            row.member_statuses or "-",
            _fed(row.reward_pool_wei),
            f"{row.disputes} (withheld)" if row.withheld else str(row.disputes),
            _short(row.model_hash),
            _verdict(about),
        )
    return table


def _member_table(report: AuditReport) -> Table:
    table = Table(title="members")
    for column in ("member", "rounds", "FED", "ε reported", "ε recomputed", "budget"):
        table.add_column(column, justify="right")
    table.add_column("verdict")
    members: dict[str, list[Any]] = {}
    for row in report.members:
        members.setdefault(row.address, []).append(row)
    for address, rows in members.items():
        last = max(rows, key=lambda r: (r.server_round, r.source == "spend"))
        about = [f for f in report.findings if f.member is not None and f.member.lower() == address.lower()]
        table.add_row(
            _short(address),
            str(sum(1 for r in rows if r.source == "round")),
            _fed(sum(r.reward_wei for r in rows)),
            _eps(last.epsilon_recorded),
            _eps(last.epsilon_recomputed),
            "-" if last.epsilon_budget is None else f"{last.epsilon_budget:g}",
            _verdict(about),
        )
    return table


def _print_report(report: AuditReport) -> None:
    _console.print(_round_table(report))
    if report.members:
        _console.print(_member_table(report))
    for finding in report.failures:
        _console.print(f"[bold red]{finding}[/]", highlight=False, soft_wrap=True)
    for finding in report.warnings:
        _console.print(f"[yellow]{finding}[/]", highlight=False, soft_wrap=True)
    passed = sum(1 for f in report.findings if f.ok)
    verdict = "[bold green]AUDIT PASSED[/]" if report.ok else "[bold red]AUDIT FAILED[/]"
    _console.print(
        f"{verdict}: {len(report.findings)} checks, {passed} passed, {len(report.failures)} failed, "
        f"{len(report.warnings)} warnings{' (strict: warnings fail)' if report.strict else ''}; "
        f"privacy accountant {report.accountant}, budgets from {report.budget_source}",
        highlight=False,
    )


# ---- commands ----------------------------------------------------------------------------------


@audit_app.callback(invoke_without_command=True)
def audit(
    ctx: typer.Context,
    run: Annotated[
        Path | None, typer.Option("--run", help="A finished run on the embedded chain (reads DIR/chain.json).")
    ] = None,
    rpc: Annotated[str | None, typer.Option("--rpc", help="JSON-RPC URL of a live chain (no key needed).")] = None,
    ledger: Annotated[str | None, typer.Option("--ledger", help="ContributionLedger address (with --rpc).")] = None,
    model: Annotated[
        Path | None, typer.Option("--model", help="Check this model file against the hash recorded for --round.")
    ] = None,
    server_round: Annotated[
        int | None, typer.Option("--round", help="Round the --model file claims to be (default: the last).")
    ] = None,
    epsilon_budget: Annotated[
        float | None,
        typer.Option(
            "--epsilon-budget",
            help="Every member's epsilon budget, for members without one on chain (checked against the chain's).",
        ),
    ] = None,
    delta_budget: Annotated[
        float | None, typer.Option("--delta-budget", help="Every member's delta (with --epsilon-budget).")
    ] = None,
    budgets: Annotated[
        Path | None,
        typer.Option("--budgets", help='JSON file of per-member budgets: {"0xADDR": {"epsilon": 8, "delta": 1e-5}}.'),
    ] = None,
    accountant: Annotated[
        str, typer.Option("--accountant", help="Privacy accountant members used: rdp or prv.")
    ] = "rdp",
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON (one verdict per check).")] = False,
    csv_dir: Annotated[
        Path | None, typer.Option("--csv", help="Write member_history.csv, rounds.csv, findings.csv here.")
    ] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Warnings (unverifiable items) fail the audit.")] = False,
    html_dir: Annotated[
        Path | None,
        typer.Option("--html", help="Write a self-contained HTML report (DIR/index.html) to open in a browser."),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show library logs.")] = False,
) -> None:
    """Verify every recorded round from chain data alone (exit 0: pass, 1: a check failed, 2: bad option).

    Members' privacy budgets are read from the chain where the admin set them. For members without one,
    give --epsilon-budget or --budgets (--run falls back to result.json's config); a budget given for a
    member that has one on chain must agree with it.
    """
    if ctx.invoked_subcommand is not None:
        return
    _quiet(verbose)
    from fedchain.audit.auditor import audit_ledger, load_budgets, run_budget
    from fedchain.audit.checks import MemberBudget
    from fedchain.audit.export import write_csv

    try:
        reader = _open_reader(run, rpc, ledger)
        member_budgets = load_budgets(budgets) if budgets is not None else None
        default: MemberBudget | None = None
        if epsilon_budget is not None:
            default = MemberBudget(epsilon_budget, delta_budget)
        elif delta_budget is not None:
            raise ConfigError("delta_budget", "given together with --epsilon-budget", delta_budget)
        sources = []
        if member_budgets:
            sources.append(f"--budgets {budgets}")
        if default is not None:
            sources.append("--epsilon-budget")
        source = " + ".join(sources) if sources else "none"
        if run is not None and not sources:
            default = run_budget(run)
            source = "result.json config (off-chain)" if default is not None else "none"
        if run is not None and model is None and server_round is None and (run / "model.safetensors").is_file():
            model = run / "model.safetensors"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # library deprecation chatter is not an audit result
            report = audit_ledger(
                reader,
                budgets=member_budgets,
                default_budget=default,
                budget_source=source,
                accountant=accountant,
                model_file=model,
                model_round=server_round,
                strict=strict,
                target=f"run {run}" if run is not None else rpc,
            )
    except ConfigError as exc:
        raise _fail(_option_message(exc)) from None
    except FedChainError as exc:
        raise _fail(str(exc)) from None
    if csv_dir is not None:
        try:
            write_csv(report, csv_dir)
        except OSError as exc:
            raise _fail(f"cannot write CSV files to {csv_dir}: {exc}") from None
    html_path = None
    if html_dir is not None:
        from fedchain.audit.html import write_html

        try:
            html_path = write_html(report, html_dir)
        except OSError as exc:
            raise _fail(f"cannot write the HTML report to {html_dir}: {exc}") from None
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        _print_report(report)
        if csv_dir is not None:
            _console.print(f"CSV: {csv_dir}/member_history.csv, rounds.csv, findings.csv", highlight=False)
        if html_path is not None:
            _console.print(f"HTML report: {html_path}", highlight=False)
    raise typer.Exit(EXIT_OK if report.ok else EXIT_FAILED)


def _read_proof(path: Path) -> tuple[list[str], str | None]:
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise ConfigError("proof", "a readable proof file", str(path)) from exc
    try:
        document: Any = json.loads(text)
    except ValueError:
        document = [line.strip() for line in text.splitlines() if line.strip()]
    digest = None
    if isinstance(document, dict):
        digest = document.get("digest")
        document = document.get("proof")
    if not isinstance(document, list) or not all(isinstance(item, str) for item in document):
        raise ConfigError(
            "proof",
            'a JSON list of hex hashes, {"proof": [...], "digest": "0x..."}, or one hex hash per line',
            str(path),
        )
    return list(document), digest if isinstance(digest, str) else None


@audit_app.command("prove")
def prove(
    member: Annotated[str, typer.Option("--member", help="The member's address.")],
    server_round: Annotated[int, typer.Option("--round", help="The round of the update.")],
    proof_file: Annotated[
        Path, typer.Option("--proof-file", help='Merkle proof: JSON list of hex hashes or {"proof": [...]}.')
    ],
    digest: Annotated[str | None, typer.Option("--digest", help="The update digest the member signed (hex).")] = None,
    run: Annotated[Path | None, typer.Option("--run", help="A finished run on the embedded chain.")] = None,
    rpc: Annotated[str | None, typer.Option("--rpc", help="JSON-RPC URL of a live chain.")] = None,
    ledger: Annotated[str | None, typer.Option("--ledger", help="ContributionLedger address (with --rpc).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the verdicts as JSON.")] = False,
) -> None:
    """Verify that a member's signed update digest is in the Merkle root recorded for a round."""
    _quiet(False)
    from fedchain.audit.auditor import prove_inclusion

    try:
        proof, file_digest = _read_proof(proof_file)
        value = digest if digest is not None else file_digest
        if value is None:
            raise ConfigError("digest", "given (or in the proof file as 'digest')", None)
        reader = _open_reader(run, rpc, ledger)
        findings = prove_inclusion(reader, member=member, server_round=server_round, digest=value, proof=proof)
    except ConfigError as exc:
        raise _fail(_option_message(exc)) from None
    except FedChainError as exc:
        raise _fail(str(exc)) from None
    ok = all(f.ok for f in findings)
    if as_json:
        typer.echo(json.dumps({"ok": ok, "findings": [f.to_dict() for f in findings]}, indent=2))
    else:
        for finding in findings:
            style = "green" if finding.ok else "bold red"
            _console.print(f"[{style}]{finding}[/]", highlight=False, soft_wrap=True)
        _console.print("[bold green]INCLUDED[/]" if ok else "[bold red]NOT PROVEN[/]")
    raise typer.Exit(EXIT_OK if ok else EXIT_FAILED)


def report_command(
    run_dir: Annotated[Path, typer.Argument(help="A run directory (result.json, chain.json).")],
    out: Annotated[Path | None, typer.Option("--out", help="Where to write the PNGs (default DIR/report).")] = None,
) -> None:
    """Plot a run: accuracy per round, cumulative epsilon per member against budget, tokens per member."""
    _quiet(False)
    from fedchain.audit.plots import write_report

    try:
        paths: Sequence[Path] = write_report(run_dir, out_dir=out)
    except ConfigError as exc:
        raise _fail(_option_message(exc)) from None
    except (FedChainError, OSError) as exc:
        raise _fail(str(exc), EXIT_FAILED) from None
    for path in paths:
        _console.print(str(path), highlight=False)
