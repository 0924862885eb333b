"""Benchmark of fedchain's homomorphic encryption (issue 4): sizes, times, linearity.

Writes ``out_dir/he.json``. Run: ``.venv/bin/python bench/bench_he.py [OUT_DIR]`` (default
``bench/results``).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from fedchain import crypto

PARAMS = 100_000
MEMBER_COUNTS = (10, 25, 50, 100)


def _best_of(fn: Callable[[], Any], repeats: int = 3) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def _preset(name: str, params: crypto.CkksParams, rng: np.random.Generator) -> dict[str, Any]:
    member = crypto.create_secret_context(params)
    public = crypto.export_public_context(member)
    coordinator = crypto.load_coordinator_context(public)
    flat = (rng.normal(size=PARAMS) * 0.01).astype(np.float32)
    weight = 250.0
    encrypt_s, chunks = _best_of(lambda: crypto.encrypt_update(member, weight * flat.astype(np.float64)))
    upload = sum(len(c) for c in chunks)
    plain = flat.nbytes
    expected = len(chunks)
    # ten independent encryptions (identical copies would add their noise coherently)
    uploads = [chunks] + [crypto.encrypt_update(member, weight * flat.astype(np.float64)) for _ in range(9)]
    aggregate_10_s, total = _best_of(lambda: crypto.sum_encrypted(coordinator, uploads, expected, PARAMS))
    decrypt_s, result = _best_of(lambda: crypto.decrypt_update(member, total, PARAMS))
    error = float(np.max(np.abs(result - 10 * weight * flat.astype(np.float64))))
    figures: dict[str, Any] = {
        "poly_modulus_degree": params.poly_modulus_degree,
        "coeff_mod_bit_sizes": list(params.coeff_mod_bit_sizes),
        "global_scale_bits": params.global_scale_bits,
        "params": PARAMS,
        "chunks": expected,
        "upload_bytes_per_member": upload,
        "plaintext_float32_bytes": plain,
        "upload_ratio": upload / plain,
        "upload_ratio_target": 4.0,
        "upload_ratio_met": upload / plain <= 4.0,
        "public_context_bytes": len(public),
        "encrypt_s_per_100k": encrypt_s * 100_000 / PARAMS,
        "aggregate_10_members_s_per_100k": aggregate_10_s * 100_000 / PARAMS,
        "decrypt_s_per_100k": decrypt_s * 100_000 / PARAMS,
        "max_abs_error_sum_of_10": error,
    }
    if name == "aggregation":
        scaling = {}
        for members in MEMBER_COUNTS:
            many: list[list[bytes]] = [chunks] * members

            def aggregate(many: list[list[bytes]] = many) -> list[bytes]:
                return crypto.sum_encrypted(coordinator, many, expected)

            seconds, _ = _best_of(aggregate, 2)
            scaling[str(members)] = {"aggregate_s": seconds, "s_per_member": seconds / members}
        per_member = [v["s_per_member"] for v in scaling.values()]
        figures["aggregate_scaling"] = scaling
        figures["aggregate_linearity_max_over_min"] = max(per_member) / min(per_member)
    if params.galois_keys:
        other = crypto.encrypt_update(member, (rng.normal(size=PARAMS) * 2.5).astype(np.float64))
        dot_s, dot = _best_of(lambda: crypto.encrypted_dot(coordinator, chunks, other), 2)
        got = crypto.decrypt_scalars(member, dot, 1)[0]
        want = float((weight * flat.astype(np.float64)) @ crypto.decrypt_update(member, other, PARAMS))
        pack_s, packed = _best_of(lambda: crypto.pack_scalars(coordinator, [dot] * 10), 2)
        figures.update(
            {
                "encrypted_dot_s_per_member_100k": dot_s,
                "encrypted_dot_relative_error": abs(got - want) / abs(want),
                "dot_ciphertext_bytes": len(dot),
                "pack_10_scalars_s": pack_s,
                "packed_ciphertext_bytes": len(packed),
            }
        )
    return figures


def run(out_dir: Path) -> dict[str, Any]:
    """Measure both presets and write ``out_dir/he.json``; returns the figures."""
    rng = np.random.default_rng(0)
    results = {
        "aggregation": _preset("aggregation", crypto.AGGREGATION, rng),
        "scoring": _preset("scoring", crypto.SCORING, rng),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "he.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return results


def _print(results: dict[str, Any]) -> None:
    rows = [
        ("upload MB / member", "upload_bytes_per_member", 1e-6),
        ("ratio vs float32", "upload_ratio", 1.0),
        ("public context MB", "public_context_bytes", 1e-6),
        ("encrypt s /100k", "encrypt_s_per_100k", 1.0),
        ("sum of 10 s /100k", "aggregate_10_members_s_per_100k", 1.0),
        ("decrypt s /100k", "decrypt_s_per_100k", 1.0),
        ("max |error|, sum of 10", "max_abs_error_sum_of_10", 1.0),
    ]
    print(f"{'':26}{'AGGREGATION':>14}{'SCORING':>14}")
    for label, key, factor in rows:
        a, s = results["aggregation"][key] * factor, results["scoring"][key] * factor
        print(f"{label:26}{a:14.4g}{s:14.4g}")
    scaling = results["aggregation"]["aggregate_scaling"]
    print(
        "aggregate (AGGREGATION): "
        + ", ".join(
            f"{m} members {v['aggregate_s']:.3f}s ({1000 * v['s_per_member']:.2f} ms/member)"
            for m, v in scaling.items()
        )
    )
    print(f"linearity: max/min time per member = {results['aggregation']['aggregate_linearity_max_over_min']:.2f}")
    sc = results["scoring"]
    print(
        f"encrypted dot (SCORING, 100k): {sc['encrypted_dot_s_per_member_100k']:.3f} s/member, "
        f"relative error {sc['encrypted_dot_relative_error']:.1e}; pack 10 scalars {sc['pack_10_scalars_s']:.3f} s"
    )
    agg = results["aggregation"]
    print(
        f"upload ratio AGGREGATION {agg['upload_ratio']:.2f}x (target <= 4x: {agg['upload_ratio_met']}), "
        f"SCORING {sc['upload_ratio']:.2f}x"
    )


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent / "results"
    _print(run(target))
