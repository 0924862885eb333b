"""The exception tree: drawn once in fedchain/errors.py, every class under FedChainError, messages pinned."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

import fedchain.errors as errors
from fedchain.errors import (
    ConformanceError,
    DeploymentError,
    DeploymentTimeoutError,
    FedChainError,
    FlwrCommandError,
    ProcessError,
    ReplyRejectedError,
    RoundConflictError,
    ToolMissingError,
    UpdateRejectedError,
)


def _drawn_parents() -> dict[str, str]:
    """Each class in the module docstring's tree, with the class drawn above it."""
    parents: dict[str, str] = {}
    stack: list[str] = []
    for line in (errors.__doc__ or "").splitlines():
        match = re.match(r"^ {4}((?:[│ ] {3})*)(?:[├└]── )?([A-Z]\w+)", line)
        if not match or not match.group(2).endswith(("Error", "FedChainError")):
            continue
        depth = len(match.group(1)) // 4 + (1 if "── " in line else 0)
        del stack[depth:]
        if stack:
            parents[match.group(2)] = stack[-1]
        stack.append(match.group(2))
    return parents


def test_the_drawing_shows_every_class_with_its_parent() -> None:
    drawn = _drawn_parents()
    classes = {name: getattr(errors, name) for name in errors.__all__}
    assert set(drawn) | {"FedChainError"} == set(classes)
    for name, parent in drawn.items():
        assert classes[name].__mro__[1] is classes[parent], name
    assert errors.__all__ == sorted(errors.__all__)


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("fedchain.contribution.committee", "CommitteeRequestError"),
        ("fedchain.crypto.vectors", "UpdateRejectedError"),
        ("fedchain.ledger.admin", "ChainIdMismatchError"),
        ("fedchain.ledger.admin", "MissingRoleError"),
        ("fedchain.ledger.admin", "UnfundedAccountError"),
        ("fedchain.ledger.base", "RoundConflictError"),
        ("strategies.conformance", "ConformanceError"),
    ],
)
def test_classes_stay_importable_from_the_modules_that_raise_them(module: str, name: str) -> None:
    assert getattr(importlib.import_module(module), name) is getattr(errors, name)


@pytest.mark.parametrize(
    ("exc", "message", "fields"),
    [
        (
            DeploymentError("the federation is not started: call start() first", component="federation"),
            "the federation is not started: call start() first",
            {"component": "federation"},
        ),
        (
            ToolMissingError("anvil", "run `make node`"),
            "anvil is not installed: run `make node`",
            {"component": "anvil", "tool": "anvil", "fix": "run `make node`"},
        ),
        (
            ProcessError("superlink", "superlink exited during startup (code 1): boom", exit_code=1),
            "superlink exited during startup (code 1): boom",
            {"component": "superlink", "exit_code": 1},
        ),
        (
            FlwrCommandError("flwr run", "`flwr run` failed (exit 2): no app", exit_code=2),
            "`flwr run` failed (exit 2): no app",
            {"component": "flwr", "command": "flwr run", "exit_code": 2},
        ),
        (
            DeploymentTimeoutError(7, 60.0),
            "run 7 did not finish within 60 s",
            {"component": "superlink", "run_id": 7, "timeout_s": 60.0},
        ),
        (
            ReplyRejectedError("unsigned", "the update carries no signature"),
            "the update carries no signature",
            {"reason": "unsigned"},
        ),
        (UpdateRejectedError(3, "2 chunks, expected 5"), "update 3 rejected: 2 chunks, expected 5", {"index": 3}),
        (
            ConformanceError("check_zero_weight", "fedavg", "sum changed"),
            "check_zero_weight failed for strategy 'fedavg': sum changed",
            {"check": "check_zero_weight", "strategy": "fedavg"},
        ),
        (
            RoundConflictError(2, "0xaa", "0xbb"),
            "round 2 is already recorded with a different payload (recorded recordHash 0xaa, attempted 0xbb)",
            {"server_round": 2},
        ),
    ],
)
def test_messages_and_fields(exc: FedChainError, message: str, fields: dict[str, object]) -> None:
    assert str(exc) == message
    assert {name: getattr(exc, name) for name in fields} == fields
    assert isinstance(exc, FedChainError)


def test_deployment_errors_are_one_family(tmp_path: Path) -> None:
    from fedchain.deployment.processes import ProcessSupervisor

    for cls in (ToolMissingError, ProcessError, FlwrCommandError, DeploymentTimeoutError):
        assert issubclass(cls, DeploymentError)
    with pytest.raises(ProcessError, match="cannot start ghost") as info:
        ProcessSupervisor().start("ghost", [str(tmp_path / "no-such-binary")], log_path=tmp_path / "g.log")
    assert info.value.component == "ghost"
