"""The deployment commands: ``fedchain deploy {provision,up,down,status,setup,demo-data}``.

One typer app, reached two ways: ``fedchain deploy ...`` (the ``fedchain`` command line mounts
:data:`app`) and ``python -m fedchain.deployment ...`` (what ``deploy/compose.yaml`` and the
container image run, where the ``fedchain`` script may not be on the ``PATH``).

``up`` brings a whole federation up on this machine and runs the app once (see
:mod:`fedchain.deployment.launcher`); ``down`` stops it by PID. Across machines, ``up --role hub
--hub-host ADDR`` runs anvil, the SuperLink and the run on the hub and ``up --role member --member
N --hub-host ADDR --superlink-port PORT`` one member's SuperNode on its own machine, from the
directory ``bundle`` wrote for it (deploy/README.md, "Across machines"). ``provision``, ``setup`` and
``demo-data`` are the steps the container set-up (``deploy/compose.yaml``) runs one by one.
Secrets are never printed; exit status 0 on success, 1 on failure, 2 on invalid options,
130 on Ctrl-C (after stopping everything started).
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Annotated, Any, TypeVar

import typer

from fedchain.errors import ConfigError, FedChainError

__all__ = ["app", "main"]

T = TypeVar("T")

app = typer.Typer(
    help="A real federation on this machine: SuperLink + SuperNodes (TLS, node auth), anvil, metrics.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

Directory = Annotated[Path, typer.Argument(help="Federation directory.", show_default=False)]
#: The CKKS preset of provisioning commands: SCORING by default, since HE's default norm bound needs it.
ScoringOption = Annotated[
    bool,
    typer.Option(
        "--scoring/--no-scoring",
        help="CKKS parameters for encrypted norms and scores (default: on; HE's default norm bound needs them).",
    ),
]
RunConfig = Annotated[str, typer.Option(help="Extra run config, e.g. 'epsilon=4.0 local-epochs=1'.")]
AppDir = Annotated[
    Path | None, typer.Option(help="The Flower App to run (default: this checkout).", show_default=False)
]


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _log(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    if verbose:
        logging.getLogger().setLevel(logging.INFO)


@app.callback()
def _group(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress.")] = False) -> None:
    _log(verbose)
    signal.signal(signal.SIGTERM, _raise_interrupt)  # SIGTERM stops like Ctrl-C: everything started is stopped


@contextmanager
def _exit_codes() -> Iterator[None]:
    """Exit codes for fedchain errors: 2 for an invalid option, 1 for a failure, 130 for Ctrl-C."""
    try:
        yield
    except ConfigError as exc:
        sys.stderr.write(f"error: {exc}\n")
        raise typer.Exit(2) from None
    except FedChainError as exc:
        sys.stderr.write(f"error: {exc}\n")
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        sys.stderr.write("interrupted: every process started was stopped\n")
        raise typer.Exit(130) from None


def _parse_run_config(text: str) -> dict[str, bool | int | float | str]:
    """``"epsilon=4.0 dp=true strategy='fedavg'"`` -> typed values (TOML scalars)."""
    import tomllib

    values: dict[str, bool | int | float | str] = {}
    for item in text.split():
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError("run-config", "space-separated key=value pairs", item)
        try:
            values[key] = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            values[key] = raw
    return values


@app.command()
def provision(
    directory: Directory,
    members: Annotated[int, typer.Option(help="Member organizations.", show_default=False)],
    address: Annotated[
        list[str] | None,
        typer.Option(
            help="SuperLink address nodes dial (repeatable; default 127.0.0.1, localhost).", show_default=False
        ),
    ] = None,
    scoring: ScoringOption = True,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing provisioned directory.")] = False,
    if_missing: Annotated[bool, typer.Option("--if-missing", help="Do nothing if DIR is provisioned already.")] = False,
    local_ceremony: Annotated[
        bool,
        typer.Option(
            "--local-ceremony",
            help="Demo on one machine: also play every member's key-ceremony steps, each in its own member directory.",
        ),
    ] = False,
) -> None:
    """The admin's material: TLS, SuperNode keys, coordinator wallet (no CKKS key)."""
    from fedchain.provision import DEFAULT_ADDRESSES, MANIFEST_FILENAME, ProvisionedFederation, provision_federation

    with _exit_codes():
        if if_missing and (directory / MANIFEST_FILENAME).exists():
            sys.stdout.write(f"{directory} is provisioned already\n")
            federation = ProvisionedFederation.load(directory)
        else:
            federation = provision_federation(
                directory, members=members, addresses=address or DEFAULT_ADDRESSES, scoring=scoring, overwrite=force
            )
            sys.stdout.write(f"provisioned {len(federation.members)} members in {federation.directory}\n")
            sys.stdout.write(f"manifest (who gets which file; no secrets): {federation.manifest_path}\n")
        if local_ceremony and not (federation.enrolled and federation.keyed):
            from fedchain.keyceremony import run_local_ceremony

            federation = run_local_ceremony(directory)
            sys.stdout.write(
                f"key ceremony: {len(federation.members)} members enrolled, member 0 generated the CKKS key, "
                f"public context {federation.coordinator_context}\n"
            )


@app.command()
def up(
    directory: Annotated[
        Path, typer.Argument(help="Federation directory (provisioned here if it is not yet).", show_default=False)
    ],
    members: Annotated[int, typer.Option(help="Member organizations.")] = 3,
    rounds: Annotated[int, typer.Option(help="Federated rounds.")] = 2,
    data: Annotated[
        list[Path] | None, typer.Option("--data", help="One data file per member, in order.", show_default=False)
    ] = None,
    label_column: Annotated[str, typer.Option(help="The label column of the data files.")] = "label",
    chain: Annotated[str, typer.Option(help="'anvil', 'none' or a JSON-RPC URL.")] = "anvil",
    run_config: RunConfig = "",
    metrics: Annotated[bool, typer.Option("--metrics/--no-metrics", help="/metrics endpoints.")] = True,
    seed: Annotated[int, typer.Option(help="Seed of the run.")] = 0,
    timeout: Annotated[float, typer.Option(help="Seconds the run may take.")] = 900.0,
    app_dir: AppDir = None,
    foreground: Annotated[bool, typer.Option("--foreground", help="After the run, keep running until Ctrl-C.")] = False,
    stop_after: Annotated[bool, typer.Option("--stop-after", help="Stop everything when the run ends.")] = False,
    role: Annotated[
        str, typer.Option(help="'all' (one machine), 'hub' (anvil, SuperLink, the run) or 'member' (one SuperNode).")
    ] = "all",
    member: Annotated[
        int | None, typer.Option(help="The member this machine runs (--role member).", show_default=False)
    ] = None,
    hub_host: Annotated[
        str | None,
        typer.Option(help="The hub's address members dial (an IP or DNS name in the certificate).", show_default=False),
    ] = None,
    bind: Annotated[
        str | None, typer.Option(help="Where the hub listens (e.g. 0.0.0.0; default: --hub-host).", show_default=False)
    ] = None,
    address: Annotated[
        list[str] | None,
        typer.Option(help="More names/IPs for the SuperLink certificate (repeatable).", show_default=False),
    ] = None,
    superlink_port: Annotated[int, typer.Option(help="The SuperLink's port (0: a free one).")] = 0,
    anvil_port: Annotated[int, typer.Option(help="anvil's port (0: a free one).")] = 0,
    startup_timeout: Annotated[
        float, typer.Option(help="Seconds each process (the hub: every member) may take to come up.")
    ] = 90.0,
    member_runtime: Annotated[
        str,
        typer.Option(
            help="'worker': one long-lived member worker per SuperNode; 'flower': Flower's process per message."
        ),
    ] = "worker",
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress.")] = False,
) -> None:
    """Provision, start anvil + ledger, SuperLink, SuperNodes and exporters, run the app; Ctrl-C stops all."""
    from fedchain.deployment.launcher import DeploySpec, LocalFederation, default_app_dir

    if foreground and stop_after:
        raise typer.BadParameter("--foreground and --stop-after exclude each other", param_hint="--stop-after")
    if verbose:
        _log(verbose)
    with _exit_codes():
        spec = DeploySpec(
            app_dir=app_dir or default_app_dir(),
            directory=directory,
            members=members,
            rounds=rounds,
            data=tuple(data or ()),
            label_column=label_column,
            chain=chain,
            run_config=_parse_run_config(run_config),
            metrics=metrics,
            seed=seed,
            run_timeout_s=timeout,
            role=role,
            member=member,
            hub_host=hub_host,
            hub_bind=bind,
            addresses=tuple(address or ()),
            superlink_port=superlink_port,
            anvil_port=anvil_port,
            startup_timeout_s=startup_timeout,
            member_runtime=member_runtime,
        )
        federation = LocalFederation(spec)
        if spec.role == "member":
            _serve_member(federation)
            return

        def submitted(run_id: int) -> None:
            sys.stdout.write(f"run {run_id} submitted\n")
            sys.stdout.flush()

        outcome = federation.up(on_submitted=submitted)
        summary = {
            "run_id": outcome.run_id,
            "status": outcome.status,
            "seconds": round(outcome.seconds, 1),
            "result": str(outcome.out_dir / "result.json"),
            "final_accuracy": outcome.result.get("final_accuracy"),
            "ledger_address": outcome.result.get("ledger_address"),
            "superlink": federation.superlink_address,
            "rpc_url": federation.rpc_url,
            "metrics": federation.metrics_urls(),
            "timings_s": {k: round(v, 2) for k, v in federation.timings.items()},
        }
        sys.stdout.write(json.dumps(summary, indent=2) + "\n")
        if stop_after:
            federation.stop()
        elif foreground:
            sys.stdout.write("running; Ctrl-C stops every process\n")
            try:
                threading.Event().wait()
            finally:
                federation.stop()
        else:
            sys.stdout.write(f"still running; stop it with: fedchain deploy down {spec.directory}\n")
    if not outcome.ok:
        raise typer.Exit(1)


def _serve_member(federation: Any) -> None:
    """A member machine: start this member's SuperNode and keep it until Ctrl-C (or SIGTERM)."""
    federation.start()
    sys.stdout.write(
        json.dumps(
            {"member": federation.spec.member, "superlink": federation.superlink_address, "ports": federation.ports},
            indent=2,
        )
        + "\nrunning; Ctrl-C stops this member's processes\n"
    )
    sys.stdout.flush()
    try:
        threading.Event().wait()
    finally:
        federation.stop()


@app.command()
def bundle(
    directory: Directory,
    member: Annotated[int, typer.Option(help="The member whose bundle to write.", show_default=False)],
    out: Annotated[Path, typer.Option(help="Where to write it (a new directory).", show_default=False)],
    data: Annotated[
        Path | None, typer.Option(help="The member's data file to include (default: none).", show_default=False)
    ] = None,
    policy: Annotated[
        Path | None, typer.Option(help="The member's privacy policy (policy.toml) to include.", show_default=False)
    ] = None,
) -> None:
    """What member N's machine needs, in the layout `up --role member` reads: OUT/members/member-N/, data, policy.

    Copies the member's own directory (CA certificate, SuperNode key, its wallet and CKKS share
    from the key ceremony, federation.json) 0700/0600; nothing of another member or the admin.
    """
    from fedchain.deployment.launcher import write_member_bundle

    with _exit_codes():
        written = write_member_bundle(directory, member, out, data=data, policy=policy)
    sys.stdout.write(json.dumps({k: str(v) for k, v in written.items()}, indent=2) + "\n")


@app.command()
def down(directory: Directory) -> None:
    """Stop every process of the deployment, by PID (whole process trees)."""
    from fedchain.deployment.launcher import down as stop_deployment

    with _exit_codes():
        stopped = stop_deployment(directory)
    sys.stdout.write(("stopped " + ", ".join(stopped) if stopped else "nothing was running") + "\n")


@app.command()
def status(directory: Directory) -> None:
    """Processes, ports, endpoints and last run of the deployment (JSON)."""
    from fedchain.deployment.processes import ProcessSupervisor

    with _exit_codes():
        root = directory.resolve() / "deployment"
        supervisor = ProcessSupervisor.load(root / "processes.json")
        state: dict[str, Any] = {}
        if (root / "state.json").exists():
            state = json.loads((root / "state.json").read_text("utf-8"))
        state["processes"] = {
            record.name: {"pid": record.pid, "running": supervisor.is_running(record)} for record in supervisor.records
        }
    sys.stdout.write(json.dumps(state, indent=2) + "\n")


@app.command()
def setup(
    directory: Directory,
    superlink: Annotated[
        str, typer.Option(help="host:port of the SuperLink (a name in its SANs).", show_default=False)
    ],
    flwr_home: Annotated[Path, typer.Option(help="Where the Flower connection is written.", show_default=False)],
    chain: Annotated[str, typer.Option(help="JSON-RPC URL of the chain, or 'none'.")] = "none",
    admin_key_env: Annotated[str, typer.Option(help="Env var holding the ledger admin key.")] = "FEDCHAIN_ADMIN_KEY",
    anvil_dev_key: Annotated[
        bool, typer.Option("--anvil-dev-key", help="Use anvil's public development key as admin.")
    ] = False,
    rounds: Annotated[int, typer.Option(help="Federated rounds.")] = 2,
    metrics_port: Annotated[int, typer.Option(help="The coordinator's /metrics port (0: none).")] = 0,
    metrics_host: Annotated[str, typer.Option(help="The coordinator's /metrics interface.")] = "127.0.0.1",
    run_config: RunConfig = "",
    app_dir: AppDir = None,
) -> None:
    """Admin step for containers: connection, SuperNode registration, ledger, run config."""
    import os

    from fedchain._io import atomic_write_bytes, atomic_write_json
    from fedchain.deployment import flower
    from fedchain.deployment.chain import ANVIL_DEV_KEY, run_privacy_budget, setup_ledger
    from fedchain.deployment.launcher import app_run_config_keys, default_app_dir
    from fedchain.provision import ProvisionedFederation

    with _exit_codes():
        federation = ProvisionedFederation.load(directory)
        if not federation.enrolled:
            raise ConfigError(
                "directory",
                "a federation whose members have enrolled (their addresses are registered on chain)",
                str(directory),
                hint="Members run `fedchain member enroll`; the admin `fedchain provision collect DIR ENROLLMENT...`.",
            )
        flower.write_connection(flwr_home, address=superlink, root_certificates=federation.ca_certificate)
        env = flower.flower_env(flwr_home)
        node_ids: dict[str, int] = {}
        for bundle in federation.members:
            name = f"member-{bundle.member_id}"
            register = partial(flower.register_supernode, bundle.supernode_public_key, env=env, name=name)
            node_ids[name] = _retry(register, what="the SuperLink")
        values: dict[str, bool | int | float | str] = {
            "num-server-rounds": rounds,
            "num-members": len(federation.members),
            "he": True,
            "he-keys-dir": str(federation.coordinator_dir),
            "chain": chain,
            "out-dir": str(directory / "runs" / "latest"),
        }
        if chain != "none":
            key = ANVIL_DEV_KEY if anvil_dev_key else os.environ.get(admin_key_env)
            if not key:
                raise ConfigError(admin_key_env, "set to the ledger admin's key (or pass --anvil-dev-key)", None)
            budget = run_privacy_budget(_parse_run_config(run_config))
            chain_setup = _retry(
                lambda: setup_ledger(chain, federation, admin_key=key, privacy_budget=budget), what="the chain"
            )
            atomic_write_json(directory / "deployment" / "chain.json", chain_setup.to_dict())
            values["ledger-address"] = chain_setup.ledger_address
        if metrics_port:
            values["metrics-port"] = metrics_port
            values["metrics-host"] = metrics_host
        values.update(_parse_run_config(run_config))
        known = app_run_config_keys(app_dir or default_app_dir())
        values = {key: value for key, value in values.items() if key in known}
        path = directory / "deployment" / "run-config.toml"
        atomic_write_bytes(path, flower.toml_document(values).encode())
    sys.stdout.write(json.dumps({"registered": node_ids, "run_config": str(path)}, indent=2) + "\n")


def _retry(action: Callable[[], T], *, what: str, timeout_s: float = 120.0) -> T:
    """Call ``action`` until it succeeds or ``timeout_s`` passes (services in containers start in any order)."""
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return action()
        except FedChainError as exc:
            if time.monotonic() > deadline:
                raise
            logging.getLogger(__name__).info("waiting for %s: %s", what, exc)
            time.sleep(2)


@app.command("demo-data")
def demo_data(
    directory: Annotated[Path, typer.Argument(help="Where to write the CSV files.", show_default=False)],
    members: Annotated[int, typer.Option(help="Member organizations.", show_default=False)],
    seed: Annotated[int, typer.Option(help="Seed of the split.")] = 0,
    task: Annotated[str, typer.Option(help="Task whose bundled data set to split (see `fedchain tasks`).")] = (
        "digits-mlp"
    ),
) -> None:
    """Write one data file per member from a task's bundled data set (CSV for digits, NPZ for MNIST)."""
    from fedchain.deployment.launcher import write_demo_data

    with _exit_codes():
        paths = write_demo_data(directory, members, seed=seed, task=task)
    for path in paths:
        sys.stdout.write(f"{path}\n")


def main(argv: list[str] | None = None) -> int:
    """Run one command as ``python -m fedchain.deployment``; return its exit status."""
    try:
        app(args=argv, prog_name="python -m fedchain.deployment", standalone_mode=True)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0
