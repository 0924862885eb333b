"""Deployment: a real Flower federation (SuperLink + SuperNodes with TLS and node authentication).

* :class:`LocalFederation` / :class:`DeploySpec`: bring up anvil with the ledger, a SuperLink,
  one SuperNode per member with its own data, keys and state, metrics exporters, and run the
  fedchain app through it with ``flwr run``; every process is tracked by PID and stopped on
  :meth:`LocalFederation.stop`, on failure and on Ctrl-C. :func:`down` stops a deployment from
  another process.
* :mod:`fedchain.deployment.flower`: the SuperLink / SuperNode command lines (the one source of
  their security flags, shared with ``deploy/compose.yaml``) and ``flwr`` CLI calls.
* :mod:`fedchain.deployment.chain`: anvil and the ledger set-up on any JSON-RPC chain.
* :mod:`fedchain.deployment.processes`: the PID supervisor.

``python -m fedchain.deployment up DIR --members 3`` (or ``deploy/launcher.py``) is the script.

Example::

    from pathlib import Path
    from fedchain.deployment import DeploySpec, LocalFederation
    federation = LocalFederation(DeploySpec(directory=Path("runs/fed"), members=3, rounds=2))
    try:
        outcome = federation.up()
        print(outcome.status, outcome.result["final_accuracy"])
    finally:
        federation.stop()
"""

from __future__ import annotations

from fedchain.deployment.chain import ANVIL_DEV_KEY, ChainSetup, anvil_binary, setup_ledger
from fedchain.deployment.launcher import (
    WALLET_PASSWORD_ENV,
    DeploySpec,
    LocalFederation,
    RunOutcome,
    default_app_dir,
    down,
    node_config,
    write_demo_data,
)
from fedchain.deployment.processes import ProcessRecord, ProcessSupervisor

__all__ = [
    "ANVIL_DEV_KEY",
    "WALLET_PASSWORD_ENV",
    "ChainSetup",
    "DeploySpec",
    "LocalFederation",
    "ProcessRecord",
    "ProcessSupervisor",
    "RunOutcome",
    "anvil_binary",
    "default_app_dir",
    "down",
    "node_config",
    "setup_ledger",
    "write_demo_data",
]
