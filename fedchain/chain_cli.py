"""``fedchain chain``: an admin's commands for a federation's ledger on any JSON-RPC endpoint.

Keys come only from an encrypted keystore (``--keystore``, password in
``$FEDCHAIN_KEYSTORE_PASSWORD``) or the environment (``$FEDCHAIN_ADMIN_KEYSTORE``,
``$FEDCHAIN_ADMIN_PRIVATE_KEY``, then ``$FEDCHAIN_KEYSTORE`` / ``$FEDCHAIN_PRIVATE_KEY``); reads
(``show``, ``roles show``) need no key. ``--chain-id`` refuses a node on another chain before
anything is sent; ``--dry-run`` estimates gas and cost and sends nothing. Writes are idempotent
where that makes sense: registering a registered member says so and sends nothing.

Exit status: 0 done (or nothing to do), 1 the chain refused (a revert, an unfunded key, a missing
role, a wrong chain id), 2 a bad option.

Example::

    export FEDCHAIN_ADMIN_KEYSTORE=admin.json FEDCHAIN_KEYSTORE_PASSWORD=...
    fedchain chain deploy --rpc http://127.0.0.1:8545 --recorder 0xC00... --treasury 0x7EA... --chain-id 31337
    fedchain chain register --rpc http://127.0.0.1:8545 --ledger 0x5FbD... 0xAAA... 0xBBB...
    fedchain chain budgets --rpc http://127.0.0.1:8545 --ledger 0x5FbD... --epsilon 8 --delta 1e-5 0xAAA...
    fedchain chain roles grant RECORDER_ROLE 0xC00... --rpc http://127.0.0.1:8545 --ledger 0x5FbD... --dry-run
    fedchain chain show --rpc http://127.0.0.1:8545 --ledger 0x5FbD... --json
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from fedchain.errors import ConfigError, FedChainError

if TYPE_CHECKING:
    from fedchain.ledger.admin import AdminAction, ChainAdmin
    from fedchain.ledger.chain import Chain

__all__ = ["chain_app"]

chain_app = typer.Typer(
    help="Administer a federation's ledger on any JSON-RPC chain: deploy, members, budgets, treasury, roles.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
roles_app = typer.Typer(help="Who holds which role; grant and revoke.", no_args_is_help=True)
chain_app.add_typer(roles_app, name="roles")

_out = Console()
_err = Console(stderr=True)

_OPTIONS = {
    "keystore": "'--keystore' option",
    "chain": "'--rpc' option",
    "ledger": "'--ledger' option",
    "ledger_address": "'--ledger' option",
    "members": "ADDRESS argument",
    "budgets": "'--budgets' option",
    "privacy_budget": "'--epsilon'/'--delta' option",
    "recorder": "'--recorder' option",
    "treasury": "'--treasury' option",
    "role": "ROLE argument",
    "address": "ADDRESS argument",
    "password": "$FEDCHAIN_KEYSTORE_PASSWORD variable",
}

Rpc = Annotated[str, typer.Option("--rpc", envvar="FEDCHAIN_RPC_URL", help="JSON-RPC URL of the chain.")]
LedgerOpt = Annotated[
    str, typer.Option("--ledger", envvar="FEDCHAIN_LEDGER", help="ContributionLedger address.", show_default=False)
]
Keystore = Annotated[
    Path | None,
    typer.Option(
        "--keystore",
        help="Encrypted JSON keystore of the admin (password in $FEDCHAIN_KEYSTORE_PASSWORD). "
        "Default: $FEDCHAIN_ADMIN_KEYSTORE, $FEDCHAIN_ADMIN_PRIVATE_KEY, $FEDCHAIN_KEYSTORE, $FEDCHAIN_PRIVATE_KEY.",
    ),
]
ChainId = Annotated[int | None, typer.Option("--chain-id", help="Refuse a node on another chain id.")]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Estimate gas and cost; send nothing.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Show library logs.")]
Addresses = Annotated[list[str], typer.Argument(help="Member addresses.", show_default=False)]


def _quiet(verbose: bool) -> None:
    level = logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    for name in ("web3", "urllib3"):
        logging.getLogger(name).setLevel(level if verbose else logging.ERROR)


@contextmanager
def _errors() -> Iterator[None]:
    """Map fedchain errors to one line and an exit status (2: a bad option, 1: the chain refused)."""
    try:
        yield
    except ConfigError as exc:
        _err.print(f"[bold red]error:[/] {exc.cli_message(_OPTIONS)}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    except FedChainError as exc:
        reason = getattr(exc, "reason", None)
        text = f"{exc}" + (f" ({reason})" if reason and reason not in str(exc) else "")
        _err.print(f"[bold red]error:[/] {text}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None


def _signer(rpc: str, keystore: Path | None, chain_id: int | None) -> Chain:
    from fedchain.ledger.admin import ADMIN_KEY_ENV, ADMIN_KEYSTORE_ENV, signer_chain

    return signer_chain(
        rpc, keystore=keystore, key_env=ADMIN_KEY_ENV, keystore_env=ADMIN_KEYSTORE_ENV, expected_chain_id=chain_id
    )


def _admin(rpc: str, ledger: str, keystore: Path | None, chain_id: int | None) -> ChainAdmin:
    from fedchain.ledger.admin import ChainAdmin

    return ChainAdmin.attach(_signer(rpc, keystore, chain_id), ledger, expected_chain_id=chain_id)


def _reader(rpc: str, ledger: str, chain_id: int | None) -> ChainAdmin:
    """An admin object for reads only: signs with a throwaway key that is never used."""
    from fedchain.ledger import connect
    from fedchain.ledger.admin import ChainAdmin

    chain = connect(rpc, private_key="0x" + secrets.token_hex(32))
    return ChainAdmin.attach(chain, ledger, expected_chain_id=chain_id)


def _fmt_wei(wei: int | None) -> str:
    return "-" if wei is None else f"{wei / 10**18:.6f}"


def _report(action: AdminAction, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(action.to_dict(), indent=2))
        return
    style = "green" if action.changed else ("cyan" if action.dry_run else "yellow")
    _out.print(f"[{style}]{action.message}[/]", highlight=False, soft_wrap=True)
    if action.gas is not None:
        what = "estimated" if action.dry_run else "used"
        _out.print(f"  gas {what}: {action.gas:,}  cost: {_fmt_wei(action.cost_wei)} (native)", highlight=False)
    if action.tx_hash:
        _out.print(f"  tx: {action.tx_hash}", highlight=False)


def _write(
    rpc: str,
    ledger: str,
    keystore: Path | None,
    chain_id: int | None,
    as_json: bool,
    verbose: bool,
    operation: Callable[[ChainAdmin], AdminAction],
) -> None:
    _quiet(verbose)
    with _errors():
        action = operation(_admin(rpc, ledger, keystore, chain_id))
    _report(action, as_json)


# ---- commands ----------------------------------------------------------------------------------


@chain_app.command("deploy")
def deploy_command(
    rpc: Rpc,
    recorder: Annotated[
        str | None, typer.Option("--recorder", help="The coordinator's address (RECORDER_ROLE). Default: the admin.")
    ] = None,
    treasury: Annotated[
        str | None, typer.Option("--treasury", help="Receives each round's remainder. Default: the admin.")
    ] = None,
    token_name: Annotated[
        str, typer.Option("--token-name", help="ERC-20 name of the reward token.")
    ] = "FedChain Token",
    token_symbol: Annotated[str, typer.Option("--token-symbol", help="ERC-20 symbol.")] = "FED",
    out: Annotated[
        Path | None, typer.Option("--out", help="Also write the deployment (addresses) to this JSON file.")
    ] = None,
    keystore: Keystore = None,
    chain_id: ChainId = None,
    dry_run: DryRun = False,
    as_json: AsJson = False,
    verbose: Verbose = False,
) -> None:
    """Deploy ContributionLedger and its FedToken; the signing key becomes the admin."""
    from fedchain.ledger.admin import ChainAdmin

    _quiet(verbose)
    with _errors():
        chain = _signer(rpc, keystore, chain_id)
        result = ChainAdmin.deploy(
            chain,
            recorder=recorder,
            treasury=treasury,
            token_name=token_name,
            token_symbol=token_symbol,
            dry_run=dry_run,
        )
    if out is not None and not dry_run:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"rpc": rpc, **result.action.details}, indent=2) + "\n")
    _report(result.action, as_json)
    if not as_json and not dry_run:
        details = result.action.details
        for key in ("ledger", "token", "admin", "recorder", "treasury"):
            _out.print(f"  {key}: {details[key]}", highlight=False)


@chain_app.command("register")
def register_command(
    addresses: Addresses,
    rpc: Rpc,
    ledger: LedgerOpt,
    keystore: Keystore = None,
    chain_id: ChainId = None,
    dry_run: DryRun = False,
    as_json: AsJson = False,
    verbose: Verbose = False,
) -> None:
    """Register member addresses (already registered ones are skipped)."""
    _write(rpc, ledger, keystore, chain_id, as_json, verbose, lambda a: a.register(addresses, dry_run=dry_run))


@chain_app.command("deregister")
def deregister_command(
    addresses: Addresses,
    rpc: Rpc,
    ledger: LedgerOpt,
    keystore: Keystore = None,
    chain_id: ChainId = None,
    dry_run: DryRun = False,
    as_json: AsJson = False,
    verbose: Verbose = False,
) -> None:
    """Deregister member addresses (their unclaimed rewards stay claimable)."""
    _write(rpc, ledger, keystore, chain_id, as_json, verbose, lambda a: a.deregister(addresses, dry_run=dry_run))


@chain_app.command("budgets")
def budgets_command(
    rpc: Rpc,
    ledger: LedgerOpt,
    addresses: Annotated[list[str] | None, typer.Argument(help="Members given --epsilon/--delta.")] = None,
    epsilon: Annotated[float | None, typer.Option("--epsilon", help="Lifetime epsilon of each ADDRESS.")] = None,
    delta: Annotated[float, typer.Option("--delta", help="Delta of each ADDRESS.")] = 1e-5,
    budgets_file: Annotated[
        Path | None,
        typer.Option("--budgets", help='JSON file: {"0xADDR": {"epsilon": 8, "delta": 1e-5}, ...}.'),
    ] = None,
    keystore: Keystore = None,
    chain_id: ChainId = None,
    dry_run: DryRun = False,
    as_json: AsJson = False,
    verbose: Verbose = False,
) -> None:
    """Set members' lifetime privacy budgets (once each; the same value again is a no-op)."""
    with _errors():
        budgets = _budgets(addresses or [], epsilon, delta, budgets_file)
    _write(rpc, ledger, keystore, chain_id, as_json, verbose, lambda a: a.set_budgets(budgets, dry_run=dry_run))


def _budgets(
    addresses: list[str], epsilon: float | None, delta: float, path: Path | None
) -> dict[str, tuple[float, float]]:
    budgets: dict[str, tuple[float, float]] = {}
    if path is not None:
        try:
            document = json.loads(path.read_text("utf-8"))
            budgets.update(
                {str(k): (float(v["epsilon"]), float(v.get("delta", 1e-5))) for k, v in dict(document).items()}
            )
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            raise ConfigError("budgets", 'a JSON file {"0xADDR": {"epsilon": E, "delta": D}}', str(path)) from exc
    if addresses:
        if epsilon is None:
            raise ConfigError("budgets", "given with --epsilon for the ADDRESS arguments", None)
        budgets.update(dict.fromkeys(addresses, (epsilon, delta)))
    elif epsilon is not None:
        raise ConfigError("members", "given (one ADDRESS or more) with --epsilon", None)
    if not budgets:
        raise ConfigError("budgets", "ADDRESS... with --epsilon, or --budgets FILE", None)
    return budgets


@chain_app.command("treasury")
def treasury_command(
    rpc: Rpc,
    ledger: LedgerOpt,
    address: Annotated[str | None, typer.Argument(help="The new treasury; omit to show the current one.")] = None,
    keystore: Keystore = None,
    chain_id: ChainId = None,
    dry_run: DryRun = False,
    as_json: AsJson = False,
    verbose: Verbose = False,
) -> None:
    """Show the treasury, or point each round's remainder at ADDRESS."""
    if address is None:
        _quiet(verbose)
        with _errors():
            treasury = _reader(rpc, ledger, chain_id).ledger.treasury
        typer.echo(json.dumps({"treasury": treasury}) if as_json else treasury)
        return
    _write(rpc, ledger, keystore, chain_id, as_json, verbose, lambda a: a.set_treasury(address, dry_run=dry_run))


@roles_app.command("show")
def roles_show(
    rpc: Rpc, ledger: LedgerOpt, chain_id: ChainId = None, as_json: AsJson = False, verbose: Verbose = False
) -> None:
    """Who holds which role now (from the role history, checked against hasRole)."""
    _quiet(verbose)
    with _errors():
        holders = _reader(rpc, ledger, chain_id).role_holders()
    if as_json:
        typer.echo(json.dumps(holders, indent=2))
        return
    table = Table(title=f"roles of ledger {ledger}")
    table.add_column("role")
    table.add_column("holders")
    for role, accounts in holders.items():
        table.add_row(role, "\n".join(accounts) or "-")
    _out.print(table)


@roles_app.command("grant")
def roles_grant(
    role: Annotated[str, typer.Argument(help="Role name, e.g. RECORDER_ROLE (or 'recorder').")],
    address: Annotated[str, typer.Argument(help="The account to grant it to.")],
    rpc: Rpc,
    ledger: LedgerOpt,
    keystore: Keystore = None,
    chain_id: ChainId = None,
    dry_run: DryRun = False,
    as_json: AsJson = False,
    verbose: Verbose = False,
) -> None:
    """Grant ROLE to ADDRESS (a no-op when it holds it)."""
    _write(rpc, ledger, keystore, chain_id, as_json, verbose, lambda a: a.grant_role(role, address, dry_run=dry_run))


@roles_app.command("revoke")
def roles_revoke(
    role: Annotated[str, typer.Argument(help="Role name, e.g. RECORDER_ROLE (or 'recorder').")],
    address: Annotated[str, typer.Argument(help="The account to revoke it from.")],
    rpc: Rpc,
    ledger: LedgerOpt,
    keystore: Keystore = None,
    chain_id: ChainId = None,
    dry_run: DryRun = False,
    as_json: AsJson = False,
    verbose: Verbose = False,
) -> None:
    """Revoke ROLE from ADDRESS (a no-op when it does not hold it)."""
    _write(rpc, ledger, keystore, chain_id, as_json, verbose, lambda a: a.revoke_role(role, address, dry_run=dry_run))


@chain_app.command("show")
def show_command(
    rpc: Rpc, ledger: LedgerOpt, chain_id: ChainId = None, as_json: AsJson = False, verbose: Verbose = False
) -> None:
    """The ledger at a glance: chain, addresses, treasury, roles, members and their budgets and balances."""
    _quiet(verbose)
    with _errors():
        info = _reader(rpc, ledger, chain_id).show()
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    _print_show(info)


def _print_show(info: dict[str, Any]) -> None:
    table = Table(title=f"ledger {info['ledger']}", show_header=False)
    table.add_column("what")
    table.add_column("value")
    table.add_row("chain", f"{info['rpc']} (chain id {info['chain_id']})")
    table.add_row("token", f"{info['token']} ({info['token_symbol']})")
    table.add_row("deployed in block", str(info["deploy_block"]))
    table.add_row("treasury", info["treasury"])
    for role, accounts in info["roles"].items():
        table.add_row(role, "\n".join(accounts) or "-")
    table.add_row("rounds recorded", str(info["last_round"]))
    table.add_row("total supply", _fmt_wei(int(info["total_supply_wei"])))
    _out.print(table)
    members = Table(title=f"{len(info['members'])} registered member(s)")
    for column in ("address", "epsilon budget", "delta", "claimable", "ERC-20 balance"):
        members.add_column(column)
    for row in info["members"]:
        budget = row["budget"]
        members.add_row(
            row["address"],
            "-" if budget is None else f"{budget['epsilon']:g}",
            "-" if budget is None else f"{budget['delta']:g}",
            _fmt_wei(int(row["claimable_wei"])),
            _fmt_wei(int(row["token_balance_wei"])),
        )
    _out.print(members)


# ---- fedchain run --chain URL ------------------------------------------------------------------


def deploy_run_ledger(config: Any, *, admin_keystore: Path | None = None, treasury: str | None = None) -> Any:
    """Before ``fedchain run --chain URL``: the admin deploys the run's ledger; the coordinator only records.

    The admin's key (``admin_keystore``, ``$FEDCHAIN_ADMIN_KEYSTORE`` or ``$FEDCHAIN_ADMIN_PRIVATE_KEY``;
    never the coordinator's) deploys the ledger, keeps ``DEFAULT_ADMIN_ROLE``, registers the simulated
    members and sets their budgets (with DP); the coordinator's address (``$FEDCHAIN_KEYSTORE`` or
    ``$FEDCHAIN_PRIVATE_KEY``, as the ServerApp signs) gets ``RECORDER_ROLE`` only; the treasury is
    ``treasury`` (default: the admin). Returns ``config`` attached to the new ledger; unchanged for the
    embedded chain, no chain, a resumed run or a given ``ledger-address``.

    Raises:
        ConfigError: a key is missing, or the admin's key is the coordinator's.
        UnfundedAccountError: the coordinator (or admin) cannot pay for gas.
        LedgerError: the chain refused a transaction.
    """
    if not str(config.chain).startswith(("http://", "https://")) or config.resume or config.ledger_address:
        return config
    from fedchain.identity import simulated_member_addresses
    from fedchain.ledger import connect
    from fedchain.ledger.admin import (
        ADMIN_KEY_ENV,
        ADMIN_KEYSTORE_ENV,
        ensure_funded,
        setup_federation_ledger,
        signer_chain,
    )

    coordinator = connect(config.chain)  # the key the ServerApp will sign with
    admin = signer_chain(
        config.chain,
        keystore=admin_keystore,
        key_env=ADMIN_KEY_ENV,
        keystore_env=ADMIN_KEYSTORE_ENV,
        generic_fallback=False,
    )
    if admin.address == coordinator.address:
        raise ConfigError(
            "admin_keystore",
            "another key than the coordinator's ($FEDCHAIN_PRIVATE_KEY / $FEDCHAIN_KEYSTORE): "
            "the coordinator holds only RECORDER_ROLE",
            admin.address,
        )
    ensure_funded(coordinator, coordinator.address, "recording rounds (the coordinator's key)")
    deployed = setup_federation_ledger(
        admin,
        recorder=coordinator.address,
        treasury=treasury,
        members=simulated_member_addresses(seed=config.seed, count=config.total_members),
        privacy_budget=(config.epsilon, config.delta) if config.dp else None,
    )
    logging.getLogger(__name__).info(
        "ledger %s deployed by admin %s; recorder %s; treasury %s",
        deployed.ledger.address,
        admin.address,
        coordinator.address,
        deployed.ledger.treasury,
    )
    return config.replace(ledger_address=deployed.ledger.address)
