"""``fedchain member status``: a member organization's view of its node, its privacy budget and rewards.

Example (a simulated run's member 0, with the run's exported chain)::

    fedchain member status --state-dir runs/demo/members/member-0 --run runs/demo
    fedchain member status --state-dir /var/lib/fedchain --rpc https://rpc.example.org --ledger 0x... --json
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from fedchain.errors import ConfigError, FedChainError
from fedchain.member_status import MemberStatus, member_status

__all__ = ["member_app"]

member_app = typer.Typer(
    help="A member organization's view: privacy spent, budget left, rewards.", no_args_is_help=True
)

_WEI_PER_TOKEN = 10**18


def _fmt(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _table(status: MemberStatus) -> Table:
    table = Table(title=f"member {status.address or '(unknown address)'}", show_header=False)
    table.add_column("what")
    table.add_column("value")
    table.add_row("state dir", status.state_dir)
    answered = ", ".join(f"{k} {v}" for k, v in status.instructions.items() if v) or "-"
    table.add_row("instructions answered", answered)
    table.add_row("DP rounds in the accountant", str(status.rounds_trained))
    table.add_row("epsilon spent (node)", _fmt(status.epsilon))
    table.add_row("epsilon budget (node)", _fmt(status.epsilon_budget, 2))
    table.add_row("epsilon remaining", _fmt(status.epsilon_remaining))
    if status.model_round is not None:
        table.add_row("model held", f"round {status.model_round} ({status.model_hash})")
    chain = status.chain
    if chain is not None:
        table.add_row("ledger", chain.ledger)
        table.add_row("registered", "yes" if chain.registered else "no")
        budget = chain.budget
        table.add_row("budget on chain", "not set" if budget is None else f"epsilon {budget[0]:g}, delta {budget[1]:g}")
        table.add_row("epsilon recorded on chain", _fmt(chain.recorded_epsilon))
        rounds = chain.rounds_recorded
        table.add_row("rounds recorded", f"{len(rounds)}" + (f" ({rounds[0]}..{rounds[-1]})" if rounds else ""))
        table.add_row("rewards credited (FED)", f"{chain.rewards_wei / _WEI_PER_TOKEN:.4f}")
        table.add_row("balance (FED)", f"{chain.balance_wei / _WEI_PER_TOKEN:.4f}")
        if chain.model_matches_chain is not None:
            verdict = "yes" if chain.model_matches_chain else "NO: the model held differs from the chain's record"
            table.add_row("model matches the chain", verdict)
    return table


@member_app.command("status")
def status_command(
    state_dir: Annotated[Path, typer.Option("--state-dir", help="The member node's state directory.")],
    run: Annotated[
        Path | None, typer.Option(help="A run directory whose chain.json is the ledger (embedded-chain runs).")
    ] = None,
    rpc: Annotated[str | None, typer.Option(help="JSON-RPC URL of the federation's chain.")] = None,
    ledger: Annotated[str | None, typer.Option(help="ContributionLedger address (with --rpc).")] = None,
    address: Annotated[str | None, typer.Option(help="The member's address (default: from metrics.json).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Privacy spent and left, rounds recorded, rewards and balance of one member node."""
    from fedchain.audit.cli import _open_reader

    err = Console(stderr=True)
    try:
        reader = None if run is None and rpc is None and ledger is None else _open_reader(run, rpc, ledger)
        status = member_status(state_dir, ledger=reader, address=address)
    except ConfigError as exc:
        err.print(f"[bold red]error:[/] {exc.cli_message()}", highlight=False)
        raise typer.Exit(2) from None
    except FedChainError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(status.to_dict(), indent=2))
    else:
        Console().print(_table(status))
    if status.chain is not None and status.chain.model_matches_chain is False:
        raise typer.Exit(1)
