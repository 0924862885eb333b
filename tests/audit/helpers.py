"""Building chains for the auditor's tests: real ledgers, test-only variant ledgers, real DP records."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

from eth_account import Account

from fedchain.ledger import Chain, Web3Ledger
from fedchain.privacy import DPConfig, PrivacyBudget, epsilon_curve, plan_round
from fedchain.types import ZERO_HASH, DPParams, MemberRoundRecord, RoundRecord

HERE = Path(__file__).resolve().parent
VARIANTS = HERE / "contracts"

# TamperLedger's flaws (tests/audit/contracts/TamperLedger.sol).
FLAW_EQUAL_SPLIT = 1
FLAW_NO_LINEAGE = 2
FLAW_NO_REGISTRATION = 4
FLAW_ANY_ROUND = 8
FLAW_ANYONE_RECORDS = 16
FLAW_EXTRA_MINT = 32
FLAW_PAY_ANY_STATUS = 64
FLAW_PAY_DISPUTED = 128

#: A noise multiplier with more digits than the chain keeps (1e-9), so the audit meets the rounding.
SIGMA = 1.0987654321987
DELTA = 1e-5
POOL = 10**20 + 7


@cache
def variant(name: str) -> dict[str, Any]:
    artifact: dict[str, Any] = json.loads((VARIANTS / f"{name}.json").read_text())
    return artifact


def deploy_variant(chain: Chain, name: str, *args: Any) -> str:
    """Deploy a test-only contract from tests/audit/contracts; return its address."""
    artifact = variant(name)
    factory = chain.w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    tx = factory.constructor(*args).transact({"from": chain.address})
    receipt = chain.w3.eth.wait_for_transaction_receipt(tx)
    assert receipt["status"] == 1
    return str(receipt["contractAddress"])


def deploy_tamper_ledger(chain: Chain, flaws: int) -> Web3Ledger:
    """A TamperLedger (same ABI as ContributionLedger) read and written through the real Web3Ledger."""
    address = deploy_variant(chain, "TamperLedger", chain.address, chain.address, chain.address, "Tamper", "TMP", flaws)
    return Web3Ledger(chain, address)


def addresses(n: int, *, seed: str = "audit") -> list[str]:
    keys = [hashlib.sha256(f"{seed}-{i}".encode()).digest() for i in range(n)]
    return sorted((Account.from_key(k).address for k in keys), key=lambda a: int(a, 16))


def h(text: str) -> str:
    return "0x" + hashlib.sha256(text.encode()).hexdigest()


def member_dp(num_examples: int, *, sigma: float = SIGMA, epochs: int = 2) -> DPParams:
    """Real DP parameters of one round, as a member plans them (fedchain.privacy.plan_round)."""
    config = DPConfig(budget=PrivacyBudget(epsilon=100.0, delta=DELTA), noise_multiplier=sigma)
    return plan_round(config, num_examples=num_examples, epochs=epochs, batch_size=32)


class Federation:
    """Records rounds the way the coordinator does: scores, real DP params, reported epsilon."""

    def __init__(self, ledger: Web3Ledger, members: Sequence[str], sizes: Sequence[int]) -> None:
        self.ledger = ledger
        self.members = list(members)
        self.dp = {m: member_dp(n) for m, n in zip(members, sizes, strict=True)}
        self.sizes = dict(zip(members, sizes, strict=True))
        self.history: dict[str, list[DPParams]] = {m: [] for m in members}
        self.model_hash = ZERO_HASH

    def record(
        self,
        *,
        server_round: int | None = None,
        members: Sequence[str] | None = None,
        previous: str | None = None,
        dp: dict[str, DPParams] | None = None,
        reported: dict[str, float] | None = None,
        merkle_root: str = ZERO_HASH,
        model_hash: str | None = None,
    ) -> RoundRecord:
        n = server_round if server_round is not None else self.ledger.last_round() + 1
        rows = []
        for member in members if members is not None else self.members:
            params = (dp or {}).get(member, self.dp.get(member) or member_dp(150))
            self.history.setdefault(member, []).append(params)
            # What a member reports: the accountant on its own (unrounded) parameters.
            epsilon = epsilon_curve(self.history[member], delta=DELTA)[-1]
            epsilon = (reported or {}).get(member, epsilon)
            rows.append(MemberRoundRecord(member, float(self.sizes.get(member, 100)), params, epsilon))
        record = RoundRecord(
            server_round=n,
            aggregate_hash=h(f"aggregate-{n}"),
            model_hash=model_hash or h(f"model-{n}"),
            previous_model_hash=self.model_hash if previous is None else previous,
            members=tuple(rows),
            reward_pool_wei=POOL,
            update_merkle_root=merkle_root,
        )
        self.ledger.record_round(record)
        self.model_hash = record.model_hash
        return record
