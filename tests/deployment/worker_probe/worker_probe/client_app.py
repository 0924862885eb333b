"""Probe ClientApp: reports its process, how many messages that process answered, when its work began.

It imports fedchain's ClientApp module first, so a process started per message pays the same
imports as fedchain's members do.
"""

from __future__ import annotations

import os
import time

from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.clientapp import ClientApp

import clients.client_app  # noqa: F401  (fedchain's member imports: the cost of a fresh process)

app = ClientApp()
_ANSWERED = 0


@app.query()
def query(msg: Message, context: Context) -> Message:
    """Answer with this process's id and count; raise when the message asks to fail."""
    global _ANSWERED
    started = time.time()  # the first line of work
    _ANSWERED += 1
    if msg.content["config"]["fail"]:
        raise RuntimeError("probe: asked to fail")
    record = ConfigRecord({"pid": os.getpid(), "answered": _ANSWERED, "started": started})
    return Message(RecordDict({"probe": record}), reply_to=msg)
