import json

import flwr.serverapp.strategy as flower
import numpy as np
import pytest

from fedchain.config import FedChainConfig
from fedchain.errors import ConfigError, StrategyError
from strategies.builtin import make_server_optimizer
from strategies.conformance import flower_sandbox
from strategies.registry import available_strategies, create_strategy, resolve_strategy

HE_STRATEGIES = {"fedavg": "avg", "fedprox": "avg", "fedavgm": "avgm", "fedadam": "adam", "fedyogi": "yogi"}
PLAINTEXT_STRATEGIES = ("fedmedian", "fedtrimmedavg", "krum")


def _with(config: FedChainConfig, **options: object) -> FedChainConfig:
    """Set strategy options the config does not declare as fields yet (strategies read them with getattr)."""
    for name, value in options.items():
        object.__setattr__(config, name, value)
    return config


def test_registry_lists_builtins():
    assert set(HE_STRATEGIES) | set(PLAINTEXT_STRATEGIES) <= set(available_strategies())


@pytest.mark.parametrize(
    ("name", "flower_class"),
    [
        ("fedavg", flower.FedAvg),
        ("fedprox", flower.FedProx),
        ("fedavgm", flower.FedAvgM),
        ("fedadam", flower.FedAdam),
        ("fedyogi", flower.FedYogi),
        ("fedmedian", flower.FedMedian),
        ("fedtrimmedavg", flower.FedTrimmedAvg),
        ("krum", flower.Krum),
    ],
)
def test_builtins_reuse_flowers_implementation(name, flower_class):
    strategy = create_strategy(FedChainConfig(strategy=name, he=False))
    assert type(strategy.inner) is flower_class


@pytest.mark.parametrize("name", PLAINTEXT_STRATEGIES)
def test_plaintext_strategy_refuses_he_and_says_why(name):
    with pytest.raises(StrategyError) as info:
        create_strategy(FedChainConfig(strategy=name, he=True))
    message = str(info.value)
    assert "needs plaintext updates, but HE is on" in message and "'fedavg'" in message and "--no-he" in message
    assert create_strategy(FedChainConfig(strategy=name, he=False)).needs_plaintext
    with pytest.raises(StrategyError, match="no member-side update"):
        make_server_optimizer(FedChainConfig(strategy=name))


@pytest.mark.parametrize(("name", "kind"), sorted(HE_STRATEGIES.items()))
def test_he_strategies_build_under_he_with_their_member_update(name, kind):
    strategy = create_strategy(FedChainConfig(strategy=name, he=True))
    assert strategy.member_update == kind
    assert make_server_optimizer(FedChainConfig(strategy=name)).kind == kind


def test_server_optimizer_options_come_from_the_config():
    options = {"server_eta": 0.05, "server_beta_1": 0.8, "server_tau": 1e-4}
    assert make_server_optimizer(_with(FedChainConfig(strategy="fedadam"), **options)).options() == {
        "eta": 0.05,
        "beta_1": 0.8,
        "beta_2": 0.99,
        "tau": 1e-4,
    }
    inner = create_strategy(_with(FedChainConfig(strategy="fedadam", he=False), **options)).inner
    assert (inner.eta, inner.beta_1, inner.beta_2, inner.tau) == (0.05, 0.8, 0.99, 1e-4)
    momentum = make_server_optimizer(_with(FedChainConfig(strategy="fedavgm"), server_momentum=0.3))
    assert momentum.options() == {"server_learning_rate": 1.0, "server_momentum": 0.3}


@pytest.mark.parametrize(
    ("name", "option", "value", "message"),
    [
        ("fedadam", "server_eta", 0.0, "The 'server_eta' parameter must be a float in (0, inf). Got 0.0."),
        ("fedyogi", "server_beta_2", 1.0, "The 'server_beta_2' parameter must be a float in [0, 1). Got 1.0."),
        ("fedavgm", "server_momentum", -0.1, "The 'server_momentum' parameter must be a float in [0, 1). Got -0.1."),
        ("fedprox", "proximal_mu", -1.0, "The 'proximal_mu' parameter must be a float in [0, inf). Got -1.0."),
        ("krum", "krum_malicious_members", 1.5, "The 'krum_malicious_members' parameter must be an int in [0, inf)."),
        ("fedtrimmedavg", "trimmed_beta", 0.5, "The 'trimmed_beta' parameter must be a float in [0, 0.5). Got 0.5."),
    ],
)
def test_bad_option_values_are_refused_naming_the_option(name, option, value, message):
    with pytest.raises(ConfigError) as info:
        create_strategy(_with(FedChainConfig(strategy=name, he=False), **{option: value}))
    assert str(info.value).startswith(message)


def test_fedprox_sends_proximal_mu_to_members():
    from fedchain.protocol import TrainIns, config_record, decode_train_ins

    strategy = create_strategy(_with(FedChainConfig(strategy="fedprox", he=False, members=3), proximal_mu=0.25))
    with flower_sandbox(3) as grid:
        config = config_record(TrainIns(1, 0))
        messages = strategy.configure_train(1, {"w": np.zeros(2, np.float32)}, config, grid)
    assert len(messages) == 3
    assert all(decode_train_ins(m.content).proximal_mu == 0.25 for m in messages)


def test_member_requirements_depend_on_the_mode():
    assert resolve_strategy("fedavg").member_requirements(he=True) == frozenset()
    assert resolve_strategy("fedprox").member_requirements(he=False) == {"proximal"}
    assert resolve_strategy("fedadam").member_requirements(he=True) == {"server-optimizer"}
    assert resolve_strategy("fedadam").member_requirements(he=False) == frozenset()


def test_capabilities_list_what_each_strategy_supports():
    rows = {name: cls.capabilities() for name, cls in available_strategies().items()}
    json.dumps(rows)
    assert rows["fedadam"]["he"] and rows["fedadam"]["member_update"] == "adam"
    assert [o["key"] for o in rows["fedadam"]["options"]] == [
        "server-eta",
        "server-beta-1",
        "server-beta-2",
        "server-tau",
    ]
    assert rows["krum"] == {
        "name": "krum",
        "summary": "Krum (Blanchard et al. 2017): keeps the update closest to its neighbours; needs plaintext updates.",
        "he": False,
        "needs_plaintext": True,
        "he_alternative": "fedavg",
        "member_update": None,
        "member_training": [],
        "scorers": "any",
        "options": [{"key": "krum-malicious-members", "default": 0, "help": "Krum: members assumed malicious (f)"}],
    }
    assert rows["fedprox"]["member_training"] == ["proximal"]


def test_option_defaults_agree_with_the_config_once_it_declares_them():
    fields = set(FedChainConfig.option_names())
    for cls in available_strategies().values():
        for option in cls.options:
            if option.field in fields:
                assert getattr(FedChainConfig(), option.field) == option.default, option.field
                assert FedChainConfig.from_run_config({option.key: option.default}) is not None


def test_unknown_strategy_lists_registered_names():
    with pytest.raises(ConfigError) as info:
        resolve_strategy("fedmagic")
    assert "'fedavg'" in str(info.value) and "'fedmedian'" in str(info.value) and "'krum'" in str(info.value)


def test_dotted_path_resolves():
    assert resolve_strategy("strategies.builtin:FedAvgStrategy").name == "fedavg"
    with pytest.raises(ConfigError, match="importable dotted path"):
        resolve_strategy("strategies.builtin:Nope")


def test_fedavg_aggregate_is_example_weighted():
    strategy = create_strategy(FedChainConfig(he=False, members=2))
    a = {"w": np.zeros(3, np.float32)}
    b = {"w": np.ones(3, np.float32)}
    with flower_sandbox(2):
        record = strategy.aggregate_plain(1, [(a, 30), (b, 10)])
    assert np.allclose(record["w"].numpy(), 0.25)


def test_fedmedian_aggregate_is_coordinatewise_median():
    strategy = create_strategy(FedChainConfig(strategy="fedmedian", he=False, members=3))
    updates = [({"w": np.full(2, v, np.float32)}, n) for v, n in ((0.0, 1), (5.0, 100), (1.0, 1))]
    with flower_sandbox(3):
        assert np.allclose(strategy.aggregate_plain(1, updates)["w"].numpy(), 1.0)


def test_krum_keeps_the_update_closest_to_the_others():
    """Flower's Krum in plaintext: the outlier is never chosen, and the result is one member's update."""
    strategy = create_strategy(_with(FedChainConfig(strategy="krum", he=False, members=5), krum_malicious_members=1))
    rng = np.random.default_rng(0)
    honest = [{"w": (1.0 + rng.normal(0, 0.01, 4)).astype(np.float32)} for _ in range(4)]
    outlier = {"w": np.full(4, 50.0, np.float32)}
    with flower_sandbox(5):
        chosen = strategy.aggregate_plain(1, [(w, 10) for w in [*honest, outlier]])["w"].numpy()
    assert any(np.array_equal(chosen, w["w"]) for w in honest)
    # FedAvg over the same updates is dragged by the outlier.
    with flower_sandbox(5):
        mean = create_strategy(FedChainConfig(he=False, members=5)).aggregate_plain(
            1, [(w, 10) for w in [*honest, outlier]]
        )
    assert mean["w"].numpy().min() > 10


def test_fedadam_plaintext_result_has_the_models_dtype():
    """Flower's FedAdam returns float64 arrays; the coordinator's model stays float32."""
    strategy = create_strategy(FedChainConfig(strategy="fedadam", he=False, members=2))
    from fedchain.protocol import TrainIns, config_record

    weights = {"w": np.zeros(3, np.float32)}
    with flower_sandbox(2) as grid:
        strategy.configure_train(1, weights, config_record(TrainIns(1, 0)), grid)
        record = strategy.aggregate_plain(1, [({"w": np.ones(3, np.float32)}, 1), ({"w": np.ones(3, np.float32)}, 3)])
    assert record["w"].numpy().dtype == np.float32
