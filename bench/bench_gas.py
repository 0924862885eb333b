"""Gas of record + reward per member-round on the embedded chain (eth-tester / py-evm, Prague).

Measures ``recordRound`` at 1, 10, 50 and 100 members in steady state (each size first records a
warm-up round with the same members, so every member already holds a reward credit), fits
``gas = fixed + per_member * N`` by least squares, and reports per member-round gas at each size
as ``(gas(N) - fixed) / N`` and as ``gas(N) / N``, against the 15,000 target. Then finds the
largest N whose round fits a 30M block: a fit including large rounds (memory cost is slightly
super-linear) predicts it, and one real transaction with a 30M gas limit at that N verifies it
(and the next size up is checked to exceed 30M by ``eth_estimateGas``). Every round carries a
scalars commitment and every member-round a status (accepted here: the status word is paid for
whatever its value). Also measures ``recordSpends`` (privacy spends found after their round) at 1
and 10 members and one ``fileDispute``.

Run: ``python -m bench gas`` or ``python bench/bench_gas.py [OUT_DIR]``; writes ``OUT_DIR/gas.json``.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

from eth_account import Account

from fedchain.identity.signing import dispute_digest, sign_digest
from fedchain.ledger import Web3Ledger, connect
from fedchain.types import Dispute, DPParams, MemberRoundRecord, RoundRecord

TARGET_GAS_PER_MEMBER_ROUND = 15_000
BLOCK_GAS_LIMIT = 30_000_000
OSAKA_TX_GAS_CAP = 2**24  # EIP-7825: per-transaction cap from the Osaka fork on
SIZES = (1, 10, 50, 100)
LARGE_SIZES = (1000, 2000)
MAX_SEARCH_STEPS = 6
POOL_WEI = 10**21


def _addresses(n: int) -> list[str]:
    keys = (hashlib.sha256(f"bench-member-{i}".encode()).digest() for i in range(n))
    return [Account.from_key(k).address for k in keys]


class _Rounds:
    """Builds consecutive round records with realistic scores, DP parameters and epsilons."""

    def __init__(self, ledger: Web3Ledger) -> None:
        self.ledger = ledger
        self.rng = random.Random(0)
        self.previous = "0x" + "00" * 32

    def next(self, members: list[str]) -> RoundRecord:
        n = self.ledger.last_round() + 1
        model = "0x" + hashlib.sha256(f"model-{n}".encode()).hexdigest()
        record = RoundRecord(
            server_round=n,
            aggregate_hash="0x" + hashlib.sha256(f"agg-{n}".encode()).hexdigest(),
            model_hash=model,
            previous_model_hash=self.previous,
            members=tuple(
                MemberRoundRecord(
                    address=a,
                    score=self.rng.uniform(0.0, 1.0),
                    dp=DPParams(
                        noise_multiplier=round(self.rng.uniform(0.8, 1.5), 6),
                        sample_rate=round(self.rng.uniform(0.005, 0.05), 6),
                        steps=self.rng.randint(50, 500),
                        max_grad_norm=1.0,
                        delta=1e-5,
                    ),
                    epsilon=self.rng.uniform(0.5, 8.0),
                )
                for a in members
            ),
            reward_pool_wei=POOL_WEI,
            update_merkle_root="0x" + hashlib.sha256(f"root-{n}".encode()).hexdigest(),
            scalars_commitment="0x" + hashlib.sha256(f"scalars-{n}".encode()).hexdigest(),
        )
        self.previous = model
        return record


def _fit(points: list[tuple[int, int]]) -> tuple[float, float]:
    """Least-squares line through (n, gas): returns (intercept, slope)."""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)
    return my - slope * mx, slope


def _fit_quadratic(points: list[tuple[int, int]]) -> tuple[float, float, float]:
    """Exact least squares for gas = a + b n + c n^2 (normal equations, 3x3)."""
    s = [sum(n**k for n, _ in points) for k in range(5)]
    t = [sum(g * n**k for n, g in points) for k in range(3)]
    m = [[s[0], s[1], s[2], t[0]], [s[1], s[2], s[3], t[1]], [s[2], s[3], s[4], t[2]]]
    for i in range(3):
        pivot = m[i][i]
        m[i] = [v / pivot for v in m[i]]
        for j in range(3):
            if j != i:
                factor = m[j][i]
                m[j] = [vj - factor * vi for vj, vi in zip(m[j], m[i], strict=True)]
    return m[0][3], m[1][3], m[2][3]


def _largest_n(a: float, b: float, c: float, limit: int) -> int:
    n = 1
    while a + b * (n + 1) + c * (n + 1) ** 2 <= limit:
        n += 1
    return n


def _record_raw(ledger: Web3Ledger, record: RoundRecord, *, gas: int) -> dict[str, Any]:
    """Send recordRound with a fixed gas limit (no estimate), return status and gas used."""
    w3 = ledger.chain.w3
    call = ledger.ledger_contract.functions.recordRound(*ledger.encode_round(record))
    tx_hash = call.transact({"from": ledger.chain.address, "gas": gas})
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash)
    return {"status": int(receipt["status"]), "gas_used": int(receipt["gasUsed"])}


def _spends_and_dispute(ledger: Web3Ledger, pool: list[str], rounds: _Rounds) -> tuple[dict[int, int], int]:
    """Gas of ``recordSpends`` with 1 and 10 late members, and of one ``fileDispute`` of a recorded round."""
    last = ledger.last_round()
    spends: dict[int, int] = {}
    for n in (1, 10):
        entries = [
            MemberRoundRecord(address=a, score=0.0, dp=m.dp, epsilon=m.epsilon, status="late")
            for a, m in zip(pool[:n], rounds.next(pool[:n]).members, strict=True)
        ]
        spends[n] = ledger.record_spends(last, entries).gas_used
    rounds.previous = ledger.get_round(last).model_hash  # the records built above were never sent
    key = hashlib.sha256(b"bench-disputer").digest()
    member = Account.from_key(key).address
    ledger.register_members([member])
    commitment = "0x" + "5c" * 32
    digest = dispute_digest(
        chain_id=ledger.chain_id, ledger_address=ledger.address, server_round=1, scalars_commitment=commitment
    )
    # Round 1 is already recorded: the dispute is kept but withholds nothing measured later.
    dispute_gas = ledger.file_dispute(Dispute(1, member, commitment, sign_digest(key, digest))).gas_used
    return spends, dispute_gas


def run(out_dir: Path) -> dict[str, Any]:
    """Measure, write ``out_dir/gas.json`` and return the figures."""
    started = time.perf_counter()
    chain = connect("embedded")
    ledger = Web3Ledger.deploy(chain)
    rounds = _Rounds(ledger)
    pool = _addresses(max(SIZES))
    ledger.register_members(pool)

    measured: dict[int, int] = {}
    for n in SIZES:
        members = pool[:n]
        ledger.record_round(rounds.next(members))  # warm-up: members now hold credit
        measured[n] = ledger.record_round(rounds.next(members)).gas_used
    fixed, per_member = _fit([(n, g) for n, g in measured.items()])
    spends, dispute_gas = _spends_and_dispute(ledger, pool, rounds)
    per_size = {
        str(n): {
            "gas": g,
            "gas_per_member_round": round((g - fixed) / n, 1),
            "gas_per_member_round_all_in": round(g / n, 1),
            "ratio_vs_target": round((g - fixed) / n / TARGET_GAS_PER_MEMBER_ROUND, 3),
        }
        for n, g in measured.items()
    }

    # Large rounds: register in batches, then one steady-state round per size for the fit.
    largest = max(LARGE_SIZES)
    big_pool = pool + _addresses(largest * 4)[len(pool) :]
    registered = len(pool)

    def ensure_registered(count: int) -> None:
        nonlocal registered
        while registered < count:
            batch = big_pool[registered : min(count, registered + 400)]
            ledger.register_members(batch)
            registered += len(batch)

    ensure_registered(largest)
    large: dict[int, int] = {}
    for n in LARGE_SIZES:
        large[n] = ledger.record_round(rounds.next(big_pool[:n])).gas_used
    a, b, c = _fit_quadratic([*measured.items(), *large.items()])
    predicted_max = _largest_n(a, b, c, BLOCK_GAS_LIMIT)
    # Verify with real transactions carrying a 30M gas limit: N must succeed and N + 1 must run out of gas.
    ensure_registered(predicted_max + MAX_SEARCH_STEPS + 1)

    def attempt(n: int) -> dict[str, Any]:
        saved = rounds.previous
        outcome = _record_raw(ledger, rounds.next(big_pool[:n]), gas=BLOCK_GAS_LIMIT)
        if outcome["status"] != 1:
            rounds.previous = saved  # the failed round changed nothing on chain
        return {"members": n, **outcome}

    trials = []
    n = predicted_max
    for _ in range(MAX_SEARCH_STEPS):
        trials.append(attempt(n))
        if trials[-1]["status"] != 1:
            n -= 1
            continue
        trials.append(attempt(n + 1))
        if trials[-1]["status"] != 1:
            break
        n += 1
    fits = {t["members"] for t in trials if t["status"] == 1}
    fails = {t["members"] for t in trials if t["status"] != 1}
    max_verified = max(fits) if fits else None
    verified = max_verified is not None and max_verified + 1 in fails
    result: dict[str, Any] = {
        "chain": "embedded eth-tester 0.14.0b1 / py-evm 0.12.1b1 (Prague)",
        "design": (
            "pull payments: packed registration+credit word per member; one mint per round; "
            "per member-round status and per round scalars commitment"
        ),
        "target_gas_per_member_round": TARGET_GAS_PER_MEMBER_ROUND,
        "fixed_gas_per_round": round(fixed),
        "marginal_gas_per_member_round": round(per_member, 1),
        "marginal_ratio_vs_target": round(per_member / TARGET_GAS_PER_MEMBER_ROUND, 3),
        "steady_state": per_size,
        "meets_target": all(v["gas_per_member_round"] <= TARGET_GAS_PER_MEMBER_ROUND for v in per_size.values()),
        "record_spends_gas": {str(n): g for n, g in spends.items()},
        "record_spends_gas_per_member": round((spends[10] - spends[1]) / 9, 1),
        "file_dispute_gas": dispute_gas,
        "large_rounds_gas": {str(n): g for n, g in large.items()},
        "fit_gas_a_plus_bn_plus_cn2": {"a": round(a), "b": round(b, 2), "c": round(c, 5)},
        "block_gas_limit": BLOCK_GAS_LIMIT,
        "fits_100_members": measured[100] <= BLOCK_GAS_LIMIT,
        "max_members_per_round_predicted": predicted_max,
        "max_members_per_round": max_verified,
        "max_members_verified": verified,
        "max_members_trials": trials,
        "max_members_under_osaka_tx_cap_predicted": _largest_n(a, b, c, OSAKA_TX_GAS_CAP),
        "seconds": round(time.perf_counter() - started, 1),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "gas.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def _print(result: dict[str, Any]) -> None:
    target = result["target_gas_per_member_round"]
    print(
        f"fixed per round: {result['fixed_gas_per_round']:,} gas; marginal per member-round: "
        f"{result['marginal_gas_per_member_round']:,} gas ({result['marginal_ratio_vs_target']:.2f}x of {target:,})"
    )
    for n, row in result["steady_state"].items():
        print(
            f"  N={n:>4}: round {row['gas']:>10,} gas, per member-round {row['gas_per_member_round']:>9,.1f} "
            f"({row['ratio_vs_target']:.2f}x target), all-in {row['gas_per_member_round_all_in']:,.1f}"
        )
    print(
        f"100 members fit a 30M block: {result['fits_100_members']}; largest N: {result['max_members_per_round']} "
        f"(predicted {result['max_members_per_round_predicted']}; verified by txs: {result['max_members_verified']})"
    )
    print(
        f"recordSpends: {result['record_spends_gas']} gas ({result['record_spends_gas_per_member']:,} per member); "
        f"fileDispute: {result['file_dispute_gas']:,} gas"
    )
    for trial in result["max_members_trials"]:
        print(f"    tx with N={trial['members']}: status {trial['status']}, gas used {trial['gas_used']:,}")
    print(
        f"largest N under the Osaka 2**24 per-tx cap (predicted): {result['max_members_under_osaka_tx_cap_predicted']}"
    )


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "results"
    _print(run(out))
