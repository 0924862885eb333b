"""fedchain's Flower ServerApp: the coordinator.

Flower loads it by the component path in ``pyproject.toml``::

    [tool.flwr.app.components]
    serverapp = "strategies.server_app:app"

It validates the run config, builds the strategy and the initial model, runs the
:class:`~fedchain.coordinator.Coordinator` loop and writes ``result.json`` and
``model.safetensors`` into ``out-dir`` (``runs/<run-id>`` when unset).
"""

from __future__ import annotations

import logging
from pathlib import Path

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from clients import task
from fedchain.config import FedChainConfig
from fedchain.coordinator import Coordinator
from fedchain.progress import publish
from fedchain.serialization import save_model
from strategies.registry import create_strategy

__all__ = ["app"]

log = logging.getLogger(__name__)

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Run the federation described by the run config."""
    config = FedChainConfig.from_run_config(context.run_config)
    out_dir = Path(config.out_dir or f"runs/{context.run_id}")
    config = config.replace(out_dir=str(out_dir))
    strategy = create_strategy(config)
    initial = task.get_weights(
        task.build_model(
            num_features=config.num_features,
            num_classes=config.num_classes,
            hidden_units=config.hidden_units,
            seed=config.seed,
        )
    )
    coordinator = Coordinator(config=config, strategy=strategy, initial_weights=initial, on_round=publish)
    result = coordinator.run(grid)
    result.model_path = str(out_dir / "model.safetensors")
    save_model(result.model_path, coordinator.weights)
    path = result.write(out_dir)
    log.info("fedchain: wrote %s (final accuracy %s)", path, result.final_accuracy)
