"""Metrics: the coordinator's and members' series, scraped over real HTTP on loopback."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest
from prometheus_client import REGISTRY, CollectorRegistry

from fedchain.errors import ConfigError, SerializationError
from fedchain.results import RoundSummary
from fedchain.telemetry import (
    COORDINATOR_METRICS,
    MEMBER_METRICS,
    METRIC_NAMES,
    CoordinatorMetrics,
    MemberMetrics,
    serve,
    serve_member_state,
)
from fedchain.types import MemberRound

from .helpers import scrape, value

ALICE = "0x" + "aa" * 20
BOB = "0x" + "bb" * 20


def _summary(server_round: int, *, status: str = "completed") -> RoundSummary:
    members = [
        MemberRound(member_id=0, address=ALICE, kind="honest", num_examples=100, status="accepted",
                    reward_wei=600, epsilon=1.5 * server_round),
        MemberRound(member_id=1, address=BOB, kind="honest", num_examples=50, status="accepted",
                    reward_wei=400, epsilon=2.0 * server_round),
    ]  # fmt: skip
    return RoundSummary(
        server_round=server_round,
        status=status,
        accuracy=0.5 + 0.1 * server_round if status == "completed" else None,
        loss=1.0 / server_round if status == "completed" else None,
        gas_used=90_000,
        seconds=3.0,
        members=members if status == "completed" else [],
    )


def test_coordinator_series_move_on_a_real_scrape() -> None:
    metrics = CoordinatorMetrics()
    with metrics.serve(0) as server:
        assert server.host == "127.0.0.1" and server.port > 0
        before = scrape(server.url)
        assert value(before, "fedchain_rounds_total", status="completed") == 0.0
        assert value(before, "fedchain_gas_used_total") == 0.0

        metrics.count_replies("train", sampled=3, replied=2, failed_by_reason={"declined": 1})
        with metrics.time("aggregate"):
            pass
        metrics.ciphertext_bytes(4096)
        metrics.observe_round(_summary(1), epsilon_budget=8.0)
        metrics.observe_round(_summary(2), epsilon_budget=8.0)
        metrics.observe_round(_summary(3, status="skipped"), epsilon_budget=8.0)
        after = scrape(server.url)

    assert value(after, "fedchain_rounds_total", status="completed") == 2.0
    assert value(after, "fedchain_rounds_total", status="skipped") == 1.0
    assert value(after, "fedchain_last_round") == 3.0
    assert value(after, "fedchain_round_duration_seconds_count") == 3.0
    assert value(after, "fedchain_round_duration_seconds_sum") == pytest.approx(9.0)
    assert value(after, "fedchain_round_duration_seconds_bucket", le="5.0") == 3.0
    assert value(after, "fedchain_members_sampled_total", stage="train") == 3.0
    assert value(after, "fedchain_members_replied_total", stage="train") == 2.0
    assert value(after, "fedchain_members_failed_total", stage="train", reason="declined") == 1.0
    assert value(after, "fedchain_members_accepted_total") == 4.0
    assert value(after, "fedchain_stage_duration_seconds_count", stage="aggregate") == 1.0
    assert value(after, "fedchain_ciphertext_bytes_total", direction="received") == 4096.0
    assert value(after, "fedchain_gas_used_total") == 270_000.0  # skipped rounds are recorded too
    assert value(after, "fedchain_tokens_paid_wei_total") == 2000.0
    assert value(after, "fedchain_member_rewards_wei_total", member=ALICE) == 1200.0
    assert value(after, "fedchain_member_epsilon", member=BOB) == 4.0
    assert value(after, "fedchain_member_epsilon_budget_remaining", member=BOB) == 4.0
    assert value(after, "fedchain_model_accuracy_ratio") == pytest.approx(0.7)
    with pytest.raises(OSError):
        scrape(server.url, timeout_s=1)  # closed: the port no longer answers


def test_every_exported_family_is_declared_and_named_by_convention() -> None:
    metrics = CoordinatorMetrics()
    metrics.observe_round(_summary(1), epsilon_budget=8.0)
    with metrics.time("score"):
        pass
    names = {family.name for family in metrics.registry.collect()}
    exposed = {f"{name}_total" if family.type == "counter" else name
               for family in metrics.registry.collect() for name in [family.name]}  # fmt: skip
    assert exposed == set(COORDINATOR_METRICS), names
    member = MemberMetrics("0xabc")
    member_exposed = {f"{f.name}_total" if f.type == "counter" else f.name for f in member.registry.collect()}
    assert member_exposed == set(MEMBER_METRICS)
    for family in [*metrics.registry.collect(), *member.registry.collect()]:
        assert family.name.startswith("fedchain_")
        assert re.fullmatch(r"[a-z_]+", family.name)
        if family.type == "histogram":
            assert family.name.endswith("_seconds")
    assert set(METRIC_NAMES) == set(COORDINATOR_METRICS) | set(MEMBER_METRICS)


def test_the_global_registry_is_left_alone() -> None:
    before = {family.name for family in REGISTRY.collect()}
    CoordinatorMetrics().observe_round(_summary(1))
    MemberMetrics("0xabc").observe_training(1.0)
    assert {family.name for family in REGISTRY.collect()} == before
    registry = CollectorRegistry()
    injected = CoordinatorMetrics(registry)
    injected.gas_used(7)
    assert registry.get_sample_value("fedchain_gas_used_total") == 7.0


def test_stage_timer_records_even_when_the_stage_raises() -> None:
    metrics = CoordinatorMetrics()
    with pytest.raises(RuntimeError), metrics.time("record"):
        raise RuntimeError("chain down")
    assert metrics.registry.get_sample_value("fedchain_stage_duration_seconds_count", {"stage": "record"}) == 1.0


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m: m.count_replies("fly", sampled=1, replied=1), "The 'stage' parameter must be one of 'train'"),
        (
            lambda m: m.count_replies("train", sampled=-1, replied=0),
            "The 'sampled' parameter must be an int in [0, inf)",
        ),
        (lambda m: m.time("nap").__enter__(), "The 'stage' parameter must be one of"),
        (
            lambda m: m.ciphertext_bytes(1, direction="up"),
            "The 'direction' parameter must be one of 'received', 'sent'",
        ),
        (lambda m: m.member_epsilon(ALICE, 1.0, budget=0.0), "The 'budget' parameter must be a float in (0, inf)"),
        (lambda m: m.member_epsilon("", 1.0), "The 'address' parameter must be a member address"),
    ],
)
def test_invalid_calls_name_the_parameter(call, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError) as info:
        call(CoordinatorMetrics())
    assert str(info.value).startswith(message)


def test_serve_refuses_a_bad_or_busy_port() -> None:
    registry = CollectorRegistry()
    with pytest.raises(ConfigError, match="'metrics_port' parameter must be an int in \\[0, 65535\\]"):
        serve(70_000, registry=registry)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(ConfigError, match=r"'metrics_port' parameter must be a free port on 127\.0\.0\.1"):
            serve(busy.getsockname()[1], registry=registry)


def test_member_metrics_survive_processes_and_are_served_from_the_state_file(tmp_path: Path) -> None:
    path = tmp_path / "state" / "metrics.json"
    with serve_member_state(path, 0) as server:
        assert value(scrape(server.url), "fedchain_member_epsilon", member=ALICE) is None  # nothing yet

        # Two messages, each in a "fresh process": open the saved state, update, save.
        first = MemberMetrics.open(path, member=ALICE)
        first.observe_training(2.0, epsilon=1.25, epsilon_budget=8.0, examples=120)
        first.observe_encrypt(0.05)
        first.save()
        middle = scrape(server.url)
        second = MemberMetrics.open(path, member=ALICE)
        second.observe_training(40.0, epsilon=2.5, epsilon_budget=8.0, examples=120)
        second.count("declined")
        second.save()
        after = scrape(server.url)

    assert value(middle, "fedchain_member_training_duration_seconds_count", member=ALICE) == 1.0
    assert value(after, "fedchain_member_training_duration_seconds_count", member=ALICE) == 2.0
    assert value(after, "fedchain_member_training_duration_seconds_sum", member=ALICE) == 42.0
    assert value(after, "fedchain_member_training_duration_seconds_bucket", member=ALICE, le="2.5") == 1.0
    assert value(after, "fedchain_member_training_duration_seconds_bucket", member=ALICE, le="60.0") == 2.0
    assert value(after, "fedchain_member_training_duration_seconds_bucket", member=ALICE, le="+Inf") == 2.0
    assert value(after, "fedchain_member_encrypt_duration_seconds_count", member=ALICE) == 1.0
    assert value(after, "fedchain_member_epsilon", member=ALICE) == 2.5
    assert value(after, "fedchain_member_epsilon_budget_remaining", member=ALICE) == 5.5
    assert value(after, "fedchain_member_instructions_total", member=ALICE, outcome="trained") == 2.0
    assert value(after, "fedchain_member_instructions_total", member=ALICE, outcome="declined") == 1.0
    assert value(after, "fedchain_member_examples", member=ALICE) == 120.0


def test_a_corrupt_member_state_is_refused_and_not_served(tmp_path: Path) -> None:
    path = tmp_path / "metrics.json"
    path.write_text('{"version": 1, "member": "0xabc"}')
    with pytest.raises(SerializationError, match="not a fedchain member metrics state"):
        MemberMetrics.open(path, member="0xabc")
    with serve_member_state(path, 0) as server:
        samples = scrape(server.url)
    assert not any(name.startswith("fedchain_member") for name, _ in samples)
