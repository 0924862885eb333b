"""Aggregation math that runs on members: server optimizers on the decrypted mean update.

Pure NumPy, no I/O except the explicit state file helpers. Each strategy declares a
``member_update`` kind; under HE every member applies that kind's step to the same decrypted
aggregate, so members stay bit-identical and the coordinator stays blind. FedProx's proximal
term (torch) is part of members' local training: :mod:`fedchain.privacy.proximal`.

Example:
    >>> import numpy as np
    >>> from fedchain.aggregation import create_server_optimizer
    >>> opt = create_server_optimizer("avg")
    >>> weights, state = opt.step(np.zeros(3), np.full(3, 0.5), None, server_round=1)
    >>> weights, state.server_round
    (array([0.5, 0.5, 0.5]), 1)
"""

from fedchain.aggregation.server_opt import (
    FedAdamUpdate,
    FedAvgMUpdate,
    FedAvgUpdate,
    FedYogiUpdate,
    OptimizerState,
    ServerOptimizer,
    available_server_optimizers,
    create_server_optimizer,
    load_optimizer_state,
    register_server_optimizer,
    save_optimizer_state,
)

__all__ = [
    "FedAdamUpdate",
    "FedAvgMUpdate",
    "FedAvgUpdate",
    "FedYogiUpdate",
    "OptimizerState",
    "ServerOptimizer",
    "available_server_optimizers",
    "create_server_optimizer",
    "load_optimizer_state",
    "register_server_optimizer",
    "save_optimizer_state",
]
