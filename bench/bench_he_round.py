"""Round wall time with homomorphic aggregation vs without (issue 4): target ratio <= 1.25.

Both federations run through :func:`fedchain.runner.run_simulation` (Flower's simulation runtime,
in this process) with the same options: 10 members, the demo MLP widened to ``hidden_units=1333``
(``64*h + h + 10*h + 10 = 99,985`` parameters, "about 100k"), DP off, no chain, 4 rounds. Only
``he`` differs. The figure is the mean round wall time (``rounds[].seconds`` of ``result.json``,
measured by the coordinator from sending the train instructions to the end of evaluation)
excluding round 1 (Ray actor start-up, first imports); the two runs alternate ``repeats`` times
and each side's mean is taken over all its measured rounds (the mean, not the median: phases end
on Flower's 0.1 s polling ticks, so round times are multimodal; see ``bench_overhead``). Medians
are reported too.

To show where HE time goes, the same process measures the per-member and coordinator HE work at
this size (:func:`he_components`): encrypt ``n * delta``, sum 10 ciphertexts, decrypt, the
ciphertext bytes per message, and what a message of that size costs Flower's record layer
(``ArrayRecord`` of the chunks to protobuf and back) against the plaintext model's; each round's
``stage_seconds`` (train, validate, aggregate, score, evaluate) gives the per-stage medians.

What bounds the ratio in this benchmark: the simulation runs all 10 members on the machine's
cores, so each member's HE CPU per round (encrypting ``n * delta`` for its train reply,
decrypting the aggregate for its evaluate reply) adds up across members instead of overlapping as
it does when members have their own machines; ``member_he_wall_s_per_round_on_this_machine``
is that sum divided by the cores. The plaintext round it is compared with is mostly Flower's
0.1 s polling of the in-memory grid, and the phases end on those 0.1 s ticks.

Writes ``out_dir/he_round.json``. Run: ``.venv/bin/python -m bench he_round`` once registered, or
``.venv/bin/python bench/bench_he_round.py [OUT_DIR] [--repeats N]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

TARGET_RATIO = 1.25
MEMBERS = 10
ROUNDS = 8
HIDDEN_UNITS = 1333  # 64*h + h + h*10 + 10 = 99,985 parameters


def parameter_count(hidden_units: int, *, features: int = 64, classes: int = 10) -> int:
    """Parameters of the demo MLP ``features -> hidden_units -> classes``."""
    return features * hidden_units + hidden_units + hidden_units * classes + classes


def _config(*, he: bool, out_dir: str, members: int = MEMBERS) -> Any:
    from fedchain.config import FedChainConfig

    return FedChainConfig(
        members=members,
        rounds=ROUNDS,
        dp=False,
        he=he,
        chain="none",
        hidden_units=HIDDEN_UNITS,
        out_dir=out_dir,
    )


def _round_seconds(*, he: bool, members: int = MEMBERS) -> dict[str, Any]:
    from fedchain.runner import run_simulation

    with tempfile.TemporaryDirectory(prefix="fedchain-he-round-") as tmp:
        started = time.perf_counter()
        result = run_simulation(_config(he=he, out_dir=tmp, members=members))
        wall = time.perf_counter() - started
    rounds = [float(row["seconds"]) for row in result["rounds"]]
    statuses = [row["status"] for row in result["rounds"]]
    return {
        "round_s": [round(s, 4) for s in rounds],
        "stage_s": [row.get("stage_seconds", {}) for row in result["rounds"]],
        "statuses": statuses,
        "final_accuracy": result.get("final_accuracy"),
        "run_wall_s": round(wall, 1),
    }


def _best_s(fn: Callable[[], Any], repeats: int = 3) -> tuple[float, Any]:
    best, value = float("inf"), None
    for _ in range(repeats):
        started = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - started)
    return best, value


def he_components(size: int = parameter_count(HIDDEN_UNITS), members: int = MEMBERS) -> dict[str, Any]:
    """The HE work of one round at ``size`` parameters, measured in this process (fastest of 3)."""
    from flwr.common import ArrayRecord, serde

    from fedchain import crypto
    from fedchain.protocol import chunks_to_record, record_to_chunks, record_to_weights, weights_to_record

    rng = np.random.default_rng(0)
    member = crypto.create_secret_context(crypto.AGGREGATION)
    coordinator = crypto.load_coordinator_context(crypto.export_public_context(member))
    delta = rng.normal(scale=1e-3, size=size) * 150.0
    encrypt_s, chunks = _best_s(lambda: crypto.encrypt_update(member, delta))
    uploads = [crypto.encrypt_update(member, delta) for _ in range(members)]
    sum_s, total = _best_s(lambda: crypto.sum_encrypted(coordinator, uploads, len(chunks), size))
    decrypt_s, _ = _best_s(lambda: crypto.decrypt_update(member, total, size))
    digest_s, _ = _best_s(lambda: crypto.ciphertext_digest(total))
    weights = {"w": rng.normal(size=size).astype(np.float32)}

    def cipher_roundtrip() -> None:
        record = chunks_to_record(chunks)  # inline (a ConfigRecord) up to 4 MiB, else an ArrayRecord
        if isinstance(record, ArrayRecord):
            record_to_chunks(serde.array_record_from_proto(serde.array_record_to_proto(record)))
        else:
            record_to_chunks(serde.config_record_from_proto(serde.config_record_to_proto(record)))

    def plain_roundtrip() -> None:
        record = weights_to_record(weights)
        proto = serde.array_record_to_proto(record)
        record_to_weights(serde.array_record_from_proto(proto))

    cipher_record_s, _ = _best_s(cipher_roundtrip)
    plain_record_s, _ = _best_s(plain_roundtrip)
    cipher_bytes = sum(len(c) for c in chunks)
    return {
        "params": size,
        "chunks": len(chunks),
        "ciphertext_bytes_per_message": cipher_bytes,
        "plaintext_float32_bytes_per_message": size * 4,
        "encrypt_s_per_member": round(encrypt_s, 4),
        "sum_s_all_members": round(sum_s, 4),
        "digest_s": round(digest_s, 4),
        "decrypt_s_per_member": round(decrypt_s, 4),
        "record_roundtrip_s_ciphertext": round(cipher_record_s, 4),
        "record_roundtrip_s_plaintext": round(plain_record_s, 4),
    }


def _time_member(node: Any, *, he: bool, aggregate: list[bytes], repeats: int) -> dict[str, float]:
    """Fastest ``evaluate`` then ``train`` reply of ``node`` on coordinator-like messages."""
    from flwr.app import Message

    from fedchain import crypto
    from fedchain.protocol import EvaluateIns, SealedAggregate, TrainIns, encode

    weights = node.template()
    state = {"round": 0}

    def evaluate() -> None:
        state["round"] += 1
        server_round = state["round"]
        if he:
            digest = crypto.ciphertext_digest(aggregate)
            sealed = SealedAggregate(server_round, tuple(aggregate), 1437, digest, members=MEMBERS)
            ins = EvaluateIns(server_round, model_round=server_round, aggregates=(sealed,))
        else:
            ins = EvaluateIns(server_round, model_round=server_round, model=weights)
        reply = node.evaluate(Message(encode(ins), dst_node_id=3, message_type="evaluate"))
        assert not reply.has_error(), reply.error.reason

    def train() -> None:
        server_round = state["round"] + 1
        ins = TrainIns(server_round, server_round - 1, cohort=MEMBERS, model=None if he else weights)
        reply = node.train(Message(encode(ins), dst_node_id=3, message_type="train"))
        assert not reply.has_error(), reply.error.reason

    evaluate_s = min(_cpu_s(evaluate) for _ in range(repeats))
    train_s = min(_cpu_s(train) for _ in range(repeats))
    return {"train_reply_cpu_s": round(train_s, 4), "evaluate_reply_cpu_s": round(evaluate_s, 4)}


def _cpu_s(fn: Callable[[], Any]) -> float:
    started = time.process_time()
    fn()
    return time.process_time() - started


def member_message_costs(repeats: int = 5) -> dict[str, Any]:
    """A member's CPU work per round, in this process: answering one train and one evaluate message.

    Builds a :class:`clients.node.MemberNode` (partition 3 of 10, the benchmark's model) with HE on
    and off and times ``train`` (local training, and under HE encrypting ``n * delta``) and
    ``evaluate`` (under HE: verify, decrypt and apply the round's aggregate, save the model) on
    messages like the coordinator's: process CPU time, torch at one thread (as in a Ray actor
    with one CPU), fastest of ``repeats``.
    """
    import torch
    from flwr.app import Context, RecordDict
    from flwr.common.constant import SUPERLINK_NODE_ID
    from flwr.supercore.task_identity import TaskIdentity

    from clients.node import MemberNode
    from fedchain import crypto
    from fedchain.provision import provision_keys
    from fedchain.simulation import SIMULATION_ENV

    TaskIdentity.run_id, TaskIdentity.task_id, TaskIdentity.node_id = 1, 1, SUPERLINK_NODE_ID
    os.environ[SIMULATION_ENV] = "1"  # a simulated member: its policy follows the benchmark's settings
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    costs: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="fedchain-he-member-") as tmp:
        keys = Path(tmp) / "keys"
        provision_keys(keys, scoring=False)
        for he in (False, True):
            config = _config(he=he, out_dir=str(Path(tmp) / ("he" if he else "plain"))).replace(he_keys_dir=str(keys))
            context = Context(
                run_id=10_000 + int(he),
                node_id=3,
                node_config={"partition-id": 3, "num-partitions": MEMBERS},
                state=RecordDict(),
                run_config=dict(config.to_run_config()),
            )
            node = MemberNode.from_context(context)
            weights = node.template()
            aggregate: list[bytes] = []
            if he:
                size = sum(array.size for array in weights.values())
                delta = np.random.default_rng(0).normal(scale=1e-3, size=size) * 1437
                aggregate = crypto.encrypt_update(node._context(), delta)
            costs["he" if he else "plain"] = _time_member(node, he=he, aggregate=aggregate, repeats=repeats)
    torch.set_num_threads(threads)
    extra = sum(costs["he"].values()) - sum(costs["plain"].values())
    costs["he_extra_cpu_s_per_member_round"] = round(extra, 4)
    return costs


def _estimate(components: dict[str, Any], cpus: int) -> dict[str, Any]:
    """Serial HE work per round (every member encrypts once and decrypts once) and its share per CPU."""
    members_work = MEMBERS * (components["encrypt_s_per_member"] + components["decrypt_s_per_member"])
    records = 2 * MEMBERS * (components["record_roundtrip_s_ciphertext"] - components["record_roundtrip_s_plaintext"])
    coordinator = components["sum_s_all_members"] + components["digest_s"]
    return {
        "member_encrypt_plus_decrypt_s_total": round(members_work, 3),
        "extra_record_conversion_s_total": round(records, 3),
        "coordinator_sum_plus_digest_s": round(coordinator, 3),
        "cpus": cpus,
        "estimated_extra_s_per_round_if_parallel": round((members_work + records) / cpus + coordinator, 3),
    }


def _members_with_a_core_each(cpus: int, repeats: int) -> dict[str, Any]:
    """The same comparison with as many members as cores: members' HE work no longer queues for a
    core, as when each member has its own machine. Not the issue's 10-member figure; it shows
    what the 10-member ratio on this machine is made of."""
    rounds: dict[str, list[float]] = {"plain": [], "he": []}
    for _ in range(repeats):
        for he in (False, True):
            rounds["he" if he else "plain"] += _round_seconds(he=he, members=cpus)["round_s"][1:]
    means = {side: statistics.mean(values) for side, values in rounds.items()}
    return {
        "members": cpus,
        "plain_mean_round_s": round(means["plain"], 4),
        "he_mean_round_s": round(means["he"], 4),
        "ratio": round(means["he"] / means["plain"], 3),
        "round_s": rounds,
    }


def run(out_dir: Path, *, repeats: int = 2) -> dict[str, Any]:
    """Run both federations ``repeats`` times (alternating), write ``out_dir/he_round.json``."""
    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    logging.getLogger("fedchain").setLevel(logging.WARNING)
    runs: dict[str, list[dict[str, Any]]] = {"plain": [], "he": []}
    for _ in range(repeats):
        runs["plain"].append(_round_seconds(he=False))
        runs["he"].append(_round_seconds(he=True))
    measured = {side: [s for run_ in entries for s in run_["round_s"][1:]] for side, entries in runs.items()}
    cpus = os.cpu_count() or 1
    one_core_each = _members_with_a_core_each(cpus, repeats)
    means = {side: statistics.mean(values) for side, values in measured.items()}
    medians = {side: statistics.median(values) for side, values in measured.items()}
    ratio = means["he"] / means["plain"]
    stage_medians = {
        side: {
            stage: round(statistics.median([r["stage_s"][i][stage] for r in entries for i in range(1, ROUNDS)]), 4)
            for stage in entries[0]["stage_s"][-1]
        }
        for side, entries in runs.items()
    }
    components = he_components()
    members = member_message_costs()
    member_extra = members["he_extra_cpu_s_per_member_round"]
    figures: dict[str, Any] = {
        "benchmark": "he_round",
        "members": MEMBERS,
        "rounds": ROUNDS,
        "hidden_units": HIDDEN_UNITS,
        "params": parameter_count(HIDDEN_UNITS),
        "dp": False,
        "chain": "none",
        "method": "mean of rounds[].seconds excluding round 1, fedchain.runner.run_simulation, he=True vs he=False",
        "runs": runs,
        "plain_mean_round_s": round(means["plain"], 4),
        "he_mean_round_s": round(means["he"], 4),
        "plain_median_round_s": round(medians["plain"], 4),
        "he_median_round_s": round(medians["he"], 4),
        "he_extra_s_per_round": round(means["he"] - means["plain"], 4),
        "stage_median_s": stage_medians,
        "ratio": round(ratio, 3),
        "target_ratio": TARGET_RATIO,
        "meets_target": ratio <= TARGET_RATIO,
        "components": components,
        "member_messages": members,
        "member_he_cpu_s_per_round": round(MEMBERS * member_extra, 3),
        "member_he_wall_s_per_round_on_this_machine": round(MEMBERS * member_extra / cpus, 3),
        "estimate": _estimate(components, cpus),
        "members_with_a_core_each": one_core_each,
        "python": platform.python_version(),
        "cpus": cpus,
        "load_average_1min_before": round(load_before, 2),
        "bench_seconds": round(time.perf_counter() - started, 1),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "he_round.json"
    path.write_text(json.dumps(figures, indent=2) + "\n")
    print(
        f"he_round: {figures['params']:,} params, {MEMBERS} members: plain {means['plain']:.3f} s/round, "
        f"HE {means['he']:.3f} s/round (means) -> ratio {ratio:.2f} (target <= {TARGET_RATIO}); "
        f"encrypt {components['encrypt_s_per_member'] * 1000:.0f} ms/member, "
        f"decrypt {components['decrypt_s_per_member'] * 1000:.0f} ms/member, "
        f"{components['ciphertext_bytes_per_message'] / 1e6:.2f} MB/message; with {cpus} members (a core each) "
        f"the ratio is {one_core_each['ratio']:.2f}; wrote {path}"
    )
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("out", nargs="?", type=Path, default=Path(__file__).resolve().parent / "results")
    parser.add_argument("--repeats", type=int, default=2, help="alternating plain/HE run pairs")
    args = parser.parse_args(argv)
    from fedchain.runner import flower_environment

    for key, value in flower_environment().items():
        os.environ.setdefault(key, value)
    run(args.out, repeats=args.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
