"""A deployed member's own privacy policy, attacked by a malicious coordinator.

The coordinator holds only what it sends: the run config and the train instruction. Each test below
is one attack with those alone, first confirmed against the code before the policy existed (the
member trained, sent plaintext, took a noise multiplier of 0.01 and an epsilon budget of 1e6, became a
label-flipper, crashed), and now refused by the member with a named Flower ``Error`` reply, before
anything is decrypted, trained or spent. Nodes here are deployed members: node config without
``partition-id`` (their own CSV), a ``state-dir``, and no simulation marker in the process.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from flwr.app import Context, Message, RecordDict

from clients.client_app import app as client_app
from clients.node import MemberNode
from fedchain.config import FedChainConfig
from fedchain.errors import ConfigError, FedChainError, PolicyError
from fedchain.policy import MemberPolicy, check_testing_hooks, load_policy
from fedchain.protocol import (
    ERROR_INVALID_INSTRUCTION,
    ERROR_POLICY_REFUSED,
    ERROR_PRIVACY_STATE_MISSING,
    SealedAggregate,
    TrainIns,
    decode_train_res,
    encode,
)
from fedchain.simulation import SIMULATION_ENV, is_simulation

pytestmark = pytest.mark.usefixtures("flower_task_identity", "deployed")

_run_ids = iter(range(20_000, 10**6))

#: The organization's policy file in these tests: plaintext federations allowed, everything else default.
POLICY = """\
epsilon = 8.0
delta = 1e-5
require-he = false
min-cohort = 2
min-noise-multiplier = 0.5
"""


WALLET_PASSWORD = "member-password"


@pytest.fixture
def deployed(monkeypatch):
    """No simulation marker: this process is a deployed member (an earlier simulation may have set it)."""
    monkeypatch.delenv(SIMULATION_ENV, raising=False)
    monkeypatch.setenv("FEDCHAIN_WALLET_PASSWORD", WALLET_PASSWORD)
    assert not is_simulation()


@pytest.fixture(scope="module")
def data_file(tmp_path_factory) -> Path:
    from fedchain.deployment.launcher import write_demo_data

    return write_demo_data(tmp_path_factory.mktemp("data"), 2)[0]


@pytest.fixture(scope="module")
def member_ckks(tmp_path_factory) -> Path:
    from fedchain.provision import provision_keys

    return provision_keys(tmp_path_factory.mktemp("keys"))["member"]


def _context(node_config: dict, **run) -> Context:
    options = {"members": 2, "rounds": 3, "chain": "none", "he": False, **run}
    return Context(
        run_id=next(_run_ids),
        node_id=1,
        node_config=node_config,
        state=RecordDict(),
        run_config=dict(FedChainConfig(**options).to_run_config()),
    )


def _node_config(tmp_path: Path, data_file: Path, policy: str | None = POLICY, **extra) -> dict:
    state = tmp_path / "state"
    state.mkdir(exist_ok=True)
    if policy is not None:
        (state / "policy.toml").write_text(policy)
    wallet = tmp_path / "wallet.json"
    if not wallet.exists():
        from eth_account import Account

        wallet.write_text(json.dumps(Account.encrypt(b"\x07" * 32, WALLET_PASSWORD, kdf="pbkdf2", iterations=2)))
    config = {"member-id": 0, "data-path": str(data_file), "state-dir": str(state), "new-member": True}
    return {**config, "wallet-keystore": str(wallet), **extra}


def _deployed(tmp_path: Path, data_file: Path, *, policy: str | None = POLICY, node: dict | None = None, **run):
    return MemberNode.from_context(_context(_node_config(tmp_path, data_file, policy, **(node or {})), **run))


def _train(node: MemberNode, server_round: int = 1, *, cohort: int | None = 2, ledger_address: str = "") -> Message:
    ins = TrainIns(server_round, server_round - 1, cohort=cohort, ledger_address=ledger_address, model=node.template())
    return node.train(Message(encode(ins), dst_node_id=1, message_type="train"))


def _epsilon(reply: Message) -> float:
    return decode_train_res(reply.content).dp.epsilon


def _refused(reply: Message, code: int = ERROR_POLICY_REFUSED) -> str:
    assert reply.has_error(), "the member trained and replied with an update"
    assert reply.error.code == code, reply.error.reason
    return reply.error.reason


def _spent(tmp_path: Path) -> bool:
    """Whether the member's accountant charged anything (a state file with rounds in it)."""
    path = tmp_path / "state" / "privacy.json"
    return path.exists() and bool(json.loads(path.read_text())["history"])


# --------------------------------------------------------------------------------- the honest control


def test_an_instruction_within_the_policy_trains(tmp_path, data_file):
    node = _deployed(tmp_path, data_file)
    assert node.policy.source.endswith("policy.toml") and node.kind == "honest"
    reply = _train(node)
    assert not reply.has_error(), reply.error.reason
    assert 0 < _epsilon(reply) <= 8.0 and _spent(tmp_path)


# ------------------------------------------------------------------ a malicious coordinator's run config


@pytest.mark.parametrize(
    ("run", "policy", "expected"),
    [
        ({"he": False}, POLICY.replace("require-he = false\n", ""), "he = False proposed; this member accepts HE on"),
        ({"dp": False}, POLICY, "dp = False proposed; this member accepts DP-SGD on only"),
        ({"noise_multiplier": 0.01}, POLICY, "noise-multiplier = 0.01 proposed; this member accepts at least 0.5"),
        ({"epsilon": 1e6}, POLICY, "epsilon = 1000000.0 proposed; this member accepts at most 8"),
        ({"delta": 0.01}, POLICY, "delta = 0.01 proposed; this member accepts at most 1e-05"),
        ({"min_members": 1}, POLICY, "min-members = 1 proposed; this member accepts cohorts of at least 2 members"),
        ({"max_grad_norm": 50.0}, POLICY + "max-grad-norm = 1.0\n", "max-grad-norm = 50.0 proposed"),
    ],
    ids=["he-off", "dp-off", "tiny-noise", "huge-epsilon", "large-delta", "min-members-1", "large-clip"],
)
def test_a_run_config_that_weakens_the_policy_is_refused_and_nothing_trains(tmp_path, data_file, run, policy, expected):
    node = _deployed(tmp_path, data_file, policy=policy, **run)
    reason = _refused(_train(node))
    assert expected in reason
    assert "policy.toml" in reason  # names where the member's limit comes from
    assert not _spent(tmp_path)


@pytest.mark.parametrize(
    ("cohort", "expected"), [(1, "cohort = 1 proposed"), (None, "cohort = None proposed; this member accepts an")]
)
def test_a_cohort_below_the_minimum_or_unannounced_is_refused(tmp_path, data_file, cohort, expected):
    policy = POLICY.replace("min-cohort = 2", "min-cohort = 3")
    node = _deployed(tmp_path, data_file, policy=policy, members=4, min_members=3)
    reason = _refused(_train(node, cohort=cohort))
    assert expected in reason and not _spent(tmp_path)
    assert "cohort = 2 proposed" in _refused(_train(node, cohort=2))
    assert not _train(node, cohort=3).has_error()


def test_a_member_holding_the_secret_context_never_sends_plaintext(tmp_path, data_file, member_ckks):
    # Its policy file allows plaintext federations, but it holds member.ckks: HE is required anyway.
    node = _deployed(tmp_path, data_file, node={"ckks-context": str(member_ckks)}, he=False)
    assert node.policy.require_he
    assert "he = False proposed" in _refused(_train(node))
    assert not _spent(tmp_path)


def test_calibrated_noise_below_the_policy_minimum_is_refused_before_anything_is_spent(tmp_path, data_file):
    # The run proposes no noise multiplier; calibrated for its budget it is about 1.2: below this member's 5.
    node = _deployed(tmp_path, data_file, policy=POLICY.replace("= 0.5", "= 5.0"))
    reason = _refused(_train(node))
    assert reason.startswith("policy refused: noise-multiplier = 1.") and "at least 5" in reason
    assert not _spent(tmp_path)


@pytest.mark.parametrize(
    ("limit", "expected"),
    [
        ("max-steps = 3", "steps = 40 proposed; this member accepts at most 3"),
        ("max-sample-rate = 0.05", "sample-rate"),
    ],
)
def test_steps_and_sample_rate_outside_the_policy_are_refused(tmp_path, data_file, limit, expected):
    node = _deployed(tmp_path, data_file, policy=POLICY + limit + "\n")
    assert expected in _refused(_train(node))
    assert not _spent(tmp_path)


def test_the_member_trains_against_its_own_smaller_budget(tmp_path, data_file):
    # A proposal below the member's budget is stricter: accepted, and the noise is calibrated to it.
    node = _deployed(tmp_path, data_file, epsilon=2.0)
    reply = _train(node)
    assert not reply.has_error(), reply.error.reason
    assert _epsilon(reply) <= 2.0


# ----------------------------------------------------------------------------------- testing hooks


@pytest.mark.parametrize(
    ("run", "expected"),
    [
        ({"members": 1, "adversaries": "label_flip", "min_members": 2}, "adversaries = ('label_flip',) proposed"),
        ({"faults": "crash:0"}, "faults = 'crash:0' proposed"),
    ],
)
def test_testing_hooks_in_deployment_are_refused(tmp_path, data_file, run, expected):
    # member-id 1 with one honest member: the run config would make this member the label-flipper.
    node = _deployed(tmp_path, data_file, node={"member-id": 1}, **run)
    assert node.kind == "honest"
    reason = _refused(_train(node))
    assert expected in reason and "testing hooks act only in a simulation" in reason
    assert not _spent(tmp_path)


def test_testing_hooks_still_act_in_a_simulation(tmp_path, monkeypatch):
    monkeypatch.setenv(SIMULATION_ENV, "1")
    context = _context(
        {"partition-id": 2, "num-partitions": 3},
        members=2,
        adversaries="label_flip",
        dp=False,
        out_dir=str(tmp_path),
    )
    node = MemberNode.from_context(context)
    assert node.simulation and node.kind == "label_flip"
    assert node.policy == MemberPolicy.for_simulation(node.config)
    assert not _train(node).has_error()


def test_check_testing_hooks_is_silent_without_hooks():
    check_testing_hooks(FedChainConfig(), simulation=False)
    with pytest.raises(PolicyError, match="faults"):
        check_testing_hooks(FedChainConfig(faults="kill:1:sent"), simulation=False)


# ----------------------------------------------------------------------------- accountant state


def test_a_deployed_member_without_accountant_state_refuses_unless_new(tmp_path, data_file):
    node_config = _node_config(tmp_path, data_file)
    node_config.pop("new-member")
    state = tmp_path / "state" / "privacy.json"
    reason = _refused(_train(MemberNode.from_context(_context(node_config))), ERROR_PRIVACY_STATE_MISSING)
    assert str(state) in reason and "new-member = true" in reason
    assert not state.exists()  # no fresh accountant started behind the operator's back

    first = MemberNode.from_context(_context({**node_config, "new-member": True}))
    epsilon_1 = _epsilon(_train(first))
    assert state.exists()
    # The next process (Flower starts one per message) without the flag finds the state and goes on.
    again = MemberNode.from_context(_context(node_config))
    epsilon_2 = _epsilon(_train(again, server_round=2))
    assert epsilon_2 > epsilon_1 > 0


def test_a_deployed_member_without_state_dir_never_uses_the_run_out_dir(tmp_path, data_file):
    node_config = _node_config(tmp_path, data_file, **{"policy-require-he": False})
    del node_config["state-dir"]
    node = MemberNode.from_context(_context(node_config, out_dir=str(tmp_path / "coordinator-chosen")))
    assert not (tmp_path / "coordinator-chosen").exists()
    assert "no state-dir in the node config" in _refused(_train(node), ERROR_PRIVACY_STATE_MISSING)


# ------------------------------------------------------------------------------ HE aggregates


def test_an_aggregate_of_too_few_members_is_not_decrypted(tmp_path, data_file, member_ckks):
    from fedchain import crypto

    policy = "require-dp = false\nmin-cohort = 3\n"
    node = _deployed(
        tmp_path,
        data_file,
        policy=policy,
        node={"ckks-context": str(member_ckks)},
        he=True,
        dp=False,
        members=4,
        min_members=3,
    )
    size = sum(array.size for array in node.template().values())
    chunks = crypto.encrypt_update(node._context(), np.full(size, 1e-3) * 10)

    def instruction(members: int) -> Message:
        aggregate = SealedAggregate(1, tuple(chunks), 10, crypto.ciphertext_digest(chunks), members=members)
        ins = TrainIns(server_round=2, model_round=1, cohort=3, aggregates=(aggregate,))
        return Message(encode(ins), dst_node_id=1, message_type="train")

    reason = _refused(node.train(instruction(members=2)))
    assert "agg.1.members = 2 proposed; this member accepts aggregates to decrypt of at least 3 members" in reason
    assert not (tmp_path / "state" / "global.json").exists()  # nothing decrypted and applied
    reply = node.train(instruction(members=3))
    assert not reply.has_error(), reply.error.reason
    sealed = decode_train_res(reply.content)
    assert sealed.update is not None and sealed.arrays is None


# ---------------------------------------------------------------------- the ClientApp and the policy


def test_the_client_app_answers_an_invalid_run_config_with_a_named_error(tmp_path, data_file):
    # min-members = 1 under HE is refused by the member's own validation of the run config.
    context = _context(_node_config(tmp_path, data_file), he=False)
    context.run_config["he"] = True
    context.run_config["min-members"] = 1
    message = Message(encode(TrainIns(1, 0)), dst_node_id=1, message_type="train")
    reply = client_app(message, context)
    assert reply.has_error() and reply.error.code == ERROR_INVALID_INSTRUCTION
    assert "'min_members' parameter must be an int in [2, inf) when HE is on" in reply.error.reason


def test_a_malformed_policy_file_refuses_every_instruction(tmp_path, data_file):
    context = _context(_node_config(tmp_path, data_file, policy=POLICY + "epsilom = 3\n"))
    message = Message(encode(TrainIns(1, 0)), dst_node_id=1, message_type="train")
    reply = client_app(message, context)
    assert reply.has_error() and reply.error.code == ERROR_INVALID_INSTRUCTION
    assert "epsilom" in reply.error.reason and "min-noise-multiplier" in reply.error.reason


def test_policy_sources_file_then_node_config(tmp_path):
    (tmp_path / "policy.json").write_text(json.dumps({"epsilon": 4.0, "require-he": False, "min-cohort": 1}))
    policy = load_policy({"policy-epsilon": 3.0}, state_dir=tmp_path, defaults=MemberPolicy())
    assert (policy.epsilon, policy.require_he, policy.min_cohort, policy.source) == (3.0, False, 1, "node config")
    named = tmp_path / "org.toml"
    named.write_text("max-steps = 40\n")
    assert load_policy({"policy-file": "org.toml"}, state_dir=tmp_path, defaults=MemberPolicy()).max_steps == 40
    with pytest.raises(ConfigError, match="an existing TOML or JSON policy file"):
        load_policy({"policy-file": "missing.toml"}, state_dir=tmp_path, defaults=MemberPolicy())


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"epsilon": 0.0}, "The 'epsilon' parameter must be a float in (0, inf). Got 0.0."),
        ({"epsilon": float("inf")}, "The 'epsilon' parameter must be a float in (0, inf). Got inf."),
        ({"delta": 1.0}, "The 'delta' parameter must be a float in (0, 1). Got 1.0."),
        ({"min_cohort": 1}, "The 'min_cohort' parameter must be an int in [2, inf) when HE is required"),
        ({"max_sample_rate": 0.0}, "The 'max_sample_rate' parameter must be a float in (0, 1]. Got 0.0."),
        ({"max_steps": 0}, "The 'max_steps' parameter must be an int in [1, inf). Got 0."),
        ({"require_dp": "maybe"}, "The 'require_dp' parameter must be a boolean. Got 'maybe'."),
    ],
)
def test_an_invalid_policy_names_field_range_and_value(values, message):
    with pytest.raises(ConfigError) as info:
        MemberPolicy(**values)
    assert message in str(info.value)


def test_the_stricter_of_policy_and_chain_wins():
    policy = MemberPolicy(epsilon=8.0, delta=1e-5, source="policy.toml")
    assert policy.stricter(None) is policy
    chain = policy.stricter((2.0, 1e-6))
    assert (chain.epsilon, chain.delta, chain.source) == (2.0, 1e-6, "policy.toml + chain")
    assert policy.stricter((20.0, 1e-3)) == policy  # a looser chain budget loosens nothing


@pytest.mark.integration
def test_the_on_chain_budget_is_read_and_the_stricter_wins(tmp_path, data_file):
    from fedchain.ledger import Web3Ledger, connect
    from tests.anvil import ANVIL_KEY_0, running_anvil

    with running_anvil() as url:
        ledger = Web3Ledger.deploy(connect(url, private_key=ANVIL_KEY_0), timeout_s=30)
        node = _deployed(tmp_path, data_file, chain=url, epsilon=3.0)
        ledger.register_members([node.address])
        ledger.set_privacy_budgets({node.address: (2.0, 1e-5)})
        reason = _refused(_train(node, ledger_address=ledger.address))
        assert "epsilon = 3.0 proposed; this member accepts at most 2" in reason and "+ chain" in reason
        within = _deployed(tmp_path, data_file, chain=url, epsilon=2.0)
        reply = _train(within, ledger_address=ledger.address)
        assert not reply.has_error(), reply.error.reason


def test_a_deployed_member_without_its_own_wallet_is_refused(tmp_path, data_file):
    """Without a keystore the key would derive from the run seed: a key the coordinator can compute."""
    node_config = _node_config(tmp_path, data_file)
    del node_config["wallet-keystore"]
    with pytest.raises(FedChainError, match="no wallet: set wallet-keystore"):
        MemberNode.from_context(_context(node_config))
