"""The deployment script: ``python -m fedchain.deployment {provision,up,down,status,setup,demo-data}``.

``up`` brings a whole federation up on this machine and runs the app once (see
:mod:`fedchain.deployment.launcher`); ``down`` stops it by PID. ``provision``, ``setup`` and
``demo-data`` are the steps the container set-up (``deploy/compose.yaml``) runs one by one.
Secrets are never printed; exit status 0 on success, 1 on failure, 2 on invalid options,
130 on Ctrl-C (after stopping everything started).
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

from fedchain.errors import ConfigError, FedChainError

T = TypeVar("T")


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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m fedchain.deployment", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress")
    commands = parser.add_subparsers(dest="command", required=True)

    provision = commands.add_parser(
        "provision", help="the admin's material: TLS, SuperNode keys, coordinator wallet (no CKKS key)"
    )
    provision.add_argument("directory", type=Path)
    provision.add_argument("--members", type=int, required=True)
    provision.add_argument(
        "--address", action="append", help="SuperLink address nodes dial (repeatable; default 127.0.0.1, localhost)"
    )
    provision.add_argument(
        "--scoring",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="CKKS parameters for encrypted scoring (default: on; HE's default norm bound needs them)",
    )
    provision.add_argument("--force", action="store_true", help="replace an existing provisioned directory")
    provision.add_argument("--if-missing", action="store_true", help="do nothing if DIR is provisioned already")
    provision.add_argument(
        "--local-ceremony",
        action="store_true",
        help="demo on one machine: also play every member's key-ceremony steps, each in its own member directory",
    )

    up = commands.add_parser("up", help="start a federation on this machine and run the app")
    up.add_argument("directory", type=Path)
    up.add_argument("--members", type=int, default=3)
    up.add_argument("--rounds", type=int, default=2)
    up.add_argument("--data", type=Path, action="append", default=[], help="one data file per member, in order")
    up.add_argument("--label-column", default="label")
    up.add_argument("--chain", default="anvil", help="'anvil' (default), 'none' or a JSON-RPC URL")
    up.add_argument("--run-config", default="", help='extra run config, e.g. "epsilon=4.0 local-epochs=1"')
    up.add_argument("--no-metrics", action="store_true", help="no /metrics endpoints")
    up.add_argument("--seed", type=int, default=0)
    up.add_argument("--timeout", type=float, default=900.0, help="seconds the run may take")
    up.add_argument("--app-dir", type=Path, default=None, help="the Flower App to run (default: this checkout)")
    mode = up.add_mutually_exclusive_group()
    mode.add_argument("--foreground", action="store_true", help="after the run, keep running until Ctrl-C")
    mode.add_argument("--stop-after", action="store_true", help="stop everything when the run ends")

    down = commands.add_parser("down", help="stop every process of a deployment, by PID")
    down.add_argument("directory", type=Path)

    status = commands.add_parser("status", help="processes, endpoints and last run of a deployment")
    status.add_argument("directory", type=Path)

    setup = commands.add_parser(
        "setup", help="admin step for containers: connection, SuperNode registration, ledger, run config"
    )
    setup.add_argument("directory", type=Path)
    setup.add_argument("--superlink", required=True, help="host:port of the SuperLink (a name in its SANs)")
    setup.add_argument("--chain", default="none", help="JSON-RPC URL of the chain, or 'none'")
    setup.add_argument("--admin-key-env", default="FEDCHAIN_ADMIN_KEY", help="env var holding the ledger admin key")
    setup.add_argument("--anvil-dev-key", action="store_true", help="use anvil's public development key as admin")
    setup.add_argument("--flwr-home", type=Path, required=True)
    setup.add_argument("--rounds", type=int, default=2)
    setup.add_argument("--metrics-port", type=int, default=0)
    setup.add_argument("--metrics-host", default="127.0.0.1")
    setup.add_argument("--run-config", default="")
    setup.add_argument("--app-dir", type=Path, default=None, help="the Flower App (default: this checkout)")

    data = commands.add_parser("demo-data", help="write one digits CSV per member")
    data.add_argument("directory", type=Path)
    data.add_argument("--members", type=int, required=True)
    data.add_argument("--seed", type=int, default=0)
    return parser


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Run one command; see ``--help``."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    signal.signal(signal.SIGTERM, _raise_interrupt)  # SIGTERM stops like Ctrl-C: everything started is stopped
    try:
        return int(_COMMANDS[args.command](args))
    except ConfigError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    except FedChainError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("interrupted: every process started was stopped\n")
        return 130


def _provision(args: argparse.Namespace) -> int:
    from fedchain.provision import DEFAULT_ADDRESSES, MANIFEST_FILENAME, ProvisionedFederation, provision_federation

    if args.if_missing and (args.directory / MANIFEST_FILENAME).exists():
        sys.stdout.write(f"{args.directory} is provisioned already\n")
        federation = ProvisionedFederation.load(args.directory)
    else:
        federation = provision_federation(
            args.directory,
            members=args.members,
            addresses=args.address or DEFAULT_ADDRESSES,
            scoring=args.scoring,
            overwrite=args.force,
        )
        sys.stdout.write(f"provisioned {len(federation.members)} members in {federation.directory}\n")
        sys.stdout.write(f"manifest (who gets which file; no secrets): {federation.manifest_path}\n")
    if args.local_ceremony and not (federation.enrolled and federation.keyed):
        from fedchain.keyceremony import run_local_ceremony

        federation = run_local_ceremony(args.directory)
        sys.stdout.write(
            f"key ceremony: {len(federation.members)} members enrolled, member 0 generated the CKKS key, "
            f"public context {federation.coordinator_context}\n"
        )
    return 0


def _up(args: argparse.Namespace) -> int:
    from fedchain.deployment.launcher import DeploySpec, LocalFederation, default_app_dir

    spec = DeploySpec(
        app_dir=args.app_dir or default_app_dir(),
        directory=args.directory,
        members=args.members,
        rounds=args.rounds,
        data=tuple(args.data),
        label_column=args.label_column,
        chain=args.chain,
        run_config=_parse_run_config(args.run_config),
        metrics=not args.no_metrics,
        seed=args.seed,
        run_timeout_s=args.timeout,
    )
    federation = LocalFederation(spec)

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
    if args.stop_after:
        federation.stop()
    elif args.foreground:
        sys.stdout.write("running; Ctrl-C stops every process\n")
        try:
            threading.Event().wait()
        finally:
            federation.stop()
    else:
        sys.stdout.write(f"still running; stop it with: python -m fedchain.deployment down {spec.directory}\n")
    return 0 if outcome.ok else 1


def _down(args: argparse.Namespace) -> int:
    from fedchain.deployment.launcher import down

    stopped = down(args.directory)
    sys.stdout.write(("stopped " + ", ".join(stopped) if stopped else "nothing was running") + "\n")
    return 0


def _status(args: argparse.Namespace) -> int:
    from fedchain.deployment.processes import ProcessSupervisor

    root = args.directory.resolve() / "deployment"
    supervisor = ProcessSupervisor.load(root / "processes.json")
    state: dict[str, Any] = {}
    if (root / "state.json").exists():
        state = json.loads((root / "state.json").read_text("utf-8"))
    state["processes"] = {
        record.name: {"pid": record.pid, "running": supervisor.is_running(record)} for record in supervisor.records
    }
    sys.stdout.write(json.dumps(state, indent=2) + "\n")
    return 0


def _setup(args: argparse.Namespace) -> int:
    """Connection, registration of every member's SuperNode key, ledger, and the run config."""
    import os

    from fedchain._io import atomic_write_bytes, atomic_write_json
    from fedchain.deployment import flower
    from fedchain.deployment.chain import ANVIL_DEV_KEY, run_privacy_budget, setup_ledger
    from fedchain.deployment.launcher import app_run_config_keys
    from fedchain.provision import ProvisionedFederation

    if args.app_dir is None:
        from fedchain.deployment.launcher import default_app_dir

        args.app_dir = default_app_dir()
    federation = ProvisionedFederation.load(args.directory)
    if not federation.enrolled:
        raise ConfigError(
            "directory",
            "a federation whose members have enrolled (their addresses are registered on chain)",
            str(args.directory),
            hint="Members run `fedchain member enroll`; the admin `fedchain provision collect DIR ENROLLMENT...`.",
        )
    flower.write_connection(args.flwr_home, address=args.superlink, root_certificates=federation.ca_certificate)
    env = flower.flower_env(args.flwr_home)
    node_ids: dict[str, int] = {}
    for bundle in federation.members:
        name = f"member-{bundle.member_id}"
        node_ids[name] = _retry(partial(flower.register_supernode, bundle.supernode_public_key, env=env, name=name),
                                what="the SuperLink")  # fmt: skip
    values: dict[str, bool | int | float | str] = {
        "num-server-rounds": args.rounds,
        "num-members": len(federation.members),
        "he": True,
        "he-keys-dir": str(federation.coordinator_dir),
        "chain": args.chain,
        "out-dir": str(args.directory / "runs" / "latest"),
    }
    if args.chain != "none":
        key = ANVIL_DEV_KEY if args.anvil_dev_key else os.environ.get(args.admin_key_env)
        if not key:
            raise ConfigError(args.admin_key_env, "set to the ledger admin's key (or pass --anvil-dev-key)", None)
        budget = run_privacy_budget(_parse_run_config(args.run_config))
        chain_setup = _retry(
            lambda: setup_ledger(args.chain, federation, admin_key=key, privacy_budget=budget), what="the chain"
        )
        atomic_write_json(args.directory / "deployment" / "chain.json", chain_setup.to_dict())
        values["ledger-address"] = chain_setup.ledger_address
    if args.metrics_port:
        values["metrics-port"] = args.metrics_port
        values["metrics-host"] = args.metrics_host
    values.update(_parse_run_config(args.run_config))
    known = app_run_config_keys(args.app_dir)
    values = {key: value for key, value in values.items() if key in known}
    path = args.directory / "deployment" / "run-config.toml"
    atomic_write_bytes(path, flower.toml_document(values).encode())
    sys.stdout.write(json.dumps({"registered": node_ids, "run_config": str(path)}, indent=2) + "\n")
    return 0


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


def _demo_data(args: argparse.Namespace) -> int:
    from fedchain.deployment.launcher import write_demo_data

    for path in write_demo_data(args.directory, args.members, seed=args.seed):
        sys.stdout.write(f"{path}\n")
    return 0


_COMMANDS = {
    "provision": _provision,
    "up": _up,
    "down": _down,
    "status": _status,
    "setup": _setup,
    "demo-data": _demo_data,
}

if __name__ == "__main__":
    raise SystemExit(main())
