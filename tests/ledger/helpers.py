"""Helpers shared by the ledger tests."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from eth_account import Account

from fedchain.ledger import Web3Ledger
from fedchain.types import DPParams, MemberRoundRecord, RoundRecord

DP = DPParams(noise_multiplier=1.1, sample_rate=0.02, steps=150, max_grad_norm=1.0, delta=1e-5)


def member_addresses(n: int, *, seed: str = "m") -> list[str]:
    """Deterministic member addresses (keys derived from a seed; members never sign here)."""
    keys = [hashlib.sha256(f"{seed}-{i}".encode()).digest() for i in range(n)]
    return [Account.from_key(k).address for k in keys]


def h(text: str) -> str:
    return "0x" + hashlib.sha256(text.encode()).hexdigest()


def next_record(
    ledger: Web3Ledger,
    members: Sequence[str],
    scores: Sequence[float],
    *,
    pool_wei: int = 10**18,
    dp: DPParams | None = DP,
    epsilon: float | None = 1.5,
    tag: str = "",
) -> RoundRecord:
    """A record for the next round, with lineage continuing from the chain."""
    n = ledger.last_round() + 1
    previous = ledger.get_round(n - 1).model_hash if n > 1 else "0x" + "00" * 32
    return RoundRecord(
        server_round=n,
        aggregate_hash=h(f"agg-{n}-{tag}"),
        model_hash=h(f"model-{n}-{tag}"),
        previous_model_hash=previous,
        members=tuple(
            MemberRoundRecord(address=a, score=s, dp=dp, epsilon=epsilon) for a, s in zip(members, scores, strict=True)
        ),
        reward_pool_wei=pool_wei,
        update_merkle_root=h(f"merkle-{n}-{tag}"),
    )
