"""Benchmark: the coordinator's peak memory while it aggregates encrypted updates (issue 15, "HE at scale").

The coordinator sums ciphertexts as replies arrive (``fedchain.pipeline``: each reply is validated
and folded into a running ``crypto.EncryptedSum``, its bytes dropped), so its peak memory should
not grow with the number of members. Measured against the old way in the same run: every reply
in memory, validated, then ``crypto.sum_encrypted_valid`` over all of them (what the coordinator did
after ``grid.send_and_receive``).

Each measurement is a fresh coordinator process (``python -m bench.bench_memory coordinator``):
its peak RSS (``getrusage(RUSAGE_SELF).ru_maxrss``; TenSEAL's memory is outside tracemalloc) is
what counts. It starts a feeder process that encrypts members' updates (real CKKS ciphertexts of
10 distinct random updates, taken in turn; each reply signed with its member's simulated chain
key) and writes them one at a time to a pipe; the coordinator reads them as they come, like
replies pulled from the SuperLink. Encryption happens in the feeder, not in the measured process.

Sizes: 10 and 50 members at 1,000,000 parameters, and at 10,000,000 too with
``FEDCHAIN_BENCH_MEMORY_10M=1`` (about 15 minutes more on 2 cores; the all-at-once run with 50
members holds about 8 GB). Goal, at each size: the streaming coordinator's peak with 50 members at
most 1.2 times its peak with 10. Writes ``out_dir/memory.json``: one entry per size under ``sizes``.
Run: ``.venv/bin/python -m bench memory``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

SIZES = (1_000_000,)
BIG = 10_000_000
BIG_ENV = "FEDCHAIN_BENCH_MEMORY_10M"
MEMBER_COUNTS = (10, 50)
MODES = ("streaming", "all-at-once")
GOAL = 1.2
#: Different encrypted updates the feeder makes; the others repeat them (the coordinator cannot tell).
DISTINCT = 10
#: Fresh coordinator processes per streaming measurement: the peak varies between runs (see :func:`run`).
REPEATS = int(os.environ.get("FEDCHAIN_BENCH_MEMORY_REPEATS", "2"))
ROOT = Path(__file__).resolve().parent.parent


def _domain() -> Any:
    from fedchain.identity.signing import NO_LEDGER, SigningDomain

    return SigningDomain(chain_id=1337, ledger_address=NO_LEDGER, run_id=1)


def _rss_kib() -> int:
    """Current resident set size (KiB), from /proc."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


# ------------------------------------------------------------------------------------------ feeder
def _updates(members: int, params: int) -> Iterator[tuple[int, np.ndarray]]:
    """Each member's example count and plaintext ``n * delta`` (the same in the feeder and the check).

    :data:`DISTINCT` different updates, taken in turn: member ``i`` sends update ``i % DISTINCT``.
    """
    rng = np.random.default_rng(15)
    distinct = [(n := int(rng.integers(50, 500)), n * rng.normal(0, 0.01, params)) for _ in range(DISTINCT)]
    for member_id in range(members):
        yield distinct[member_id % DISTINCT]


def feed(members: int, params: int, context_dir: Path, out: IO[bytes]) -> None:
    """Encrypt and sign each member's update and write it to ``out``: a JSON header, then the chunks."""
    from fedchain import crypto
    from fedchain.identity import address_of, simulated_member_key
    from fedchain.identity.signing import sign_digest, update_digest

    secret = crypto.load_member_context((context_dir / "member.ckks").read_bytes())
    encrypted: list[list[bytes]] = []
    for member_id, (n, update) in enumerate(_updates(members, params)):
        key = simulated_member_key(seed=0, member_id=member_id)
        address = address_of(key)
        if member_id < DISTINCT:
            encrypted.append(crypto.encrypt_update(secret, update))
        chunks = encrypted[member_id % DISTINCT]
        digest = update_digest(
            domain=_domain(),
            server_round=1,
            address=address,
            payload_hash=crypto.ciphertext_digest(chunks),
            num_examples=n,
            dp=None,
        )
        header = json.dumps(
            {
                "member_id": member_id,
                "address": address,
                "n": n,
                "signature": sign_digest(key, digest),
                "sizes": [len(c) for c in chunks],
            }
        ).encode()
        out.write(struct.pack(">I", len(header)) + header)
        for chunk in chunks:
            out.write(chunk)
        out.flush()


# ------------------------------------------------------------------------------------- coordinator
def _replies(stream: IO[bytes]) -> Iterator[Any]:
    """The feeder's updates as the pipeline's ``TrainReply`` values, one at a time as they arrive."""
    from fedchain.pipeline import TrainReply
    from fedchain.types import MemberRound

    while prefix := stream.read(4):
        header = json.loads(stream.read(struct.unpack(">I", prefix)[0]))
        chunks = tuple(stream.read(size) for size in header["sizes"])
        member = MemberRound(
            member_id=header["member_id"],
            address=header["address"],
            kind="honest",
            num_examples=header["n"],
            status="accepted",
        )
        yield TrainReply(header["member_id"], member, model_round=0, signature=header["signature"], chunks=chunks)
        del chunks  # not held while the next reply is read


class _NoEvaluation:
    def evaluate(self, outcome: Any) -> list[Any]:
        return []


def coordinator(mode: str, members: int, params: int, context_dir: Path) -> dict[str, Any]:
    """Aggregate ``members`` updates from a feeder process the ``mode`` way; return this process's memory."""
    from fedchain import crypto
    from fedchain.config import FedChainConfig
    from fedchain.contribution import create_scorer
    from fedchain.pipeline import EncryptedAggregation, RoundPipeline, validate
    from fedchain.types import ZERO_HASH

    public = crypto.load_coordinator_context((context_dir / "coordinator.ckks").read_bytes())
    config = FedChainConfig(members=members, he=True, dp=False, chain="none", norm_bound=0, min_members=2)
    model = {"w": np.zeros(params, np.float32)}
    aggregation = EncryptedAggregation(config, public, params, domain=_domain())
    base_kib = _rss_kib()
    feeder = subprocess.Popen(
        [sys.executable, "-m", "bench.bench_memory", "feed", str(members), str(params), str(context_dir)],
        stdout=subprocess.PIPE,
        cwd=ROOT,
    )
    assert feeder.stdout is not None
    started = time.perf_counter()
    if mode == "streaming":
        pipeline = RoundPipeline(
            config=config, scorer=create_scorer(config.scorer), aggregation=aggregation, domain=_domain()
        )
        done = pipeline.run(
            1, model=model, previous_hash=ZERO_HASH, replies=_replies(feeder.stdout), evaluation=_NoEvaluation()
        )
        assert done.outcome.aggregation is not None and done.outcome.aggregation.aggregate is not None
        kept, total = len(done.outcome.aggregation.kept), list(done.outcome.aggregation.aggregate.ciphertext or ())
    else:  # the coordinator before: every reply in memory, validated, then one sum over all of them
        replies = list(_replies(feeder.stdout))
        accepted, _ = validate(replies, server_round=1, model=model, domain=_domain(), registered=None)
        expected = crypto.chunk_count(params, crypto.context_slot_count(public))
        total, rejected = crypto.sum_encrypted_valid(public, [list(u.chunks or ()) for u in accepted], expected, params)
        kept = len(accepted) - len(rejected)
    seconds = time.perf_counter() - started
    if feeder.wait() != 0:
        raise RuntimeError(f"the feeder failed with exit status {feeder.returncode}")
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    aggregate = context_dir / f"aggregate-{mode}-{members}-{os.getpid()}.bin"  # the driver decrypts and checks it
    aggregate.write_bytes(b"".join(total))
    return {
        "mode": mode,
        "members": members,
        "params": params,
        "kept": kept,
        "aggregate_path": str(aggregate),
        "aggregate_sizes": [len(c) for c in total],
        "peak_rss_mib": peak_kib / 1024,
        "rss_before_replies_mib": base_kib / 1024,
        "peak_above_start_mib": (peak_kib - base_kib) / 1024,
        "seconds": seconds,
    }


# ------------------------------------------------------------------------------------------ driver
def _check(member: Any, row: dict[str, Any]) -> float:
    """Decrypt the aggregate a coordinator wrote; its largest error against the plaintext sum."""
    from fedchain import crypto

    data, chunks, offset = Path(row.pop("aggregate_path")).read_bytes(), [], 0
    for size in row.pop("aggregate_sizes"):
        chunks.append(data[offset : offset + size])
        offset += size
    expected = sum(update for _, update in _updates(row["members"], row["params"]))
    error = float(np.max(np.abs(crypto.decrypt_update(member, chunks, row["params"]) - expected)))
    if row["kept"] != row["members"] or error > 1e-2:
        raise RuntimeError(f"{row['mode']} x{row['members']}: kept {row['kept']}, error {error}")
    return error


def _measure(mode: str, members: int, params: int, context_dir: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.bench_memory", "coordinator", mode, str(members), str(params), str(context_dir)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=1800,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"coordinator {mode} x{members} failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _size(params: int, member: Any) -> dict[str, Any]:
    """Both modes at 10 and 50 members of ``params`` parameters, each in a fresh coordinator process."""
    from fedchain import crypto

    with tempfile.TemporaryDirectory(prefix="fedchain-bench-memory-") as tmp:
        context_dir = Path(tmp)
        (context_dir / "member.ckks").write_bytes(crypto.export_secret_context(member))
        (context_dir / "coordinator.ckks").write_bytes(crypto.export_public_context(member))
        rows = [
            _measure(mode, members, params, context_dir)
            for mode in MODES
            for members in MEMBER_COUNTS
            for _ in range(REPEATS if mode == "streaming" else 1)
        ]
        for row in rows:  # every aggregate decrypts to the members' plaintext sum
            row["max_abs_error"] = _check(member, row)
    # The streaming peak is the same from run to run but for an occasional higher one (seen here in
    # 3 of 17 runs with 50 members at 1M parameters: 214-257 MiB instead of 162, about one more
    # update's working set; cause not established, MALLOC_ARENA_MAX=2 did not remove it); the worst
    # of the repeats is checked against the goal.
    worst: dict[tuple[str, int], float] = {}
    for row in rows:
        key = (row["mode"], row["members"])
        worst[key] = max(worst.get(key, 0.0), row["peak_rss_mib"])
    low, high = MEMBER_COUNTS
    ratios = {mode: worst[mode, high] / worst[mode, low] for mode in MODES}
    best_streaming = {
        m: min(r["peak_rss_mib"] for r in rows if r["mode"] == "streaming" and r["members"] == m) for m in MEMBER_COUNTS
    }
    results = {
        "params": params,
        "member_counts": list(MEMBER_COUNTS),
        "streaming_repeats": REPEATS,
        "goal_peak_ratio": GOAL,
        "worst_peak_mib": {f"{mode} x{members}": peak for (mode, members), peak in worst.items()},
        "peak_ratio_high_over_low": ratios,
        "streaming_best_peak_ratio": best_streaming[high] / best_streaming[low],
        "goal_met": ratios["streaming"] <= GOAL,
        "streaming_vs_all_at_once_peak_at_high": worst["streaming", high] / worst["all-at-once", high],
        "runs": rows,
    }
    for row in rows:
        print(
            f"{params:,} params: {row['mode']:>12} x{row['members']:<3} peak RSS {row['peak_rss_mib']:8.1f} MiB "
            f"({row['peak_above_start_mib']:7.1f} above start), {row['seconds']:.1f} s"
        )
    for mode, ratio in ratios.items():
        print(f"{mode:>12}: worst peak {high}/{low} members = {ratio:.2f}")
    print(
        f"streaming best-run ratio {results['streaming_best_peak_ratio']:.2f}; goal <= {GOAL} "
        f"(worst runs): {results['goal_met']}"
    )
    return results


def run(out_dir: Path) -> dict[str, Any]:
    """Measure each size (10M only with ``FEDCHAIN_BENCH_MEMORY_10M=1``); write ``out_dir/memory.json``."""
    from fedchain import crypto

    member = crypto.create_secret_context(crypto.AGGREGATION)
    big = os.environ.get(BIG_ENV) == "1"
    sizes = [_size(params, member) for params in ([*SIZES, BIG] if big else SIZES)]
    results = {
        "member_counts": list(MEMBER_COUNTS),
        "goal_peak_ratio": GOAL,
        "goal_met": all(size["goal_met"] for size in sizes),
        "ten_million_ran": big,
        "ten_million_how": f"{BIG_ENV}=1",
        "sizes": sizes,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "memory.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return results


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="role", required=True)
    feeder = sub.add_parser("feed")
    coord = sub.add_parser("coordinator")
    coord.add_argument("mode", choices=MODES)
    for p in (feeder, coord):
        p.add_argument("members", type=int)
        p.add_argument("params", type=int)
        p.add_argument("context_dir", type=Path)
    args = parser.parse_args(argv)
    if args.role == "feed":
        feed(args.members, args.params, args.context_dir, sys.stdout.buffer)
    else:
        print(json.dumps(coordinator(args.mode, args.members, args.params, args.context_dir)))


if __name__ == "__main__":
    main(sys.argv[1:])
