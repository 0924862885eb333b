"""The wire codec: every message survives a round trip, and every malformed record is refused by name."""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from flwr.app import ArrayRecord, ConfigRecord, MetricRecord, RecordDict
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fedchain.errors import SerializationError
from fedchain.protocol import (
    INLINE_CHUNKS_MAX_BYTES,
    CommitteeAnswer,
    CommitteeQuery,
    DisputeClaim,
    DPReport,
    EvaluateIns,
    EvaluateRes,
    MemberIdentity,
    SealedAggregate,
    StrategyReply,
    TrainIns,
    TrainRes,
    decode_committee_answer,
    decode_committee_query,
    decode_evaluate_ins,
    decode_evaluate_res,
    decode_strategy_reply,
    decode_train_ins,
    decode_train_res,
    encode,
)
from fedchain.types import DPParams

settings.register_profile("suite", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "suite"))

WEIGHTS = {"0.weight": np.arange(6, dtype=np.float32).reshape(2, 3), "0.bias": np.ones(2, np.float32)}
MEMBER = MemberIdentity(member_id=3, address="0x" + "ab" * 20, model_hash="0x" + "01" * 32, model_round=1)
DP = DPReport(
    epsilon=1.5,
    params=DPParams(noise_multiplier=1.1, sample_rate=0.02, steps=50, max_grad_norm=1.0, delta=1e-5),
    spend_history=((1.1, 0.02, 50), (1.2, 0.02, 40)),
    noise_seeded=True,
)
AGGREGATES = (
    SealedAggregate(1, (b"\x01\x02", b"\x03"), total_weight=30, digest="0x" + "aa" * 32, members=3),
    SealedAggregate(
        2,
        (b"\x04",),
        total_weight=20,
        digest="0x" + "bb" * 32,
        update="fedadam",
        update_options=(("beta_1", 0.9), ("eta", 0.1)),
    ),
)


def _same(left: Any, right: Any) -> bool:
    """Dataclass equality with arrays compared by value."""
    if isinstance(left, dict):
        return left.keys() == right.keys() and all(_same(left[k], right[k]) for k in left)
    if isinstance(left, np.ndarray):
        return left.dtype == right.dtype and np.array_equal(left, right)
    if hasattr(left, "__dataclass_fields__"):
        return type(left) is type(right) and all(
            _same(getattr(left, f), getattr(right, f)) for f in left.__dataclass_fields__
        )
    return bool(left == right)


ROUND_TRIPS = [
    (
        TrainIns(server_round=2, model_round=1, cohort=3, chain_id=7, ledger_address="0xL", model=WEIGHTS),
        decode_train_ins,
    ),
    (
        TrainIns(server_round=3, model_round=2, proximal_mu=0.25, aggregates=AGGREGATES, options={"lr": 0.1}),
        decode_train_ins,
    ),
    (EvaluateIns(server_round=2, model_round=2, model=WEIGHTS), decode_evaluate_ins),
    (
        EvaluateIns(2, 2, aggregates=AGGREGATES, revealed_scalars='{"round":2}', scalars_commitment="0x" + "cc" * 32),
        decode_evaluate_ins,
    ),
    (
        TrainRes(member=replace(MEMBER, signature="0xsig"), num_examples=40, train_loss=0.5, arrays=WEIGHTS),
        decode_train_res,
    ),
    (
        TrainRes(member=MEMBER, num_examples=40, train_seconds=1.25, dp=DP, update=(b"\x00" * 9, b"\x01")),
        decode_train_res,
    ),
    (EvaluateRes(member=MEMBER, num_examples=10, loss=0.3, accuracy=0.9), decode_evaluate_res),
    (
        EvaluateRes(MEMBER, 10, 0.3, 0.9, dispute=DisputeClaim("0x" + "cc" * 32, "0xsig", "exchange 1: wrong")),
        decode_evaluate_res,
    ),
    (
        CommitteeQuery(1, 2, ("dots", "agg_sq_norm"), (2, 1), ("0xa", "0xb"), (b"\x01", b"\x02"), 7, "0xL"),
        decode_committee_query,
    ),
    (CommitteeAnswer((1.0, 2.5, -3.0), "0xa", "0xsig", "0xhash", 1, 2), decode_committee_answer),
    (StrategyReply(WEIGHTS, 12), decode_strategy_reply),
]


@pytest.mark.parametrize(("message", "decode"), ROUND_TRIPS, ids=lambda v: type(v).__name__)
def test_every_message_survives_a_round_trip(message: Any, decode: Any) -> None:
    assert _same(decode(encode(message)), message)


def test_a_committee_query_is_built_from_labelled_requests() -> None:
    from fedchain.contribution.committee import ScalarRequest

    requests = [ScalarRequest("sq_norms", ("0xa", "0xb"), b"\x01"), ScalarRequest("agg_sq_norm", (), b"\x02")]
    query = CommitteeQuery.of(1, 1, requests, chain_id=0, ledger_address="")
    assert (query.kinds, query.counts, query.addresses) == (("sq_norms", "agg_sq_norm"), (2, 1), ("0xa", "0xb"))
    assert CommitteeAnswer((1.0, 2.0, 3.0), "0xa", "s").split(query.counts) == [[1.0, 2.0], [3.0]]
    with pytest.raises(SerializationError, match="'values' must be 3 scalars, got '2 scalars'"):
        CommitteeAnswer((1.0, 2.0), "0xa", "s").split(query.counts)


def _train_ins(**config: Any) -> RecordDict:
    return RecordDict({"config": ConfigRecord({"server-round": 1, "model-round": 0, **config})})


@pytest.mark.parametrize(
    ("content", "message", "cause"),
    [
        (RecordDict({}), "a train instruction has no 'config' record (ConfigRecord)", KeyError),
        (
            RecordDict({"config": MetricRecord({"server-round": 1})}),
            "a train instruction's 'config' record must be a ConfigRecord, got MetricRecord",
            TypeError,
        ),
        (
            RecordDict({"config": ConfigRecord({"model-round": 0})}),
            "the 'config' record of a train instruction has no 'server-round' (an int >= 0)",
            KeyError,
        ),
        (
            _train_ins(**{"server-round": "1"}),
            "the 'config' record's 'server-round' must be an int >= 0, got '1'",
            TypeError,
        ),
        (_train_ins(cohort=True), "the 'config' record's 'cohort' must be an int >= 0, got True", TypeError),
        (_train_ins(cohort=-2), "the 'config' record's 'cohort' must be an int >= 0, got -2", ValueError),
        (
            _train_ins(**{"proximal-mu": -0.5}),
            "the 'config' record's 'proximal-mu' must be a float >= 0, got -0.5",
            ValueError,
        ),
        (
            _train_ins(**{"agg-rounds": [1]}),
            "a train instruction has no 'agg.1' record (ArrayRecord)",
            KeyError,
        ),
        (
            _train_ins(**{"agg-rounds": [2, 1]}),
            "the 'config' record's 'agg-rounds' must be increasing rounds >= 1, got [2, 1]",
            ValueError,
        ),
    ],
)
def test_a_malformed_train_instruction_is_refused_by_name(content: RecordDict, message: str, cause: type) -> None:
    with pytest.raises(SerializationError) as caught:
        decode_train_ins(content)
    assert str(caught.value) == message
    assert isinstance(caught.value.__cause__, cause)


def test_an_aggregate_with_no_weight_or_a_bad_chunk_is_refused() -> None:
    good = encode(TrainIns(2, 1, aggregates=AGGREGATES[:1]))
    good["config"]["agg.1.weight"] = 0
    with pytest.raises(SerializationError, match=r"'agg.1.weight' must be an int >= 1, got 0"):
        decode_train_ins(good)
    bad = encode(TrainIns(2, 1, aggregates=AGGREGATES[:1]))
    bad["agg.1"] = ArrayRecord({"c0": __import__("flwr.app", fromlist=["Array"]).Array(np.zeros(2, np.float32))})
    with pytest.raises(SerializationError, match="must be a 1-D uint8 array"):
        decode_train_ins(bad)


def test_ciphertexts_travel_inline_when_small_and_as_arrays_when_large() -> None:
    small = encode(TrainRes(member=MEMBER, num_examples=4, dp=DP, update=(b"\x01\x02", b"\x03")))
    assert isinstance(small["update"], ConfigRecord)  # one Flower object, not three
    assert decode_train_res(small).update == (b"\x01\x02", b"\x03")
    big_chunk = bytes(range(256)) * (INLINE_CHUNKS_MAX_BYTES // 256 + 1)
    large = encode(TrainRes(member=MEMBER, num_examples=4, dp=DP, update=(big_chunk,)))
    assert isinstance(large["update"], ArrayRecord)  # Flower splits it into 5 MB pieces
    assert decode_train_res(large).update == (big_chunk,)
    query = CommitteeQuery.of(1, 0, (), chain_id=1, ledger_address="0x" + "ab" * 20)
    assert isinstance(encode(query)["scalars"], ConfigRecord)


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (ConfigRecord({"chunks": [b"\x01"], "extra": 1}), "holds only 'chunks'"),
        (ConfigRecord({"chunk": [b"\x01"]}), "holds only 'chunks'"),
        (ConfigRecord({"chunks": ["not bytes"]}), "must be a list of bytes"),
        (ConfigRecord({"chunks": b"\x01"}), "must be a list of bytes"),
    ],
)
def test_a_malformed_inline_ciphertext_record_is_refused(record: ConfigRecord, message: str) -> None:
    content = encode(TrainRes(member=MEMBER, num_examples=4, dp=DP, update=(b"\x01",)))
    content["update"] = record
    with pytest.raises(SerializationError, match=message):
        decode_train_res(content)


def test_an_aggregates_member_update_options_must_pair_up() -> None:
    content = encode(TrainIns(3, 2, aggregates=AGGREGATES[1:]))
    content["config"]["agg.2.update-option-values"] = [0.9]  # two names, one value
    with pytest.raises(SerializationError, match=r"'agg\.2\.update-option-names' must be distinct names, one finite"):
        decode_train_ins(content)


def _train_res(**metrics: Any) -> RecordDict:
    content = encode(TrainRes(member=MEMBER, num_examples=4, dp=DP, update=(b"\x01",)))
    content["metrics"] = MetricRecord({**dict(content["metrics"]), **metrics})
    return content


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (_train_res(**{"sample-rate": 1.5}), "the 'metrics' record's 'sample-rate' must be a float in (0, 1], got 1.5"),
        (_train_res(steps=0), "the 'metrics' record's 'steps' must be an int >= 1, got 0"),
        (_train_res(**{"num-examples": 2.0}), "the 'metrics' record's 'num-examples' must be an int >= 0, got 2.0"),
        (
            _train_res(**{"spend-history": [1.0, 0.5]}),
            "the 'metrics' record's 'spend-history' must be (sigma, q, steps) triples, got '2 values'",
        ),
        (
            _train_res(**{"spend-history": [1.0, 0.5, 2.5]}),
            "the 'metrics' record's 'spend-history' must be DP-SGD rounds, got (1.0, 0.5, 2.5)",
        ),
    ],
)
def test_a_malformed_train_reply_is_refused_by_name(content: RecordDict, message: str) -> None:
    with pytest.raises(SerializationError) as caught:
        decode_train_res(content)
    assert str(caught.value) == message


def test_a_train_reply_carries_exactly_one_payload() -> None:
    both = encode(TrainRes(member=MEMBER, num_examples=4, arrays=WEIGHTS, update=(b"\x01",)))
    with pytest.raises(SerializationError, match=r"exactly one payload.*got both"):
        decode_train_res(both)
    neither = encode(TrainRes(member=MEMBER, num_examples=4))
    with pytest.raises(SerializationError, match=r"exactly one payload.*got neither"):
        decode_train_res(neither)
    unsigned = decode_train_res(encode(TrainRes(member=MEMBER, num_examples=4, arrays=WEIGHTS)))
    assert unsigned.member.signature is None and unsigned.dp is None


def test_a_committee_query_needs_one_kind_and_count_per_ciphertext() -> None:
    content = encode(CommitteeQuery(1, 1, ("sq_norms",), (2, 1), ("0xa", "0xb"), (b"\x01",)))
    with pytest.raises(SerializationError, match=r"^1 ciphertexts, 1 kinds and 2 counts: one of each$"):
        decode_committee_query(content)
    legacy = RecordDict({"config": ConfigRecord({"scalar-counts": [4096], "server-round": 1})})
    with pytest.raises(SerializationError, match="has no 'scalar-kinds'") as caught:
        decode_committee_query(legacy)
    assert isinstance(caught.value.__cause__, KeyError)


def test_an_evaluate_reply_names_a_bad_accuracy() -> None:
    content = encode(EvaluateRes(MEMBER, 10, 0.3, 0.9))
    content["metrics"]["accuracy"] = 1.5
    with pytest.raises(SerializationError, match=r"'accuracy' must be a float in \[0, 1\], got 1.5"):
        decode_evaluate_res(content)


finite = st.floats(allow_nan=False, allow_infinity=False, width=32)


@given(
    member_id=st.integers(0, 2**31),
    n=st.integers(0, 10**9),
    loss=finite,
    rows=st.integers(1, 4),
    values=st.lists(finite, min_size=1, max_size=12),
    chunks=st.lists(st.binary(min_size=1, max_size=64), min_size=1, max_size=4),
    he=st.booleans(),
)
def test_property_train_replies_round_trip(
    member_id: int, n: int, loss: float, rows: int, values: list[float], chunks: list[bytes], he: bool
) -> None:
    arrays = {"w": np.resize(np.asarray(values, np.float32), (rows, len(values)))}
    res = TrainRes(
        member=MemberIdentity(member_id, "0xabc", signature="0x01"),
        num_examples=n,
        train_loss=loss,
        dp=DP if he else None,
        arrays=None if he else arrays,
        update=tuple(chunks) if he else None,
    )
    assert _same(decode_train_res(encode(res)), res)


@given(
    config=st.dictionaries(
        st.sampled_from(["server-round", "model-round", "cohort", "chain-id", "proximal-mu", "agg-rounds", "x"]),
        st.one_of(st.integers(-3, 3), st.floats(), st.text(max_size=3), st.booleans(), st.lists(st.integers(-1, 3))),
    )
)
def test_property_any_config_decodes_or_is_refused_by_name(config: dict[str, Any]) -> None:
    try:
        decoded = decode_train_ins(RecordDict({"config": ConfigRecord(config)}))
    except SerializationError as exc:
        assert "'config'" in str(exc) or "'agg." in str(exc)
    else:
        assert decoded.server_round >= 0 and (decoded.cohort is None or decoded.cohort >= 0)


_values = st.one_of(
    st.integers(-(2**40), 2**40),
    st.floats(),
    st.text(max_size=4),
    st.booleans(),
    st.lists(st.integers(-2, 5), max_size=4),
    st.lists(st.floats(width=32), max_size=4),
    st.lists(st.text(max_size=3), max_size=3),
)
_keys = st.sampled_from(
    [
        "server-round",
        "model-round",
        "cohort",
        "agg-rounds",
        "agg.1.weight",
        "agg.1.digest",
        "num-examples",
        "epsilon",
        "steps",
        "spend-history",
        "member-id",
        "address",
        "signature",
        "scalar-kinds",
        "scalar-counts",
        "scalar-addresses",
        "exchange",
        "values",
        "loss",
        "accuracy",
    ]
)
_metric_values = st.one_of(
    st.integers(-(2**40), 2**40),
    st.floats(),
    st.lists(st.floats(width=32), max_size=4),
    st.lists(st.integers(), max_size=4),
)
DECODERS = (
    decode_train_ins,
    decode_evaluate_ins,
    decode_train_res,
    decode_evaluate_res,
    decode_committee_query,
    decode_committee_answer,
    decode_strategy_reply,
)


@given(
    config=st.dictionaries(_keys, _values, max_size=8),
    metrics=st.dictionaries(_keys, _metric_values, max_size=6),
    chunks=st.lists(st.binary(max_size=8), max_size=2),
    names=st.sets(st.sampled_from(["config", "member", "answer", "metrics", "scalars", "update", "arrays", "agg.1"])),
)
def test_property_every_decoder_returns_a_message_or_names_the_problem(
    config: dict[str, Any], metrics: dict[str, Any], chunks: list[bytes], names: set[str]
) -> None:
    """Whatever records arrive, each decoder returns its message or raises SerializationError, nothing else."""
    from fedchain.protocol import chunks_to_record

    content = RecordDict({})
    for name in names:
        if name in ("metrics", "scalars") and metrics:
            content[name] = MetricRecord(metrics)
        elif name in ("update", "arrays", "agg.1"):
            content[name] = chunks_to_record(chunks)
        else:
            content[name] = ConfigRecord(config)
    for decode in DECODERS:
        try:
            decode(content)
        except SerializationError as exc:
            assert str(exc)
