"""The member node: what an organization runs. Loads its data, trains locally, answers the coordinator.

One :class:`MemberNode` exists per (run, node) in a process. It is built from Flower's
``Context``: the run config (the federation's options) and the node config (this member's
data and identity). Failures are answered as Flower ``Error`` replies, never raised into Flower.

Node config keys:
    ``partition-id`` / ``num-partitions``: simulation: which shard of the demo data to use.
    ``data-path`` / ``label-column``: deployment: the organization's CSV, Parquet or NPZ file.
    ``member-id``: stable member number (defaults to ``partition-id``).
    ``state-dir``: where the node keeps its privacy accountant and model between rounds.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flwr.app import ConfigRecord, Context, Error, Message, MetricRecord, RecordDict

from clients import task
from fedchain.config import FedChainConfig
from fedchain.data import load_demo_partition, load_local_dataset
from fedchain.errors import BudgetExhaustedError, FedChainError
from fedchain.identity import address_of, simulated_member_key
from fedchain.protocol import (
    ERROR_BUDGET_EXHAUSTED,
    ERROR_INVALID_INSTRUCTION,
    record_to_weights,
    weights_to_record,
)
from fedchain.serialization import Weights, check_weights, model_hash
from fedchain.types import LocalDataset

__all__ = ["MemberNode", "member_kind"]

log = logging.getLogger(__name__)

_NODES: dict[tuple[int, int], MemberNode] = {}


def member_kind(config: FedChainConfig, member_id: int) -> str:
    """``"honest"``, or the adversary kind of a simulated adversarial member.

    Simulated adversaries take the member ids after the honest ones, in the order given.
    """
    offset = member_id - config.members
    return config.adversaries[offset] if 0 <= offset < len(config.adversaries) else "honest"


@dataclass
class MemberNode:
    """One member's node for one run."""

    config: FedChainConfig
    member_id: int
    address: str
    kind: str
    data: LocalDataset
    state_dir: Path

    @classmethod
    def from_context(cls, context: Context) -> MemberNode:
        """The node for this Flower context, built once per (run, node) and process."""
        key = (context.run_id, context.node_id)
        node = _NODES.get(key)
        if node is None:
            node = _NODES[key] = cls._build(context)
        return node

    @classmethod
    def _build(cls, context: Context) -> MemberNode:
        config = FedChainConfig.from_run_config(context.run_config)
        node_config: dict[str, Any] = dict(context.node_config)
        data_path = str(node_config.get("data-path", "") or "")
        if data_path:
            member_id = int(node_config.get("member-id", node_config.get("partition-id", 0)))
            data = load_local_dataset(
                data_path,
                label_column=str(node_config.get("label-column", "label")),
                test_fraction=config.test_fraction,
                seed=config.seed + member_id,
                num_classes=int(node_config["num-classes"]) if "num-classes" in node_config else None,
            )
        else:
            member_id = int(node_config.get("member-id", node_config.get("partition-id", 0)))
            num_partitions = int(node_config.get("num-partitions", config.total_members))
            data = load_demo_partition(
                member_id,
                num_partitions,
                partitioner=config.partitioner,
                alpha=config.dirichlet_alpha,
                test_fraction=config.test_fraction,
                seed=config.seed,
            )
        state_dir = Path(str(node_config.get("state-dir", "") or "")) if node_config.get("state-dir") else None
        if state_dir is None:
            root = (
                Path(config.out_dir) if config.out_dir else Path(tempfile.gettempdir()) / f"fedchain-{context.run_id}"
            )
            state_dir = root / "members" / f"member-{member_id}"
        state_dir.mkdir(parents=True, exist_ok=True)
        address = address_of(simulated_member_key(seed=config.seed, member_id=member_id))
        return cls(
            config=config,
            member_id=member_id,
            address=address,
            kind=member_kind(config, member_id),
            data=data,
            state_dir=state_dir,
        )

    # ------------------------------------------------------------------ model
    def template(self) -> Weights:
        """Freshly initialised weights: the shape every received model must have."""
        return task.get_weights(self._new_model())

    def _new_model(self) -> Any:
        return task.build_model(
            num_features=self.data.num_features,
            num_classes=self.data.num_classes,
            hidden_units=self.config.hidden_units,
            seed=self.config.seed,
        )

    def _global_weights(self, content: RecordDict) -> tuple[Weights, int]:
        """The global model of the instruction, validated against the task's template."""
        weights = check_weights(record_to_weights(content.array_records["model"]), self.template())
        return weights, int(content.config_records["config"].get("model-round", 0))

    def _identity(self, global_hash: str) -> ConfigRecord:
        return ConfigRecord(
            {"member-id": self.member_id, "address": self.address, "kind": self.kind, "model-hash": global_hash}
        )

    # ------------------------------------------------------------------ train
    def train(self, msg: Message) -> Message:
        """Answer a train instruction: local training on the global model, reply with the update."""
        try:
            server_round = int(msg.content.config_records["config"]["server-round"])
            weights, model_round = self._global_weights(msg.content)
            started = time.perf_counter()
            model = self._new_model()
            task.set_weights(model, weights)
            loss = task.train_plain(
                model,
                self.data.x_train,
                self.data.y_train,
                epochs=self.config.local_epochs,
                batch_size=self.config.batch_size,
                learning_rate=self.config.learning_rate,
                momentum=self.config.momentum,
                seed=self.config.seed * 100_003 + server_round * 1_009 + self.member_id,
            )
            metrics = MetricRecord(
                {
                    "num-examples": self.data.num_train,
                    "train-loss": loss,
                    "model-round": model_round,
                    "train-seconds": time.perf_counter() - started,
                }
            )
            content = RecordDict(
                {
                    "arrays": weights_to_record(task.get_weights(model)),
                    "metrics": metrics,
                    "member": self._identity(model_hash(weights)),
                }
            )
            return Message(content, reply_to=msg)
        except BudgetExhaustedError as exc:
            log.warning("member %d declines the round: %s", self.member_id, exc)
            return Message(Error(code=ERROR_BUDGET_EXHAUSTED, reason=str(exc)), reply_to=msg)
        except (FedChainError, KeyError) as exc:
            log.warning("member %d refuses the instruction: %s", self.member_id, exc)
            return Message(Error(code=ERROR_INVALID_INSTRUCTION, reason=f"{type(exc).__name__}: {exc}"), reply_to=msg)

    # --------------------------------------------------------------- evaluate
    def evaluate(self, msg: Message) -> Message:
        """Answer an evaluate instruction: loss and accuracy of the global model on local test data."""
        try:
            weights, model_round = self._global_weights(msg.content)
            model = self._new_model()
            task.set_weights(model, weights)
            loss, accuracy = task.evaluate(model, self.data.x_test, self.data.y_test)
            metrics = MetricRecord(
                {"num-examples": len(self.data.y_test), "loss": loss, "accuracy": accuracy, "model-round": model_round}
            )
            content = RecordDict({"metrics": metrics, "member": self._identity(model_hash(weights))})
            return Message(content, reply_to=msg)
        except (FedChainError, KeyError) as exc:
            return Message(Error(code=ERROR_INVALID_INSTRUCTION, reason=f"{type(exc).__name__}: {exc}"), reply_to=msg)
