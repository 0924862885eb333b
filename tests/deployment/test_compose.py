"""deploy/: compose.yaml validated against a schema of the subset it uses, and kept consistent with the launcher.

No container engine runs here, so the checks are static: the compose file's shape, and that its
commands, flags, node configs, ports and volumes are the ones the local launcher uses
(``fedchain.deployment``), that Prometheus scrapes what the services expose, that the Grafana
dashboard only uses metric names fedchain exports, and that the Dockerfile installs a pinned CPU
torch before fedchain.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from fedchain.deployment import WALLET_PASSWORD_ENV, node_config
from fedchain.deployment.chain import anvil_command
from fedchain.deployment.flower import (
    FLOWER_ENV,
    SUPERLINK_SECURITY_FLAGS,
    SUPERNODE_SECURITY_FLAGS,
    superlink_command,
    supernode_command,
)
from fedchain.deployment.launcher import PROMETHEUS_JOBS, exporter_command
from fedchain.provision import MemberBundle
from fedchain.telemetry import COORDINATOR_METRICS, MEMBER_METRICS, METRIC_NAMES

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
MEMBERS = 3

_STR_LIST = {"type": "array", "items": {"type": "string"}}
_ENV = {"type": "object", "additionalProperties": {"type": "string"}}
_VOLUME = {
    "oneOf": [
        {"type": "string", "pattern": r"^[^:]+:/[^:]*(:ro)?$"},
        {
            "type": "object",
            "required": ["type", "source", "target"],
            "additionalProperties": False,
            "properties": {
                "type": {"enum": ["volume", "bind"]},
                "source": {"type": "string"},
                "target": {"type": "string", "pattern": "^/"},
                "read_only": {"type": "boolean"},
                "volume": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"subpath": {"type": "string", "pattern": "^[^/].*"}},
                },
            },
        },
    ]
}
COMPOSE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["name", "services", "volumes"],
    "additionalProperties": False,
    "patternProperties": {"^x-": {}},
    "properties": {
        "name": {"type": "string"},
        "services": {
            "type": "object",
            "minProperties": 1,
            "additionalProperties": {
                "type": "object",
                "additionalProperties": False,
                "anyOf": [{"required": ["image"]}, {"required": ["build"]}],
                "properties": {
                    "image": {"type": "string", "pattern": r"^[a-z0-9./_-]+:[A-Za-z0-9._-]+$"},  # pinned tag
                    "build": {
                        "type": "object",
                        "required": ["context", "dockerfile"],
                        "additionalProperties": False,
                        "properties": {
                            "context": {"type": "string"},
                            "dockerfile": {"type": "string"},
                            "target": {"type": "string"},
                            "args": _ENV,
                        },
                    },
                    "command": _STR_LIST,
                    "environment": _ENV,
                    "volumes": {"type": "array", "items": _VOLUME},
                    "ports": {
                        "type": "array",
                        "items": {"type": "string", "pattern": r"^127\.0\.0\.1:\d+:\d+$"},  # loopback only
                    },
                    "expose": _STR_LIST,
                    "depends_on": {
                        "oneOf": [
                            _STR_LIST,
                            {
                                "type": "object",
                                "additionalProperties": {
                                    "type": "object",
                                    "required": ["condition"],
                                    "properties": {
                                        "condition": {
                                            "enum": [
                                                "service_started",
                                                "service_healthy",
                                                "service_completed_successfully",
                                            ]
                                        }
                                    },
                                },
                            },
                        ]
                    },
                    "profiles": _STR_LIST,
                    "restart": {"enum": ["no", "always", "on-failure", "unless-stopped"]},
                },
            },
        },
        "volumes": {"type": "object", "additionalProperties": {"type": ["object", "null"]}},
    },
}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def _tokens(service: dict[str, Any]) -> list[str]:
    """The command as argv; ``sh -c`` scripts are split like the shell would (after the env assignment)."""
    command = list(service["command"])
    if command[:2] == ["sh", "-c"]:
        return shlex.split(command[2])
    return command


def _after(tokens: list[str], executable: str) -> list[str]:
    index = next(i for i, token in enumerate(tokens) if token.endswith(executable))
    return tokens[index + 1 :]


def _volume_targets(service: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
            out[target] = {"source": source, "read_only": volume.endswith(":ro"), "subpath": None}
        else:
            out[volume["target"]] = {
                "source": volume["source"],
                "read_only": volume.get("read_only", False),
                "subpath": volume.get("volume", {}).get("subpath"),
            }
    return out


def test_compose_file_matches_the_schema(compose: dict[str, Any]) -> None:
    jsonschema.validate(compose, COMPOSE_SCHEMA)
    expected = {"provisioner", "demo-data", "anvil", "superlink", "setup", "run", "prometheus", "grafana"}
    expected |= {f"supernode-{i}" for i in range(MEMBERS)} | {f"member-metrics-{i}" for i in range(MEMBERS)}
    assert set(compose["services"]) == expected
    for name, service in compose["services"].items():
        for volume in _volume_targets(service).values():
            if not volume["source"].startswith("."):
                assert volume["source"] in compose["volumes"], (name, volume)
            else:
                assert (DEPLOY / volume["source"]).exists(), (name, volume)
        for dependency in service.get("depends_on", {}):
            assert dependency in compose["services"]


def test_the_schema_rejects_what_it_should(compose: dict[str, Any]) -> None:
    broken = json.loads(json.dumps(compose))
    broken["services"]["superlink"]["ports"] = ["9093:9093"]  # published on every interface
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, COMPOSE_SCHEMA)
    broken = json.loads(json.dumps(compose))
    broken["services"]["anvil"]["comand"] = ["anvil"]  # a typo compose would ignore
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, COMPOSE_SCHEMA)


def test_superlink_runs_with_the_launcher_flags(compose: dict[str, Any]) -> None:
    service = compose["services"]["superlink"]
    args = _after(_tokens(service), "flower-superlink")
    expected = superlink_command(
        Path("/fed"), host="0.0.0.0", port=9093, flwr_bin=Path("/bin"), database=Path("/state/superlink.db")
    )[1:]
    assert args == expected
    assert set(SUPERLINK_SECURITY_FLAGS) <= set(args) and "--insecure" not in args
    assert service["environment"]["FEDCHAIN_KEYSTORE"] == "/fed/coordinator/wallet.json"
    assert 'FEDCHAIN_KEYSTORE_PASSWORD="$(cat /fed/coordinator/wallet.password)"' in service["command"][2].replace(
        "$$", "$"
    )
    mounts = _volume_targets(service)
    assert mounts["/fed/superlink"] == {"source": "federation", "read_only": True, "subpath": "superlink"}
    assert mounts["/fed/coordinator"] == {"source": "federation", "read_only": True, "subpath": "coordinator"}
    assert "127.0.0.1:9093:9093" in service["ports"]


def test_supernodes_run_with_the_launcher_flags_and_node_config(compose: dict[str, Any]) -> None:
    provisioner = compose["services"]["provisioner"]["command"]
    sans = [provisioner[i + 1] for i, token in enumerate(provisioner) if token == "--address"]
    assert "superlink" in sans  # the name SuperNodes dial is in the certificate
    for member in range(MEMBERS):
        service = compose["services"][f"supernode-{member}"]
        args = _after(_tokens(service), "flower-supernode")
        expected = supernode_command(
            Path("/member"),
            superlink="superlink:9093",
            runtime_port=9094,
            node_config="/etc/fedchain/node.toml",
            flwr_bin=Path("/bin"),
        )[1:]
        assert args == expected
        assert set(SUPERNODE_SECURITY_FLAGS) <= set(args) and "--insecure" not in args
        assert f'{WALLET_PASSWORD_ENV}="$(cat /member/wallet.password)"' in service["command"][2].replace("$$", "$")
        mounts = _volume_targets(service)
        assert mounts["/member"] == {"source": "federation", "read_only": True, "subpath": f"members/member-{member}"}
        assert mounts["/state"]["source"] == f"state-{member}" and not mounts["/state"]["read_only"]
        assert mounts["/etc/fedchain/node.toml"]["source"] == f"./nodes/member-{member}.toml"

        # The node config file has exactly the keys the launcher gives a SuperNode, with container paths.
        values = tomllib.loads((DEPLOY / "nodes" / f"member-{member}.toml").read_text())
        bundle = MemberBundle(
            member_id=member,
            directory=Path("/member"),
            address="0x",
            ca_certificate=Path("/member/ca.crt"),
            supernode_key=Path("/member/supernode.key"),
            supernode_public_key=Path("/member/supernode.pub"),
            ckks_context=Path("/member/member.ckks"),
            wallet_keystore=Path("/member/wallet.json"),
            wallet_password_file=Path("/member/wallet.password"),
        )
        launcher = node_config(bundle, data_path=Path(f"/data/member-{member}.csv"), state_dir=Path("/state"))
        assert values == launcher


def test_flower_services_get_the_launcher_environment(compose: dict[str, Any]) -> None:
    for name in ["superlink", "setup", "run", *[f"supernode-{i}" for i in range(MEMBERS)]]:
        environment = compose["services"][name]["environment"]
        for key, value in FLOWER_ENV.items():
            assert environment[key] == value, (name, key)
        assert environment["FLWR_HOME"].startswith("/")


def test_setup_and_run_agree_with_the_services(compose: dict[str, Any]) -> None:
    setup = compose["services"]["setup"]["command"]
    option = {setup[i]: setup[i + 1] for i in range(len(setup) - 1) if setup[i].startswith("--")}
    assert option["--superlink"] == "superlink:9093"
    assert option["--chain"] == "http://anvil:8545"
    # The anvil image's entrypoint is anvil; its arguments are the launcher's, on the container's interface.
    assert compose["services"]["anvil"]["command"] == anvil_command(Path("anvil"), host="0.0.0.0", port=8545)[1:]
    assert option["--metrics-port"] in compose["services"]["superlink"]["expose"]
    run = compose["services"]["run"]["command"]
    assert run[:4] == ["flwr", "run", "/app", "fedchain"]
    assert run[run.index("--run-config") + 1] == "/fed/deployment/run-config.toml"
    assert compose["services"]["run"]["environment"]["FLWR_HOME"] == option["--flwr-home"]


def test_member_exporters_match_the_launcher_and_prometheus(compose: dict[str, Any]) -> None:
    prometheus = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in prometheus["scrape_configs"]}
    assert tuple(jobs) == PROMETHEUS_JOBS
    coordinator = jobs["fedchain-coordinator"]["static_configs"][0]["targets"]
    setup = compose["services"]["setup"]["command"]
    assert coordinator == [f"superlink:{setup[setup.index('--metrics-port') + 1]}"]
    targets = jobs["fedchain-members"]["static_configs"][0]["targets"]
    assert len(targets) == MEMBERS
    for member, target in enumerate(targets):
        host, port = target.split(":")
        service = compose["services"][host]
        assert host == f"member-metrics-{member}"
        expected = exporter_command(Path("/state"), host="0.0.0.0", port=int(port))[1:]
        assert service["command"][1:] == expected
        assert port in service["expose"]
        assert _volume_targets(service)["/state"] == {"source": f"state-{member}", "read_only": True, "subpath": None}


def test_grafana_dashboard_uses_only_exported_metric_names() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "fedchain-dashboard.json").read_text())
    datasource = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text())
    uid = datasource["datasources"][0]["uid"]
    exported = set(METRIC_NAMES)
    histograms = {"fedchain_round_duration_seconds", "fedchain_stage_duration_seconds"} | {
        name for name in MEMBER_METRICS if name.endswith("_duration_seconds")
    }
    series = exported | {f"{h}_{suffix}" for h in histograms for suffix in ("bucket", "sum", "count")}
    used: set[str] = set()
    ids = set()
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == uid
        assert panel["id"] not in ids
        ids.add(panel["id"])
        for target in panel["targets"]:
            for name in re.findall(r"\bfedchain_[a-z_]+", target["expr"]):
                assert name in series, (panel["title"], name)
                used.add(re.sub(r"_(bucket|sum|count)$", "", name) if name not in exported else name)
            for job in re.findall(r'job="([^"]+)"', target["expr"]):
                assert job in PROMETHEUS_JOBS
    assert used == exported, f"not on the dashboard: {sorted(exported - used)}"
    assert set(COORDINATOR_METRICS) <= used


def test_dockerfile_installs_a_pinned_cpu_torch_before_fedchain() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    lines = [line.strip() for line in text.splitlines()]
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in lines
    torch = next(i for i, line in enumerate(lines) if "${TORCH_SPEC}" in line and line.startswith("RUN pip install"))
    fedchain = next(i for i, line in enumerate(lines) if line.startswith("RUN pip install /app"))
    assert torch < fedchain
    assert 'ARG TORCH_SPEC="torch==2.13.0"' in lines
    assert "whl/cpu" in text
    ignored = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    assert {".venv", "runs", ".git", "contracts/node_modules"} <= set(ignored)  # no keys, no venv in an image
