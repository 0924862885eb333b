"""Benchmark of contribution scoring (issue 6): fidelity, encrypted cost, fairness.

(a) Fidelity: 8 members of the digits demo (Dirichlet 0.5) train locally, in process (no Flower),
    from a common global model for ``FIDELITY_ROUNDS`` FedAvg rounds. In each round the utility of
    a coalition is measured on a held-out validation split (the fixed 20% test split, 360 examples)
    for the global model plus the coalition's FedAvg update, as minus the mean cross-entropy (the
    default utility) and as accuracy. Exact Shapley values take all 2^8 = 256 coalitions; each
    scorer's Spearman rank correlation with them is reported per round and on average, GTG-Shapley's
    over ``FIDELITY_SEEDS`` seeds with its evaluations (target: rho >= 0.9 with <= 25% of 256).
(b) Cost: encrypted scoring at 100k parameters with the SCORING parameters: the coordinator's
    encrypted inner products and packing (``build_scalar_requests``), the decrypt committee's
    answers (2 members), reconciliation and the cosine scores; seconds per member-round
    (target <= 1 s). The encrypted sum, which aggregation computes anyway, is timed apart.
(c) Fairness: 10 members (7 honest, a free rider, a noise member, a label flipper), HE on, cosine
    scorer, 5 rounds, no DP: the adversaries' share of all rewards paid (target <= 3%).
    ``fairness`` runs the real federation (``fedchain.runner.run_simulation``) and skips, saying
    why, until the scorer is wired into the coordinator. ``fairness_in_process`` runs the same
    federation in this process without Flower or a chain but with the real pieces that decide the
    rewards: TenSEAL SCORING encryption, the encrypted sum, the two-member decrypt committee, the
    norm bound, the cosine scorer, the adversaries of ``clients/adversary.py`` and the reward rule.

Writes ``out_dir/scoring.json``. Run: ``.venv/bin/python -m bench scoring`` or
``.venv/bin/python bench/bench_scoring.py [OUT_DIR] [--fairness]``.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import spearmanr

from clients import adversary, task
from fedchain import crypto
from fedchain.contribution import (
    DEFAULT_NORM_BOUND,
    CosineScorer,
    GTGShapleyScorer,
    InnerProducts,
    ScoringInputs,
    create_scorer,
    data_size_scores,
    exact_shapley,
    gtg_shapley,
    leave_one_out,
    reconcile,
    select_committee,
    withheld_scores,
)
from fedchain.crypto import answer_scalar_requests, build_scalar_requests
from fedchain.data import load_demo_partition, load_digits_split
from fedchain.privacy import train_plain
from fedchain.rewards import proportional_rewards, score_to_fixed
from fedchain.serialization import Weights, flatten, unflatten

log = logging.getLogger(__name__)

SEED = 0
HYPER: dict[str, Any] = {"epochs": 3, "batch_size": 32, "learning_rate": 0.05, "momentum": 0.9}
FIDELITY_MEMBERS = 8
FIDELITY_ROUNDS = 5
#: GTG-Shapley is randomised: its fidelity is measured over these seeds in every round.
FIDELITY_SEEDS = tuple(range(10))
COST_REPEATS = 3
COST_PARAMS = 100_000
COST_MEMBERS = 10
COMMITTEE_SIZE = 2
FAIRNESS_HONEST = 7
FAIRNESS_ADVERSARIES = ("free_rider", "noise", "label_flip")
FAIRNESS_ROUNDS = 5
REWARD_POOL_WEI = 10**20


# ----------------------------------------------------------------------------------- helpers
def _initial_weights() -> Weights:
    return task.get_weights(task.build_model(num_features=64, num_classes=10, hidden_units=64, seed=SEED))


def _train(weights: Weights, x: np.ndarray, y: np.ndarray, seed: int) -> np.ndarray:
    """One member's local round from ``weights``; returns the flat update (new - old)."""
    model = task.build_model(num_features=64, num_classes=10, hidden_units=64, seed=SEED)
    task.set_weights(model, weights)
    train_plain(model, x, y, seed=seed, **HYPER)
    return flatten(task.get_weights(model)) - flatten(weights)


def _evaluator(
    weights: Weights, x_val: np.ndarray, y_val: np.ndarray, metric: str = "neg_loss"
) -> Callable[[np.ndarray], float]:
    """The coordinator's utility: ``metric`` on the validation split of ``weights`` moved by a flat delta.

    ``neg_loss`` is minus the mean cross-entropy (the default utility); ``accuracy`` the share correct.
    """
    model = task.build_model(num_features=64, num_classes=10, hidden_units=64, seed=SEED)
    base = flatten(weights)

    def evaluate(delta: np.ndarray) -> float:
        task.set_weights(model, unflatten(base + delta, weights))
        loss, accuracy = task.evaluate(model, x_val, y_val)
        return -loss if metric == "neg_loss" else accuracy

    return evaluate


def _spearman(estimate: dict[str, float], reference: dict[str, float]) -> float:
    members = list(reference)
    rho = spearmanr([estimate[m] for m in members], [reference[m] for m in members]).statistic
    return float(rho) if np.isfinite(rho) else 0.0


def _clipped(values: dict[str, float]) -> dict[str, float]:
    return {m: max(0.0, v) for m, v in values.items()}


# --------------------------------------------------------------------------------- fidelity
UTILITIES = ("neg_loss", "accuracy")


def _coalition_table(inputs: ScoringInputs, weights: Weights, x_val: np.ndarray, y_val: np.ndarray) -> dict[str, Any]:
    """Both utilities of every coalition, from one forward pass each (2^n evaluations)."""
    model = task.build_model(num_features=64, num_classes=10, hidden_units=64, seed=SEED)
    base = flatten(weights)
    table: dict[str, dict[frozenset[str], float]] = {name: {} for name in UTILITIES}
    members = inputs.members
    for mask in range(2 ** len(members)):
        coalition = frozenset(m for bit, m in enumerate(members) if mask >> bit & 1)
        task.set_weights(model, unflatten(base + inputs.subset_delta(coalition), weights))
        loss, accuracy = task.evaluate(model, x_val, y_val)
        table["neg_loss"][coalition] = -loss
        table["accuracy"][coalition] = accuracy
    return table


def fidelity() -> dict[str, Any]:
    """Spearman rank correlation of each scorer with exact Shapley values, per round and utility."""
    members = [f"m{k}" for k in range(FIDELITY_MEMBERS)]
    parts = [
        load_demo_partition(k, FIDELITY_MEMBERS, partitioner="dirichlet", alpha=0.5, test_fraction=0.2, seed=SEED)
        for k in range(FIDELITY_MEMBERS)
    ]
    _, _, x_val, y_val = load_digits_split(0.2)
    counts = {m: p.num_train for m, p in zip(members, parts, strict=True)}
    weights = _initial_weights()
    gtg = GTGShapleyScorer()
    per_utility: dict[str, list[dict[str, Any]]] = {name: [] for name in UTILITIES}
    for server_round in range(1, FIDELITY_ROUNDS + 1):
        deltas = {
            m: _train(weights, p.x_train, p.y_train, seed=1000 * server_round + k)
            for k, (m, p) in enumerate(zip(members, parts, strict=True))
        }
        inputs = ScoringInputs(num_examples=counts, deltas=deltas, seed=server_round)
        table = _coalition_table(inputs, weights, x_val, y_val)
        cosine = create_scorer("cosine")(inputs)
        cosine_self = CosineScorer(include_self=True)(inputs)
        sizes = data_size_scores(counts)
        for name in UTILITIES:
            game = table[name].__getitem__
            exact = exact_shapley(members, game)
            estimates = [gtg_shapley(members, game, seed=seed, **gtg.options) for seed in FIDELITY_SEEDS]
            loo = leave_one_out(members, game)
            if server_round == 1 and name == "neg_loss":
                # the registered scorer, on the coordinator's real utility, gives the same scores
                real = replace(inputs, evaluate=_evaluator(weights, x_val, y_val, name), seed=FIDELITY_SEEDS[0])
                assert gtg(real) == _clipped(estimates[0].values), "scorer and benchmark path disagree"
            clipped_exact = _clipped(exact.values)
            gtg_rho = [_spearman(e.values, exact.values) for e in estimates]
            gtg_scores_rho = [_spearman(_clipped(e.values), clipped_exact) for e in estimates]
            per_utility[name].append(
                {
                    "round": server_round,
                    "utility_before": game(frozenset()),
                    "utility_after": game(frozenset(members)),
                    "exact_shapley": exact.values,
                    "exact_evaluations": exact.evaluations,
                    "gtg_shapley_seed0": estimates[0].values,
                    "gtg_evaluations_max": max(e.evaluations for e in estimates),
                    "gtg_evaluation_fraction": max(e.evaluations for e in estimates) / exact.evaluations,
                    "gtg_permutations_mean": float(np.mean([e.permutations for e in estimates])),
                    "gtg_converged_share": float(np.mean([e.converged for e in estimates])),
                    "gtg_spearman_min_over_seeds": min(gtg_rho),
                    "loo": loo.values,
                    "loo_evaluations": loo.evaluations,
                    "spearman": {
                        "gtg_shapley": float(np.mean(gtg_rho)),
                        "gtg_shapley_scores_vs_clipped_exact": float(np.mean(gtg_scores_rho)),
                        "loo": _spearman(loo.values, exact.values),
                        "cosine": _spearman(cosine, exact.values),
                        "cosine_include_self": _spearman(cosine_self, exact.values),
                        "data_size": _spearman(sizes, exact.values),
                    },
                }
            )
        mean_delta = sum(counts[m] * deltas[m] for m in members) / sum(counts.values())
        weights = unflatten(flatten(weights) + mean_delta, weights)
    results: dict[str, Any] = {
        "members": FIDELITY_MEMBERS,
        "rounds": FIDELITY_ROUNDS,
        "partitioner": "dirichlet(0.5)",
        "validation_examples": len(y_val),
        "num_examples": counts,
        "gtg_options": gtg.options or "defaults (budget default_max_evaluations(8) = 64)",
        "gtg_seeds_per_round": len(FIDELITY_SEEDS),
        "spearman_note": (
            "gtg_shapley: raw estimate vs exact values, mean over seeds then rounds; "
            "gtg_shapley_scores_vs_clipped_exact: the scorer's clipped scores vs exact values clipped the same way"
        ),
        "target": "gtg_shapley spearman >= 0.9 with <= 25% of the 256 exact evaluations (default utility)",
        "default_utility": "neg_loss",
    }
    for name, rounds in per_utility.items():
        scorers = list(rounds[0]["spearman"])
        summary = {
            scorer: {
                "mean": float(np.mean([r["spearman"][scorer] for r in rounds])),
                "min": float(np.min([r["spearman"][scorer] for r in rounds])),
            }
            for scorer in scorers
        }
        fraction = max(r["gtg_evaluation_fraction"] for r in rounds)
        results[name] = {
            "utility": (
                "minus the mean validation cross-entropy"
                if name == "neg_loss"
                else "validation accuracy (moves in steps of 1/360)"
            )
            + " of the global model plus the coalition's FedAvg update",
            "spearman_vs_exact": summary,
            "gtg_max_evaluation_fraction": fraction,
            "target_met": summary["gtg_shapley"]["mean"] >= 0.9 and fraction <= 0.25,
            "per_round": rounds,
        }
    results["target_met"] = results["neg_loss"]["target_met"]
    return results


# ------------------------------------------------------------------------------------- cost
def cost() -> dict[str, Any]:
    """Seconds per member-round of encrypted cosine scoring at 100k parameters (SCORING)."""
    rng = np.random.default_rng(SEED)
    member_ctx = crypto.create_secret_context(crypto.SCORING)
    other_ctx = crypto.load_member_context(crypto.export_secret_context(member_ctx))
    coordinator = crypto.load_coordinator_context(crypto.export_public_context(member_ctx))
    members = [f"m{k}" for k in range(COST_MEMBERS)]
    counts = {m: int(rng.integers(100, 300)) for m in members}
    direction = rng.normal(size=COST_PARAMS) * 0.01
    deltas = {m: direction + rng.normal(size=COST_PARAMS) * 0.01 for m in members}
    started = time.perf_counter()
    chunks = {m: crypto.encrypt_update(member_ctx, counts[m] * deltas[m]) for m in members}
    encrypt_s = (time.perf_counter() - started) / COST_MEMBERS
    expected = crypto.chunk_count(COST_PARAMS, crypto.context_slot_count(coordinator))
    started = time.perf_counter()
    total = crypto.sum_encrypted(coordinator, list(chunks.values()), expected, COST_PARAMS)
    sum_s = time.perf_counter() - started

    requests_s = requests_cpu_s = float("inf")
    for _ in range(COST_REPEATS):  # best of: the machine is shared
        started, started_cpu = time.perf_counter(), time.process_time()
        requests = build_scalar_requests(coordinator, chunks, total)
        requests_s = min(requests_s, time.perf_counter() - started)
        requests_cpu_s = min(requests_cpu_s, time.process_time() - started_cpu)
    committee = select_committee(members, COMMITTEE_SIZE, seed=SEED, server_round=1)
    answers: dict[str, list[list[float]]] = {}
    answer_s: dict[str, float] = {}
    for member, ctx in zip(committee, (member_ctx, other_ctx), strict=True):
        started = time.perf_counter()
        answers[member] = answer_scalar_requests(ctx, requests)
        answer_s[member] = time.perf_counter() - started
    started = time.perf_counter()
    verdict = reconcile(requests, answers)
    assert verdict.products is not None, verdict.reason
    scores = CosineScorer()(ScoringInputs(num_examples=counts, products=verdict.products))
    reconcile_score_s = time.perf_counter() - started
    # the committee members answer in parallel on their own machines: count the slowest once
    total_s = requests_s + max(answer_s.values()) + reconcile_score_s
    total_cpu_s = requests_cpu_s + max(answer_s.values()) + reconcile_score_s
    plain = CosineScorer()(ScoringInputs(num_examples=counts, deltas=deltas))
    error = max(abs(scores[m] - plain[m]) / plain[m] for m in members)
    return {
        "params": COST_PARAMS,
        "members": COST_MEMBERS,
        "timing": f"best of {COST_REPEATS} for the requests; one run for the rest",
        "load_average_1min": os.getloadavg()[0],
        "cpu_count": os.cpu_count(),
        "committee_size": COMMITTEE_SIZE,
        "ckks": {
            "poly_modulus_degree": crypto.SCORING.poly_modulus_degree,
            "coeff_mod_bit_sizes": list(crypto.SCORING.coeff_mod_bit_sizes),
            "global_scale_bits": crypto.SCORING.global_scale_bits,
        },
        "encrypted_inner_products": 2 * COST_MEMBERS + 1,
        "requests_seconds": requests_s,
        "committee_answer_seconds": answer_s,
        "reconcile_and_score_seconds": reconcile_score_s,
        "request_bytes": sum(len(r.ciphertext) for r in requests),
        "requests_cpu_seconds": requests_cpu_s,
        "scoring_seconds_per_member_round": total_s / COST_MEMBERS,
        "scoring_cpu_seconds_per_member_round": total_cpu_s / COST_MEMBERS,
        "cpu_note": (
            "wall seconds depend on how busy the shared machine is (load_average_1min); CPU seconds of this "
            "process (TenSEAL runs these operations on one thread) approximate the wall time on an idle core"
        ),
        "target_seconds_per_member_round": 1.0,
        "target_met": total_s / COST_MEMBERS <= 1.0,
        "target_met_cpu": total_cpu_s / COST_MEMBERS <= 1.0,
        "encrypted_sum_seconds_per_member_round": sum_s / COST_MEMBERS,
        "encrypt_seconds_per_member": encrypt_s,
        "max_relative_score_error_vs_plaintext": error,
        "committee_agreed": not verdict.disagreement,
    }


# --------------------------------------------------------------------------------- fairness
def _share(paid: dict[str, int], kinds: dict[str, str]) -> dict[str, Any]:
    total = sum(paid.values())
    adversarial = sum(wei for address, wei in paid.items() if kinds[address] != adversary.HONEST)
    by_kind: dict[str, int] = {}
    for address, wei in paid.items():
        by_kind[kinds[address]] = by_kind.get(kinds[address], 0) + wei
    return {
        "adversary_share": adversarial / total if total else 0.0,
        "reward_wei_by_kind": {kind: str(wei) for kind, wei in sorted(by_kind.items())},
        "total_paid_wei": str(total),
    }


def fairness_in_process() -> dict[str, Any]:
    """The fairness federation in this process: real HE scoring, committee, adversaries and reward rule."""
    kinds_list = [adversary.HONEST] * FAIRNESS_HONEST + list(FAIRNESS_ADVERSARIES)
    total_members = len(kinds_list)
    members = [f"member-{k}" for k in range(total_members)]
    kinds = dict(zip(members, kinds_list, strict=True))
    parts = [
        load_demo_partition(k, total_members, partitioner="dirichlet", alpha=0.5, test_fraction=0.2, seed=SEED)
        for k in range(total_members)
    ]
    _, _, x_test, y_test = load_digits_split(0.2)
    secret = crypto.create_secret_context(crypto.SCORING)
    second = crypto.load_member_context(crypto.export_secret_context(secret))
    coordinator = crypto.load_coordinator_context(crypto.export_public_context(secret))
    weights = _initial_weights()
    size = flatten(weights).size
    expected = crypto.chunk_count(size, crypto.context_slot_count(coordinator))
    paid = dict.fromkeys(members, 0)
    rounds = []
    for server_round in range(1, FAIRNESS_ROUNDS + 1):
        claimed: dict[str, int] = {}
        chunks: dict[str, list[bytes]] = {}
        for k, (member, part) in enumerate(zip(members, parts, strict=True)):
            kind = kinds[member]
            rng = adversary.adversary_rng(seed=SEED, member_id=k, server_round=server_round)
            labels = adversary.adversarial_labels(kind, part.y_train, part.num_classes)
            honest = (
                _train(weights, part.x_train, labels, seed=1000 * server_round + k)
                if adversary.trains(kind)
                else np.zeros(size)
            )
            update = adversary.adversarial_update(kind, honest, rng=rng)
            claimed[member] = adversary.claimed_examples(kind, part.num_train)
            chunks[member] = crypto.encrypt_update(secret, claimed[member] * update)
        total = crypto.sum_encrypted(coordinator, list(chunks.values()), expected, size)
        committee = select_committee(members, COMMITTEE_SIZE, seed=SEED, server_round=server_round)
        requests = build_scalar_requests(coordinator, chunks, total)
        verdict = reconcile(
            requests, {m: answer_scalar_requests(c, requests) for m, c in zip(committee, (secret, second), strict=True)}
        )
        excluded = verdict.excluded(claimed, DEFAULT_NORM_BOUND)
        kept = {m: c for m, c in chunks.items() if m not in excluded}
        kept_counts = {m: claimed[m] for m in kept}
        if excluded:
            total = crypto.sum_encrypted(coordinator, list(kept.values()), expected, size)
            again = build_scalar_requests(coordinator, kept, total, sq_norms=False)
            second_verdict = reconcile(
                again, {m: answer_scalar_requests(c, again) for m, c in zip(committee, (secret, second), strict=True)}
            )
            assert verdict.products is not None and second_verdict.products is not None
            products = InnerProducts(
                sq_norms={m: verdict.products.sq_norms[m] for m in kept},
                dots=second_verdict.products.dots,
                agg_sq_norm=second_verdict.products.agg_sq_norm,
            )
        else:
            assert verdict.products is not None
            products = verdict.products
        if verdict.disagreement:
            scores = withheld_scores(kept_counts)
        else:
            scores = CosineScorer()(ScoringInputs(num_examples=kept_counts, products=products))
        rewards, treasury = proportional_rewards([score_to_fixed(scores[m]) for m in kept], REWARD_POOL_WEI)
        for member, wei in zip(kept, rewards, strict=True):
            paid[member] += wei
        # members decrypt the aggregate, divide by the total weight and apply it
        mean_delta = crypto.decrypt_update(secret, total, size) / sum(kept_counts.values())
        weights = unflatten(flatten(weights) + mean_delta, weights)
        model = task.build_model(num_features=64, num_classes=10, hidden_units=64, seed=SEED)
        task.set_weights(model, weights)
        accuracy = task.evaluate(model, x_test, y_test)[1]
        rounds.append(
            {
                "round": server_round,
                "accuracy": accuracy,
                "excluded": [kinds[m] for m in excluded],
                "scores_by_kind": {kinds[m]: round(s, 4) for m, s in scores.items() if kinds[m] != adversary.HONEST}
                | {"honest_min": round(min(s for m, s in scores.items() if kinds[m] == adversary.HONEST), 4)},
                "treasury_wei": str(treasury),
            }
        )
    result = _share(paid, kinds)
    return {
        "mode": "in process (no Flower, no chain): real CKKS SCORING, committee of 2, norm bound, cosine, reward rule",
        "members": {"honest": FAIRNESS_HONEST, "adversaries": list(FAIRNESS_ADVERSARIES)},
        "rounds": FAIRNESS_ROUNDS,
        "dp": False,
        "norm_bound": DEFAULT_NORM_BOUND,
        **result,
        "target": "adversary_share <= 0.03",
        "target_met": result["adversary_share"] <= 0.03,
        "per_round": rounds,
    }


def _scorer_wired() -> str | None:
    """None when the federation applies the configured scorer; else why not (then fairness skips)."""
    from fedchain.config import FedChainConfig
    from fedchain.errors import ConfigError

    try:
        FedChainConfig(scorer="no_such_scorer_benchmark_probe")
    except ConfigError:
        return None
    return (
        "the configured scorer is not wired into the federation yet (FedChainConfig accepts an unknown "
        "scorer name, so the coordinator cannot be applying the registry's scorers)"
    )


def fairness(out_dir: Path) -> dict[str, Any]:
    """Adversaries' share of the rewards in a real federation run (Flower simulation, HE, chain)."""
    reason = _scorer_wired()
    if reason is not None:
        log.warning("fairness benchmark skipped: %s", reason)
        return {"skipped": True, "reason": reason}
    from fedchain.config import FedChainConfig
    from fedchain.runner import run_simulation

    run_dir = Path(tempfile.mkdtemp(prefix="fedchain-fairness-"))  # holds keys: never under bench/results
    config = FedChainConfig(
        members=FAIRNESS_HONEST,
        adversaries=FAIRNESS_ADVERSARIES,
        scorer="cosine",
        he=True,
        he_scoring=True,
        dp=False,
        rounds=FAIRNESS_ROUNDS,
        seed=SEED,
        out_dir=str(run_dir),
    )
    started = time.perf_counter()
    result = run_simulation(config, cpus_per_member=0.5)
    seconds = time.perf_counter() - started
    paid: dict[str, int] = {}
    kinds: dict[str, str] = {}
    data_size_like = True
    for summary in result["rounds"]:
        members = summary["members"]
        shares = data_size_scores({m["address"]: m["num_examples"] for m in members})
        if any(abs(m["score"] - shares[m["address"]]) > 1e-12 for m in members):
            data_size_like = False
        for member in members:
            kinds[member["address"]] = member["kind"]
            paid[member["address"]] = paid.get(member["address"], 0) + int(member["reward_wei"] or 0)
    if data_size_like:
        return {"skipped": True, "reason": "every recorded score equals the data_size share: cosine was not applied"}
    share = _share(paid, kinds)
    return {
        "mode": "fedchain.runner.run_simulation (Flower simulation, CKKS SCORING, committee, embedded chain)",
        "members": {"honest": FAIRNESS_HONEST, "adversaries": list(FAIRNESS_ADVERSARIES)},
        "rounds": FAIRNESS_ROUNDS,
        "final_accuracy": result.get("final_accuracy"),
        "seconds": seconds,
        **share,
        "target": "adversary_share <= 0.03",
        "target_met": share["adversary_share"] <= 0.03,
    }


# -------------------------------------------------------------------------------------- run
def run(out_dir: Path, *, with_fairness: bool = True) -> dict[str, Any]:
    """Run (a) fidelity, (b) cost and (c) fairness; write ``out_dir/scoring.json``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results: dict[str, Any] = {
        "machine": {"python": platform.python_version(), "processor": platform.machine()},
        "fidelity": fidelity(),
        "cost": cost(),
        "fairness_in_process": fairness_in_process(),
    }
    results["fairness"] = fairness(out_dir) if with_fairness else {"skipped": True, "reason": "not requested"}
    results["seconds"] = time.perf_counter() - started
    (out_dir / "scoring.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return results


def _print(results: dict[str, Any]) -> None:
    fid = results["fidelity"]
    print(f"fidelity ({fid['members']} members, {fid['rounds']} rounds): Spearman vs exact Shapley (mean, min)")
    for utility in UTILITIES:
        print(f"  utility {utility}:")
        for name, value in fid[utility]["spearman_vs_exact"].items():
            print(f"    {name:38} {value['mean']:6.3f} {value['min']:6.3f}")
        print(
            f"    gtg evaluations: max {fid[utility]['gtg_max_evaluation_fraction']:.1%} of 256; "
            f"target met: {fid[utility]['target_met']}"
        )
    cost_ = results["cost"]
    print(
        f"cost: {cost_['scoring_seconds_per_member_round']:.3f} s per member-round "
        f"({cost_['scoring_cpu_seconds_per_member_round']:.3f} CPU s, load {cost_['load_average_1min']:.1f}) "
        f"at {cost_['params']} params "
        f"(requests {cost_['requests_seconds']:.2f} s, "
        f"committee {max(cost_['committee_answer_seconds'].values()):.3f} s)"
        f"; target met: {cost_['target_met']}"
    )
    for key in ("fairness_in_process", "fairness"):
        fair = results[key]
        if fair.get("skipped"):
            print(f"{key}: skipped: {fair['reason']}")
        else:
            print(f"{key}: adversaries' share {fair['adversary_share']:.2%}; target met: {fair['target_met']}")


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    target = Path(args[0]) if args else Path(__file__).resolve().parent / "results"
    _print(run(target, with_fairness="--fairness" in sys.argv))
