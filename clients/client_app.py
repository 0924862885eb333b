"""fedchain's Flower ClientApp: the member side of every round.

Example (Flower loads it by the component path in ``pyproject.toml``)::

    [tool.flwr.app.components]
    clientapp = "clients.client_app:app"
"""

from __future__ import annotations

from flwr.app import Context, Message
from flwr.clientapp import ClientApp

from clients.node import MemberNode

__all__ = ["app"]

app = ClientApp()


@app.train()
def train(msg: Message, context: Context) -> Message:
    """Local training round: reply with this member's update."""
    return MemberNode.from_context(context).train(msg)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    """Federated evaluation of the global model on this member's held-out data."""
    return MemberNode.from_context(context).evaluate(msg)


@app.query()
def query(msg: Message, context: Context) -> Message:
    """Decrypt-committee duty: decrypt this round's scoring scalars (HE), nothing else."""
    return MemberNode.from_context(context).answer_scalars(msg)
