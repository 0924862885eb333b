"""`fedchain audit`, `fedchain audit prove` and `fedchain report`, registered as the main CLI will."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from fedchain.audit.cli import audit_app, report_command
from fedchain.identity.merkle import merkle_proof, merkle_root, update_leaf
from fedchain.ledger import Chain, Web3Ledger, export_ledger
from fedchain.serialization import save_model

from .helpers import DELTA, FLAW_EQUAL_SPLIT, Federation, deploy_tamper_ledger, h

app = typer.Typer()
app.add_typer(audit_app, name="audit")
app.command("report")(report_command)
runner = CliRunner()

DIGESTS = [bytes([0x40 + i]) * 32 for i in range(3)]


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    assert "Traceback" not in result.output, result.output
    return result.exit_code, result.output


def write_result(run_dir: Path, *, epsilon: float = 10.0) -> None:
    rounds = [
        {"round": n, "accuracy": 0.5 + 0.1 * n, "members": [{"address": "0x" + "11" * 20, "member_id": 0}]}
        for n in (1, 2)
    ]
    config = {"dp": True, "epsilon": epsilon, "delta": DELTA}
    (run_dir / "result.json").write_text(json.dumps({"config": config, "rounds": rounds}))


@pytest.fixture(scope="module")
def run_dir(chain: Chain, members: list[str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 'run': two rounds with a committed Merkle root, its model file and result.json."""
    directory = tmp_path_factory.mktemp("run")
    weights = {"fc.weight": np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4)}
    model_hash = save_model(directory / "model.safetensors", weights)
    ledger = Web3Ledger.deploy(chain)
    ledger.register_members(members)
    federation = Federation(ledger, members, sizes=[120, 150, 200])
    federation.record()
    leaves = [update_leaf(2, m, d) for m, d in zip(members, DIGESTS, strict=True)]
    federation.record(merkle_root="0x" + merkle_root(leaves).hex(), model_hash=model_hash)
    (directory / "proof.json").write_text(json.dumps({"proof": ["0x" + p.hex() for p in merkle_proof(leaves, 1)]}))
    export_ledger(ledger, directory / "chain.json")
    write_result(directory)
    return directory


@pytest.fixture(scope="module")
def tampered_run(chain: Chain, members: list[str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("tampered")
    ledger = deploy_tamper_ledger(chain, FLAW_EQUAL_SPLIT)
    ledger.register_members(members)
    Federation(ledger, members, sizes=[120, 150, 200]).record()
    export_ledger(ledger, directory / "chain.json")
    write_result(directory)
    return directory


def test_audit_run_passes_and_prints_tables(run_dir: Path) -> None:
    code, output = invoke("audit", "--run", str(run_dir))
    assert code == 0, output
    assert "AUDIT PASSED" in output and "rounds of ledger" in output and "members" in output
    assert "budgets from result.json config (off-chain)" in output
    # Round 1 has no Merkle root: a warning, printed, that does not fail the audit...
    assert "WARN updates.merkle_root round 1" in output
    # ...unless --strict.
    assert invoke("audit", "--run", str(run_dir), "--strict")[0] == 1


def test_audit_json_has_one_verdict_per_check(run_dir: Path) -> None:
    code, output = invoke("audit", "--run", str(run_dir), "--json")
    assert code == 0
    document = json.loads(output)
    assert document["ok"] is True
    statuses = {(f["check"], f["round"]): f["status"] for f in document["findings"] if f["member"] is None}
    assert statuses[("updates.merkle_root", 2)] == "pass"
    assert statuses[("updates.merkle_root", 1)] == "warn"
    assert statuses[("model.file", 2)] == "pass"  # DIR/model.safetensors against the last round
    assert statuses[("token.supply", None)] == "pass"


def test_audit_csv_export(run_dir: Path, tmp_path: Path) -> None:
    code, _ = invoke("audit", "--run", str(run_dir), "--csv", str(tmp_path / "csv"))
    assert code == 0
    lines = (tmp_path / "csv" / "member_history.csv").read_text().splitlines()
    assert lines[0].startswith("round,member,score,reward_wei,expected_reward_wei,registered,epsilon_recorded")
    assert len(lines) == 1 + 6


def test_tampered_run_exits_1_and_names_round_member_field(tampered_run: Path, members: list[str]) -> None:
    code, output = invoke("audit", "--run", str(tampered_run))
    assert code == 1
    assert "AUDIT FAILED" in output
    for member in members:
        assert f"FAIL rewards.rule round 1 member {member} field reward_wei" in output
    code, output = invoke("audit", "--run", str(tampered_run), "--json")
    assert code == 1 and json.loads(output)["ok"] is False


def test_model_one_byte_different_exits_1(run_dir: Path, tmp_path: Path) -> None:
    data = bytearray((run_dir / "model.safetensors").read_bytes())
    data[-3] ^= 0x10
    (tmp_path / "other.safetensors").write_bytes(bytes(data))
    code, output = invoke(
        "audit", "--run", str(run_dir), "--model", str(tmp_path / "other.safetensors"), "--round", "2"
    )
    assert code == 1
    assert "FAIL model.file round 2 field model_hash" in output
    code, _ = invoke("audit", "--run", str(run_dir), "--model", str(run_dir / "model.safetensors"), "--round", "2")
    assert code == 0


def test_explicit_budget_overrides_the_run_config(run_dir: Path) -> None:
    code, output = invoke("audit", "--run", str(run_dir), "--epsilon-budget", "7", "--delta-budget", "1e-5", "--json")
    document = json.loads(output)
    assert code == 1 and document["budget_source"] == "--epsilon-budget"
    over = [f for f in document["findings"] if f["status"] == "fail"]
    assert {f["check"] for f in over} == {"privacy.budget"} and all(f["field"] == "epsilon" for f in over)


def test_budgets_file(run_dir: Path, members: list[str], tmp_path: Path) -> None:
    # members[0] has 120 examples: epsilon 5.33 after round 1, 7.05 after round 2.
    budgets = {members[0]: {"epsilon": 6.0, "delta": DELTA}, members[1]: 50, members[2]: {"epsilon": 50}}
    (tmp_path / "budgets.json").write_text(json.dumps(budgets))
    code, output = invoke("audit", "--run", str(run_dir), "--budgets", str(tmp_path / "budgets.json"), "--json")
    assert code == 1
    failed = {(f["member"], f["round"]) for f in json.loads(output)["findings"] if f["status"] == "fail"}
    assert failed == {(members[0], 2)}


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ((), "'--run' option"),
        (("--run", "/nonexistent/run"), "'--run' option"),
        (("--rpc", "ftp://x", "--ledger", "0x" + "11" * 20), "'--rpc' option"),
        (("--rpc", "http://127.0.0.1:9"), "'--ledger' option"),
        (("--ledger", "0x" + "11" * 20), "'--rpc' option"),
        (("--rpc", "http://127.0.0.1:9", "--ledger", "0x" + "11" * 20), "no JSON-RPC node answers"),
        (("--epsilon-budget", "-1"), "'--epsilon-budget' option must be a float in (0, inf)"),
        (("--delta-budget", "1e-5"), "'--delta-budget' option"),
        (("--accountant", "moments"), "'--accountant' option must be one of"),
        (("--round", "2"), "'--round' option must be given only together with --model"),
        (("--model", "/nonexistent.safetensors"), "'--model' option must be an existing model file"),
        (("--budgets", "/nonexistent.json"), "'--budgets' option"),
    ],
)
def test_bad_options_exit_2_with_one_line_naming_the_option(run_dir: Path, args: tuple[str, ...], needle: str) -> None:
    with_run = (
        ("--run", str(run_dir))
        if args and args[0] in ("--epsilon-budget", "--delta-budget", "--accountant", "--round", "--model", "--budgets")
        else ()
    )
    code, output = invoke("audit", *with_run, *args)
    assert code == 2, output
    assert needle in output
    assert len(output.strip().splitlines()) == 1, output


def test_run_dir_without_chain_json(tmp_path: Path) -> None:
    code, output = invoke("audit", "--run", str(tmp_path))
    assert code == 2 and "chain.json" in output


def test_typer_rejects_a_malformed_round(run_dir: Path) -> None:
    assert invoke("audit", "--run", str(run_dir), "--model", "x", "--round", "two")[0] == 2


def test_prove_inclusion(run_dir: Path, members: list[str]) -> None:
    proof = str(run_dir / "proof.json")
    base = ("audit", "prove", "--run", str(run_dir), "--member", members[1], "--round", "2", "--proof-file", proof)
    code, output = invoke(*base, "--digest", "0x" + DIGESTS[1].hex())
    assert code == 0, output
    assert "INCLUDED" in output
    code, output = invoke(*base, "--digest", "0x" + DIGESTS[0].hex())
    assert code == 1 and "NOT PROVEN" in output
    code, output = invoke(
        *base[:-4], "--round", "2", "--proof-file", proof, "--digest", "0x" + DIGESTS[1].hex(), "--json"
    )
    assert code == 0 and json.loads(output)["ok"] is True


def test_prove_against_a_round_without_root_fails(run_dir: Path, members: list[str], tmp_path: Path) -> None:
    (tmp_path / "p.txt").write_text("")
    code, output = invoke(
        "audit", "prove", "--run", str(run_dir), "--member", members[0], "--round", "1",
        "--digest", "0x" + DIGESTS[0].hex(), "--proof-file", str(tmp_path / "p.txt"),
    )  # fmt: skip
    assert code == 1 and "no committed Merkle root" in output


def test_prove_bad_options(run_dir: Path, members: list[str], tmp_path: Path) -> None:
    proof = str(run_dir / "proof.json")
    common = ("audit", "prove", "--run", str(run_dir), "--member", members[1], "--proof-file", proof)
    code, output = invoke(*common, "--round", "9", "--digest", "0x" + DIGESTS[1].hex())
    assert code == 2 and "'--round' option must be a recorded round in [1, 2]" in output
    code, output = invoke(*common, "--round", "2", "--digest", "0x1234")
    assert code == 2 and "'--digest' option" in output
    code, output = invoke(*common, "--round", "2")
    assert code == 2 and "'--digest' option" in output
    (tmp_path / "bad.json").write_text('{"proof": 5}')
    code, output = invoke(
        "audit", "prove", "--run", str(run_dir), "--member", members[1], "--round", "2",
        "--digest", "0x" + DIGESTS[1].hex(), "--proof-file", str(tmp_path / "bad.json"),
    )  # fmt: skip
    assert code == 2 and "'--proof-file' option" in output


def test_report_writes_three_pngs(run_dir: Path, tmp_path: Path) -> None:
    code, output = invoke("report", str(run_dir), "--out", str(tmp_path / "plots"))
    assert code == 0, output
    for name in ("accuracy.png", "epsilon.png", "tokens.png"):
        data = (tmp_path / "plots" / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, name
    code, output = invoke("report", str(tmp_path / "missing"))
    assert code == 2 and "result.json" in output


def test_lineage_failure_message_in_cli(chain: Chain, members: list[str], tmp_path: Path) -> None:
    from .helpers import FLAW_NO_LINEAGE

    ledger = deploy_tamper_ledger(chain, FLAW_NO_LINEAGE)
    ledger.register_members(members)
    federation = Federation(ledger, members, sizes=[120, 150, 200])
    federation.record()
    federation.record(previous=h("elsewhere"))
    export_ledger(ledger, tmp_path / "chain.json")
    code, output = invoke("audit", "--run", str(tmp_path), "--epsilon-budget", "10")
    assert code == 1
    assert "FAIL lineage.previous round 2 field previous_model_hash" in output
