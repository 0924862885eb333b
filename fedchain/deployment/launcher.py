"""A real federation on this machine: anvil, a SuperLink, N SuperNodes, metrics, and a run.

:class:`LocalFederation` brings up, in order:

1. provisioning (``fedchain.provision``) unless the directory is provisioned already, then the
   CKKS key ceremony (:func:`fedchain.keyceremony.run_local_ceremony`) unless every member holds
   the key: each simulated organization enrolls in its own member directory (its own wallet and
   transport key), member 0 generates the key and seals it to the others, the admin's side only
   relays enrollments, sealed shares and the public ``coordinator.ckks``; and demo data (one CSV
   per member from the digits data set) unless data files are given;
2. anvil (npm ``@foundry-rs/anvil``) on loopback, the ledger deployed with anvil's development
   key as admin, the provisioned coordinator wallet as recorder (funded for gas) and every
   member's enrolled wallet registered;
3. a Flower SuperLink with TLS and ``--enable-supernode-auth``, a ``$FLWR_HOME/config.toml``
   connection to it, and each member's SuperNode public key registered;
4. each member's metrics exporter and SuperNode (its own data file, keys, state directory and
   node config; its wallet password in its own environment only);
5. the fedchain app submitted with ``flwr run`` and followed until it finishes.

Every process is started in its own session and recorded by PID in
``DIR/deployment/processes.json``; :meth:`LocalFederation.stop` (and :func:`down` from another
process) stops each whole process tree by PID. A failure or Ctrl-C during :meth:`up` stops
everything that was started before the exception propagates. Traffic stays on loopback unless
the spec names a hub address.

Across hosts (see ``deploy/README.md``), one machine is the **hub** (anvil, the SuperLink and
the coordinator it runs; ``role="hub"``, ``hub_host`` the address members dial, in the TLS
certificate's SANs) and each member machine runs its own SuperNode (``role="member"``,
``member=N``, its bundle ``DIR/members/member-N/`` and its data). ``wrappers`` puts a command
prefix before each process of a host (``ip netns exec NS`` in ``tests/deployment/test_netns.py``,
which runs every host in its own network namespace).

Example::

    from fedchain.deployment import DeploySpec, LocalFederation
    federation = LocalFederation(DeploySpec(directory=Path("runs/fed"), members=3, rounds=2))
    outcome = federation.up()          # provision, start, run, wait
    outcome.result["final_accuracy"]
    federation.stop()
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import time
import tomllib
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedchain._io import atomic_write_bytes, atomic_write_json
from fedchain._validation import Interval
from fedchain.deployment import flower
from fedchain.deployment.chain import (
    ANVIL_DEV_KEY,
    ChainSetup,
    anvil_binary,
    anvil_command,
    run_privacy_budget,
    setup_ledger,
)
from fedchain.deployment.processes import ProcessRecord, ProcessSupervisor
from fedchain.errors import (
    ConfigError,
    DeploymentError,
    DeploymentTimeoutError,
    ProcessError,
    ToolMissingError,
)
from fedchain.provision import MemberBundle, ProvisionedFederation

__all__ = [
    "PROMETHEUS_JOBS",
    "DeploySpec",
    "LocalFederation",
    "RunOutcome",
    "WALLET_PASSWORD_ENV",
    "default_app_dir",
    "down",
    "node_config",
    "write_demo_data",
    "write_member_bundle",
]

log = logging.getLogger(__name__)

#: The environment variable a SuperNode's ClientApps read their wallet password from.
WALLET_PASSWORD_ENV = "FEDCHAIN_WALLET_PASSWORD"
#: Prometheus job names (also in ``deploy/prometheus.yml`` and the Grafana dashboard).
PROMETHEUS_JOBS = ("fedchain-coordinator", "fedchain-members")
#: Secrets that must never leak from the launcher's environment into a child's.
_SECRET_ENV = ("FEDCHAIN_PRIVATE_KEY", "FEDCHAIN_KEYSTORE", "FEDCHAIN_KEYSTORE_PASSWORD", WALLET_PASSWORD_ENV)
_TERMINAL = ("finished",)
#: Roles a machine can play: everything on one machine, the hub only, or one member's SuperNode.
ROLES = ("all", "hub", "member")
#: A process name's host: ``supernode-3``, ``member-3-metrics`` (any ``supernode|member|worker-N``) run on member 3.
_MEMBER_PROCESS = re.compile(r"(?:supernode|member|worker)-(\d+)")


def default_app_dir() -> Path:
    """The fedchain Flower App: the checkout holding ``pyproject.toml`` with ``[tool.flwr.app]``."""
    return Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class DeploySpec:
    """What to bring up.

    Attributes:
        directory: the federation directory (provisioned here if it is not yet).
        members: number of member organizations.
        rounds: federated rounds of the run.
        data: one data file per member (CSV, Parquet or NPZ); empty: demo digits CSVs.
        label_column: the label column of those files.
        chain: ``"anvil"`` (start one), ``"none"``, or a JSON-RPC URL of a running chain.
        admin_key: funded key that deploys the ledger on a URL chain (anvil: its dev key).
        run_config: extra fedchain run-config values (kebab-case), e.g. ``{"epsilon": 4.0}``.
        host: where each member's local services listen (Runtime API, exporter) and, without
            ``hub_host``, everything else too (loopback).
        hub_host: the address members and this launcher use for the hub (SuperLink, anvil, the
            coordinator's metrics); written into the SuperLink certificate's SANs. None: ``host``.
        hub_bind: where the hub's SuperLink and anvil listen (e.g. ``0.0.0.0``); None: ``hub_host``.
        addresses: more SANs for the SuperLink certificate (the hub's DNS names, other IPs).
        role: ``"all"`` (every process here), ``"hub"`` (anvil, SuperLink, registration, the run;
            members connect from elsewhere) or ``"member"`` (member ``member``'s SuperNode only).
        member: the member a ``"member"`` machine runs.
        superlink_port: the SuperLink's port (0: a free one; fix it across machines).
        anvil_port: anvil's port (0: a free one).
        superlink_state: keep the SuperLink's state in ``DIR/deployment/superlink.sqlite``
            (``--database``) so registrations survive :meth:`LocalFederation.restart_superlink`.
        wrappers: a command prefix per host, ``"hub"`` or ``"member-N"``, put before every
            process of that host (e.g. ``("ip", "netns", "exec", "m0")``).
        metrics: start the coordinator's and members' ``/metrics`` endpoints.
        member_runtime: how members answer messages: ``"worker"`` (one long-lived member worker
            per SuperNode) or ``"flower"`` (Flower's ``flwr-clientapp`` process per message); see
            docs/architecture.md, "Deployment runtime".
        app_dir: the Flower App to run (this checkout by default).
        seed: seed of the demo data split and the run.
        startup_timeout_s: how long each process may take to come up.
        run_timeout_s: how long the run may take.
    """

    directory: Path
    members: int = 3
    rounds: int = 2
    data: tuple[Path, ...] = ()
    label_column: str = "label"
    chain: str = "anvil"
    admin_key: str | None = field(default=None, repr=False)
    run_config: Mapping[str, bool | int | float | str] = field(default_factory=dict)
    host: str = "127.0.0.1"
    hub_host: str | None = None
    hub_bind: str | None = None
    addresses: tuple[str, ...] = ()
    role: str = "all"
    member: int | None = None
    superlink_port: int = 0
    anvil_port: int = 0
    superlink_state: bool = False
    wrappers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    metrics: bool = True
    member_runtime: str = "worker"
    app_dir: Path = field(default_factory=default_app_dir)
    seed: int = 0
    startup_timeout_s: float = 90.0
    run_timeout_s: float = 900.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "directory", Path(self.directory).resolve())
        object.__setattr__(self, "app_dir", Path(self.app_dir).resolve())
        object.__setattr__(self, "data", tuple(Path(p).resolve() for p in self.data))
        Interval(int, 1, None, closed="left").check("members", self.members)
        Interval(int, 1, None, closed="left").check("rounds", self.rounds)
        Interval(float, 0, None, closed="neither").check("startup_timeout_s", self.startup_timeout_s)
        Interval(float, 0, None, closed="neither").check("run_timeout_s", self.run_timeout_s)
        if self.member_runtime not in flower.MEMBER_RUNTIMES:
            raise ConfigError("member_runtime", " or ".join(flower.MEMBER_RUNTIMES), self.member_runtime)
        if self.role not in ROLES:
            raise ConfigError("role", "one of " + ", ".join(ROLES), self.role)
        if self.role == "member":
            if self.member is None or not 0 <= self.member < self.members:
                raise ConfigError("member", f"the member this machine runs, 0..{self.members - 1}", self.member)
            if len(self.data) > 1:
                raise ConfigError("data", "this member's one data file", len(self.data))
            if self.chain == "anvil":
                object.__setattr__(self, "chain", "none")  # the hub runs the chain; a member never dials it
        elif self.data and len(self.data) != self.members:
            raise ConfigError("data", f"one data file per member ({self.members})", len(self.data))
        for name in ("superlink_port", "anvil_port"):
            Interval(int, 0, 65535, closed="both").check(name, getattr(self, name))
        for host in self.wrappers:
            if host != "hub" and not re.fullmatch(r"member-\d+", host):
                raise ConfigError("wrappers", "keys 'hub' or 'member-N'", host)
        object.__setattr__(self, "addresses", tuple(self.addresses))
        object.__setattr__(self, "wrappers", {k: tuple(v) for k, v in self.wrappers.items()})
        if not (self.chain in ("anvil", "none") or self.chain.startswith(("http://", "https://"))):
            raise ConfigError("chain", "'anvil', 'none' or an http(s):// JSON-RPC URL", self.chain)
        if self.chain.startswith("http") and not self.admin_key:
            raise ConfigError("admin_key", "a funded admin key to deploy the ledger on a JSON-RPC chain", None)
        if not (self.app_dir / "pyproject.toml").is_file():
            raise ConfigError("app_dir", "a Flower App directory with pyproject.toml", str(self.app_dir))
        _check_outside_app(self.directory, self.app_dir)

    @property
    def task(self) -> str:
        """The run's task (``task`` in ``run_config``, else the default): its bundled data is the demo data."""
        return str(self.run_config.get("task", "digits-mlp"))


@dataclass
class RunOutcome:
    """What a run through the deployment produced.

    Attributes:
        run_id: Flower's run id.
        status: the final status (``finished:completed`` on success).
        out_dir: the run's output directory (``result.json``).
        result: ``result.json`` as a dict (empty if the run wrote none).
        seconds: wall time from submission to the end of the run.
    """

    run_id: int
    status: str
    out_dir: Path
    result: dict[str, Any]
    seconds: float

    @property
    def ok(self) -> bool:
        """Whether the run completed."""
        return self.status == "finished:completed"


@dataclass
class LocalFederation:
    """A federation of real processes on this machine (see the module docstring).

    Attributes:
        spec: what to bring up.
        supervisor: the processes started, by PID.
        ports: the ports in use, by role.
        chain_setup: the ledger deployed, when a chain is used.
        federation: the provisioned keys and addresses (after :meth:`start`).
        node_ids: the SuperLink's node id of each member.
        timings: seconds taken by each phase.
    """

    spec: DeploySpec
    supervisor: ProcessSupervisor = field(init=False)
    ports: dict[str, int] = field(init=False, default_factory=dict)
    chain_setup: ChainSetup | None = field(init=False, default=None)
    node_ids: dict[int, int] = field(init=False, default_factory=dict)
    timings: dict[str, float] = field(init=False, default_factory=dict)
    federation: ProvisionedFederation | None = field(init=False, default=None)
    _runs: int = field(init=False, default=0)
    _run_ids: dict[int, Path] = field(init=False, default_factory=dict)
    _submitted: float = field(init=False, default=0.0)
    _flwr_bin_dir: Path | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.supervisor = _WrappingSupervisor(self.state_dir / "processes.json", wrappers=self.spec.wrappers)

    @property
    def flwr_bin(self) -> Path:
        """The directory of Flower's executables (``flower-superlink``, ``flwr``...)."""
        if self._flwr_bin_dir is None:
            self._flwr_bin_dir = flower.flower_bin()
        return self._flwr_bin_dir

    # ------------------------------------------------------------------------------ paths
    @property
    def state_dir(self) -> Path:
        """``DIR/deployment``: process records, ports, generated configs."""
        return self.spec.directory / "deployment"

    @property
    def flwr_home(self) -> Path:
        """``DIR/flwr``: this deployment's ``FLWR_HOME`` (never the user's)."""
        return self.spec.directory / "flwr"

    @property
    def log_dir(self) -> Path:
        """``DIR/logs``: one log per process."""
        return self.spec.directory / "logs"

    def member_state_dir(self, member_id: int) -> Path:
        """A member node's ``state-dir`` (privacy accountant, model, metrics)."""
        return self.spec.directory / "state" / f"member-{member_id}"

    @property
    def hub_host(self) -> str:
        """The address of the hub (SuperLink, anvil) that members and this launcher dial."""
        return self.spec.hub_host or self.spec.host

    @property
    def hub_bind(self) -> str:
        """Where the hub's SuperLink and anvil listen."""
        return self.spec.hub_bind or self.hub_host

    @property
    def superlink_address(self) -> str:
        """``host:port`` of the SuperLink."""
        return f"{self.hub_host}:{self.ports['superlink']}"

    @property
    def rpc_url(self) -> str | None:
        """The chain's JSON-RPC URL (None without a chain)."""
        if self.spec.chain == "anvil":
            return f"http://{self.hub_host}:{self.ports['anvil']}"
        return None if self.spec.chain == "none" else self.spec.chain

    def metrics_urls(self) -> dict[str, str]:
        """``/metrics`` URL by role: ``coordinator`` and ``member-<i>``."""
        hosts = {"coordinator-metrics": self.hub_host}  # members' exporters listen on their own host
        return {
            role.removesuffix("-metrics"): f"http://{hosts.get(role, self.spec.host)}:{port}/metrics"
            for role, port in self.ports.items()
            if role.endswith("-metrics")
        }

    def env(self, **extra: str) -> dict[str, str]:
        """Environment of a Flower process: no inherited secret, this deployment's FLWR_HOME."""
        base = {k: v for k, v in os.environ.items() if k not in _SECRET_ENV}
        env = flower.flower_env(self.flwr_home, base=base, flwr_bin=self.flwr_bin)
        env.update(extra)
        return env

    # ----------------------------------------------------------------------------- lifecycle
    def up(self, *, on_submitted: Callable[[int], None] | None = None) -> RunOutcome:
        """Start everything, run the app once, wait for it; stop everything on failure or Ctrl-C.

        The processes keep running after a successful run (scrape them, inspect the chain);
        call :meth:`stop` (or :func:`down`) to end them.
        """
        try:
            self.start()
            run_id = self.submit()
            if on_submitted is not None:
                on_submitted(run_id)
            return self.wait(run_id)
        except BaseException:
            log.warning("stopping the federation after a failure")
            self.stop()
            raise

    def start(self) -> None:
        """Provision (if needed), start anvil + ledger, SuperLink, exporters and SuperNodes.

        Raises:
            ConfigError: a deployment recorded in this directory still runs (``down`` it first).
        """
        self._refuse_running()
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _refuse_running(self) -> None:
        state_file = self.state_dir / "processes.json"
        if self.supervisor.records or not state_file.exists():
            return
        previous = ProcessSupervisor.load(state_file)
        alive = [record.name for record in previous.records if previous.is_running(record)]
        if alive:
            raise ConfigError(
                "directory",
                "a federation directory with no deployment running",
                str(self.spec.directory),
                hint=f"{', '.join(alive)} still run: stop them with `python -m fedchain.deployment down DIR`.",
            )

    def _start(self) -> None:
        spec = self.spec
        if spec.role == "member":
            self._start_member_machine()
            return
        started = time.perf_counter()
        self.federation = federation = self._provision()
        self.timings["provision_s"] = time.perf_counter() - started
        data = list(spec.data) or write_demo_data(spec.directory / "data", spec.members, seed=spec.seed, task=spec.task)
        self._allocate_ports()
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        for stale in (self._anvil_state, self._superlink_database):
            stale.unlink(missing_ok=True)  # a fresh deployment: no chain or SuperLink state from an earlier one

        phase = time.perf_counter()
        if spec.chain == "anvil":
            self._start_anvil()
        if self.rpc_url is not None:
            admin_key = spec.admin_key or ANVIL_DEV_KEY
            self.chain_setup = setup_ledger(
                self.rpc_url, federation, admin_key=admin_key, privacy_budget=run_privacy_budget(spec.run_config)
            )
        self.timings["chain_s"] = time.perf_counter() - phase

        phase = time.perf_counter()
        self._start_superlink()
        self.timings["superlink_s"] = time.perf_counter() - phase

        phase = time.perf_counter()
        # One `flwr supernode register` per member, side by side (each is a CLI start-up).
        with ThreadPoolExecutor(max_workers=min(4, spec.members)) as pool:
            node_ids = list(pool.map(self._register, federation.members))
        self.node_ids = {
            bundle.member_id: node_id for bundle, node_id in zip(federation.members, node_ids, strict=True)
        }
        self.timings["register_s"] = time.perf_counter() - phase

        phase = time.perf_counter()
        if spec.role == "all":
            for bundle, data_path in zip(federation.members, data, strict=True):
                self._start_member(bundle, data_path)
        else:
            log.info("hub up: members connect to %s", self.superlink_address)
        self._wait_online()
        self.timings["supernodes_s"] = time.perf_counter() - phase
        self.supervisor.remember_children()
        self.timings["start_s"] = time.perf_counter() - started
        if spec.metrics:
            atomic_write_json(self.state_dir / "prometheus.json", self.prometheus_config())
        self._save_state()

    def prometheus_config(self) -> dict[str, Any]:
        """A Prometheus scrape config for this deployment (the jobs of ``deploy/prometheus.yml``, loopback ports).

        Written to ``DIR/deployment/prometheus.json`` (JSON is YAML): ``prometheus --config.file`` reads it.
        """
        urls = self.metrics_urls()
        members = [url.split("/")[2] for role, url in sorted(urls.items()) if role.startswith("member-")]
        return {
            "global": {"scrape_interval": "5s", "evaluation_interval": "15s"},
            "scrape_configs": [
                {
                    "job_name": PROMETHEUS_JOBS[0],
                    "metrics_path": "/metrics",
                    "static_configs": [{"targets": [urls["coordinator"].split("/")[2]]}],
                },
                {"job_name": PROMETHEUS_JOBS[1], "metrics_path": "/metrics", "static_configs": [{"targets": members}]},
            ],
        }

    def submit(
        self, *, run_config: Mapping[str, bool | int | float | str] | None = None, out_dir: Path | None = None
    ) -> int:
        """Submit the fedchain app with ``flwr run``; return the run id.

        ``out_dir``: write (or, with ``run_config={"resume": True}``, continue) this run output
        directory instead of a new ``DIR/runs/run-<n>``.
        """
        self._runs += 1
        out_dir = out_dir or self.spec.directory / "runs" / f"run-{self._runs}"
        values = self.run_config(out_dir, extra=run_config)
        config_path = self.state_dir / f"run-config-{self._runs}.toml"
        atomic_write_bytes(config_path, flower.toml_document(values).encode())
        self._submitted = time.perf_counter()
        run_id = flower.submit_run(self.spec.app_dir, config_path, env=self.env())
        self._run_ids[run_id] = out_dir
        log.info("submitted run %d (output %s)", run_id, out_dir)
        self._save_state()
        return run_id

    def wait(self, run_id: int, *, timeout_s: float | None = None) -> RunOutcome:
        """Follow run ``run_id`` until it finishes; its logs go to ``DIR/logs/run-<id>.log``.

        Raises:
            DeploymentTimeoutError: the run did not finish in time.
            ProcessError: a SuperLink / SuperNode process
                died meanwhile.
        """
        timeout = timeout_s if timeout_s is not None else self.spec.run_timeout_s
        started = self._submitted or time.perf_counter()
        stream = self.supervisor.start(
            f"flwr-log-{run_id}",
            [str(self.flwr_bin / "flwr"), "log", str(run_id), flower.CONNECTION_NAME, "--stream"],
            log_path=self.log_dir / f"run-{run_id}.log",
            env=self.env(),
        )
        deadline = time.monotonic() + timeout
        try:
            while self.supervisor.is_running(stream):
                self._check_alive(exclude=stream.name)
                if time.monotonic() > deadline:
                    raise DeploymentTimeoutError(run_id, timeout)
                time.sleep(0.5)
        finally:
            self.supervisor.stop(stream)  # ends the log stream if it still runs; drops its record
        status = flower.run_status(run_id, env=self.env())
        while not status.startswith(_TERMINAL) and time.monotonic() < deadline:
            time.sleep(1.0)
            status = flower.run_status(run_id, env=self.env())
        seconds = time.perf_counter() - started
        out_dir = self._run_ids.get(run_id, self.spec.directory / "runs")
        result_path = out_dir / "result.json"
        result = json.loads(result_path.read_text("utf-8")) if result_path.exists() else {}
        self.timings["run_s"] = seconds
        self._save_state(last_run={"run_id": run_id, "status": status, "out_dir": str(out_dir), "seconds": seconds})
        log.info("run %d: %s in %.1f s", run_id, status, seconds)
        return RunOutcome(run_id=run_id, status=status, out_dir=out_dir, result=result, seconds=seconds)

    def stop(self, *, timeout_s: float = 10.0) -> list[int]:
        """Stop every process this federation started (by PID, whole trees); return PIDs SIGKILLed."""
        started = time.perf_counter()
        killed = self.supervisor.stop_all(timeout_s=timeout_s)
        self.timings["stop_s"] = time.perf_counter() - started
        if self.state_dir.exists():
            self._save_state(stopped=True)
        return killed

    # ----------------------------------------------------------------------------- run config
    def run_config(
        self, out_dir: Path, *, extra: Mapping[str, bool | int | float | str] | None = None
    ) -> dict[str, bool | int | float | str]:
        """The run config for a run writing to ``out_dir`` (keys the app does not know are dropped).

        ``ledger-address`` (attach to the ledger deployed here) and ``metrics-host`` are only
        passed when the app's run config declares them; otherwise the coordinator deploys its own
        ledger on the same chain.
        """
        spec = self.spec
        values: dict[str, bool | int | float | str] = {
            "num-server-rounds": spec.rounds,
            "num-members": spec.members,
            "min-members": min(2, spec.members),
            "seed": spec.seed,
            "he": True,
            "he-keys-dir": str(self._require_federation().coordinator_dir),
            "chain": self.rpc_url or "none",
            "out-dir": str(out_dir),
        }
        if self.chain_setup is not None:
            values["ledger-address"] = self.chain_setup.ledger_address
        if spec.metrics:
            values["metrics-port"] = self.ports["coordinator-metrics"]
            values["metrics-host"] = self.hub_bind
        values.update(spec.run_config)
        values.update(extra or {})
        known = app_run_config_keys(spec.app_dir)
        dropped = sorted(set(values) - known)
        if dropped:
            log.warning("the app's run config does not declare %s: not passed", ", ".join(dropped))
        return {key: value for key, value in values.items() if key in known}

    # ------------------------------------------------------------------------------- helpers
    def _require_federation(self) -> ProvisionedFederation:
        if self.federation is None:
            raise DeploymentError("the federation is not started: call start() first", component="federation")
        return self.federation

    def _provision(self) -> ProvisionedFederation:
        from fedchain.keyceremony import run_local_ceremony
        from fedchain.provision import MANIFEST_FILENAME, provision_federation

        spec = self.spec
        if (spec.directory / MANIFEST_FILENAME).exists():
            federation = ProvisionedFederation.load(spec.directory)
            if len(federation.members) != spec.members:
                raise ConfigError(
                    "members",
                    f"the number of members provisioned in {spec.directory} ({len(federation.members)})",
                    spec.members,
                )
        else:
            addresses = list(dict.fromkeys([self.hub_host, "localhost", *spec.addresses]))
            federation = provision_federation(
                spec.directory, members=spec.members, addresses=addresses, scoring=self._needs_scoring()
            )
        if self.hub_host not in federation.addresses:
            raise ConfigError(
                "hub_host" if spec.hub_host else "host",
                "an address in the SuperLink certificate's SANs (" + ", ".join(federation.addresses) + ")",
                self.hub_host,
            )
        if not (federation.enrolled and federation.keyed):
            started = time.perf_counter()
            federation = run_local_ceremony(spec.directory)
            self.timings["ceremony_s"] = time.perf_counter() - started
        return federation

    def _needs_scoring(self) -> bool:
        """Whether the run's configuration checks norms or scores under HE (the SCORING CKKS preset)."""
        from fedchain.config import FedChainConfig

        config = FedChainConfig.from_run_config({"num-members": self.spec.members, **self.spec.run_config})
        return config.he and config.he_scoring

    def _allocate_ports(self) -> None:
        spec = self.spec
        members = range(spec.members) if spec.role == "all" else [spec.member] if spec.role == "member" else []
        local = [f"supernode-{i}" for i in members]
        if spec.metrics:
            local += [f"member-{i}-metrics" for i in members]
        hub = ["superlink"] if spec.role != "member" else []
        if spec.metrics and spec.role != "member":
            hub.append("coordinator-metrics")
        if spec.chain == "anvil":
            hub.append("anvil")
        self.ports = dict(zip(local, free_ports(len(local), spec.host), strict=True))
        self.ports.update(zip(hub, free_ports(len(hub), self.hub_host), strict=True))
        if spec.superlink_port:
            self.ports["superlink"] = spec.superlink_port
        if spec.anvil_port and spec.chain == "anvil":
            self.ports["anvil"] = spec.anvil_port

    @property
    def _anvil_state(self) -> Path:
        return self.state_dir / "anvil-state.json"

    @property
    def _superlink_database(self) -> Path:
        return self.state_dir / "superlink.sqlite"

    def _start_anvil(self) -> None:
        binary = anvil_binary(self.spec.app_dir)
        if binary is None:
            raise ToolMissingError("anvil", "run `make node` (npm @foundry-rs/anvil) or set FEDCHAIN_ANVIL")
        record = self.supervisor.start(
            "anvil",
            anvil_command(binary, host=self.hub_bind, port=self.ports["anvil"], state=self._anvil_state),
            log_path=self.log_dir / "anvil.log",
            env=self.env(),
        )
        self._wait_port(record, self.ports["anvil"], host=self.hub_host)

    def stop_chain(self) -> None:
        """Stop anvil (it writes its chain to ``DIR/deployment/anvil-state.json``): the chain is unreachable."""
        record = self._record("anvil")
        self.supervisor.stop(record)

    def start_chain(self) -> None:
        """Start anvil again on the same port from the chain it wrote when stopped."""
        if self.spec.chain != "anvil":
            raise ConfigError("chain", "'anvil' (a chain this launcher runs)", self.spec.chain)
        self._start_anvil()

    def restart_superlink(self) -> float:
        """Stop the SuperLink (and the runs it hosts) and start it again; return seconds until every node is online.

        With ``superlink_state`` the SuperLink reopens its database (registrations, node ids);
        without it every member's SuperNode key is registered again. SuperNodes reconnect by
        themselves (they retry without limit).
        """
        self.supervisor.stop(self._record("superlink"))
        started = time.perf_counter()
        self._start_superlink()
        if not self.spec.superlink_state:
            federation = self._require_federation()
            self.node_ids = {bundle.member_id: self._register(bundle) for bundle in federation.members}
        self._wait_online()
        self.supervisor.remember_children()
        self._save_state()
        return time.perf_counter() - started

    def _record(self, name: str) -> ProcessRecord:
        for record in self.supervisor.records:
            if record.name == name:
                return record
        raise DeploymentError(f"no process {name!r} runs in this deployment", component=name)

    def _start_member_machine(self) -> None:
        """A member machine: this member's SuperNode (and exporter), dialing the hub's SuperLink."""
        spec = self.spec
        assert spec.member is not None  # checked by DeploySpec
        bundle = member_bundle(spec.directory, spec.member)
        if not spec.superlink_port:
            raise ConfigError("superlink_port", "the hub's SuperLink port (a member dials it)", spec.superlink_port)
        data = list(spec.data) or [
            write_demo_data(spec.directory / "data", spec.members, seed=spec.seed, task=spec.task)[spec.member]
        ]
        self._allocate_ports()
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._start_member(bundle, data[0])
        self._save_state()

    def _start_superlink(self) -> None:
        fed = self._require_federation()
        flower.write_connection(self.flwr_home, address=self.superlink_address, root_certificates=fed.ca_certificate)
        extra: dict[str, str] = {}
        if self.rpc_url is not None:
            # The coordinator (ServerApp, a child of the SuperLink) signs with its provisioned wallet.
            extra = {
                "FEDCHAIN_KEYSTORE": str(fed.coordinator_keystore),
                "FEDCHAIN_KEYSTORE_PASSWORD": fed.coordinator_password_file.read_text("utf-8").strip(),
            }
        record = self.supervisor.start(
            "superlink",
            flower.superlink_command(
                fed.directory,
                host=self.hub_bind,
                port=self.ports["superlink"],
                flwr_bin=self.flwr_bin,
                database=self._superlink_database if self.spec.superlink_state else None,
                scoped=True,
            ),
            log_path=self.log_dir / "superlink.log",
            env=self.env(**extra),
            cwd=self.spec.directory,
        )
        self._wait_port(record, self.ports["superlink"], host=self.hub_host)

    def _register(self, bundle: MemberBundle) -> int:
        deadline = time.monotonic() + self.spec.startup_timeout_s
        while True:
            try:
                return flower.register_supernode(
                    bundle.supernode_public_key, env=self.env(), name=f"member-{bundle.member_id}"
                )
            except DeploymentError:
                if time.monotonic() > deadline:
                    raise
                self._check_alive()
                time.sleep(0.5)

    def _start_member(self, bundle: MemberBundle, data_path: Path) -> None:
        member_id = bundle.member_id
        state = self.member_state_dir(member_id)
        state.mkdir(parents=True, exist_ok=True, mode=0o700)
        config_path = self.state_dir / "nodes" / f"member-{member_id}.toml"
        values = node_config(
            bundle,
            data_path=data_path,
            state_dir=state,
            label_column=self.spec.label_column,
            new_member=not (state / "privacy.json").exists(),  # only a member that never trained starts an accountant
        )
        atomic_write_bytes(config_path, flower.toml_document(values).encode())
        if self.spec.metrics:
            port = self.ports[f"member-{member_id}-metrics"]
            exporter = self.supervisor.start(
                f"member-{member_id}-metrics",
                exporter_command(state, host=self.spec.host, port=port),
                log_path=self.log_dir / f"member-{member_id}-metrics.log",
                env=self.env(),
            )
            self._wait_port(exporter, port)
        password = bundle.wallet_password_file.read_text("utf-8").strip()
        self.supervisor.start(
            f"supernode-{member_id}",
            flower.supernode_command(
                bundle.directory,
                superlink=self.superlink_address,
                runtime_port=self.ports[f"supernode-{member_id}"],
                node_config=config_path,
                flwr_bin=self.flwr_bin,
                runtime_host=self.spec.host,
                runtime=self.spec.member_runtime,
                client_app=flower.clientapp_reference(self.spec.app_dir),
                app_dir=None if self.spec.app_dir.resolve() == default_app_dir() else self.spec.app_dir,
                threads=self._member_threads(),
            ),
            log_path=self.log_dir / f"supernode-{member_id}.log",
            env=self.env(**{WALLET_PASSWORD_ENV: password}),
            cwd=state,
        )

    def _member_threads(self) -> int:
        """CPU threads of each member worker: a share of the cores when every member runs on this machine."""
        if self.spec.role == "member":
            return 0  # this machine is the member's own
        return max(1, (os.cpu_count() or 1) // self.spec.members)

    def _wait_online(self) -> None:
        wanted = {str(node_id) for node_id in self.node_ids.values()}
        deadline = time.monotonic() + self.spec.startup_timeout_s
        while True:
            self._check_alive()
            online = {str(n["node-id"]) for n in flower.supernodes(env=self.env()) if n.get("status") == "online"}
            if wanted <= online:
                return
            if time.monotonic() > deadline:
                raise ProcessError("supernode", f"SuperNodes {sorted(wanted - online)} did not come online")
            time.sleep(1.0)

    def _wait_port(self, record: ProcessRecord, port: int, *, host: str | None = None) -> None:
        host = host or self.spec.host
        deadline = time.monotonic() + self.spec.startup_timeout_s
        while True:
            try:
                socket.create_connection((host, port), timeout=0.5).close()
                return
            except OSError:
                if not self.supervisor.is_running(record):
                    code = self.supervisor.exit_code(record)
                    raise ProcessError(
                        record.name,
                        f"{record.name} exited during startup (code {code}): " + _tail(Path(record.log_path)),
                        exit_code=code,
                    ) from None
                if time.monotonic() > deadline:
                    raise ProcessError(record.name, f"{record.name} did not listen on {host}:{port}") from None
                time.sleep(0.1)

    def _check_alive(self, exclude: str = "") -> None:
        for record in self.supervisor.records:
            if record.name != exclude and not self.supervisor.is_running(record):
                code = self.supervisor.exit_code(record)
                raise ProcessError(
                    record.name,
                    f"{record.name} (pid {record.pid}) exited with code {code}: " + _tail(Path(record.log_path)),
                    exit_code=code,
                )

    def _save_state(self, **extra: Any) -> None:
        path = self.state_dir / "state.json"
        previous: dict[str, Any] = {}
        if path.exists():
            previous = json.loads(path.read_text("utf-8"))
        state = {
            **previous,
            "directory": str(self.spec.directory),
            "members": self.spec.members,
            "ports": self.ports,
            "role": self.spec.role,
            "superlink": f"{self.hub_host}:{self.ports['superlink']}" if "superlink" in self.ports else None,
            "rpc_url": self.rpc_url if self.ports else None,
            "chain": self.chain_setup.to_dict() if self.chain_setup else None,
            "node_ids": {str(k): str(v) for k, v in self.node_ids.items()},
            "metrics": self.metrics_urls(),
            "flwr_home": str(self.flwr_home),
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
            **extra,
        }
        atomic_write_json(path, state)


class _WrappingSupervisor(ProcessSupervisor):
    """A supervisor that starts each process behind its host's command prefix (``DeploySpec.wrappers``)."""

    def __init__(self, state_file: Path, *, wrappers: Mapping[str, tuple[str, ...]]) -> None:
        super().__init__(state_file)
        self.wrappers = dict(wrappers)

    def start(self, name: str, command: Sequence[str], **kwargs: Any) -> ProcessRecord:
        """Start ``command`` as :meth:`ProcessSupervisor.start` does, behind its host's prefix."""
        return super().start(name, [*self.wrappers.get(process_host(name), ()), *command], **kwargs)


# ---------------------------------------------------------------------------------- functions


def process_host(name: str) -> str:
    """The host a launcher process runs on: ``member-N`` for a member's processes, else ``hub``.

    Example:
        >>> process_host("supernode-2"), process_host("member-0-metrics"), process_host("superlink")
        ('member-2', 'member-0', 'hub')
    """
    found = _MEMBER_PROCESS.match(name)
    return f"member-{found.group(1)}" if found else "hub"


def member_bundle(directory: Path, member_id: int) -> MemberBundle:
    """Member ``member_id``'s bundle as a member machine holds it: ``DIR/members/member-<id>/``.

    Raises:
        ConfigError: the bundle is missing or incomplete (the admin sends it; the member ran the key ceremony).
    """
    home = Path(directory) / "members" / f"member-{member_id}"
    bundle = MemberBundle(
        member_id=member_id,
        directory=home,
        address="",
        ca_certificate=home / "ca.crt",
        supernode_key=home / "supernode.key",
        supernode_public_key=home / "supernode.pub",
        ckks_context=home / "member.ckks",
        wallet_keystore=home / "wallet.json",
        wallet_password_file=home / "wallet.password",
    )
    missing = [
        path.name
        for path in (bundle.ca_certificate, bundle.supernode_key, bundle.ckks_context, bundle.wallet_keystore)
        if not path.is_file()
    ]
    if missing:
        raise ConfigError(
            "directory",
            f"a member bundle in {home} (ca.crt, supernode.key, member.ckks, wallet.json)",
            ", ".join(missing) + " missing",
            hint="copy DIR/members/member-N/ from the admin and run the key ceremony (`fedchain member ...`).",
        )
    return bundle


def node_config(
    bundle: MemberBundle, *, data_path: Path, state_dir: Path, label_column: str = "label", new_member: bool = True
) -> dict[str, str | int | bool]:
    """A member's SuperNode ``--node-config``: identity, data, state, CKKS context, wallet.

    The wallet password is not in it: the node reads it from ``$FEDCHAIN_WALLET_PASSWORD``.
    ``new_member`` adds ``new-member = true``: a member whose ``state-dir`` holds no privacy
    accountant yet may start one (otherwise it refuses DP training rather than restart at epsilon 0).
    The member's privacy policy is its own (``policy-file`` / ``policy.toml`` in ``state-dir``,
    see docs/privacy.md); without one it keeps :class:`~fedchain.policy.MemberPolicy`'s defaults.
    """
    values: dict[str, str | int | bool] = {
        "member-id": bundle.member_id,
        "data-path": str(data_path),
        "label-column": label_column,
        "state-dir": str(state_dir),
        "ckks-context": str(bundle.ckks_context),
        "wallet-keystore": str(bundle.wallet_keystore),
        "wallet-password-env": WALLET_PASSWORD_ENV,
    }
    if new_member:
        values["new-member"] = True
    return values


def exporter_command(state_dir: Path, *, host: str, port: int) -> list[str]:
    """A member's metrics exporter (``python -m fedchain.telemetry member``)."""
    import sys

    return [sys.executable, "-m", "fedchain.telemetry", "member", "--state-dir", str(state_dir), "--host", host,
            "--port", str(port)]  # fmt: skip


def app_run_config_keys(app_dir: Path) -> set[str]:
    """The run-config keys the app declares in ``[tool.flwr.app.config]``."""
    with open(app_dir / "pyproject.toml", "rb") as handle:
        project = tomllib.load(handle)
    return set(project.get("tool", {}).get("flwr", {}).get("app", {}).get("config", {}))


def write_demo_data(directory: Path, members: int, *, seed: int = 0, task: str = "digits-mlp") -> list[Path]:
    """One file per member from an IID split of ``task``'s bundled data set, flat rows and a label.

    The digits (``digits-mlp``) are written as CSV (``f0..f63,label``); larger examples (the
    ``mnist-*`` tasks' 784 pixels) as NPZ (``x``, ``label``), which the node reads without parsing
    text. Each file holds the member's training shard and its shard of the held-out split; the
    node splits it again for local evaluation and the task reshapes the rows to its input shape.
    Existing files are kept.

    Raises:
        ConfigError: ``task`` is unknown.
        DataError: the task bundles no data set (its members must bring their own files).
    """
    import io

    import numpy as np

    from fedchain.data import BUNDLED_DATASETS, load_bundled_split, partition_indices
    from fedchain.errors import DataError
    from fedchain.tasks import resolve_task

    dataset = resolve_task(task).dataset
    if not dataset:
        raise DataError(f"task {task!r} bundles no data set: give each member its own data file")
    suffix = ".csv" if BUNDLED_DATASETS[dataset].num_features <= 64 else ".npz"
    directory.mkdir(parents=True, exist_ok=True)
    paths = [directory / f"member-{i}{suffix}" for i in range(members)]
    if all(path.exists() for path in paths):
        return paths
    x_train, y_train, x_test, y_test = load_bundled_split(dataset, 0.2)
    shards = partition_indices(y_train, members, partitioner="iid", seed=seed)
    test_shards = np.array_split(np.arange(len(y_test)), members)
    header = ",".join([f"f{j}" for j in range(x_train.shape[1])] + ["label"])
    for path, train_index, test_index in zip(paths, shards, test_shards, strict=True):
        x = np.vstack([x_train[train_index], x_test[test_index]])
        y = np.concatenate([y_train[train_index], y_test[test_index]])
        if suffix == ".npz":
            buffer = io.BytesIO()
            np.savez_compressed(buffer, x=x.astype(np.float32), label=y.astype(np.int64))
            atomic_write_bytes(path, buffer.getvalue())
            continue
        rows = [",".join(f"{v:.6g}" for v in features) + f",{int(label)}" for features, label in zip(x, y, strict=True)]
        atomic_write_bytes(path, (header + "\n" + "\n".join(rows) + "\n").encode())
    return paths


def write_member_bundle(
    directory: Path, member_id: int, out: Path, *, data: Path | None = None, policy: Path | None = None
) -> dict[str, Path]:
    """Copy what member ``member_id``'s machine needs into ``out``, in the layout ``role="member"`` reads.

    ``out/members/member-<id>/`` (the member's own directory: CA certificate, SuperNode key,
    its wallet, its CKKS context, ``federation.json``; 0700 / 0600), ``out/data/`` (its data file,
    if given) and ``out/state/member-<id>/policy.toml`` (its privacy policy, if given). Nothing of
    another member or of the admin is copied.

    Raises:
        ConfigError: the member's directory is incomplete, or ``out`` holds one already.

    Example::

        write_member_bundle(Path("runs/fed"), 1, Path("/media/usb/member-1"), data=Path("m1.csv"))
        # then, on member 1's machine:
        # fedchain deploy up /media/usb/member-1 --role member --member 1 --members 3
        #     --hub-host hub.example.org --superlink-port 9093 --data /media/usb/member-1/data/m1.csv
    """
    import shutil

    source = member_bundle(directory, member_id).directory
    target = Path(out) / "members" / f"member-{member_id}"
    if target.exists():
        raise ConfigError("out", "a directory without this member's bundle yet", str(target))
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    shutil.copytree(source, target)
    for path in [target, *target.rglob("*")]:
        path.chmod(0o700 if path.is_dir() else 0o600)
    written = {"bundle": target}
    if data is not None:
        (Path(out) / "data").mkdir(exist_ok=True, mode=0o700)
        written["data"] = Path(shutil.copy2(data, Path(out) / "data" / Path(data).name))
    if policy is not None:
        state = Path(out) / "state" / f"member-{member_id}"
        state.mkdir(parents=True, exist_ok=True, mode=0o700)
        written["policy"] = Path(shutil.copy2(policy, state / "policy.toml"))
    return written


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct free TCP ports on ``host`` (bound together, then released)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind((host, 0))
            sockets.append(sock)
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def down(directory: Path, *, timeout_s: float = 10.0) -> list[str]:
    """Stop every process a launcher recorded for ``directory``; return the names it stopped.

    Works from any process (the records are in ``DIR/deployment/processes.json``).
    """
    supervisor = ProcessSupervisor.load(Path(directory).resolve() / "deployment" / "processes.json")
    names = [record.name for record in supervisor.records if supervisor.is_running(record)]
    supervisor.stop_all(timeout_s=timeout_s)
    return names


def _check_outside_app(directory: Path, app_dir: Path) -> None:
    """Refuse a federation directory that ``flwr run`` would pack into the app bundle."""
    try:
        relative = directory.relative_to(app_dir)
    except ValueError:
        return
    ignored = set()
    gitignore = app_dir / ".gitignore"
    if gitignore.exists():
        for line in gitignore.read_text("utf-8").splitlines():
            line = line.strip()
            if line and not line.startswith(("#", "!")) and "*" not in line:
                ignored.add(line.strip("/"))
    if not relative.parts or relative.parts[0] not in ignored:
        raise ConfigError(
            "directory",
            "a directory outside the app, or under a git-ignored one such as runs/",
            str(directory),
            hint="flwr run packs the app directory into the bundle it sends: keys there would travel with it.",
        )


def _tail(path: Path, lines: int = 6) -> str:
    try:
        text = path.read_text("utf-8", errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(text[-lines:])
