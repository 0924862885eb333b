"""Flower deployment commands: SuperLink and SuperNode command lines, connections, ``flwr`` calls.

The command builders are the single source of the flags fedchain deploys with; the launcher
uses them and a test checks ``deploy/compose.yaml`` uses the same flags. Security flags are
not optional: TLS (``--ssl-*`` / ``--root-certificates``), SuperNode authentication
(``--enable-supernode-auth`` / ``--auth-supernode-private-key``) and no runtime dependency
installation (Flower would otherwise install the app's dependencies, a CUDA torch, itself).

Example:
    >>> from pathlib import Path
    >>> cmd = superlink_command(Path("fed"), host="127.0.0.1", port=9093, flwr_bin=Path("/venv/bin"))
    >>> "--enable-supernode-auth" in cmd and "--insecure" not in cmd
    True
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fedchain.errors import ConfigError, FlwrCommandError, ToolMissingError

__all__ = [
    "CONNECTION_NAME",
    "clientapp_reference",
    "FLOWER_ENV",
    "MEMBER_RUNTIMES",
    "SUPERLINK_SECURITY_FLAGS",
    "SUPERNODE_SECURITY_FLAGS",
    "flower_bin",
    "flower_env",
    "flwr",
    "register_supernode",
    "run_status",
    "submit_run",
    "superlink_command",
    "supernode_command",
    "supernodes",
    "toml_document",
    "write_connection",
]

log = logging.getLogger(__name__)

#: The name of the fedchain connection in ``$FLWR_HOME/config.toml``.
CONNECTION_NAME = "fedchain"
#: Environment every Flower process of a deployment gets.
FLOWER_ENV: dict[str, str] = {
    "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
    "FLWR_TELEMETRY_ENABLED": "0",
    "FLWR_DISABLE_UPDATE_CHECK": "1",
    "RAY_USAGE_STATS_ENABLED": "0",
}
#: Flags a fedchain SuperLink always has (the paths follow each ``--ssl-*`` flag).
SUPERLINK_SECURITY_FLAGS = (
    "--ssl-ca-certfile",
    "--ssl-certfile",
    "--ssl-keyfile",
    "--enable-supernode-auth",
    "--disable-runtime-dependency-installation",
)
#: Flags a fedchain SuperNode always has.
SUPERNODE_SECURITY_FLAGS = ("--root-certificates", "--auth-supernode-private-key")
#: How a member answers messages: ``"worker"``, fedchain's member worker (one long-lived process per
#: SuperNode, :mod:`fedchain.deployment.worker`), or ``"flower"``, Flower's own ``flwr-clientapp``
#: process per message (docs/architecture.md, "Deployment runtime").
MEMBER_RUNTIMES = ("worker", "flower")


def flower_bin() -> Path:
    """The directory holding ``flower-superlink``, ``flower-supernode`` and ``flwr``.

    The interpreter's own ``bin`` first (a virtual environment), else the ``PATH``.

    Raises:
        ToolMissingError: Flower's executables are not installed.
    """
    here = Path(sys.executable).parent
    if (here / "flower-superlink").exists():
        return here
    found = shutil.which("flower-superlink")
    if found is None:
        raise ToolMissingError("flower-superlink", "install fedchain (it depends on flwr)")
    return Path(found).parent


def flower_env(
    flwr_home: Path, *, base: Mapping[str, str] | None = None, flwr_bin: Path | None = None
) -> dict[str, str]:
    """The environment of Flower processes: ``FLWR_HOME``, :data:`FLOWER_ENV`, Flower's bin first on ``PATH``."""
    env = dict(os.environ if base is None else base)
    env.update(FLOWER_ENV)
    env["FLWR_HOME"] = str(flwr_home)
    directory = str(flwr_bin or flower_bin())
    env["PATH"] = directory + os.pathsep + env.get("PATH", "")
    return env


def superlink_command(
    provisioned: Path,
    *,
    host: str,
    port: int,
    flwr_bin: Path,
    database: Path | None = None,
    scoped: bool = False,
    python: str | None = None,
) -> list[str]:
    """``flower-superlink`` with TLS, SuperNode authentication and no dependency installation.

    Args:
        provisioned: the provisioned directory (``superlink/ca.crt``, ``server.crt``, ``server.key``).
        host: listen address (``127.0.0.1`` locally, ``0.0.0.0`` in a container).
        port: the one port of all SuperLink APIs.
        flwr_bin: directory of Flower's executables.
        database: SQLite file for the SuperLink's state (None: in memory).
        scoped: run it through :mod:`fedchain.deployment.superlink` (same flags), whose single-API
            HTTP layers skip the requests they do not act on.
        python: the interpreter of the scoped command (default: this one).

    Example:
        >>> superlink_command(Path("fed"), host="h", port=1, flwr_bin=Path("/bin"), scoped=True, python="py")[:3]
        ['py', '-m', 'fedchain.deployment.superlink']
    """
    superlink = provisioned / "superlink"
    program = [python or sys.executable, "-m", "fedchain.deployment.superlink"] if scoped else []
    command = [
        *(program or [str(flwr_bin / "flower-superlink")]),
        "--ssl-ca-certfile",
        str(superlink / "ca.crt"),
        "--ssl-certfile",
        str(superlink / "server.crt"),
        "--ssl-keyfile",
        str(superlink / "server.key"),
        "--enable-supernode-auth",
        "--disable-runtime-dependency-installation",
        "--host",
        host,
        "--port",
        str(port),
    ]
    if database is not None:
        command += ["--database", str(database)]
    return command


def supernode_command(
    member_dir: Path,
    *,
    superlink: str,
    runtime_port: int,
    node_config: Path | str,
    flwr_bin: Path,
    runtime_host: str = "127.0.0.1",
    runtime: str = "flower",
    client_app: str | None = None,
    app_dir: Path | None = None,
    threads: int = 0,
    python: str | None = None,
) -> list[str]:
    """``flower-supernode`` verifying the SuperLink's certificate and authenticating with its key.

    Args:
        member_dir: the member's provisioned directory (``ca.crt``, ``supernode.key``).
        superlink: ``host:port`` of the SuperLink, a name in its certificate's SANs.
        runtime_port: this node's local Runtime API port (distinct per node on one host).
        node_config: a TOML file (or ``key=value`` string) with the member's node config.
        flwr_bin: directory of Flower's executables.
        runtime_host: the Runtime API's listen address (loopback: only the node's ClientApps use it).
        runtime: ``"flower"``: Flower's SuperNode, one ``flwr-clientapp`` process per message;
            ``"worker"``: the same SuperNode (same flags) through :mod:`fedchain.deployment.supernode`,
            with ``--isolation process`` and fedchain's member worker answering every message.
        client_app: the ClientApp the worker runs, ``module:attribute`` from the member's installed
            code (None: fedchain's ``clients.client_app:app``); a bundle naming another is refused.
        app_dir: a local app directory of the member's own holding ``client_app`` (None: installed code).
        threads: the worker's CPU threads for torch and BLAS (0: all cores; members sharing a machine: a share).
        python: the interpreter of the worker command (default: this one).

    Example:
        >>> cmd = supernode_command(Path("m"), superlink="h:9093", runtime_port=9094, node_config="member-id=0",
        ...                         flwr_bin=Path("/bin"), runtime="worker", python="python")
        >>> cmd[:4], cmd[cmd.index("--isolation") + 1]
        (['python', '-m', 'fedchain.deployment.supernode', '--worker'], 'process')
    """
    if runtime not in MEMBER_RUNTIMES:
        raise ConfigError("runtime", " or ".join(repr(r) for r in MEMBER_RUNTIMES), runtime)
    flags = [
        "--superlink",
        superlink,
        "--root-certificates",
        str(member_dir / "ca.crt"),
        "--auth-supernode-private-key",
        str(member_dir / "supernode.key"),
        "--host",
        runtime_host,
        "--port",
        str(runtime_port),
        "--node-config",
        str(node_config),
    ]
    if runtime == "flower":
        return [str(flwr_bin / "flower-supernode"), *flags]
    wrapper = [python or sys.executable, "-m", "fedchain.deployment.supernode", "--worker"]
    if client_app:
        wrapper += ["--worker-client-app", client_app]
    if app_dir is not None:
        wrapper += ["--worker-app-dir", str(app_dir)]
    if threads > 0:
        wrapper += ["--worker-threads", str(threads)]
    return [*wrapper, "--", *flags, "--isolation", "process"]


def declared_clientapp(pyproject: Mapping[str, Any]) -> object:
    """What a Flower app's parsed ``pyproject.toml`` declares at ``[tool.flwr.app.components] clientapp``.

    The value as written (a ClientApp reference is a string; anything else is the caller's to refuse),
    or None when a table on the way or the key is missing.

    Example:
        >>> declared_clientapp({"tool": {"flwr": {"app": {"components": {"clientapp": "a.b:app"}}}}})
        'a.b:app'
        >>> declared_clientapp({"tool": {"flwr": {}}}) is None
        True
    """
    node: object = pyproject
    for key in ("tool", "flwr", "app", "components", "clientapp"):
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node


def clientapp_reference(app_dir: Path) -> str | None:
    """The app's ClientApp reference (``[tool.flwr.app.components] clientapp``), None if it declares none.

    Example:
        >>> from fedchain.deployment.launcher import default_app_dir
        >>> clientapp_reference(default_app_dir())
        'clients.client_app:app'
    """
    import tomllib

    try:
        with open(app_dir / "pyproject.toml", "rb") as handle:
            reference = declared_clientapp(tomllib.load(handle))
    except (OSError, ValueError):
        return None
    return str(reference) if reference else None


def toml_document(values: Mapping[str, bool | int | float | str]) -> str:
    """Flat ``key = value`` TOML (strings JSON-escaped, which TOML basic strings accept).

    Example:
        >>> print(toml_document({"member-id": 0, "data-path": "/data/a.csv", "dp": True}), end="")
        member-id = 0
        data-path = "/data/a.csv"
        dp = true
    """
    lines = []
    for key, value in values.items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, int | float):
            text = repr(value)
        elif isinstance(value, str):
            text = json.dumps(value)
        else:
            raise ConfigError(key, "a bool, int, float or str (a TOML value)", value)
        lines.append(f"{key} = {text}")
    return "\n".join(lines) + "\n"


def write_connection(flwr_home: Path, *, address: str, root_certificates: Path, name: str = CONNECTION_NAME) -> Path:
    """Write ``$FLWR_HOME/config.toml`` with one TLS connection, the default; return its path."""
    flwr_home.mkdir(parents=True, exist_ok=True)
    path = flwr_home / "config.toml"
    text = (
        "[superlink]\n"
        f"default = {json.dumps(name)}\n\n"
        f"[superlink.{name}]\n"
        f"address = {json.dumps(address)}\n"
        f"root-certificates = {json.dumps(str(root_certificates.resolve()))}\n"
    )
    path.write_text(text, encoding="utf-8")
    return path


def flwr(
    args: Sequence[str], *, env: Mapping[str, str], timeout_s: float = 120.0, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the ``flwr`` CLI; raise :class:`FlwrCommandError` with its output when it fails."""
    command = [str(Path(env["PATH"].split(os.pathsep)[0]) / "flwr"), *args]
    name = "flwr " + " ".join(args[:2])
    try:
        done = subprocess.run(
            command, env=dict(env), capture_output=True, text=True, timeout=timeout_s, cwd=cwd, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired as exc:
        raise FlwrCommandError(name, f"`{name}` did not finish in {timeout_s:g} s") from exc
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).strip().splitlines()[-8:]
        raise FlwrCommandError(
            name, f"`{name}` failed (exit {done.returncode}): " + " | ".join(tail), exit_code=done.returncode
        )
    return done


def _json_tail(text: str) -> Any:
    """The JSON document at the end of ``flwr --format json`` output (after any banner lines)."""
    start = text.find("{")
    while start != -1:
        try:
            return json.loads(text[start:])
        except ValueError:
            start = text.find("{", start + 1)
    raise FlwrCommandError("flwr", f"no JSON in flwr output: {text.strip()[-300:]!r}")


def register_supernode(public_key: Path, *, env: Mapping[str, str], name: str | None = None) -> int:
    """``flwr supernode register``: allow the holder of ``public_key``'s private key to connect.

    Returns:
        The node id the SuperLink assigned.
    """
    args = ["supernode", "register", str(public_key), CONNECTION_NAME, "--format", "json"]
    if name:
        args += ["--name", name]
    payload = _json_tail(flwr(args, env=env).stdout)
    if not payload.get("success"):
        raise FlwrCommandError("flwr supernode register", f"SuperNode key {public_key} was not registered: {payload}")
    return int(payload["node-id"])


def supernodes(*, env: Mapping[str, str]) -> list[dict[str, Any]]:
    """``flwr supernode list``: the registered SuperNodes with their status."""
    payload = _json_tail(flwr(["supernode", "list", CONNECTION_NAME, "--format", "json"], env=env).stdout)
    nodes = payload.get("nodes", [])
    return list(nodes) if isinstance(nodes, list) else []


def submit_run(app_dir: Path, run_config: Path, *, env: Mapping[str, str]) -> int:
    """``flwr run APP fedchain --run-config FILE``: build the app bundle, start a run; return its id."""
    done = flwr(
        ["run", str(app_dir), CONNECTION_NAME, "--run-config", str(run_config), "--format", "json"],
        env=env,
        timeout_s=300,
    )
    payload = _json_tail(done.stdout)
    if not payload.get("success") or payload.get("run-id") is None:
        raise FlwrCommandError("flwr run", f"flwr run did not start a run: {payload}")
    return int(payload["run-id"])


def run_status(run_id: int, *, env: Mapping[str, str]) -> str:
    """The run's status as ``flwr list`` shows it (e.g. ``running``, ``finished:completed``)."""
    payload = _json_tail(flwr(["list", CONNECTION_NAME, "--run-id", str(run_id), "--format", "json"], env=env).stdout)
    runs = payload.get("runs", [])
    if not runs:
        raise FlwrCommandError("flwr list", f"run {run_id} is unknown to the SuperLink")
    return str(runs[0].get("status", "unknown"))
