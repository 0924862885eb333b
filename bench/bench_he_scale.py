"""Benchmark of HE at model scale (issue 15): upload size, encrypt / sum / decrypt time, error.

At about 1M values (and 10M with ``FEDCHAIN_BENCH_HE_10M=1``: about 3 minutes and 2 GB more), with
the ``AGGREGATION`` parameters:

* upload bytes / float32 bytes: *before* is TenSEAL's ``CKKSVector`` serialization (what members
  sent until issue 15), *after* is the seeded upload :func:`fedchain.crypto.encrypt_update` makes;
* seconds per million values: encrypt (one member), sum of 10 members (:class:`EncryptedSum`, as the
  coordinator does), decrypt (one member), each serial (``workers=1``), with a thread pool of
  ``os.cpu_count()`` workers over the chunks (to show that TenSEAL/SEAL hold the GIL), and with
  forked worker processes, one per usable core (``workers=None``: what a member does by default,
  :mod:`fedchain.crypto._parallel`), with the speed-up of processes over serial;
* the error of the decrypted FedAvg against plaintext FedAvg, on 10 distinct members' updates, and
  on a real CNN update when the ``mnist-cnn`` task is there (weights after one local epoch on a
  member's MNIST shard minus the initial ones).

Writes ``out_dir/he_scale.json``. Run: ``.venv/bin/python -m bench he_scale``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import tenseal as ts

from fedchain import crypto
from fedchain.crypto._parallel import PARALLEL_MIN_CHUNKS, usable_cores
from fedchain.crypto._seeded import SeededEncryptor

MEMBERS = 10
SIZES = (1_000_000,)
BIG = 10_000_000


def _timed(fn: Callable[[], Any], repeats: int = 1) -> tuple[float, Any]:
    """Best wall time of ``repeats`` runs (the machine is shared: the best is the least disturbed)."""
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def _padded_chunks(flat: np.ndarray, slots: int) -> list[np.ndarray]:
    padded = np.zeros(crypto.chunk_count(flat.size, slots) * slots)
    padded[: flat.size] = flat
    return [padded[start : start + slots] for start in range(0, padded.size, slots)]


def _encrypt_before(ctx: ts.Context, flat: np.ndarray) -> list[bytes]:
    """The pre-issue-15 upload: TenSEAL's own (unseeded) serialization of each chunk."""
    return [bytes(ts._ts_cpp.CKKSVector(ctx.data, c.tolist()).serialize()) for c in _padded_chunks(flat, 4096)]


def _encrypt_threads(ctx: ts.Context, flat: np.ndarray, workers: int) -> list[bytes]:
    encryptor = SeededEncryptor(ctx)
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(encryptor.encrypt, _padded_chunks(flat, encryptor.slots)))


def _decrypt_threads(ctx: ts.Context, chunks: Sequence[bytes], length: int, workers: int) -> np.ndarray:
    def one(data: bytes) -> np.ndarray:
        return np.asarray(ts.ckks_vector_from(ctx, data).decrypt(), dtype=np.float64)

    with ThreadPoolExecutor(workers) as pool:
        return np.concatenate(list(pool.map(one, chunks)))[:length]


def _sum(coordinator: ts.Context, uploads: Sequence[Sequence[bytes]], length: int) -> list[bytes]:
    running = crypto.EncryptedSum(coordinator, expected_chunks=len(uploads[0]), expected_length=length)
    for upload in uploads:
        running.add(upload)
    return running.result()


def _size(member: ts.Context, coordinator: ts.Context, length: int, distinct: int, repeats: int) -> dict[str, Any]:
    rng = np.random.default_rng(length)
    workers = os.cpu_count() or 1
    cores = usable_cores()
    per_m = 1e6 / length
    counts = rng.integers(50, 500, size=MEMBERS).astype(np.float64)
    deltas = [rng.normal(0, 0.01, size=length).astype(np.float32) for _ in range(distinct)]
    scaled = [counts[i] * deltas[i].astype(np.float64) for i in range(distinct)]
    before_s, before = _timed(lambda: _encrypt_before(member, scaled[0]), repeats)
    encrypt_s, first = _timed(lambda: crypto.encrypt_update(member, scaled[0], workers=1), repeats)
    threads_s, threaded = _timed(lambda: _encrypt_threads(member, scaled[0], workers), repeats)
    processes_s, forked = _timed(lambda: crypto.encrypt_update(member, scaled[0], workers=cores), repeats)
    assert len(threaded) == len(first) == len(forked)
    uploads = [first] + [crypto.encrypt_update(member, scaled[i]) for i in range(1, distinct)]
    members = [uploads[i % distinct] for i in range(MEMBERS)]
    float32_bytes = 4 * length
    before_bytes, after_bytes = sum(map(len, before)), sum(map(len, first))
    sum_before_s, _ = _timed(lambda: _sum(coordinator, [before] * MEMBERS, length), repeats)
    before = []  # free it before the big sums
    sum_s, total = _timed(lambda: _sum(coordinator, members, length), repeats)
    decrypt_s, weighted = _timed(lambda: crypto.decrypt_update(member, total, length, workers=1), repeats)
    decrypt_threads_s, again = _timed(lambda: _decrypt_threads(member, total, length, workers), repeats)
    decrypt_processes_s, forked_values = _timed(
        lambda: crypto.decrypt_update(member, total, length, workers=cores), repeats
    )
    assert np.array_equal(weighted, again) and np.array_equal(weighted, forked_values)
    # member i sends the encryption of scaled[i % distinct] (distinct < MEMBERS reuses uploads)
    plain = np.sum([scaled[i % distinct] for i in range(MEMBERS)], axis=0)
    weight = float(sum(counts[i % distinct] for i in range(MEMBERS)))
    return {
        "values": length,
        "chunks": len(first),
        "members": MEMBERS,
        "distinct_member_updates": distinct,
        "float32_bytes": float32_bytes,
        "upload_bytes_before": before_bytes,
        "upload_bytes_after": after_bytes,
        "upload_ratio_before": before_bytes / float32_bytes,
        "upload_ratio_after": after_bytes / float32_bytes,
        "upload_ratio_target": 4.0,
        "upload_ratio_met": after_bytes / float32_bytes <= 4.0,
        "sum_bytes": sum(map(len, total)),
        "encrypt_s_per_M_before": before_s * per_m,
        "encrypt_s_per_M": encrypt_s * per_m,
        "encrypt_s_per_M_threads": threads_s * per_m,
        "encrypt_s_per_M_processes": processes_s * per_m,
        "encrypt_speedup_processes": encrypt_s / processes_s,
        "sum_10_s_per_M_before": sum_before_s * per_m,
        "sum_10_s_per_M": sum_s * per_m,
        "decrypt_s_per_M": decrypt_s * per_m,
        "decrypt_s_per_M_threads": decrypt_threads_s * per_m,
        "decrypt_s_per_M_processes": decrypt_processes_s * per_m,
        "decrypt_speedup_processes": decrypt_s / decrypt_processes_s,
        "threads": workers,
        "processes": cores if len(first) >= PARALLEL_MIN_CHUNKS else 1,
        "repeats": repeats,
        "load_average_1min": os.getloadavg()[0],
        "max_abs_error_weighted_sum": float(np.max(np.abs(weighted - plain))),
        "max_abs_error_fedavg": float(np.max(np.abs(weighted / weight - plain / weight))),
        "fedavg_error_bound": 1e-5 * MEMBERS / weight,
    }


def _cnn_update() -> tuple[str, np.ndarray]:
    """A real CNN update (one local epoch on a member's shard) when the task exists, else a synthetic one."""
    try:
        import torch

        from fedchain.serialization import flatten
        from fedchain.tasks import get_task

        task = get_task("mnist-cnn")
        model = task.build_model(seed=0)
        start = flatten(task.get_weights(model))
        data = task.load_demo(0, 10)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        x, y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
        model.train()
        for first in range(0, len(y), 32):
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x[first : first + 32]), y[first : first + 32])
            loss.backward()
            optimizer.step()
        return f"mnist-cnn, one local epoch on {len(y)} examples", flatten(task.get_weights(model)) - start
    except Exception as exc:  # the task is another helper's work in progress: fall back, and say so
        rng = np.random.default_rng(7)
        return f"synthetic conv-shaped update ({type(exc).__name__}: {exc})", rng.normal(0, 0.02, 20_586)


def _cnn(member: ts.Context, coordinator: ts.Context) -> dict[str, Any]:
    source, delta = _cnn_update()
    rng = np.random.default_rng(11)
    counts = rng.integers(50, 500, size=MEMBERS).astype(np.float64)
    # members' updates: the real one, perturbed per member (different data would move it differently)
    deltas = [delta.astype(np.float64) * rng.uniform(0.5, 1.5, delta.size) for _ in range(MEMBERS)]
    scaled = [n * d for n, d in zip(counts, deltas, strict=True)]
    total = _sum(coordinator, [crypto.encrypt_update(member, x) for x in scaled], delta.size)
    weighted = crypto.decrypt_update(member, total, delta.size)
    plain = np.sum(scaled, axis=0)
    weight = float(counts.sum())
    fedavg_error = float(np.max(np.abs(weighted / weight - plain / weight)))
    return {
        "source": source,
        "values": int(delta.size),
        "max_abs_update": float(np.max(np.abs(delta))),
        "max_abs_error_fedavg": fedavg_error,
        "relative_error_fedavg": fedavg_error / float(np.max(np.abs(plain / weight))),
        "fedavg_error_bound": 1e-5 * MEMBERS / weight,
    }


def run(out_dir: Path) -> dict[str, Any]:
    """Measure and write ``out_dir/he_scale.json``; returns the figures."""
    member = crypto.create_secret_context(crypto.AGGREGATION)
    coordinator = crypto.load_coordinator_context(crypto.export_public_context(member))
    sizes = [_size(member, coordinator, length, distinct=MEMBERS, repeats=3) for length in SIZES]
    if os.environ.get("FEDCHAIN_BENCH_HE_10M") == "1":
        sizes.append(_size(member, coordinator, BIG, distinct=2, repeats=1))
    results = {"sizes": sizes, "cnn": _cnn(member, coordinator), "big_size_run": len(sizes) > len(SIZES)}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "he_scale.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    _print(results)
    return results


def _print(results: dict[str, Any]) -> None:
    for s in results["sizes"]:
        print(
            f"{s['values']:,} values ({s['chunks']} chunks): upload {s['upload_ratio_before']:.2f}x -> "
            f"{s['upload_ratio_after']:.2f}x float32 "
            f"(after / before {s['upload_bytes_after'] / s['upload_bytes_before']:.3f})"
        )
        print(
            f"  s per 1M values: encrypt {s['encrypt_s_per_M_before']:.3f} before, {s['encrypt_s_per_M']:.3f} seeded, "
            f"{s['encrypt_s_per_M_threads']:.3f} with {s['threads']} threads | sum of {s['members']}: "
            f"{s['sum_10_s_per_M_before']:.3f} before, {s['sum_10_s_per_M']:.3f} seeded | decrypt "
            f"{s['decrypt_s_per_M']:.3f}, {s['decrypt_s_per_M_threads']:.3f} with threads"
        )
        print(
            f"  with {s['processes']} worker processes (s per 1M values): encrypt {s['encrypt_s_per_M_processes']:.3f} "
            f"(x{s['encrypt_speedup_processes']:.2f} vs serial), decrypt {s['decrypt_s_per_M_processes']:.3f} "
            f"(x{s['decrypt_speedup_processes']:.2f}); load average {s['load_average_1min']:.1f}"
        )
        print(
            f"  FedAvg error {s['max_abs_error_fedavg']:.2e} (bound {s['fedavg_error_bound']:.2e}), "
            f"weighted sum error {s['max_abs_error_weighted_sum']:.2e}"
        )
    c = results["cnn"]
    print(
        f"CNN ({c['source']}, {c['values']:,} values): FedAvg error {c['max_abs_error_fedavg']:.2e} "
        f"(relative {c['relative_error_fedavg']:.1e}, bound {c['fedavg_error_bound']:.2e})"
    )


if __name__ == "__main__":
    run(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent / "results")
