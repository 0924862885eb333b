import pytest

from fedchain.config import FedChainConfig
from fedchain.errors import ConfigError, FedChainError


def test_defaults_are_valid_and_frozen():
    config = FedChainConfig()
    assert config.dp and config.he and config.chain == "embedded"
    with pytest.raises(AttributeError):
        config.rounds = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"rounds": 0}, "The 'rounds' parameter must be an int in [1, inf). Got 0."),
        ({"epsilon": 0.0}, "The 'epsilon' parameter must be a float in (0, inf). Got 0.0."),
        ({"epsilon": float("nan")}, "The 'epsilon' parameter must be a float in (0, inf). Got nan."),
        ({"delta": 1.0}, "The 'delta' parameter must be a float in (0, 1). Got 1.0."),
        ({"fraction_train": 0.0}, "The 'fraction_train' parameter must be a float in (0, 1]. Got 0.0."),
        ({"momentum": 1.0}, "The 'momentum' parameter must be a float in [0, 1) or 'auto'. Got 1.0."),
        ({"partitioner": "zipf"}, "The 'partitioner' parameter must be one of 'iid', 'dirichlet'. Got 'zipf'."),
        ({"batch_size": 2.5}, "The 'batch_size' parameter must be an int in [1, inf) or 'auto'. Got 2.5."),
        ({"task": "imagenet"}, "The 'task' parameter must be one of 'digits-mlp', "),
        ({"dp": "maybe"}, "The 'dp' parameter must be a boolean. Got 'maybe'."),
        ({"chain": "ftp://x"}, "The 'chain' parameter must be 'embedded', 'none' or an http(s):// JSON-RPC URL."),
        ({"adversaries": ("thief",)}, "The 'adversary' parameter must be one of 'free_rider', 'noise'"),
        ({"min_members": 6}, "The 'min_members' parameter must be an int in [1, 5] (the number of members). Got 6."),
        ({"min_members": 1}, "The 'min_members' parameter must be an int in [2, inf) when HE is on. Got 1."),
    ],
)
def test_invalid_values_name_parameter_range_and_value(changes, message):
    with pytest.raises(ConfigError) as info:
        FedChainConfig(**changes)
    assert message in str(info.value)
    assert isinstance(info.value, FedChainError) and isinstance(info.value, ValueError)


def test_run_config_round_trip_keeps_every_option():
    config = FedChainConfig(rounds=7, adversaries=("noise", "free_rider"), reward_pool_wei=10**24, he=False)
    flat = config.to_run_config()
    assert flat["num-server-rounds"] == 7
    assert flat["adversaries"] == "noise,free_rider"
    assert flat["reward-pool-wei"] == str(10**24)
    assert FedChainConfig.from_run_config(flat) == config


def test_run_config_strings_from_flower_are_coerced():
    config = FedChainConfig.from_run_config({"dp": "false", "adversaries": "noise", "reward-pool-wei": "5"})
    assert config.dp is False and config.adversaries == ("noise",) and config.reward_pool_wei == 5
    assert config.total_members == config.members + 1


def test_replace_validates_and_rejects_unknown_options():
    config = FedChainConfig()
    assert config.replace(rounds=9).rounds == 9
    with pytest.raises(ConfigError, match="'rounds' parameter"):
        config.replace(rounds=-1)
    with pytest.raises(ConfigError, match="'roundz' parameter must be a known option"):
        config.replace(roundz=1)


def test_bad_reward_pool_string():
    with pytest.raises(ConfigError, match="reward_pool_wei"):
        FedChainConfig.from_run_config({"reward-pool-wei": "lots"})


def test_resume_needs_a_persistent_chain():
    with pytest.raises(ConfigError, match="'resume' parameter must be used with a persistent chain"):
        FedChainConfig(resume=True)
    assert FedChainConfig(resume=True, chain="http://127.0.0.1:8545").resume


@pytest.mark.parametrize("faults", ["crash:1,2", "kill:2:replies", "kill:1:aggregated", "kill:3:sent", ""])
def test_fault_injection_specs(faults):
    assert FedChainConfig(faults=faults).faults == faults


@pytest.mark.parametrize("faults", ["crash:x", "kill:2:lunch", "explode", "kill::sent"])
def test_bad_fault_specs(faults):
    with pytest.raises(ConfigError, match="'faults' parameter"):
        FedChainConfig(faults=faults)


def test_flower_app_config_in_pyproject_lists_every_option_with_its_default():
    import subprocess
    import sys

    from tests.conftest import ROOT

    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "sync_run_config.py"), "--check"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout


def test_min_members_of_one_is_allowed_only_without_he():
    assert FedChainConfig(he=False, min_members=1).min_members == 1
    with pytest.raises(ConfigError, match="An aggregate of one member is that member's update"):
        FedChainConfig.from_run_config({"he": True, "min-members": 1})
