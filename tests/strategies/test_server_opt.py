"""Member-side server optimizers: Flower's math, determinism across members, state files."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Message
from flwr.serverapp.strategy import FedAdam, FedAvgM, FedYogi

from fedchain.aggregation import (
    FedAdamUpdate,
    FedAvgMUpdate,
    FedYogiUpdate,
    OptimizerState,
    available_server_optimizers,
    create_server_optimizer,
    load_optimizer_state,
    save_optimizer_state,
)
from fedchain.config import FedChainConfig
from fedchain.errors import ConfigError, IntegrityError, SerializationError, StrategyError
from fedchain.protocol import StrategyReply, TrainIns, config_record, encode
from fedchain.serialization import flatten, unflatten
from strategies.conformance import flower_sandbox
from strategies.registry import create_strategy

ROUNDS = 4
SHAPES = {"a": (5, 3), "b": (7,)}


# Independent references, written from Reddi et al. 2020 / Hsu et al. 2019 as Flower implements them.
def reference_step(kind, w, d, state, t, **o):
    state = dict(state)
    if kind == "avgm":
        p = -d
        state["mom"] = p if "mom" not in state else o["server_momentum"] * state["mom"] + p
        return w - o["server_learning_rate"] * state["mom"], state
    m = o["beta_1"] * state.get("m", 0.0) + (1 - o["beta_1"]) * d
    if kind == "adam":
        v = o["beta_2"] * state.get("v", 0.0) + (1 - o["beta_2"]) * d * d
        lr = o["eta"] * np.sqrt(1 - o["beta_2"] ** (t + 1)) / (1 - o["beta_1"] ** (t + 1))
    else:
        v0 = state.get("v", np.zeros_like(d))
        v = v0 - (1 - o["beta_2"]) * d * d * np.sign(v0 - d * d)
        lr = o["eta"]
    state.update(m=m, v=v)
    return w + lr * m / (np.sqrt(v) + o["tau"]), state


CASES = [
    ("avgm", FedAvgM, {"server_learning_rate": 0.8, "server_momentum": 0.9}),
    ("adam", FedAdam, {"eta": 0.05, "beta_1": 0.9, "beta_2": 0.99, "tau": 1e-3}),
    ("yogi", FedYogi, {"eta": 0.02, "beta_1": 0.8, "beta_2": 0.95, "tau": 1e-2}),
]


@pytest.mark.parametrize(("kind", "flower_class", "options"), CASES, ids=[c[0] for c in CASES])
def test_member_steps_equal_flowers_server_side_math_float64(kind, flower_class, options):
    """Flower's own strategy, fed float64 arrays, and our member-side step agree to 1e-9 over several rounds."""
    rng = np.random.default_rng(42)
    weights = {name: rng.normal(0, 1, shape) for name, shape in SHAPES.items()}
    flower = flower_class(min_available_nodes=3, arrayrecord_key="model", **options)
    optimizer = create_server_optimizer(kind, **options)
    ours, state = flatten(weights), None
    reference, ref_state = flatten(weights), {}
    with flower_sandbox(3) as grid:
        current = weights
        for t in range(1, ROUNDS + 1):
            instructions = list(
                flower.configure_train(t, ArrayRecord({k: Array(v) for k, v in current.items()}), ConfigRecord(), grid)
            )
            counts = [int(n) for n in rng.integers(1, 100, len(instructions))]
            deltas = [rng.normal(0, 0.1, ours.size) for _ in counts]
            replies = [
                Message(encode(StrategyReply(unflatten(flatten(current) + d, current), n)), reply_to=instruction)
                for instruction, d, n in zip(instructions, deltas, counts, strict=True)
            ]
            arrays, _ = flower.aggregate_train(t, replies)
            current = {k: np.asarray(v.numpy(), np.float64) for k, v in arrays.items()}
            mean = sum(n * d for n, d in zip(counts, deltas, strict=True)) / sum(counts)
            ours, state = optimizer.step(ours, mean, state, server_round=t)
            reference, ref_state = reference_step(kind, reference, mean, ref_state, t, **options)
            assert np.allclose(flatten(current), ours, rtol=0, atol=1e-9), f"round {t}"
            assert np.allclose(reference, ours, rtol=0, atol=1e-12), f"round {t}"
    assert state.server_round == ROUNDS and set(state.arrays) == {"avgm": {"momentum"}}.get(kind, {"m", "v"})


@pytest.mark.parametrize("name", ["fedavgm", "fedadam", "fedyogi"])
def test_fedchain_plaintext_aggregation_over_three_rounds_is_flowers_math(name):
    """The coordinator path (configure_train + aggregate_plain, float32 model) follows the same math."""
    strategy = create_strategy(FedChainConfig(strategy=name, he=False, members=4))
    optimizer = strategy.server_optimizer(strategy.config)
    rng = np.random.default_rng(1)
    weights = {name: rng.normal(0, 0.5, shape).astype(np.float32) for name, shape in SHAPES.items()}
    member, state = weights, None
    with flower_sandbox(4) as grid:
        for t in range(1, 4):
            strategy.configure_train(t, weights, config_record(TrainIns(t, t - 1)), grid)
            counts = [int(n) for n in rng.integers(1, 60, 4)]
            deltas = [rng.normal(0, 0.05, 22) for _ in counts]
            updates = [(unflatten(flatten(weights) + d, weights), n) for d, n in zip(deltas, counts, strict=True)]
            weights = {k: v.numpy() for k, v in strategy.aggregate_plain(t, updates).items()}
            mean = sum(n * d for n, d in zip(counts, deltas, strict=True)) / sum(counts)
            flat, state = optimizer.step(flatten(member), mean, state, server_round=t)
            member = unflatten(flat, member)
            assert all(weights[k].dtype == np.float32 for k in weights)
            assert np.allclose(flatten(weights), flatten(member), rtol=1e-5, atol=1e-5), f"round {t}"
    assert not np.allclose(flatten(weights), flatten(updates[0][0]), atol=1e-3)  # the optimizer did move


def test_golden_first_steps():
    """Pinned by hand: one coordinate, mean update 0.5, Flower's default hyperparameters."""
    adam, _ = FedAdamUpdate(eta=0.1).step(np.zeros(1), np.array([0.5]), server_round=1)
    # 0.1 * sqrt(1 - 0.99**2) / (1 - 0.9**2) * 0.05 / (sqrt(0.0025) + 0.001)
    assert adam[0] == pytest.approx(0.07279017533367337, rel=1e-12)
    yogi, _ = FedYogiUpdate().step(np.zeros(1), np.array([0.5]), server_round=1)
    assert yogi[0] == pytest.approx(0.01 * 0.05 / 0.051, rel=1e-12)
    plain, _ = FedAvgMUpdate().step(np.ones(1), np.array([0.5]), server_round=1)
    assert plain[0] == 1.5  # lr 1, no momentum: Flower's FedAvgM is FedAvg


def test_fedadam_bias_correction_uses_the_aggregates_round():
    """A skipped round: the next aggregate is round 3, as in Flower, and older rounds are refused."""
    adam = create_server_optimizer("adam", eta=0.1)
    _, state = adam.step(np.zeros(1), np.array([0.5]), server_round=1)
    at_two, _ = adam.step(np.zeros(1), np.array([0.5]), state, server_round=2)
    at_three, later = adam.step(np.zeros(1), np.array([0.5]), state, server_round=3)
    assert at_two[0] != at_three[0] and later.server_round == 3
    with pytest.raises(StrategyError, match="round 3 is not newer than the state's round 3"):
        adam.step(at_three, np.array([0.5]), later, server_round=3)


def test_inputs_are_not_modified_and_outputs_are_new():
    adam = create_server_optimizer("adam")
    weights, delta = np.ones(3), np.full(3, 0.2)
    new, state = adam.step(weights, delta, None, server_round=1)
    kept = new.copy()
    again, later = adam.step(new, delta, state, server_round=2)
    assert np.array_equal(weights, np.ones(3)) and np.array_equal(delta, np.full(3, 0.2))
    assert np.array_equal(new, kept) and not np.array_equal(again, new)
    assert state.arrays["m"][0] == pytest.approx(0.02)  # the first state is unchanged by the second step
    assert later.arrays["m"][0] == pytest.approx(0.038)


@pytest.mark.parametrize(
    ("kind", "options", "message"),
    [
        ("adam", {"eta": 0.0}, "The 'eta' parameter must be a float in (0, inf). Got 0.0."),
        ("yogi", {"beta_1": 1.0}, "The 'beta_1' parameter must be a float in [0, 1). Got 1.0."),
        ("adam", {"tau": -1e-3}, "The 'tau' parameter must be a float in (0, inf). Got -0.001."),
        ("avgm", {"server_momentum": 1.0}, "The 'server_momentum' parameter must be a float in [0, 1). Got 1.0."),
        ("avgm", {"eta": 0.1}, "The 'eta' parameter must be an option of the 'avgm' server optimizer"),
        ("nesterov", {}, "The 'member_update' parameter must be one of 'adam', 'avg', 'avgm', 'yogi'. Got 'nesterov'."),
    ],
)
def test_bad_hyperparameters_are_refused(kind, options, message):
    with pytest.raises(ConfigError) as info:
        create_server_optimizer(kind, **options)
    assert str(info.value).startswith(message)


def test_nan_inputs_and_mismatched_state_are_refused():
    adam = create_server_optimizer("adam")
    with pytest.raises(StrategyError, match="NaN or infinite"):
        adam.step(np.zeros(2), np.array([0.1, np.nan]), server_round=1)
    _, state = adam.step(np.zeros(2), np.ones(2), server_round=1)
    with pytest.raises(StrategyError, match="must not change mid-federation"):
        create_server_optimizer("adam", eta=0.2).step(np.zeros(2), np.ones(2), state, server_round=2)
    with pytest.raises(StrategyError, match="must not change mid-federation"):
        create_server_optimizer("yogi").step(np.zeros(2), np.ones(2), state, server_round=2)
    with pytest.raises(StrategyError, match="has shape"):
        adam.step(np.zeros(3), np.ones(3), state, server_round=2)
    with pytest.raises(ConfigError, match="server_round"):
        adam.step(np.zeros(2), np.ones(2), server_round=0)


def test_zero_mean_update_is_finite_for_every_optimizer():
    for kind in available_server_optimizers():
        weights, _ = create_server_optimizer(kind).step(np.ones(4), np.zeros(4), server_round=1)
        assert np.array_equal(weights, np.ones(4)), kind


def test_state_file_round_trip_is_lossless_and_checked(tmp_path):
    adam = create_server_optimizer("adam")
    _, state = adam.step(np.zeros(5), np.random.default_rng(0).normal(size=5), server_round=2)
    path = tmp_path / "server_opt.safetensors"
    digest = save_optimizer_state(path, state)
    loaded = load_optimizer_state(path, expected_digest=digest)
    assert loaded.digest() == digest and loaded.server_round == 2 and loaded.kind == "adam"
    assert all(np.array_equal(loaded.arrays[k], state.arrays[k]) for k in state.arrays)
    assert dict(loaded.options) == adam.options()
    # A safetensors file: an 8-byte header length, then JSON; no pickle opcodes.
    data = path.read_bytes()
    header = json.loads(data[8 : 8 + int.from_bytes(data[:8], "little")])
    assert json.loads(header["__metadata__"]["fedchain"])["kind"] == "adam"
    tampered = bytearray(data)
    tampered[-1] ^= 1
    path.write_bytes(bytes(tampered))
    with pytest.raises(IntegrityError):
        load_optimizer_state(path, expected_digest=digest)
    path.write_bytes(data.replace(b"fedchain-server-optimizer/1", b"fedchain-server-optimizer/9"))
    with pytest.raises(SerializationError, match="format"):
        load_optimizer_state(path)
    path.write_bytes(b"\x80\x04pickle")
    with pytest.raises(SerializationError):
        load_optimizer_state(path)


MEMBER_SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    import numpy as np
    from fedchain.aggregation import create_server_optimizer, load_optimizer_state, save_optimizer_state

    data = np.load(sys.argv[1])
    state_path = Path(sys.argv[2])
    optimizer = create_server_optimizer("adam", eta=0.05)
    weights = data["initial"].astype(np.float32)
    for index, mean in enumerate(data["means"], start=1):
        state = load_optimizer_state(state_path) if state_path.exists() else None  # a restart every round
        flat, state = optimizer.step(weights.astype(np.float64), mean, state, server_round=index)
        weights = flat.astype(np.float32)
        save_optimizer_state(state_path, state)
    np.save(sys.argv[3], weights)
    print(state.digest())
    """
)


def test_two_members_stay_bit_identical_across_rounds_and_restarts(tmp_path):
    """Member A keeps its state in memory; member B is another process that reloads it from disk every round."""
    rng = np.random.default_rng(3)
    initial = rng.normal(0, 0.5, 200).astype(np.float32)
    means = rng.normal(0, 0.02, (6, 200))
    np.savez(tmp_path / "aggregates.npz", initial=initial, means=means)
    optimizer = create_server_optimizer("adam", eta=0.05)
    weights, state = initial, None
    digests = []
    for index, mean in enumerate(means, start=1):
        flat, state = optimizer.step(weights.astype(np.float64), mean, state, server_round=index)
        weights = flat.astype(np.float32)
        digests.append(state.digest())
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            MEMBER_SCRIPT,
            str(tmp_path / "aggregates.npz"),
            str(tmp_path / "b.st"),
            str(tmp_path / "b.npy"),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    assert np.array_equal(np.load(tmp_path / "b.npy"), weights)
    assert out.stdout.strip() == digests[-1]
    assert len(set(digests)) == len(digests)  # the state really changes every round


def test_optimizer_state_digest_ignores_nothing():
    base = OptimizerState("adam", {"eta": 0.1}, 1, {"m": np.zeros(2), "v": np.zeros(2)})
    assert base.digest() != OptimizerState("adam", {"eta": 0.1}, 2, dict(base.arrays)).digest()
    assert base.digest() != OptimizerState("adam", {"eta": 0.2}, 1, dict(base.arrays)).digest()
    assert base.digest() != OptimizerState("adam", {"eta": 0.1}, 1, {"m": np.zeros(2), "v": np.ones(2)}).digest()
