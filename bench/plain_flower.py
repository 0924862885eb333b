"""Baseline for the overhead benchmark: a plain Flower FedAvg app on the same model, data and members.

Nothing of fedchain's pipeline runs here: Flower's own ``FedAvg.start`` loop, a ClientApp that
trains and evaluates the run's task (``task`` in the run config: model, data shards, evaluation)
with the same local training code, and a timestamp per round.
"""

from __future__ import annotations

import time

from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg

from fedchain.config import FedChainConfig
from fedchain.privacy import train_plain
from fedchain.tasks import Task, create_task

ROUND_TIMES: list[float] = []

client_app = ClientApp()
server_app = ServerApp()


def _task(config: FedChainConfig) -> Task:
    return create_task(config=config)


def _model(config: FedChainConfig):
    return _task(config).build_model(seed=0)


def _data(context: Context, config: FedChainConfig):
    return _task(config).load_demo(int(context.node_config["partition-id"]), int(context.node_config["num-partitions"]))


@client_app.train()
def train(msg: Message, context: Context) -> Message:
    config = FedChainConfig.from_run_config(context.run_config)
    data = _data(context, config)
    model = _model(config)
    model.load_state_dict(msg.content.array_records["arrays"].to_torch_state_dict())
    loss = train_plain(
        model,
        data.x_train,
        data.y_train,
        epochs=config.local_epochs,
        batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        momentum=config.momentum,
        seed=0,
    ).train_loss
    content = RecordDict(
        {
            "arrays": ArrayRecord(model.state_dict()),
            "metrics": MetricRecord({"num-examples": data.num_train, "loss": loss}),
        }
    )
    return Message(content, reply_to=msg)


@client_app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    config = FedChainConfig.from_run_config(context.run_config)
    data = _data(context, config)
    model = _model(config)
    model.load_state_dict(msg.content.array_records["arrays"].to_torch_state_dict())
    loss, accuracy = _task(config).evaluate(model, data.x_test, data.y_test)
    metrics = MetricRecord({"num-examples": len(data.y_test), "loss": loss, "accuracy": accuracy})
    return Message(RecordDict({"metrics": metrics}), reply_to=msg)


@server_app.main()
def main(grid: Grid, context: Context) -> None:
    config = FedChainConfig.from_run_config(context.run_config)
    ROUND_TIMES.clear()
    ROUND_TIMES.append(time.perf_counter())

    def stamp(server_round: int, arrays: ArrayRecord) -> None:
        if server_round > 0:
            ROUND_TIMES.append(time.perf_counter())

    strategy = FedAvg(min_available_nodes=config.members, min_train_nodes=1, min_evaluate_nodes=1)
    strategy.start(
        grid=grid,
        initial_arrays=ArrayRecord(_model(config).state_dict()),
        num_rounds=config.rounds,
        evaluate_fn=stamp,
    )
