"""Benchmark: the cost of a committee that is not a decryption oracle (issue 14), per member-round.

One round of encrypted scoring with the norm bound and the cosine scorer (``MEMBERS`` members,
``PARAMETERS`` parameters, SCORING, a committee of 2), in process, with the real pieces:

* **baseline** (measured in the same run): the scoring the coordinator did before, without checks:
  ``build_scalar_requests`` (encrypted inner products and packing), two committee members'
  ``answer_scalar_requests`` and ``reconcile``, for the two exchanges (squared norms, then dot
  products and ``||S||^2``);
* **committee checks**: per committee member and exchange, parsing the labelled request,
  ``check_request`` (round, exchange, quota), the request hash and the EIP-191 signature of the answer;
  on the coordinator, recovering each signer, and building the revealed scalars and their commitment;
* **member verification**: per member, keeping its update ``a_i`` (safetensors) and reading it
  back, parsing the revealed scalars, recomputing the commitment, recovering every committee
  signature and ``check_own_scalars`` (two inner products with the decrypted sum).

CPU seconds per member-round (``time.process_time``), medians over ``REPEATS``; wall seconds too,
with the load average, because the machine is shared. Ratios are against the baseline.
Writes ``out_dir/committee.json``. Run: ``.venv/bin/python -m bench committee``.
"""

from __future__ import annotations

import json
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

from fedchain import crypto
from fedchain.contribution import reconcile
from fedchain.contribution.committee import (
    CommitteeRequest,
    RevealedExchange,
    RevealedScalars,
    SignedAnswer,
    canonical_json,
    check_own_scalars,
    check_request,
    request_shape,
)
from fedchain.crypto import answer_scalar_requests, build_scalar_requests
from fedchain.identity import address_of, simulated_member_key
from fedchain.identity.signing import NO_LEDGER, SigningDomain, recover_signer, scalars_digest, sign_digest
from fedchain.serialization import load_model, save_model

MEMBERS = 10
PARAMETERS = 100_000
COMMITTEE = 2
REPEATS = 3
DOMAIN = SigningDomain(chain_id=1337, ledger_address=NO_LEDGER, run_id=1)


def _timed(action: Callable[[], Any]) -> tuple[Any, float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    result = action()
    return result, time.process_time() - cpu, time.perf_counter() - wall


def _round(ctx: Any, other: Any, public: Any, updates: dict[str, np.ndarray], keys: dict[str, bytes]) -> dict[str, Any]:
    chunks = {address: crypto.encrypt_update(ctx, a) for address, a in updates.items()}
    total = crypto.sum_encrypted(public, list(chunks.values()), expected_chunks=crypto.chunk_count(PARAMETERS, 4096))
    members = list(updates)
    committee = members[:COMMITTEE]
    contexts = {committee[0]: ctx, committee[1]: other}

    def baseline() -> list[tuple[list[Any], dict[str, list[list[float]]]]]:
        exchanges = []
        for requests in (
            build_scalar_requests(public, chunks, None),
            build_scalar_requests(public, chunks, total, sq_norms=False),
        ):
            answers = {c: answer_scalar_requests(contexts[c], requests) for c in committee}
            reconcile(requests, answers)
            exchanges.append((requests, answers))
        return exchanges

    exchanges, base_cpu, base_wall = _timed(baseline)

    def committee_checks() -> RevealedScalars:
        revealed = []
        answered: dict[int, Any] = {}
        for number, (requests, answers) in enumerate(exchanges, start=1):
            request = CommitteeRequest(1, number, tuple(requests))
            signed = []
            for member in committee:  # each committee member: check, hash, sign
                check_request(request, current_round=1, cohort=MEMBERS, answered=answered)
                digest = scalars_digest(
                    domain=DOMAIN,
                    server_round=1,
                    exchange=number,
                    request_hash=request.request_hash,
                    values=answers[member],
                )
                signature = sign_digest(keys[member], digest)
                assert recover_signer(digest, signature) == member  # the coordinator's check
                signed.append(SignedAnswer(member, tuple(tuple(v) for v in answers[member]), signature))
            answered[number] = request_shape(requests)
            revealed.append(RevealedExchange(number, tuple(request.labels()), tuple(signed)))
        result = RevealedScalars(1, tuple(revealed))
        _ = result.commitment
        return result

    revealed, checks_cpu, checks_wall = _timed(committee_checks)
    wire = canonical_json(revealed.to_json()).decode()
    commitment = revealed.commitment
    plain_sum = np.sum(list(updates.values()), axis=0)

    def verify_all() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            for address, update in updates.items():  # every member, on its own node
                path = Path(tmp) / f"{address}.safetensors"
                save_model(path, {"update": update})
                kept = load_model(path)["update"]
                parsed = RevealedScalars.from_json(json.loads(wire))
                assert parsed.commitment == commitment
                for exchange in parsed.exchanges:
                    request_hash = exchange.request_hash(1)
                    for answer in exchange.answers:
                        digest = scalars_digest(
                            domain=DOMAIN,
                            server_round=1,
                            exchange=exchange.exchange,
                            request_hash=request_hash,
                            values=[list(row) for row in answer.values],
                        )
                        assert recover_signer(digest, answer.signature) == answer.signer
                problems = check_own_scalars(parsed, address=address, update=kept, total=plain_sum)
                assert not problems, problems

    _, verify_cpu, verify_wall = _timed(verify_all)
    return {
        "baseline_cpu_s": base_cpu,
        "baseline_wall_s": base_wall,
        "checks_cpu_s": checks_cpu,
        "checks_wall_s": checks_wall,
        "verify_cpu_s": verify_cpu,
        "verify_wall_s": verify_wall,
        "revealed_scalars": revealed.scalar_count,
        "revealed_bytes": len(wire),
    }


def run(out_dir: Path) -> dict[str, Any]:
    """Measure and write ``out_dir/committee.json``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ctx = crypto.create_secret_context(crypto.SCORING)
    other = crypto.load_member_context(crypto.export_secret_context(ctx))
    public = crypto.load_coordinator_context(crypto.export_public_context(ctx))
    keys = {address_of(k): k for k in (simulated_member_key(seed=0, member_id=i) for i in range(MEMBERS))}
    rng = np.random.default_rng(0)
    direction = rng.normal(size=PARAMETERS) * 0.01
    runs = []
    for _ in range(REPEATS):
        updates = {
            address: float(rng.integers(50, 400)) * (direction + rng.normal(size=PARAMETERS) * 0.005)
            for address in keys
        }
        runs.append(_round(ctx, other, public, updates, keys))
    median = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
    per_member = {
        key.replace("_s", "_s_per_member_round"): median[key] / MEMBERS for key in median if key.endswith("_s")
    }
    results = {
        "machine": {"python": platform.python_version(), "processor": platform.machine(), "cores": os.cpu_count()},
        "load_average_1min": os.getloadavg()[0],
        "setup": {
            "members": MEMBERS,
            "parameters": PARAMETERS,
            "committee": COMMITTEE,
            "exchanges": 2,
            "repeats": REPEATS,
            "parameters_ckks": "SCORING",
        },
        "revealed_scalars_per_round": int(median["revealed_scalars"]),
        "revealed_json_bytes": int(median["revealed_bytes"]),
        **{key: round(value, 6) for key, value in per_member.items()},
        "ratio_checks_to_scoring_cpu": round(median["checks_cpu_s"] / median["baseline_cpu_s"], 5),
        "ratio_verification_to_scoring_cpu": round(median["verify_cpu_s"] / median["baseline_cpu_s"], 5),
        "ratio_checks_and_verification_to_scoring_cpu": round(
            (median["checks_cpu_s"] + median["verify_cpu_s"]) / median["baseline_cpu_s"], 5
        ),
        "runs": runs,
        "notes": (
            "baseline: encrypted inner products, packing, two committee members' decryption and reconciliation "
            "for the two exchanges (norm bound + cosine), measured in the same run; checks: request validation, "
            "request hash, EIP-191 signing and the coordinator's signer recovery, revealed scalars and commitment; "
            "verification: per member, keeping and reading a_i (safetensors), parsing, commitment, 4 signature "
            "recoveries and its own scalars against the decrypted sum"
        ),
    }
    (out_dir / "committee.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return results


if __name__ == "__main__":
    print(json.dumps(run(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "results"), indent=2))
