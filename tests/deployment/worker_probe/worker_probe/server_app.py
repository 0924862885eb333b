"""Probe ServerApp: sends ``messages`` queries to every node, one at a time; writes what came back."""

from __future__ import annotations

import json
import time
from pathlib import Path

from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.serverapp import Grid, ServerApp

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Send each message to every node, wait for the replies, record them in ``out-dir/result.json``."""
    config = context.run_config
    deadline = time.monotonic() + 60
    nodes = sorted(grid.get_node_ids())
    while not nodes and time.monotonic() < deadline:
        time.sleep(0.2)
        nodes = sorted(grid.get_node_ids())
    rows = []
    for index in range(int(config["messages"])):
        fail = index == int(config["fail-at"])
        messages = [
            Message(RecordDict({"config": ConfigRecord({"fail": fail})}), dst_node_id=node, message_type="query")
            for node in nodes
        ]
        pushed = time.time()
        pending = {message_id: node for message_id, node in zip(grid.push_messages(messages), nodes, strict=True)}
        while pending and time.monotonic() < deadline + 120:
            for reply in grid.pull_messages(list(pending)):
                node = pending.pop(reply.metadata.reply_to_message_id)
                row = {"message": index, "node": node, "pushed": pushed, "received": time.time()}
                if reply.has_error():
                    row.update(error_code=int(reply.error.code), error=str(reply.error.reason))
                else:
                    row.update(dict(reply.content["probe"]))
                rows.append(row)
            time.sleep(0.01)
    out = Path(str(config["out-dir"]) or "runs/probe")
    out.mkdir(parents=True, exist_ok=True)
    (out / "result.json").write_text(json.dumps({"nodes": nodes, "replies": rows}))
