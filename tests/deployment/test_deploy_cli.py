"""``fedchain deploy`` and ``python -m fedchain.deployment`` are one typer app."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from typer.testing import CliRunner

from fedchain.cli import app as fedchain_app
from fedchain.deployment.cli import app as deploy_app
from fedchain.deployment.cli import main

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def _parse(argv: list[str]) -> tuple[str, dict[str, Any]]:
    """The sub-command and the parameters that ``argv`` parses to, without running anything."""
    group = typer.main.get_command(deploy_app)
    with group.make_context("python -m fedchain.deployment", list(argv)) as context:
        name, command, rest = group.resolve_command(context, context.protected_args + context.args)
        assert command is not None
        with command.make_context(name, rest, parent=context) as sub:
            return str(name), dict(sub.params)


def test_every_compose_command_parses() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    commands = [
        service["command"][3:]
        for service in compose["services"].values()
        if service.get("command", [])[:3] == ["python", "-m", "fedchain.deployment"]
    ]
    assert {command[0] for command in commands} == {"provision", "demo-data", "setup"}
    parsed = dict(_parse(command) for command in commands)
    assert parsed["provision"]["members"] == 3 and "superlink" in parsed["provision"]["address"]
    assert parsed["setup"]["superlink"] == "superlink:9093" and parsed["setup"]["anvil_dev_key"] is True
    assert parsed["demo-data"]["members"] == 3


def test_fedchain_deploy_mounts_the_same_commands() -> None:
    group = typer.main.get_command(fedchain_app)
    deploy = group.commands["deploy"]  # type: ignore[attr-defined]
    assert sorted(deploy.commands) == ["bundle", "demo-data", "down", "provision", "setup", "status", "up"]
    name, params = _parse(["-v", "up", "fed", "--no-metrics", "--stop-after", "--data", "a.csv", "--data", "b.csv"])
    assert name == "up" and params["metrics"] is False and [str(p) for p in params["data"]] == ["a.csv", "b.csv"]


def test_exit_codes_and_messages(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["up", str(tmp_path), "--foreground", "--stop-after"]) == 2
    assert main(["status", str(tmp_path)]) == 0
    assert '"processes": {}' in capsys.readouterr().out
    runner = CliRunner()
    result = runner.invoke(
        fedchain_app, ["deploy", "setup", str(tmp_path / "absent"), "--superlink", "x:1", "--flwr-home", str(tmp_path)]
    )
    assert result.exit_code in (1, 2) and "error:" in result.output
