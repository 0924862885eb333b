"""The ``fedchain`` command line.

Example::

    fedchain run --out runs/demo --members 5 --rounds 5
    fedchain run --task mnist-cnn --out runs/mnist
    fedchain strategies
    fedchain tasks
"""

from __future__ import annotations

import json
import logging
import sys
import time
import warnings
from pathlib import Path
from typing import Annotated, Any

import click
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from typer.core import TyperGroup

from fedchain.config import FedChainConfig
from fedchain.deployment.cli import ScoringOption
from fedchain.deployment.cli import app as deploy_app
from fedchain.errors import ConfigError, FedChainError

__all__ = ["app", "main"]

app = typer.Typer(
    name="fedchain",
    help="Federated learning with differential privacy, homomorphic aggregation and on-chain rewards.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)


def _fail(message: str, code: int = 2) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _quiet_frameworks(verbose: bool, log_file: Path | None = None) -> None:
    """Dependencies' warnings and logs to ``log_file`` (a run's ``warnings.log``), errors on stderr; verbose: all."""
    from fedchain._logs import route_dependency_output

    level = logging.INFO if verbose else logging.WARNING
    if not verbose:
        warnings.filterwarnings("ignore", category=ResourceWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    for name in ("flwr", "ray", "opacus", "web3", "urllib3", "datasets", "filelock"):
        logging.getLogger(name).setLevel(level)
    route_dependency_output(verbose=verbose, log_file=log_file)


@app.command()
def run(
    out: Annotated[Path, typer.Option("--out", help="Directory for result.json and model.safetensors.")] = Path(
        "runs/latest"
    ),
    members: Annotated[int, typer.Option(help="Honest simulated members.")] = 5,
    rounds: Annotated[int, typer.Option(help="Federated rounds.")] = 5,
    dp: Annotated[bool, typer.Option("--dp/--no-dp", help="DP-SGD on every member.")] = True,
    epsilon: Annotated[float, typer.Option(help="Each member's total epsilon budget.")] = 8.0,
    delta: Annotated[float, typer.Option(help="Each member's delta.")] = 1e-5,
    he: Annotated[bool, typer.Option("--he/--no-he", help="Homomorphic (CKKS) aggregation.")] = True,
    he_scoring: Annotated[
        bool | None,
        typer.Option(
            "--he-scoring/--no-he-scoring",
            help="CKKS keys for encrypted norms and scores (norm bound, cosine); default: on when HE needs them.",
            show_default="auto",
        ),
    ] = None,
    norm_bound: Annotated[float, typer.Option(help="Largest update norm accepted; 0 turns the bound off.")] = 20.0,
    committee_size: Annotated[int, typer.Option(help="Members that decrypt scoring scalars (HE).")] = 2,
    task: Annotated[
        str, typer.Option(help="Task (model and data): registry name or dotted path; see `fedchain tasks`.")
    ] = "digits-mlp",
    strategy: Annotated[str, typer.Option(help="Strategy: registry name or dotted path.")] = "fedavg",
    scorer: Annotated[str, typer.Option(help="Contribution scorer.")] = "data_size",
    chain: Annotated[str, typer.Option(help="'embedded', 'none', or a JSON-RPC URL.")] = "embedded",
    adversary: Annotated[
        list[str] | None, typer.Option("--adversary", help="Add one simulated adversary of this kind (repeatable).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for data split, model init and sampling.")] = 0,
    partitioner: Annotated[str, typer.Option(help="'iid' or 'dirichlet'.")] = "dirichlet",
    alpha: Annotated[float, typer.Option("--alpha", help="Dirichlet concentration.")] = 0.5,
    local_epochs: Annotated[int | None, typer.Option(help="Local epochs per round.", show_default="the task's")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Local batch size.", show_default="the task's")] = None,
    learning_rate: Annotated[
        float | None, typer.Option("--lr", help="Local learning rate.", show_default="the task's")
    ] = None,
    min_members: Annotated[int, typer.Option(help="Fewest accepted updates for a round.")] = 2,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the run in --out from its checkpoint (needs --chain URL).")
    ] = False,
    faults: Annotated[str, typer.Option(hidden=True, help="Fault injection, for tests only.")] = "",
    set_options: Annotated[
        list[str] | None,
        typer.Option("--set", help="Any run-config option as KEY=VALUE (repeatable), e.g. --set server-eta=0.05."),
    ] = None,
    admin_keystore: Annotated[
        Path | None,
        typer.Option(
            "--admin-keystore",
            help="With --chain URL: the admin's keystore, which deploys the ledger and registers members "
            "(default $FEDCHAIN_ADMIN_KEYSTORE or $FEDCHAIN_ADMIN_PRIVATE_KEY). The coordinator signs with "
            "$FEDCHAIN_KEYSTORE or $FEDCHAIN_PRIVATE_KEY and holds only RECORDER_ROLE.",
        ),
    ] = None,
    treasury: Annotated[
        str | None,
        typer.Option(
            "--treasury", envvar="FEDCHAIN_TREASURY", help="With --chain URL: the treasury (default: the admin)."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print result.json instead of tables.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show Flower and Ray logs.")] = False,
) -> None:
    """Run a simulated federation and write DIR/result.json and DIR/model.safetensors."""
    scoring_option: dict[str, Any] = {} if he_scoring is None else {"he_scoring": he_scoring}  # unset: "auto"
    local = {"local_epochs": local_epochs, "batch_size": batch_size, "learning_rate": learning_rate}
    local_options: dict[str, Any] = {k: v for k, v in local.items() if v is not None}  # unset: the task's
    try:
        config = FedChainConfig(
            members=members,
            rounds=rounds,
            dp=dp,
            epsilon=epsilon,
            delta=delta,
            he=he,
            **scoring_option,
            norm_bound=norm_bound,
            committee_size=committee_size,
            task=task,
            strategy=strategy,
            scorer=scorer,
            chain=chain,
            adversaries=tuple(adversary or ()),
            seed=seed,
            partitioner=partitioner,
            dirichlet_alpha=alpha,
            **local_options,
            min_members=min_members,
            out_dir=str(out),
            resume=resume,
            faults=faults,
        )
        if set_options:
            config = FedChainConfig.from_run_config({**config.to_run_config(), **_parse_set(set_options)})
        from strategies.registry import create_strategy

        create_strategy(config)  # refuse an impossible strategy before anything starts
        if resume:
            from fedchain.checkpoint import Checkpoint

            if not Checkpoint.exists(out):
                raise ConfigError("resume", f"used with an --out holding a checkpoint ({out} has none)", True)
        from fedchain.chain_cli import deploy_run_ledger

        config = deploy_run_ledger(config, admin_keystore=admin_keystore, treasury=treasury)
    except ConfigError as exc:
        raise _fail(exc.cli_message()) from None
    except FedChainError as exc:
        raise _fail(str(exc)) from None

    _quiet_frameworks(verbose, out / "warnings.log")
    from fedchain.run_header import describe_run
    from fedchain.runner import run_simulation

    if not as_json:
        err_console.print(describe_run(config), highlight=False, soft_wrap=True)

    table = _round_table()
    started = time.perf_counter()
    with Progress(
        TextColumn("[bold]federation"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("rounds"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
        disable=as_json,
    ) as progress:
        task_id = progress.add_task("rounds", total=config.rounds)

        def on_round(summary: Any) -> None:
            progress.advance(task_id)
            progress.console.print(_round_row(summary), highlight=False)

        try:
            result = run_simulation(config, on_round=on_round)
        except FedChainError as exc:
            raise _fail(str(exc), code=1) from None
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    for row in result["rounds"]:
        table.add_row(*_table_cells(row))
    console.print(table)
    _print_rewards(result)
    result["out_dir"] = str(out)
    _print_audit(result)
    accuracy = result["final_accuracy"]
    console.print(
        f"final accuracy: [bold]{accuracy:.4f}[/]" if accuracy is not None else "final accuracy: n/a",
        f"  wall time: {time.perf_counter() - started:.1f} s   results: {out / 'result.json'}",
    )


def _parse_set(pairs: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs to run-config values (numbers and booleans parsed, the rest strings)."""
    known = set(FedChainConfig().to_run_config())
    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or key not in known:
            raise ConfigError("set", "KEY=VALUE with KEY one of " + ", ".join(sorted(known)), pair)
        try:
            values[key] = json.loads(raw)
        except ValueError:
            values[key] = raw
    return values


def _print_rewards(result: dict[str, Any]) -> None:
    """Token balances and cumulative epsilon per member, from result.json."""
    if not result.get("ledger_address"):
        return
    latest: dict[str, dict[str, Any]] = {}
    for row in result["rounds"]:
        for member in row["members"]:
            latest[member["address"]] = member
    table = Table(title=f"rewards (ledger {result['ledger_address']}, chain {result['chain']})")
    for column in ("member", "address", "kind", "tokens (FED)", "epsilon"):
        table.add_column(column, justify="right")
    for address, wei in sorted(result["balances_wei"].items(), key=lambda item: -int(item[1])):
        member = latest.get(address, {})
        epsilon = member.get("epsilon")
        table.add_row(
            str(member.get("member_id", "?")),
            address,
            str(member.get("kind", "?")),
            f"{int(wei) / 10**18:.4f}",
            "-" if epsilon is None else f"{epsilon:.3f}",
        )
    console.print(table)


def _print_audit(result: dict[str, Any]) -> None:
    """The run's audit verdict (every check of `fedchain audit`, run on the chain after the last round)."""
    audit = result.get("audit")
    if not audit:
        return
    verdict = "[bold green]PASSED[/]" if audit["ok"] else "[bold red]FAILED[/]"
    console.print(
        f"audit {verdict}: {audit['checks']} checks, {audit['passed']} passed, {audit['failed']} failed, "
        f"{audit['warnings']} warnings (re-run it: fedchain audit --run {result.get('out_dir', 'DIR')})"
    )
    for failure in audit.get("failures", [])[:10]:
        console.print(
            f"  [red]x[/] round {failure.get('round')} member {failure.get('member')} "
            f"field {failure.get('field')}: {failure.get('message')}",
            highlight=False,
        )


def _round_table() -> Table:
    table = Table(title="fedchain rounds")
    for column in ("round", "status", "accuracy", "loss", "members", "gas", "seconds"):
        table.add_column(column, justify="right")
    return table


def _table_cells(row: dict[str, Any]) -> list[str]:
    accepted = sum(1 for member in row["members"] if member["status"] == "accepted")
    accuracy = "-" if row["accuracy"] is None else f"{row['accuracy']:.4f}"
    loss = "-" if row["loss"] is None else f"{row['loss']:.4f}"
    gas = "-" if row.get("gas_used") is None else f"{row['gas_used']:,}"
    return [str(row["round"]), row["status"], accuracy, loss, str(accepted), gas, f"{row['seconds']:.2f}"]


def _round_row(summary: Any) -> str:
    accuracy = "-" if summary.accuracy is None else f"{summary.accuracy:.4f}"
    return (
        f"round {summary.server_round:>3}  {summary.status:<9} accuracy {accuracy}  "
        f"members {summary.accepted}  {summary.seconds:.2f} s"
    )


from fedchain.audit.cli import audit_app, report_command  # noqa: E402  (after `app` is defined)

app.add_typer(audit_app, name="audit")
app.command("report")(report_command)

from fedchain.member_cli import member_app  # noqa: E402

app.add_typer(member_app, name="member")

from fedchain.chain_cli import chain_app  # noqa: E402

app.add_typer(chain_app, name="chain")


class _ProvisionGroup(TyperGroup):
    """``fedchain provision DIR --members N``; ``keys``, ``collect`` and ``relay`` are subcommands."""

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["federation", *args]
        return super().resolve_command(ctx, args)


provision_app = typer.Typer(
    cls=_ProvisionGroup,
    help="The admin's side: `fedchain provision DIR --members N` (TLS, SuperNode keys, the coordinator's "
    "wallet, manifest.json; no CKKS key, no member wallet), then `collect DIR ENROLLMENT...` and `relay DIR OUT` "
    "to relay the members' key ceremony. `keys DIR`: both CKKS contexts in one place, for one-machine simulations.",
    no_args_is_help=True,
)
app.add_typer(provision_app, name="provision")


@provision_app.command("federation", hidden=True)
def provision_federation_command(
    directory: Annotated[Path, typer.Argument(help="Where to write the federation's key material.")],
    members: Annotated[int, typer.Option(help="Member organizations.")],
    address: Annotated[
        list[str] | None, typer.Option("--address", help="Address SuperNodes dial (certificate SAN; repeatable).")
    ] = None,
    scoring: ScoringOption = True,
    force: Annotated[bool, typer.Option("--force", help="Replace an already provisioned directory.")] = False,
) -> None:
    """TLS CA + SuperLink certificate, SuperNode keys, coordinator wallet, manifest.json (members enroll next)."""
    from fedchain.provision import DEFAULT_ADDRESSES, provision_federation

    try:
        federation = provision_federation(
            directory, members=members, addresses=address or DEFAULT_ADDRESSES, scoring=scoring, overwrite=force
        )
    except ConfigError as exc:
        raise _fail(exc.cli_message({"directory": "DIR argument", "addresses": "'--address' option"})) from None
    except (FedChainError, OSError) as exc:
        raise _fail(str(exc), code=1) from None
    table = Table(title=f"provisioned {directory} (secrets 0600, never printed)")
    for column in ("recipient", "address", "files"):
        table.add_column(column, no_wrap=column == "address")
    manifest = json.loads(federation.manifest_path.read_text())
    for recipient, entry in manifest["recipients"].items():
        table.add_row(recipient, entry.get("address", ""), ", ".join(Path(f).name for f in entry["files"]))
    console.print(table)
    console.print(f"who gets which file: {federation.manifest_path}")
    console.print(
        f"federation id {federation.federation_id}: each member runs `fedchain member enroll MEMBER_DIR` and "
        f"sends enrollment.json; then `fedchain provision collect {directory} ENROLLMENT...`"
    )


@provision_app.command("collect")
def provision_collect_command(
    directory: Annotated[Path, typer.Argument(help="The provisioned federation directory.")],
    enrollments: Annotated[list[Path], typer.Argument(help="enrollment.json files the members sent.")],
) -> None:
    """Check members' signed enrollments; record their addresses; stage them for the key holder."""
    from fedchain.provision import record_enrollments

    try:
        federation = record_enrollments(directory, enrollments)
    except ConfigError as exc:
        raise _fail(exc.cli_message({"directory": "DIR argument"})) from None
    except (FedChainError, OSError) as exc:
        raise _fail(str(exc), code=1) from None
    for bundle in federation.members:
        console.print(f"member-{bundle.member_id}  {bundle.address or '(not enrolled)'}")
    if federation.enrolled:
        console.print(f"send {federation.ceremony_dir / 'enrollments'} to the key holder (`fedchain member keygen`)")


@provision_app.command("relay")
def provision_relay_command(
    directory: Annotated[Path, typer.Argument(help="The provisioned federation directory.")],
    published: Annotated[Path, typer.Argument(help="The key holder's keygen --out directory.")],
) -> None:
    """Install the key holder's public context for the coordinator and stage each member's sealed share."""
    from fedchain.provision import relay_federation_key

    try:
        federation = relay_federation_key(directory, published)
    except ConfigError as exc:
        raise _fail(exc.cli_message({"directory": "DIR argument"})) from None
    except (FedChainError, OSError) as exc:
        raise _fail(str(exc), code=1) from None
    console.print(f"coordinator gets {federation.coordinator_context}  (public: cannot decrypt)")
    for share in sorted((federation.ceremony_dir / "shares").glob("*.share.json")):
        console.print(f"send {share} to {share.name.removesuffix('.share.json')} (`fedchain member open-key`)")


app.add_typer(deploy_app, name="deploy")


@provision_app.command("keys")
def provision_keys_command(
    directory: Annotated[Path, typer.Argument(help="Where to write member.ckks and coordinator.ckks.")],
    scoring: ScoringOption = True,
) -> None:
    """One-machine simulations only: member.ckks (secret, 0600) and coordinator.ckks (public) side by side.

    Whoever runs this holds the secret key. A federation of organizations uses the member key
    ceremony instead (`fedchain member enroll / keygen / open-key`), where the admin never does.
    """
    from fedchain.provision import provision_keys

    try:
        paths = provision_keys(directory, scoring=scoring)
    except (FedChainError, OSError) as exc:
        raise _fail(str(exc), code=1) from None
    console.print(f"members receive      {paths['member']}  (secret: keep private, mode 0600)")
    console.print(f"the coordinator gets {paths['coordinator']}  (public: cannot decrypt)")


@app.command()
def scorers(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List the registered contribution scorers and what each needs."""
    from fedchain.contribution import available_scorers

    rows = [
        {
            "name": name,
            "he": not cls.needs_plaintext,
            "needs_scalars": cls.needs_scalars,
            "needs_validation": cls.needs_validation,
            "summary": (cls.__doc__ or "").strip().splitlines()[0],
        }
        for name, cls in available_scorers().items()
    ]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title="fedchain scorers")
    for column in ("name", "HE", "needs", "summary"):
        table.add_column(column)
    for row in rows:
        needs = ", ".join(k for k in ("needs_scalars", "needs_validation") if row[k]).replace("needs_", "") or "-"
        he = "yes (encrypted scalars)" if row["he"] and row["needs_scalars"] else ("yes" if row["he"] else "no")
        table.add_row(str(row["name"]), he, needs, str(row["summary"]))
    console.print(table)


@app.command()
def strategies(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List the registered strategies and what each supports."""
    from strategies.registry import available_strategies

    rows = [cls.capabilities() for cls in available_strategies().values()]
    if as_json:
        typer.echo(json.dumps(rows, indent=2, default=str))
        return
    table = Table(title="fedchain strategies")
    for column in ("name", "HE", "members run", "options", "summary"):
        table.add_column(column)
    for row in rows:
        he = f"yes ({row['member_update']})" if row["he"] else f"no (use {row['he_alternative'] or 'fedavg'})"
        members = ", ".join(row["member_training"]) or "-"
        options = ", ".join(f"{o['key']}={o['default']}" for o in row["options"]) or "-"
        table.add_row(str(row["name"]), he, members, options, str(row["summary"]))
    console.print(table)


@app.command()
def tasks(
    as_json: Annotated[bool, typer.Option("--json")] = False,
    model_width: Annotated[int, typer.Option(help="mnist-wide's width for the parameter count.")] = 64,
) -> None:
    """List the registered tasks: parameters, input shape, data source and DP path."""
    from fedchain.tasks import available_tasks, check_task

    rows = []
    for name, cls in available_tasks().items():
        task = cls(FedChainConfig(task=name, model_width=model_width))
        report = check_task(task, checks=["check_training"])
        rows.append({**task.describe(), "dp_path": report.dp_path})
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title="fedchain tasks (fedchain run --task NAME)")
    for column in ("name", "parameters", "input", "data", "DP path"):
        table.add_column(column)
    for row in rows:
        shape = "x".join(str(d) for d in row["input_shape"])
        dp_path = "fused (fedchain)" if row["dp_path"] == "fused" else f"Opacus {row['dp_path']}"
        table.add_row(row["name"], f"{row['parameters']:,}", shape, row["data"], dp_path)
    console.print(table)


def main() -> None:
    """Console entry point."""
    try:
        app()
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
