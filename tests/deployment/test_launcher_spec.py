"""The launcher's options, run config and demo data, without starting processes."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from fedchain.data import load_local_dataset
from fedchain.deployment import DeploySpec, LocalFederation, default_app_dir, write_demo_data
from fedchain.deployment.launcher import app_run_config_keys
from fedchain.errors import ConfigError
from fedchain.provision import ProvisionedFederation


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"members": 0}, "The 'members' parameter must be an int in [1, inf). Got 0."),
        ({"rounds": 0}, "The 'rounds' parameter must be an int in [1, inf). Got 0."),
        ({"chain": "ganache"}, "The 'chain' parameter must be 'anvil', 'none' or an http(s):// JSON-RPC URL."),
        ({"chain": "http://127.0.0.1:8545"}, "The 'admin_key' parameter must be a funded admin key"),
        ({"members": 2, "data": (Path("a.csv"),)}, "The 'data' parameter must be one data file per member (2)."),
        ({"app_dir": Path("/nonexistent")}, "The 'app_dir' parameter must be a Flower App directory"),
    ],
)
def test_invalid_options_are_named(tmp_path: Path, kwargs: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ConfigError) as info:
        DeploySpec(directory=tmp_path / "fed", **kwargs)
    assert str(info.value).startswith(message)


def test_keys_never_go_where_flwr_run_would_pack_them() -> None:
    app = default_app_dir()
    with pytest.raises(ConfigError, match="outside the app, or under a git-ignored one"):
        DeploySpec(directory=app / "deploy" / "fed")
    assert DeploySpec(directory=app / "runs" / "fed").directory == (app / "runs" / "fed").resolve()


def test_run_config_carries_the_deployment_and_only_keys_the_app_declares(
    provisioned: ProvisionedFederation, caplog: pytest.LogCaptureFixture
) -> None:
    spec = DeploySpec(
        directory=provisioned.directory, members=3, rounds=4, run_config={"epsilon": 3.0, "not-an-option": 1}
    )
    federation = LocalFederation(spec)
    federation.federation = provisioned
    federation.ports = {"superlink": 9093, "anvil": 8545, "coordinator-metrics": 9400}
    with caplog.at_level(logging.WARNING):
        values = federation.run_config(Path("/out"))
    known = app_run_config_keys(spec.app_dir)
    assert set(values) <= known
    assert "not-an-option" not in values and "not-an-option" in caplog.text
    assert values["num-server-rounds"] == 4 and values["num-members"] == 3
    assert values["chain"] == "http://127.0.0.1:8545" and values["he"] is True
    assert values["epsilon"] == 3.0 and values["out-dir"] == "/out"
    assert values["metrics-port"] == 9400
    for key, expected in {
        "he-keys-dir": str(provisioned.coordinator_dir),
        "metrics-host": "127.0.0.1",
    }.items():
        if key in known:  # declared by the app: then it must be passed
            assert values[key] == expected


def test_demo_data_is_one_valid_csv_per_member(tmp_path: Path) -> None:
    paths = write_demo_data(tmp_path / "data", 3, seed=0)
    sizes = []
    for path in paths:
        data = load_local_dataset(path, label_column="label", num_classes=10)
        assert data.num_features == 64
        sizes.append(data.num_train + len(data.y_test))
    assert sum(sizes) == 1797  # every digit exactly once across the members
    first = paths[0].read_bytes()
    assert write_demo_data(tmp_path / "data", 3, seed=0) == paths and paths[0].read_bytes() == first


def test_a_running_deployment_is_not_started_over(tmp_path: Path) -> None:
    import sys

    from fedchain.deployment import ProcessSupervisor

    spec = DeploySpec(directory=tmp_path / "fed", members=1)
    state = spec.directory / "deployment" / "processes.json"
    running = ProcessSupervisor(state)
    record = running.start("superlink", [sys.executable, "-c", "import time; time.sleep(600)"], log_path=tmp_path / "x")
    try:
        with pytest.raises(ConfigError, match="superlink still run: stop them with"):
            LocalFederation(spec).start()
        assert [r.pid for r in ProcessSupervisor.load(state).records] == [record.pid]  # records kept for `down`
    finally:
        running.stop_all()
