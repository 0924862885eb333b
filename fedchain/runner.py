"""Run a federation in Flower's simulation runtime, in this process.

The same ServerApp and ClientApp that ``flwr run .`` loads run here on virtual SuperNodes
(Flower's Ray backend). Flower's runtime dependency installation is disabled, its home is
project-local, and telemetry is off.

Example::

    from fedchain.config import FedChainConfig
    from fedchain.runner import run_simulation
    result = run_simulation(FedChainConfig(members=3, rounds=2, dp=False, he=False, out_dir="runs/x"))
    print(result["final_accuracy"])
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from fedchain.config import FedChainConfig
from fedchain.errors import FederationError
from fedchain.progress import listening
from fedchain.simulation import SIMULATION_ENV

__all__ = ["flower_environment", "run_simulation"]

log = logging.getLogger(__name__)


def flower_environment(home: str | Path | None = None) -> dict[str, str]:
    """Environment settings fedchain uses wherever it starts Flower."""
    home = Path(home) if home else Path.cwd() / ".flwr"
    return {
        "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
        "FLWR_TELEMETRY_ENABLED": "0",
        "FLWR_HOME": str(home.resolve()),
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_DEDUP_LOGS": "0",
        "RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO": "0",
    }


def _app_dir(config: FedChainConfig, root: Path) -> Path:
    """A minimal Flower App directory whose run config is exactly ``config``."""
    lines = [
        "[project]",
        'name = "fedchain-run"',
        'version = "1.0.0"',
        "[tool.flwr.app]",
        'publisher = "fedchain"',
        "[tool.flwr.app.components]",
        'serverapp = "strategies.server_app:app"',
        'clientapp = "clients.client_app:app"',
        "[tool.flwr.app.config]",
    ]
    for key, value in config.to_run_config().items():
        lines.append(f"{key} = {json.dumps(value)}")
    app_dir = root / "app"
    app_dir.mkdir(parents=True, exist_ok=True)
    (app_dir / "pyproject.toml").write_text("\n".join(lines) + "\n")
    return app_dir


@contextlib.contextmanager
def _simulation_marker() -> Iterator[None]:
    """Mark this process (and the simulated members Ray starts from it) as a simulation, then unmark it.

    Simulated members may take testing hooks (:mod:`fedchain.simulation`); nothing run in this
    process after the simulation may.
    """
    previous = os.environ.get(SIMULATION_ENV)
    os.environ[SIMULATION_ENV] = "1"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(SIMULATION_ENV, None)
        else:
            os.environ[SIMULATION_ENV] = previous


def run_simulation(
    config: FedChainConfig,
    *,
    on_round: Callable[[Any], None] | None = None,
    cpus_per_member: float = 1.0,
) -> dict[str, Any]:
    """Run ``config`` on ``config.total_members`` virtual members; return ``result.json`` as a dict.

    Args:
        config: the validated run configuration; ``out_dir`` must be set.
        on_round: called in this process with each round's :class:`~fedchain.results.RoundSummary`.
        cpus_per_member: CPU share Ray reserves for each ClientApp (lower runs more at once).

    Raises:
        FederationError: if the run ended without writing its result.
    """
    from flwr.app import Context, RecordDict
    from flwr.simulation.run_simulation import _run_simulation
    from flwr.supercore.telemetry import EventType

    from clients.client_app import app as client_app
    from strategies.server_app import app as server_app

    if not config.out_dir:
        raise FederationError("run_simulation needs config.out_dir")
    os.environ.update(flower_environment())
    out_dir = Path(config.out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    config = config.replace(out_dir=str(out_dir))
    # A simulated run is a new federation: members' state (privacy accountants, models) and keys
    # from an earlier run in the same directory must not leak into it.
    if not config.resume:
        for stale in ("members", "keys", "coordinator", "pending"):
            if (out_dir / stale).exists():
                log.info("removing %s from an earlier run", out_dir / stale)
                shutil.rmtree(out_dir / stale)
    elif config.he and not config.he_keys_dir and (out_dir / "keys").is_dir():
        config = config.replace(he_keys_dir=str(out_dir / "keys"))  # members and coordinator keep their keys
    if config.he and not config.he_keys_dir:
        from fedchain.provision import provision_keys

        provision_keys(out_dir / "keys", scoring=config.he_scoring)
        config = config.replace(he_keys_dir=str(out_dir / "keys"))
    result_path = out_dir / "result.json"
    result_path.unlink(missing_ok=True)

    # The run config reaches the ServerApp through its context and the ClientApps through the
    # app directory's pyproject.toml, which holds every option explicitly.
    run_config: dict[str, Any] = dict(config.to_run_config())
    context = Context(run_id=0, node_id=0, node_config={}, state=RecordDict(), run_config=run_config)
    backend_config = {
        "client_resources": {"num_cpus": cpus_per_member, "num_gpus": 0.0},
        "init_args": {"num_cpus": os.cpu_count() or 1, "include_dashboard": False},
    }
    with (
        tempfile.TemporaryDirectory(prefix="fedchain-app-") as tmp,
        listening(on_round or (lambda _: None)),
        _simulation_marker(),
    ):
        _run_simulation(
            num_supernodes=config.total_members,
            exit_event=EventType.PYTHON_API_RUN_SIMULATION_LEAVE,
            client_app=client_app,
            server_app=server_app,
            backend_name="ray",
            backend_config=backend_config,  # type: ignore[arg-type]
            server_app_context=context,
            app_dir=str(_app_dir(config, Path(tmp))),
            is_app=True,
        )
    if not result_path.is_file():
        raise FederationError(f"the run ended without writing {result_path}: see the log above")
    result = dict(json.loads(result_path.read_text()))
    if config.he:
        _collect_member_model(out_dir, result)
    return result


def _collect_member_model(out_dir: Path, result: dict[str, Any]) -> None:
    """Under HE the model lives with the members: copy one whose hash is the final recorded hash."""
    from fedchain.serialization import sha256_hex

    final_hash = next((row["model_hash"] for row in reversed(result["rounds"]) if row["status"] == "completed"), None)
    for candidate in sorted(out_dir.glob("members/member-*/global.safetensors")):
        if final_hash and sha256_hex(candidate.read_bytes()) == final_hash:
            shutil.copyfile(candidate, out_dir / "model.safetensors")
            result["model_path"] = str(out_dir / "model.safetensors")
            result["model_hash"] = final_hash
            (out_dir / "result.json").write_text(json.dumps(result, indent=2) + "\n")
            return
    log.warning("no member holds the final model %s: model.safetensors not written", final_hash)
