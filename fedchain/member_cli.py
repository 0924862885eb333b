"""``fedchain member``: a member organization's commands.

``status``: its view of its node, its privacy budget and rewards. ``enroll``, ``keygen`` and
``open-key``: its steps of the CKKS key ceremony (:mod:`fedchain.keyceremony`), run on its own machine.

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
    help="A member organization's commands: status (privacy spent, budget left, rewards) and the CKKS key "
    "ceremony (enroll, keygen, open-key).",
    no_args_is_help=True,
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


# ---------------------------------------------------------------------------------- key ceremony

_PASSWORD_ENV_HELP = "Environment variable holding the wallet password (default: wallet.password in MEMBER_DIR)."


def _ceremony_failure(err: Console, exc: Exception) -> typer.Exit:
    if isinstance(exc, ConfigError):
        names = {
            "member directory": "MEMBER_DIR argument",
            "wallet password": "wallet password",
            "wallet-keystore": "wallet keystore (wallet.json)",
            "federation.json": "federation.json",
            "enrollment": "enrollment",
            "preset": "'--scoring/--no-scoring' option",
        }
        err.print(f"[bold red]error:[/] {exc.cli_message(names)}", highlight=False, soft_wrap=True)
        return typer.Exit(2)
    err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
    return typer.Exit(1)


@member_app.command("enroll")
def enroll_command(
    member_dir: Annotated[Path, typer.Argument(help="This member's directory (with the admin's ca.crt).")],
    federation_id: Annotated[
        str | None, typer.Option(help="The federation id, if MEMBER_DIR has no ca.crt (SHA-256 of it).")
    ] = None,
    member_id: Annotated[int | None, typer.Option(help="The member number the admin gave you.")] = None,
    wallet_password_env: Annotated[str | None, typer.Option(help=_PASSWORD_ENV_HELP)] = None,
) -> None:
    """Create this member's wallet (if none) and transport key; write enrollment.json for the admin."""
    from fedchain.keyceremony import enroll

    err = Console(stderr=True)
    try:
        enrollment = enroll(
            member_dir, federation_id=federation_id, member_id=member_id, password_env=wallet_password_env
        )
    except (FedChainError, OSError) as exc:
        raise _ceremony_failure(err, exc) from None
    out = Console()
    out.print(f"address        {enrollment.address}")
    out.print(f"transport key  {enrollment.transport_key}")
    out.print(f"federation     {enrollment.federation_id}")
    out.print(f"send {member_dir / 'enrollment.json'} to the admin; tell the key holder your address out of band")


@member_app.command("keygen")
def keygen_command(
    member_dir: Annotated[Path, typer.Argument(help="The key holder's member directory (after enroll).")],
    enrollments: Annotated[
        list[Path], typer.Option("--enrollment", help="An enrollment the admin relayed (repeatable), or a directory.")
    ],
    out: Annotated[Path, typer.Option(help="Where to write coordinator.ckks and shares/ for the admin.")],
    member: Annotated[
        list[str] | None,
        typer.Option("--member", help="Address of an expected member, known out of band (repeatable)."),
    ] = None,
    members_file: Annotated[
        Path | None, typer.Option(help="File of expected member addresses, one a line (e.g. from the chain).")
    ] = None,
    scoring: Annotated[
        bool | None,
        typer.Option("--scoring/--no-scoring", help="CKKS parameters (default: the federation's, federation.json)."),
    ] = None,
    wallet_password_env: Annotated[str | None, typer.Option(help=_PASSWORD_ENV_HELP)] = None,
) -> None:
    """Key holder: generate the federation's CKKS key here and seal it to each enrolled member."""
    from fedchain.keyceremony import generate_key

    err = Console(stderr=True)
    expected = list(member or [])
    try:
        if members_file is not None:
            lines = members_file.read_text("utf-8").splitlines()
            expected += [line.strip() for line in lines if line.strip() and not line.startswith("#")]
        files: list[Path] = []
        for path in enrollments:
            files += sorted(path.glob("*.json")) if path.is_dir() else [path]
        publication = generate_key(
            member_dir,
            enrollments=files,
            out_dir=out,
            expected_members=expected or None,
            preset=None if scoring is None else ("scoring" if scoring else "aggregation"),
            password_env=wallet_password_env,
        )
    except (FedChainError, OSError) as exc:
        raise _ceremony_failure(err, exc) from None
    if not expected:
        err.print(
            "[yellow]warning:[/] no --member/--members-file: every correctly signed enrollment was accepted. "
            "Check these addresses with each organization:",
            highlight=False,
        )
    out_console = Console()
    for address, path in publication.shares.items():
        out_console.print(f"sealed to {address}  {path}")
    out_console.print(f"public context  {publication.coordinator_context}  sha256 {publication.public_context_sha256}")
    out_console.print(f"key holder      {publication.key_holder}  (members pass it to open-key --key-holder)")
    relay = f"fedchain provision relay DIR {publication.directory}"
    out_console.print(f"give {publication.directory} to the admin (`{relay}`)")


@member_app.command("open-key")
def open_key_command(
    member_dir: Annotated[Path, typer.Argument(help="This member's directory (after enroll).")],
    share: Annotated[Path, typer.Option(help="The sealed share the admin relayed to you.")],
    public_context: Annotated[Path, typer.Option(help="The coordinator.ckks published with it.")],
    key_holder: Annotated[str, typer.Option(help="The key holder's address, as you know it out of band.")],
    wallet_password_env: Annotated[str | None, typer.Option(help=_PASSWORD_ENV_HELP)] = None,
) -> None:
    """Check the key holder's signature and the public context, open the share: writes member.ckks (0600)."""
    from fedchain.keyceremony import open_key

    err = Console(stderr=True)
    try:
        path = open_key(
            member_dir,
            share=share,
            public_context=public_context,
            key_holder=key_holder,
            password_env=wallet_password_env,
        )
    except (FedChainError, OSError) as exc:
        raise _ceremony_failure(err, exc) from None
    Console().print(f"the federation's CKKS key is in {path} (secret, 0600): node config ckks-context")
