"""fedchain's Flower ClientApp: the member side of every round.

Example (Flower loads it by the component path in ``pyproject.toml``)::

    [tool.flwr.app.components]
    clientapp = "clients.client_app:app"

Each message is answered by its function inside Flower client mods (:mod:`clients.mods`),
outermost first:

Every message first passes ``envelope_mod`` (the message's records in one Flower object), then:

=========  ===========================================================  =============================
message    mods                                                         function
=========  ===========================================================  =============================
train      ``member_mod``, ``refusal_mod``, ``privacy_mod``, ``seal_mod``  :func:`clients.training.train_app`
evaluate   ``member_mod``, ``refusal_mod``                              :func:`clients.training.evaluate_app`
query      ``member_mod``                                               :func:`clients.committee.query_app`
=========  ===========================================================  =============================

A node that cannot be built for a run (a run config it finds invalid, a malformed policy file)
answers every message with a Flower ``Error`` reply naming why, rather than raising into Flower.
"""

from __future__ import annotations

from flwr.app import Context, Message
from flwr.clientapp import ClientApp

from clients import training
from clients.mods import EVALUATE_MODS, TRAIN_MODS, envelope_mod, member_mod

__all__ = ["app"]

app = ClientApp(mods=[envelope_mod, member_mod])


@app.train(mods=TRAIN_MODS)
def train(msg: Message, context: Context) -> Message:
    """Local training round: reply with this member's update (sealed by ``seal_mod``)."""
    return training.train_app(msg, context)


@app.evaluate(mods=EVALUATE_MODS)
def evaluate(msg: Message, context: Context) -> Message:
    """Federated evaluation of the global model on this member's held-out data."""
    return training.evaluate_app(msg, context)


@app.query()
def query(msg: Message, context: Context) -> Message:
    """Decrypt-committee duty: decrypt this round's scoring scalars (HE), nothing else."""
    from clients.committee import query_app  # the committee's code loads only on committee duty

    return query_app(msg, context)
