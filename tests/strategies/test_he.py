"""Server optimizers under HE, with real TenSEAL ciphertexts: members match Flower's plaintext server side."""

import numpy as np
import pytest

from fedchain import crypto
from fedchain.aggregation import load_optimizer_state, save_optimizer_state
from fedchain.config import FedChainConfig
from fedchain.protocol import TrainIns, config_record
from fedchain.serialization import flatten, model_hash, unflatten
from strategies.builtin import make_server_optimizer
from strategies.conformance import flower_sandbox
from strategies.registry import create_strategy

ROUNDS = 3
COUNTS = (12, 40, 25)


@pytest.fixture(scope="module")
def contexts():
    secret = crypto.create_secret_context(crypto.AGGREGATION)
    public = crypto.load_coordinator_context(crypto.export_public_context(secret))
    exported = crypto.export_secret_context(secret)
    # Two members, each with its own copy of the federation's secret context (as loaded from disk).
    return public, [crypto.load_member_context(exported) for _ in range(2)], secret


@pytest.mark.parametrize("name", ["fedadam", "fedavgm", "fedyogi"])
def test_members_apply_server_optimizer_on_decrypted_sum_and_match_plaintext(name, contexts, tmp_path):
    public, member_contexts, secret = contexts
    rng = np.random.default_rng(17)
    template = {
        "fc.weight": rng.normal(0, 0.3, (8, 16)).astype(np.float32),
        "fc.bias": rng.normal(0, 0.3, 8).astype(np.float32),
    }
    size = flatten(template).size
    plain_strategy = create_strategy(FedChainConfig(strategy=name, he=False, members=3))
    he_config = FedChainConfig(strategy=name, he=True, members=3)
    create_strategy(he_config)  # the coordinator accepts it under HE
    plain = template
    members = [
        {"weights": template, "state_path": tmp_path / f"member-{i}" / "server_opt.safetensors"} for i in range(2)
    ]
    with flower_sandbox(3) as grid:
        for t in range(1, ROUNDS + 1):
            # Each member trains from its own copy of the model; their deltas are what training produced.
            deltas = [rng.normal(0, 0.05, size) for _ in COUNTS]
            # Plaintext: Flower's server-side optimizer on the members' weights.
            plain_strategy.configure_train(t, plain, config_record(TrainIns(t, t - 1)), grid)
            updates = [(unflatten(flatten(plain) + d, plain), n) for d, n in zip(deltas, COUNTS, strict=True)]
            plain = {k: v.numpy() for k, v in plain_strategy.aggregate_plain(t, updates).items()}
            # HE: members encrypt n * delta, the coordinator adds ciphertexts with the public context only.
            sealed = [crypto.encrypt_update(secret, n * d) for d, n in zip(deltas, COUNTS, strict=True)]
            total = crypto.sum_encrypted(public, sealed, expected_chunks=crypto.chunk_count(size, 4096))
            for member, context in zip(members, member_contexts, strict=True):
                optimizer = make_server_optimizer(he_config)  # a fresh process would build it from the config
                path = member["state_path"]
                state = load_optimizer_state(path) if path.exists() else None
                mean = crypto.decrypt_update(context, total, size) / sum(COUNTS)
                flat, state = optimizer.step(flatten(member["weights"]), mean, state, server_round=t)
                member["weights"] = unflatten(flat, member["weights"])
                member["digest"] = save_optimizer_state(path, state)
            a, b = members
            assert all(np.array_equal(a["weights"][k], b["weights"][k]) for k in template), f"round {t}"
            assert model_hash(a["weights"]) == model_hash(b["weights"]) and a["digest"] == b["digest"]
            worst = float(np.max(np.abs(flatten(a["weights"]) - flatten(plain))))
            assert worst < 1e-4, f"round {t}: HE member model differs from plaintext by {worst}"
    moved = float(np.max(np.abs(flatten(plain) - flatten(template))))
    assert moved > 1e-2  # the comparison is not between unchanged models


def test_plain_fedavg_and_server_adam_differ_under_he(contexts):
    """The member update matters: applying FedAvg's step instead of Adam's gives another model."""
    _, member_contexts, secret = contexts
    rng = np.random.default_rng(5)
    delta = rng.normal(0, 0.05, 100)
    total = crypto.encrypt_update(secret, 10 * delta)
    mean = crypto.decrypt_update(member_contexts[0], total, 100) / 10
    adam, _ = make_server_optimizer(FedChainConfig(strategy="fedadam")).step(np.zeros(100), mean, server_round=1)
    avg, _ = make_server_optimizer(FedChainConfig(strategy="fedavg")).step(np.zeros(100), mean, server_round=1)
    assert np.allclose(avg, delta, atol=1e-6)
    assert not np.allclose(adam, avg, atol=1e-3)
