"""Every privacy spend is on chain: spends a member reports that the chain lacks are recorded.

A member's accountant charges every round it trains. When its reply is lost (late, or a round
replayed after a coordinator crash), the next reply it sends carries its whole spend history; the
coordinator records the missing entries (``late`` / ``replayed``, score 0) so that the auditor's
recomputed epsilon equals what the member reports. Real eth-tester chain, real Opacus accountant.
"""

from __future__ import annotations

import numpy as np
import pytest

from fedchain.audit import MemberBudget, audit_ledger
from fedchain.config import FedChainConfig
from fedchain.identity import address_of, simulated_member_key
from fedchain.ledger import Web3Ledger, connect
from fedchain.pipeline import AcceptedUpdate
from fedchain.privacy import compute_epsilon
from fedchain.recording import Recorder
from fedchain.types import ZERO_HASH, DPParams, MemberRound, MemberRoundRecord, RoundRecord

DELTA = 1e-5
SPEND = (1.2, 0.1, 50)  # sigma, q, steps of one member-round
TEMPLATE = {"w": np.zeros((2, 3), np.float32)}


@pytest.fixture
def ledger() -> Web3Ledger:
    return Web3Ledger.deploy(connect("embedded"))


def _dp() -> DPParams:
    return DPParams(noise_multiplier=SPEND[0], sample_rate=SPEND[1], steps=SPEND[2], max_grad_norm=0.5, delta=DELTA)


def _epsilon(rounds: int) -> float:
    return compute_epsilon([SPEND] * rounds, DELTA)


def _recorder(ledger: Web3Ledger) -> Recorder:
    config = FedChainConfig(members=2, he=False, dp=True, chain="embedded")
    return Recorder(config, ledger, ledger_address=ledger.address)


def _update(address: str, spends: int) -> AcceptedUpdate:
    member = MemberRound(
        member_id=0,
        address=address,
        kind="honest",
        num_examples=100,
        status="accepted",
        epsilon=_epsilon(spends),
        dp=_dp(),
    )
    return AcceptedUpdate(node_id=1, member=member, spend_history=(SPEND,) * spends)


def _record(ledger: Web3Ledger, server_round: int, address: str, epsilon: float, previous: str) -> RoundRecord:
    model = "0x" + f"{server_round:064x}"
    record = RoundRecord(
        server_round=server_round,
        aggregate_hash=model,
        model_hash=model,
        previous_model_hash=previous,
        members=(MemberRoundRecord(address=address, score=1.0, dp=_dp(), epsilon=epsilon),),
        reward_pool_wei=10**18,
    )
    ledger.record_round(record)
    return record


@pytest.mark.parametrize(("resumed", "status"), [(False, "late"), (True, "replayed")])
def test_spends_the_chain_lacks_are_recorded_and_the_audit_holds(ledger, resumed, status):
    address = address_of(simulated_member_key(seed=0, member_id=0))
    ledger.register_members([address])
    first = _record(ledger, 1, address, _epsilon(1), ZERO_HASH)
    # Round 2's reply was lost (or round 2 was replayed): the member trained in it, then trains in
    # round 2 again (or round 3): its history now holds three spends, the chain one.
    recorder = _recorder(ledger)
    if resumed:
        recorder.resumed_at = 2
    update = _update(address, spends=3)
    missing = recorder.unrecorded_spends(2, [update])
    assert [(m.address, m.status, m.score, m.dp) for m in missing] == [(address, status, 0.0, _dp())]

    record = _record(ledger, 2, address, _epsilon(3), first.model_hash)
    recorder.record_spends(2, record, missing)
    spend_round = 2 if resumed else 1  # a replayed spend is its round's; a late one an earlier round's
    assert [(s.server_round, s.address, s.status) for s in ledger.spends()] == [(spend_round, address, status)]
    assert recorder.spends_on_chain(address) == 3
    assert recorder.unrecorded_spends(3, [_update(address, spends=4)]) == []  # nothing twice

    report = audit_ledger(ledger, default_budget=MemberBudget(50.0, DELTA))
    assert report.ok, report.summary()


def test_without_the_late_spend_the_audit_fails(ledger):
    """The attack on the promise: a member's spend that never reaches the chain breaks the audit."""
    address = address_of(simulated_member_key(seed=0, member_id=0))
    ledger.register_members([address])
    first = _record(ledger, 1, address, _epsilon(1), ZERO_HASH)
    _record(ledger, 2, address, _epsilon(3), first.model_hash)  # reports 3 spends, 2 on chain
    report = audit_ledger(ledger, default_budget=MemberBudget(50.0, DELTA))
    assert not report.ok
