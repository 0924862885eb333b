"""fedchain's Flower ClientApp: the member side of every round.

Example (Flower loads it by the component path in ``pyproject.toml``)::

    [tool.flwr.app.components]
    clientapp = "clients.client_app:app"

A node that cannot be built for a run (a run config it finds invalid, a malformed policy file)
answers every message with a Flower ``Error`` reply naming why, rather than raising into Flower.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from flwr.app import Context, Error, Message
from flwr.clientapp import ClientApp

from clients.node import MemberNode
from fedchain.errors import FedChainError, PolicyError
from fedchain.protocol import ERROR_INVALID_INSTRUCTION, ERROR_POLICY_REFUSED

__all__ = ["app"]

log = logging.getLogger(__name__)

app = ClientApp()


def _answer(msg: Message, context: Context, duty: Callable[[MemberNode, Message], Message]) -> Message:
    """Build (or reuse) this run's node and let it answer; a node that cannot be built refuses by name."""
    try:
        node = MemberNode.from_context(context)
    except PolicyError as exc:
        log.warning("node %d refuses the run: %s", context.node_id, exc)
        return Message(Error(code=ERROR_POLICY_REFUSED, reason=str(exc)), reply_to=msg)
    except FedChainError as exc:
        log.warning("node %d cannot take part in the run: %s", context.node_id, exc)
        return Message(Error(code=ERROR_INVALID_INSTRUCTION, reason=f"{type(exc).__name__}: {exc}"), reply_to=msg)
    return duty(node, msg)


@app.train()
def train(msg: Message, context: Context) -> Message:
    """Local training round: reply with this member's update."""
    return _answer(msg, context, MemberNode.train)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    """Federated evaluation of the global model on this member's held-out data."""
    return _answer(msg, context, MemberNode.evaluate)


@app.query()
def query(msg: Message, context: Context) -> Message:
    """Decrypt-committee duty: decrypt this round's scoring scalars (HE), nothing else."""
    return _answer(msg, context, MemberNode.answer_scalars)
