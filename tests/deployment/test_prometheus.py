"""A real Prometheus server (Debian's ``prometheus`` package; ``.ci/run`` installs it) scrapes fedchain.

``promtool check config`` accepts the shipped ``deploy/prometheus.yml``; the same jobs, pointed at
loopback ports, scrape a coordinator exporter and a member's exporter process
(``python -m fedchain.telemetry member``), and every series fedchain documents
(:data:`fedchain.telemetry.COORDINATOR_METRICS` / :data:`~fedchain.telemetry.MEMBER_METRICS`) is
queried back from Prometheus's HTTP API with its job label. Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from fedchain.results import RoundSummary
from fedchain.telemetry import COORDINATOR_METRICS, MEMBER_METRICS, CoordinatorMetrics, MemberMetrics
from fedchain.types import MemberRound

pytestmark = [pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "deploy" / "prometheus.yml"
ALICE = "0x" + "aa" * 20
BOB = "0x" + "bb" * 20


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (apt-get install prometheus; .ci/run installs it)")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str, timeout_s: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout_s) as response:
        return json.loads(response.read().decode())


def _wait_for_port(port: int, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 90  # generous: CI shares 2 cores with other tests
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"{what} did not listen on 127.0.0.1:{port} (exit code {process.poll()})")
            time.sleep(0.1)


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def test_promtool_accepts_the_shipped_scrape_config():
    promtool = _binary("promtool")
    checked = subprocess.run([promtool, "check", "config", str(SHIPPED)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    jobs = {job["job_name"] for job in yaml.safe_load(SHIPPED.read_text())["scrape_configs"]}
    assert jobs == {"fedchain-coordinator", "fedchain-members"}


@pytest.fixture
def coordinator_exporter() -> Iterator[int]:
    """The coordinator's exporter after two rounds, one failed reply and one timed stage."""
    metrics = CoordinatorMetrics()
    for server_round in (1, 2):
        members = [
            MemberRound(member_id=0, address=ALICE, kind="honest", num_examples=100, status="accepted",
                        reward_wei=600, epsilon=1.5 * server_round),
            MemberRound(member_id=1, address=BOB, kind="honest", num_examples=50, status="accepted",
                        reward_wei=400, epsilon=2.0 * server_round),
        ]  # fmt: skip
        summary = RoundSummary(
            server_round=server_round,
            status="completed",
            accuracy=0.8,
            loss=0.4,
            gas_used=90_000,
            seconds=3.0,
            members=members,
        )
        metrics.count_replies("train", sampled=3, replied=2, failed_by_reason={"declined": 1})
        with metrics.time("aggregate"):
            pass
        metrics.ciphertext_bytes(4096)
        metrics.observe_round(summary, epsilon_budget=8.0)
    with metrics.serve(0) as server:
        yield server.port


@pytest.fixture
def member_exporter(tmp_path: Path) -> Iterator[int]:
    """A member's exporter process serving the state its node saved."""
    state_dir = tmp_path / "member-0"
    member = MemberMetrics.open(state_dir / "metrics.json", member=ALICE)
    member.observe_training(1.2, epsilon=1.5, epsilon_budget=8.0, examples=100)
    member.observe_encrypt(0.05)
    member.count("evaluated")
    member.save()
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "fedchain.telemetry", "member", "--state-dir", str(state_dir), "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_port(port, process, "the member exporter")
        yield port
    finally:
        _stop(process)


def _loopback_config(coordinator_port: int, member_port: int) -> dict[str, Any]:
    """The shipped config with its jobs pointed at loopback ports and a short scrape interval."""
    config = yaml.safe_load(SHIPPED.read_text())
    config["global"]["scrape_interval"] = "1s"
    targets = {"fedchain-coordinator": f"127.0.0.1:{coordinator_port}", "fedchain-members": f"127.0.0.1:{member_port}"}
    for job in config["scrape_configs"]:
        job["static_configs"] = [{"targets": [targets[job["job_name"]]]}]
    return dict(config)


@pytest.mark.slow
def test_prometheus_scrapes_the_coordinator_and_a_member(tmp_path, coordinator_exporter, member_exporter):
    prometheus = _binary("prometheus")
    promtool = _binary("promtool")
    config_file = tmp_path / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(_loopback_config(coordinator_exporter, member_exporter)))
    checked = subprocess.run([promtool, "check", "config", str(config_file)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    port = _free_port()
    log = (tmp_path / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            prometheus,
            f"--config.file={config_file}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    api = f"http://127.0.0.1:{port}/api/v1"
    try:
        _wait_for_port(port, process, "prometheus")

        def query(expression: str) -> list[dict[str, Any]]:
            answer = _get(f"{api}/query?{urllib.parse.urlencode({'query': expression})}")
            assert answer["status"] == "success", answer
            return list(answer["data"]["result"])

        documented = {"fedchain-coordinator": COORDINATOR_METRICS, "fedchain-members": MEMBER_METRICS}
        deadline = time.monotonic() + 120
        while True:
            up = {r["metric"]["job"]: r["value"][1] for r in query("up")}
            # Histograms are stored as NAME_bucket/_sum/_count series.
            missing = [
                f"{job}: {name}"
                for job, names in documented.items()
                for name in names
                if not query(f'{{__name__=~"{name}|{name}_count", job="{job}"}}')
            ]
            if up == {"fedchain-coordinator": "1", "fedchain-members": "1"} and not missing:
                break
            assert time.monotonic() < deadline, (
                f"after 120 s: targets {up}, documented series not in Prometheus: {missing}\n{_get(f'{api}/targets')}"
            )
            time.sleep(0.5)

        assert float(query('fedchain_rounds_total{job="fedchain-coordinator",status="completed"}')[0]["value"][1]) == 2
        assert float(query('fedchain_gas_used_total{job="fedchain-coordinator"}')[0]["value"][1]) == 180_000
        epsilon = query(f'fedchain_member_epsilon{{job="fedchain-coordinator",member="{BOB}"}}')
        assert float(epsilon[0]["value"][1]) == 4.0
        trained = query('fedchain_member_instructions_total{job="fedchain-members",outcome="trained"}')
        assert float(trained[0]["value"][1]) == 1
        targets = _get(f"{api}/targets")["data"]["activeTargets"]
        assert all(t["scrapeUrl"].startswith("http://127.0.0.1:") for t in targets)
    finally:
        _stop(process)
        log.close()
