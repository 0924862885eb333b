"""The one-line header ``fedchain run`` prints before the first round: what this run will do.

It names the choices fedchain made for the user, above all the CKKS parameters under HE: SCORING
(encrypted norms and inner products, one ciphertext product) when the norm bound or the scorer
needs them, selected automatically unless ``--he-scoring/--no-he-scoring`` was given; AGGREGATION
(addition only) otherwise.

Example:
    >>> from fedchain.config import FedChainConfig
    >>> line = describe_run(FedChainConfig(members=3, rounds=2, scorer="cosine", dp=False))
    >>> line.split(" · ")[:4]
    ['fedchain run: 3 members x 2 rounds', 'strategy fedavg', 'scorer cosine', 'DP off']
    >>> params, why = line.split(" · ")[4].split(" selected automatically: ")
    >>> params
    'HE on, SCORING CKKS parameters (N=8192, 2 multiplications, Galois keys)'
    >>> why.split(", ")
    ['scorer cosine needs encrypted inner products', 'the norm bound 20 is checked on encrypted norms']
"""

from __future__ import annotations

from typing import Any

__all__ = ["describe_run"]


def describe_run(config: Any) -> str:
    """One line: members, rounds, strategy, scorer, DP, HE with its CKKS parameters and why, chain."""
    from fedchain.contribution import check_scorer_allowed

    members = f"{config.members} members"
    if config.adversaries:
        members += f" + {len(config.adversaries)} simulated adversaries"
    parts = [f"fedchain run: {members} x {config.rounds} rounds", f"strategy {config.strategy}"]
    parts.append(f"scorer {config.scorer}")
    parts.append(f"DP epsilon {config.epsilon:g}, delta {config.delta:g}" if config.dp else "DP off")
    parts.append(_he(config, needs_scalars=check_scorer_allowed(config.scorer, he=config.he).needs_scalars))
    parts.append(f"chain {config.chain}")
    return " · ".join(parts)


def _he(config: Any, *, needs_scalars: bool) -> str:
    if not config.he:
        return "HE off"
    from fedchain.crypto.params import AGGREGATION, SCORING

    if not config.he_scoring:
        params = AGGREGATION
        return f"HE on, AGGREGATION CKKS parameters (N={params.poly_modulus_degree}, addition only)"
    params = SCORING
    extras = f"{params.multiplications} multiplications" + (", Galois keys" if params.galois_keys else "")
    text = f"HE on, SCORING CKKS parameters (N={params.poly_modulus_degree}, {extras})"
    if not getattr(config, "_he_scoring_auto", False):
        return text + " (--he-scoring)"
    reasons = []
    if needs_scalars:
        reasons.append(f"scorer {config.scorer} needs encrypted inner products")
    if config.norm_bound > 0:
        reasons.append(f"the norm bound {config.norm_bound:g} is checked on encrypted norms")
    return text + " selected automatically: " + ", ".join(reasons)
