"""fedchain's Flower ServerApp: the coordinator.

Flower loads it by the component path in ``pyproject.toml``::

    [tool.flwr.app.components]
    serverapp = "strategies.server_app:app"

It validates the run config, builds the strategy, loads the public CKKS context (HE) and
connects the ledger (chain), runs the :class:`~fedchain.coordinator.Coordinator` loop and
writes ``result.json`` (and, in plaintext mode, ``model.safetensors``) into ``out-dir``
(``runs/<run-id>`` when unset). Under HE the coordinator never holds the model: members do.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from fedchain.checkpoint import Checkpoint
from fedchain.config import FedChainConfig
from fedchain.coordinator import Coordinator
from fedchain.errors import ConfigError
from fedchain.faults import coordinator_faults
from fedchain.progress import publish
from fedchain.serialization import Weights, flatten, save_model, unflatten
from fedchain.tasks import create_task
from strategies.registry import create_strategy

__all__ = ["app", "load_public_context", "open_ledger", "simulated_members"]

log = logging.getLogger(__name__)

app = ServerApp()


def load_public_context(config: FedChainConfig) -> Any:
    """The coordinator's CKKS context from ``<he-keys-dir>/coordinator.ckks``; refuses a secret key."""
    if not config.he:
        return None
    if not config.he_keys_dir:
        raise ConfigError(
            "he_keys_dir",
            "a directory holding coordinator.ckks when HE is on",
            config.he_keys_dir,
            hint="Create one with `fedchain provision keys DIR` (or pass he=false).",
        )
    from fedchain import crypto

    context = crypto.load_coordinator_context(crypto.read_context(Path(config.he_keys_dir) / "coordinator.ckks"))
    if config.he_scoring and not crypto.can_score(context):
        raise ConfigError(
            "he_scoring",
            "off with these keys: the coordinator's context has no relinearization and Galois keys, so it "
            "cannot compute the encrypted norms and scores the norm bound or scorer needs",
            config.he_scoring,
            hint="Provision the federation with the SCORING parameters (fedchain provision --scoring), "
            "or run with norm-bound 0 and a scorer that needs no scalars.",
        )
    return context


def simulated_members(config: FedChainConfig) -> list[str]:
    """Addresses of the simulated members (keys derived from the run seed, ``fedchain.identity``)."""
    from fedchain.identity import simulated_member_addresses

    return simulated_member_addresses(seed=config.seed, count=config.total_members)


def open_ledger(config: FedChainConfig, members: list[str], *, address: str | None = None) -> Any:
    """Attach to the ledger at ``address``, or deploy one and register ``members``; None for ``chain="none"``.

    A deployed ledger with ``config.dp`` also records every member's lifetime privacy budget
    ``(config.epsilon, config.delta)`` on chain, so an auditor needs nothing else to judge privacy spend.
    """
    if config.chain == "none":
        return None
    from fedchain.ledger import Web3Ledger, connect

    if address is not None:
        return Web3Ledger(connect(config.chain), address)
    ledger = Web3Ledger.deploy(connect(config.chain))
    ledger.register_members(members)
    if config.dp:
        ledger.set_privacy_budgets(dict.fromkeys(members, (config.epsilon, config.delta)))
    log.info("fedchain: ledger %s deployed on %s", ledger.address, config.chain)
    return ledger


def validation_utility(config: FedChainConfig) -> Callable[[Weights], Callable[[np.ndarray], float]]:
    """The coordinator's validation utility for ``loo`` / ``gtg_shapley`` (plaintext only).

    ``make(weights)(delta)`` is minus the validation loss (the task's :meth:`~fedchain.tasks.Task.evaluate`)
    of the model ``weights + delta`` on the held-out split of the task's bundled data set (loss
    separates members better than accuracy on 360 examples; see docs/scoring.md).
    """
    task = create_task(config=config)
    _, _, x_val, y_val = task.load_split()
    model = task.build_model(seed=config.seed)

    def make(weights: Weights) -> Callable[[np.ndarray], float]:
        base = flatten(weights)

        def utility(delta: np.ndarray) -> float:
            task.set_weights(model, unflatten(base + delta, weights))
            return -task.evaluate(model, x_val, y_val)[0]

        return utility

    return make


def _checkpoint_to_resume(config: FedChainConfig) -> Checkpoint | None:
    """The checkpoint to continue from when ``resume`` is set (an error if there is none to use)."""
    if not config.resume:
        return None
    if not Checkpoint.exists(config.out_dir):
        raise ConfigError("resume", f"used with an out-dir holding a checkpoint ({config.out_dir} has none)", True)
    return Checkpoint.load(config.out_dir)


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Run the federation described by the run config."""
    from fedchain.deployment.object_pulls import install_fast_object_pulls

    install_fast_object_pulls(("flwr.superlink.grid.http_grid",))  # deployment: replies' objects, 10 ms retries
    config = FedChainConfig.from_run_config(context.run_config)
    out_dir = Path(config.out_dir or f"runs/{context.run_id}")
    config = config.replace(out_dir=str(out_dir))
    strategy = create_strategy(config)
    public_context = load_public_context(config)
    task = create_task(config=config)
    initial = task.get_weights(task.build_model(seed=config.seed))
    members = simulated_members(config)
    checkpoint = _checkpoint_to_resume(config)
    attach = checkpoint.ledger_address if checkpoint else (config.ledger_address or None)
    ledger = open_ledger(config, members, address=attach)
    registered = frozenset(members)
    if config.ledger_address and ledger is not None:
        # A deployed federation: the members are whoever the ledger's admin registered.
        registered = frozenset(e.address for e in ledger.registrations() if ledger.is_registered(e.address))
    metrics = server = None
    if config.metrics_port:
        from fedchain.telemetry import CoordinatorMetrics

        metrics = CoordinatorMetrics()
        server = metrics.serve(config.metrics_port, config.metrics_host)
    coordinator = Coordinator(
        config=config,
        strategy=strategy,
        initial_weights=initial,
        public_context=public_context,
        ledger=ledger,
        registered=registered,
        metrics=metrics,
        on_round=publish,
        ledger_address=ledger.address if ledger is not None else None,
        chain_id=ledger.chain_id if ledger is not None else 0,
        validation=validation_utility(config) if not config.he and task.dataset else None,
        faults=coordinator_faults(config),
    )
    if checkpoint is not None:
        coordinator.restore(checkpoint)
    try:
        result = coordinator.run(grid)
    finally:
        if server is not None:
            server.close()
    if ledger is not None:
        from fedchain.ledger import export_ledger

        result.chain = config.chain
        result.ledger_address = ledger.address
        result.token_address = ledger.token_address
        addresses = {m.address for summary in result.rounds for m in summary.members}
        result.balances_wei = {address: ledger.balance_of(address) for address in sorted(addresses)}
        export_ledger(ledger, out_dir / "chain.json")
        from fedchain.audit import MemberBudget, audit_ledger

        budget = MemberBudget(config.epsilon, config.delta) if config.dp else None
        report = audit_ledger(ledger, default_budget=budget, budget_source="run config (off-chain)")
        result.audit = report.verdict()
        if not report.ok:
            log.error("fedchain: the audit of this run failed: %s", report.summary())
    if not config.he:
        result.model_path = str(out_dir / "model.safetensors")
        save_model(result.model_path, coordinator.weights)
    path = result.write(out_dir)
    log.info("fedchain: wrote %s (final accuracy %s)", path, result.final_accuracy)
