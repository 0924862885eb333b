"""``fedchain member status``: a member organization's view of its node, its privacy budget and rewards.

Example (a simulated run's member 0, with the run's exported chain)::

    fedchain member status --state-dir runs/demo/members/member-0 --run runs/demo
    fedchain member status --state-dir /var/lib/fedchain --rpc https://rpc.example.org --ledger 0x... --json
    FEDCHAIN_WALLET_PASSWORD=... fedchain member claim --wallet-keystore wallet.json --rpc URL --ledger 0x...
"""

from __future__ import annotations

import json
import os
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
        if chain.token_balance_wei is not None:
            table.add_row("  ERC-20 balance (FED)", f"{chain.token_balance_wei / _WEI_PER_TOKEN:.4f}")
        if chain.claimable_wei is not None:
            hint = " (fedchain member claim)" if chain.claimable_wei else ""
            table.add_row("  claimable (FED)", f"{chain.claimable_wei / _WEI_PER_TOKEN:.4f}{hint}")
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


@member_app.command("claim")
def claim_command(
    wallet_keystore: Annotated[
        Path, typer.Option("--wallet-keystore", help="The member's encrypted wallet keystore (as the node uses).")
    ],
    rpc: Annotated[str, typer.Option("--rpc", envvar="FEDCHAIN_RPC_URL", help="JSON-RPC URL of the chain.")],
    ledger: Annotated[
        str, typer.Option("--ledger", envvar="FEDCHAIN_LEDGER", help="ContributionLedger address.", show_default=False)
    ],
    password_env: Annotated[
        str, typer.Option("--wallet-password-env", help="Environment variable holding the keystore password.")
    ] = "FEDCHAIN_WALLET_PASSWORD",
    chain_id: Annotated[int | None, typer.Option("--chain-id", help="Refuse a node on another chain id.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Estimate gas and cost; send nothing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Move the member's rewards into its ERC-20 balance: what a wallet or block explorer then shows.

    The password comes from $FEDCHAIN_WALLET_PASSWORD (or --wallet-password-env), else the
    wallet.password file next to the keystore, as for the node.
    """
    from fedchain.ledger import connect
    from fedchain.ledger.admin import check_chain_id, claim
    from fedchain.provision import read_wallet

    err = Console(stderr=True)
    try:
        env = password_env if os.environ.get(password_env) is not None else None  # else wallet.password
        account = read_wallet(wallet_keystore, password_env=env)
        chain = connect(rpc, private_key="0x" + bytes(account.key).hex())
        check_chain_id(chain, chain_id)
        result = claim(chain, ledger, dry_run=dry_run)
        symbol = result.symbol
    except ConfigError as exc:
        names = {
            "wallet-keystore": "'--wallet-keystore' option",
            "wallet password": f"password (${password_env} or wallet.password)",
        }
        err.print(f"[bold red]error:[/] {exc.cli_message(names)}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    except FedChainError as exc:
        reason = getattr(exc, "reason", None)
        err.print(f"[bold red]error:[/] {exc}" + (f" ({reason})" if reason else ""), highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
        return
    out = Console()
    amount = result.amount_wei / _WEI_PER_TOKEN
    balance = result.token_balance_wei / _WEI_PER_TOKEN
    if dry_run:
        out.print(f"would claim {amount:.6f} {symbol} (about {result.action.gas:,} gas); sent nothing", highlight=False)
    elif result.amount_wei == 0:
        out.print(f"nothing to claim for {result.member}", highlight=False)
    else:
        out.print(f"claimed {amount:.6f} {symbol} into {result.member} (tx {result.action.tx_hash})", highlight=False)
    out.print(
        f"ERC-20 balance: {balance:.6f} {symbol}; still claimable: {result.claimable_wei / _WEI_PER_TOKEN:.6f}",
        highlight=False,
    )
