"""The committed test-only contract artifacts match their sources (rebuild: node tests/audit/compile_variants.mjs)."""

from __future__ import annotations

import hashlib

import pytest

from fedchain.ledger._abi import load_artifact

from .helpers import HERE, VARIANTS, variant

ROOT = HERE.parents[1]


@pytest.mark.parametrize("name", ["TamperLedger", "MerkleProbe"])
def test_artifact_records_the_current_sources(name: str) -> None:
    artifact = variant(name)
    recorded = artifact["sources"]
    assert recorded[f"{name}.sol"] == hashlib.sha256((VARIANTS / f"{name}.sol").read_bytes()).hexdigest()
    token = (ROOT / "contracts" / "src" / "FedToken.sol").read_bytes()
    assert recorded["FedToken.sol"] == hashlib.sha256(token).hexdigest()
    assert artifact["compiler"]["version"] == load_artifact("ContributionLedger")["compiler"]["version"]


# The on-chain privacy budgets came after TamperLedger and are deliberately left out of it: it stands
# for a ledger without budgets, which the Python side must read as "no budget on chain".
BUDGET_ABI = {
    "function setPrivacyBudgets(address[],uint256[],uint256[])",
    "function privacyBudget(address)",
    "event PrivacyBudgetSet(address,uint256,uint256)",
    "error BudgetAlreadySet(address)",
    "error InvalidBudget(address)",
}


def test_tamper_ledger_keeps_the_ledger_abi() -> None:
    """Same functions, events and errors (selectors) as ContributionLedger bar budgets, so Web3Ledger reads it."""

    def signatures(abi: list[dict]) -> set[str]:
        def kind(item: dict) -> str:
            if item["type"].startswith("tuple"):
                return "(" + ",".join(kind(c) for c in item["components"]) + ")" + item["type"][5:]
            return str(item["type"])

        return {
            f"{i['type']} {i['name']}({','.join(kind(x) for x in i['inputs'])})"
            for i in abi
            if i["type"] in ("function", "event", "error")
        }

    ledger = signatures(load_artifact("ContributionLedger")["abi"])
    tamper = signatures(variant("TamperLedger")["abi"])
    assert ledger - tamper == BUDGET_ABI
    assert {s.split("(")[0] for s in tamper - ledger} == {
        "function flaws",
        *(
            f"function FLAW_{n}"
            for n in (
                "EQUAL_SPLIT",
                "NO_LINEAGE",
                "NO_REGISTRATION",
                "ANY_ROUND",
                "ANYONE_RECORDS",
                "EXTRA_MINT",
                "PAY_ANY_STATUS",
                "PAY_DISPUTED",
            )
        ),
    }
    assert variant("TamperLedger")["settings"]["evmVersion"] == "prague"
