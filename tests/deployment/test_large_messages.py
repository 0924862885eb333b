"""Integration: messages far above gRPC's and Flower's size limits cross the deployment runtime (issue 15).

A real deployment (anvil with the ledger, SuperLink, 2 SuperNodes with their member workers,
``flwr run``; no metrics) runs 1 round of the ``mnist-wide`` task at width 679 (1,001,535 parameters) with HE on
(and DP on: the members' default policy refuses a run without it). The default norm bound makes
the deployment provision CKKS ``SCORING`` keys, so each member's train reply carries about 49 MB
of seeded ciphertext (245 chunks, 12.1x the float32 bytes; ``python -m bench he_round_scale``
measures it) and each evaluate instruction the sealed aggregate, larger still (the sum's
ciphertexts are not seeded): far above gRPC's default 4 MiB message limit and Flower's 5 MiB
array piece (``FLWR_PRIVATE_MAX_ARRAY_CHUNK_SIZE``), so they only arrive if the SuperLink,
SuperNodes and member workers carry them whole. The round must complete with every member's
update accepted (the decrypt committee's norm check included), the members must have decrypted
the aggregate (the round's accuracy comes from members' evaluation reports, which count only
when a member holds the model the round produced), and the run's audit must pass.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from fedchain.deployment import DeploySpec, LocalFederation, anvil_binary
from fedchain.deployment.launcher import write_demo_data
from fedchain.tasks.builtin import width_for_params

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MEMBERS = 2
WIDTH = width_for_params(1_000_000)  # 679: 1,001,535 parameters


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalFederation]:
    if anvil_binary() is None:
        pytest.skip("anvil is not installed: run `make node` (npm @foundry-rs/anvil 1.7.1)")
    directory = tmp_path_factory.mktemp("large") / "fed"
    spec = DeploySpec(
        directory=directory,
        members=MEMBERS,
        rounds=1,
        data=tuple(write_demo_data(directory / "data", MEMBERS, task="mnist-wide")),
        chain="anvil",  # without a chain, a deployed coordinator knows no member (see the report of issue 15)
        metrics=False,
        run_config={
            "task": "mnist-wide",
            "model-width": WIDTH,
            "he": True,
            "dp": True,  # members' default policy (require-dp) refuses a run without DP
            "epsilon": 8.0,
            "dp-local-epochs": 1,
            "round-timeout-s": 240.0,
        },
        startup_timeout_s=120,
        run_timeout_s=400,
    )
    launched = LocalFederation(spec)
    started = time.perf_counter()
    launched.start()
    launched.timings["test_start_s"] = time.perf_counter() - started
    try:
        yield launched
    finally:
        launched.stop()


def test_a_round_of_a_million_parameters_under_he_crosses_the_deployment(federation: LocalFederation) -> None:
    run_id = federation.submit()
    outcome = federation.wait(run_id, timeout_s=400)
    assert outcome.ok, (outcome.status, _log_tail(federation, run_id))
    result = outcome.result
    rounds = result["rounds"]
    assert [row["round"] for row in rounds] == [1], rounds
    row = rounds[0]
    assert row["status"] == "completed", row
    assert [member["status"] for member in row["members"]] == ["accepted"] * MEMBERS, row["members"]
    assert not row["rejections"], row["rejections"]
    assert all(member["update_digest"] for member in row["members"]), row["members"]
    # Members decrypted the sealed aggregate and evaluated the model it gives: their reports count
    # only when they hold the model the round produced (the tally's majority model).
    assert result["final_accuracy"] is not None, result
    assert row["accuracy"] is not None and row["model_hash"] and row["aggregate_hash"], row
    assert result["audit"]["ok"], result["audit"]


def _log_tail(federation: LocalFederation, run_id: int) -> str:
    tails = []
    for path in sorted(federation.log_dir.glob("*.log")):
        text = path.read_text(errors="replace")
        tails.append(f"--- {path.name}\n{text[-3000:]}")
    return "\n".join(tails)
