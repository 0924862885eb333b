"""The conformance suite every fedchain strategy must pass (like scikit-learn's estimator checks).

Each check takes a :class:`~strategies.base.FedChainStrategy` subclass, builds fresh instances
on a small model, drives them through real Flower code (an in-memory Flower grid with registered
nodes, real ``Message`` replies) and raises :class:`ConformanceError` naming the check when the
strategy misbehaves. The checks:

* ``check_declarations``: the class attributes are well-formed and honest: a strategy works under
  HE exactly when it declares a ``member_update``; a plaintext one names a working ``he_alternative``.
* ``check_he_refusal``: a plaintext strategy refuses HE with a ``StrategyError`` saying why and what
  to use; an HE strategy builds under HE and yields its server optimizer.
* ``check_scorers``: supported scorers are registered and build; every other registered scorer is refused.
* ``check_he_matches_plaintext``: the members' server-optimizer step on the weighted mean update
  reproduces the strategy's own plaintext aggregation over several rounds (so HE is honest).
* ``check_failed_replies``: Flower error replies and malformed replies are left out and the
  valid subset is aggregated; all failed is a clear ``StrategyError``.
* ``check_deterministic``: the same seed samples the same members and aggregates bit-identically.
* ``check_identical_updates``: identical updates equal to the current model leave it unchanged;
  for averaging and plaintext (robust) strategies identical updates are returned as they are;
  names, shapes and dtypes are kept.
* ``check_example_weights``: averaging strategies weight members by their example counts.
* ``check_zero_weight``: zero example counts never produce NaN: all-zero or no updates is a
  ``StrategyError``, zero-weight updates are left out, negative counts are refused.
* ``check_describe``: ``describe()`` and ``capabilities()`` are complete and JSON-serialisable.

Example:
    >>> from strategies.builtin import FedAvgStrategy
    >>> check_strategy(FedAvgStrategy)  # raises ConformanceError on the first failed check
    >>> [name for name, _ in strategy_checks(FedAvgStrategy)][:2]
    ['check_declarations', 'check_he_refusal']
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import random
import secrets
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
from flwr.app import ConfigRecord, Error, Message
from flwr.serverapp import Grid

from fedchain.aggregation import available_server_optimizers
from fedchain.config import FedChainConfig
from fedchain.errors import ConfigError, ConformanceError, StrategyError
from fedchain.protocol import StrategyReply, TrainIns, config_record, encode, record_to_weights
from fedchain.serialization import Weights, flatten, unflatten
from strategies.base import MEMBER_FEATURES, MODEL_KEY, FedChainStrategy, StrategyOption

__all__ = [
    "ConformanceError",
    "check_strategy",
    "conformance_config",
    "flower_sandbox",
    "parametrize_with_checks",
    "strategy_checks",
]

log = logging.getLogger(__name__)

Check = Callable[[type[FedChainStrategy]], None]

#: Members of the sandbox federation the checks sample from.
NODES = 6
#: Rounds the multi-round checks run.
ROUNDS = 3


def conformance_config(**changes: Any) -> FedChainConfig:
    """The small configuration the checks build strategies with (plaintext unless ``he=True``).

    Example:
        >>> conformance_config(he=True).he
        True
    """
    base: dict[str, Any] = {
        "members": NODES,
        "min_members": 1,
        "he": False,
        "dp": False,
        "chain": "none",
        "fraction_train": 1.0,
        "fraction_evaluate": 1.0,
        "seed": 0,
    }
    if changes.get("he"):
        base["min_members"] = 2  # an HE aggregate needs two members (FedChainConfig refuses one)
    return FedChainConfig(**{**base, **changes})


@contextlib.contextmanager
def flower_sandbox(num_nodes: int = NODES) -> Iterator[Grid]:
    """A real in-memory Flower grid with ``num_nodes`` connected nodes, posing as a running ServerApp.

    It registers nodes exactly as Flower's simulation runtime does and sets Flower's
    ``TaskIdentity`` (needed to build ``Message`` objects), restoring it afterwards.
    Strategies can sample from it; nothing is sent.

    Example:
        >>> with flower_sandbox(3) as grid:
        ...     len(list(grid.get_node_ids()))
        3
    """
    from flwr.common.constant import (
        HEARTBEAT_INTERVAL_INF,
        NOOP_ACCOUNT_NAME,
        NOOP_FLWR_AID,
        SUPERLINK_NODE_ID,
    )
    from flwr.proto.task_pb2 import Task
    from flwr.server.superlink.linkstate import LinkStateFactory
    from flwr.server.superlink.linkstate.in_memory_linkstate import RunRecord
    from flwr.supercore.constant import FLWR_IN_MEMORY_DB_NAME, NOOP_FEDERATION_ID
    from flwr.supercore.object_store import ObjectStoreFactory
    from flwr.supercore.run import Run
    from flwr.supercore.task_identity import TaskIdentity
    from flwr.superlink.federation import NoOpFederationManager
    from flwr.superlink.grid import InMemoryGrid

    factory = LinkStateFactory(FLWR_IN_MEMORY_DB_NAME, NoOpFederationManager(), ObjectStoreFactory())
    state: Any = factory.state()
    run = Run.create_empty(run_id=1)
    run.primary_task_id = 1
    run.federation_id = NOOP_FEDERATION_ID
    state.run_ids[run.run_id] = RunRecord(run=run)
    state.task_store[1] = Task(task_id=1, run_id=run.run_id)
    for _ in range(num_nodes):
        node_id = state.create_node(
            NOOP_FLWR_AID, NOOP_ACCOUNT_NAME, secrets.token_bytes(32), heartbeat_interval=HEARTBEAT_INTERVAL_INF
        )
        state.acknowledge_node_heartbeat(node_id=node_id, heartbeat_interval=HEARTBEAT_INTERVAL_INF)
    grid = InMemoryGrid(state_factory=factory)
    grid.set_run(run)
    identity: Any = TaskIdentity
    saved = (identity._run_id, identity._task_id, identity._node_id)  # read raw: the properties raise when unset
    TaskIdentity.run_id, TaskIdentity.task_id, TaskIdentity.node_id = run.run_id, 1, SUPERLINK_NODE_ID
    try:
        yield grid
    finally:
        identity._run_id, identity._task_id, identity._node_id = saved


# ---------------------------------------------------------------------------- helpers
def _template() -> Weights:
    rng = np.random.default_rng(7)
    return {
        "layer.weight": rng.normal(0.0, 0.5, (3, 4)).astype(np.float32),
        "layer.bias": rng.normal(0.0, 0.5, 3).astype(np.float32),
    }


def _shifted(weights: Weights, delta: np.ndarray) -> Weights:
    return unflatten(flatten(weights) + delta, weights)


def _deltas(rng: np.random.Generator, count: int, size: int, scale: float = 0.05) -> list[np.ndarray]:
    return [rng.normal(0.0, scale, size) for _ in range(count)]


def _config(server_round: int) -> ConfigRecord:
    """The config a coordinator passes to ``configure_train``: the round's instruction, model to come."""
    return config_record(TrainIns(server_round, server_round - 1))


def _plain_round(
    strategy: FedChainStrategy, grid: Grid, server_round: int, weights: Weights, updates: list[tuple[Weights, int]]
) -> Weights:
    strategy.configure_train(server_round, weights, _config(server_round), grid)
    return record_to_weights(strategy.aggregate_plain(server_round, updates))


def _fail(check: str, cls: type[FedChainStrategy], message: str) -> ConformanceError:
    return ConformanceError(check, getattr(cls, "name", "") or cls.__qualname__, message)


def _build(check: str, cls: type[FedChainStrategy], config: FedChainConfig) -> FedChainStrategy:
    try:
        return cls(config)
    except Exception as exc:
        raise _fail(check, cls, f"cannot be built (he={config.he}): {type(exc).__name__}: {exc}") from exc


def _weighted_mean(deltas: Sequence[np.ndarray], counts: Sequence[int]) -> np.ndarray:
    weighted: np.ndarray = np.zeros_like(deltas[0])
    for n, d in zip(counts, deltas, strict=True):  # in order, as sum() adds them
        weighted = weighted + n * d
    return weighted / sum(counts)


def _close(a: Weights, b: Weights, *, rtol: float, atol: float) -> float | None:
    """None if every array is close, else the largest absolute difference."""
    worst = max(float(np.max(np.abs(np.asarray(a[k], np.float64) - np.asarray(b[k], np.float64)))) for k in a)
    ok = all(np.allclose(np.asarray(a[k], np.float64), np.asarray(b[k], np.float64), rtol=rtol, atol=atol) for k in a)
    return None if ok else worst


def _same_layout(check: str, cls: type[FedChainStrategy], result: Weights, template: Weights) -> None:
    layout = {k: (v.shape, v.dtype) for k, v in result.items()}
    expected = {k: (v.shape, v.dtype) for k, v in template.items()}
    if layout != expected:
        raise _fail(check, cls, f"the aggregate's arrays {layout} differ from the model's {expected}")
    for name, array in result.items():
        if not np.all(np.isfinite(array)):
            raise _fail(check, cls, f"the aggregate's {name!r} holds NaN or infinite values")


def _conformance_check(function: Check) -> Check:
    """Turn anything but a ConformanceError raised inside a check into one naming the check."""

    @functools.wraps(function)
    def run(cls: type[FedChainStrategy]) -> None:
        try:
            function(cls)
        except ConformanceError:
            raise
        except Exception as exc:
            raise _fail(function.__name__, cls, f"raised {type(exc).__name__}: {exc}") from exc

    return run


# ---------------------------------------------------------------------------- checks
@_conformance_check
def check_declarations(cls: type[FedChainStrategy]) -> None:
    """Class attributes are well-formed, and ``needs_plaintext`` is honest about ``member_update``."""
    check = "check_declarations"
    if not (isinstance(cls, type) and issubclass(cls, FedChainStrategy)):
        raise _fail(check, cls, "is not a FedChainStrategy subclass")
    if not isinstance(cls.name, str) or not cls.name or any(c.isspace() for c in cls.name):
        raise _fail(check, cls, f"'name' must be a non-empty string without spaces, got {cls.name!r}")
    if not (cls.__doc__ or "").strip():
        raise _fail(check, cls, "has no docstring: its first line is the summary `fedchain strategies` shows")
    if not isinstance(cls.needs_plaintext, bool):
        raise _fail(check, cls, f"'needs_plaintext' must be a bool, got {cls.needs_plaintext!r}")
    scorers = cls.supported_scorers
    if scorers is not None and not (
        isinstance(scorers, tuple) and scorers and all(isinstance(s, str) and s for s in scorers)
    ):
        raise _fail(check, cls, f"'supported_scorers' must be None or a non-empty tuple of names, got {scorers!r}")
    kinds = available_server_optimizers()
    if cls.member_update is not None and cls.member_update not in kinds:
        raise _fail(check, cls, f"'member_update' {cls.member_update!r} is not a server optimizer ({sorted(kinds)})")
    if cls.needs_plaintext != (cls.member_update is None):
        raise _fail(
            check,
            cls,
            f"needs_plaintext={cls.needs_plaintext} with member_update={cls.member_update!r}: a strategy works "
            "under HE exactly when members can apply its aggregate (declare member_update, or needs_plaintext=True)",
        )
    if not isinstance(cls.member_training, tuple) or not set(cls.member_training) <= set(MEMBER_FEATURES):
        raise _fail(check, cls, f"'member_training' must be a tuple of {MEMBER_FEATURES}, got {cls.member_training!r}")
    if cls.needs_plaintext:
        from strategies.registry import resolve_strategy

        try:
            alternative = resolve_strategy(cls.he_alternative)
        except ConfigError as exc:
            raise _fail(check, cls, f"'he_alternative' {cls.he_alternative!r} is not a strategy: {exc}") from exc
        if alternative.needs_plaintext:
            raise _fail(check, cls, f"'he_alternative' {cls.he_alternative!r} does not work under HE either")
    fields = [option.field for option in cls.options]
    keys = [option.key for option in cls.options]
    if not all(isinstance(option, StrategyOption) for option in cls.options):
        raise _fail(check, cls, "'options' must hold StrategyOption objects")
    if len(set(fields)) != len(fields) or len(set(keys)) != len(keys):
        raise _fail(check, cls, f"'options' repeat a field or key: {fields}, {keys}")
    for option in cls.options:
        try:
            option.check.check(option.field, option.default)
        except ConfigError as exc:
            raise _fail(check, cls, f"option {option.field!r} has an invalid default: {exc}") from exc


@_conformance_check
def check_he_refusal(cls: type[FedChainStrategy]) -> None:
    """Plaintext strategies refuse HE saying why and what to use; HE strategies build under HE."""
    check = "check_he_refusal"
    config = conformance_config(he=True, strategy=cls.name)
    if cls.needs_plaintext:
        try:
            cls(config)
        except StrategyError as exc:
            message = str(exc)
            if "plaintext" not in message or repr(cls.he_alternative) not in message:
                raise _fail(
                    check, cls, f"the HE refusal must say it needs plaintext and name the alternative: {message}"
                ) from exc
        else:
            raise _fail(check, cls, "needs plaintext updates but was built with HE on")
        try:
            cls.server_optimizer(config)
        except StrategyError:
            return
        raise _fail(check, cls, "needs plaintext updates but returned a member-side server optimizer")
    strategy = _build(check, cls, config)
    optimizer = strategy.server_optimizer(config)
    if optimizer.kind != cls.member_update:
        raise _fail(check, cls, f"server_optimizer() is {optimizer.kind!r}, member_update is {cls.member_update!r}")


@_conformance_check
def check_scorers(cls: type[FedChainStrategy]) -> None:
    """Supported scorers build; a registered scorer outside ``supported_scorers`` is refused naming them."""
    check = "check_scorers"
    if cls.supported_scorers is None:
        _build(check, cls, conformance_config(strategy=cls.name))
        return
    from fedchain.contribution import available_scorers

    registered = set(available_scorers())
    unknown = sorted(set(cls.supported_scorers) - registered)
    if unknown:
        raise _fail(check, cls, f"'supported_scorers' names unregistered scorers {unknown} ({sorted(registered)})")
    for scorer in cls.supported_scorers:
        _build(check, cls, conformance_config(strategy=cls.name, scorer=scorer))
    for scorer in sorted(registered - set(cls.supported_scorers)):
        try:
            config = conformance_config(strategy=cls.name, scorer=scorer)
        except ConfigError:
            continue  # the scorer cannot run in this mode at all (the config refuses it)
        try:
            cls(config)
        except StrategyError as exc:
            if cls.supported_scorers[0] not in str(exc):
                raise _fail(check, cls, f"the refusal should name the supported scorers: {exc}") from exc
            continue
        raise _fail(check, cls, f"accepted scorer {scorer!r}, outside supported_scorers {cls.supported_scorers}")


@_conformance_check
def check_he_matches_plaintext(cls: type[FedChainStrategy]) -> None:
    """Members' server-optimizer steps reproduce the strategy's plaintext aggregation, round after round."""
    check = "check_he_matches_plaintext"
    if cls.needs_plaintext:
        return
    config = conformance_config(strategy=cls.name)
    strategy = _build(check, cls, config)
    optimizer = cls.server_optimizer(config)
    rng = np.random.default_rng(11)
    plain = member = _template()
    state = None
    with flower_sandbox() as grid:
        for server_round in range(1, ROUNDS + 1):
            counts = [int(n) for n in rng.integers(1, 50, 4)]
            deltas = _deltas(rng, len(counts), flatten(plain).size)
            updates = [(_shifted(plain, d), n) for d, n in zip(deltas, counts, strict=True)]
            plain = _plain_round(strategy, grid, server_round, plain, updates)
            flat, state = optimizer.step(
                flatten(member), _weighted_mean(deltas, counts), state, server_round=server_round
            )
            member = unflatten(flat, member)
            worst = _close(plain, member, rtol=1e-4, atol=2e-5)
            if worst is not None:
                raise _fail(
                    check,
                    cls,
                    f"round {server_round}: the {optimizer.kind!r} member update differs from the plaintext "
                    f"aggregation by {worst:.3g}: under HE members would compute another model",
                )


def _replies(instructions: list[Message], updates: list[tuple[Weights, int]], failed: set[int]) -> list[Message]:
    replies = []
    for index, (instruction, (weights, n)) in enumerate(zip(instructions, updates, strict=True)):
        if index in failed:
            replies.append(Message(Error(code=1, reason="conformance: simulated failure"), reply_to=instruction))
        else:
            replies.append(Message(encode(StrategyReply(weights, n)), reply_to=instruction))
    return replies


@_conformance_check
def check_failed_replies(cls: type[FedChainStrategy]) -> None:
    """Error and malformed replies are left out; the valid subset is aggregated; all failed is an error."""
    check = "check_failed_replies"
    config = conformance_config(strategy=cls.name)
    template = _template()
    rng = np.random.default_rng(3)
    counts = [int(n) for n in rng.integers(1, 40, NODES)]
    updates = [(_shifted(template, d), n) for d, n in zip(_deltas(rng, NODES, 15), counts, strict=True)]
    failed = {1, 4}
    with flower_sandbox() as grid:
        first = _build(check, cls, config)
        instructions = first.configure_train(1, template, _config(1), grid)
        if len(instructions) != NODES:
            raise _fail(check, cls, f"sampled {len(instructions)} of {NODES} members with fraction_train=1.0")
        replies = _replies(instructions, updates, failed)
        modelless = encode(StrategyReply(template, 5))
        del modelless[MODEL_KEY]  # a reply without its model
        malformed = Message(modelless, reply_to=instructions[0])
        try:
            got = record_to_weights(first.aggregate_replies(1, [*replies, malformed]))
        except StrategyError as exc:
            raise _fail(check, cls, f"could not aggregate {NODES - len(failed)} valid replies: {exc}") from exc
        second = _build(check, cls, config)
        second.configure_train(1, template, _config(1), grid)
        valid = [update for index, update in enumerate(updates) if index not in failed]
        expected = record_to_weights(second.aggregate_plain(1, valid))
        _same_layout(check, cls, got, template)
        if not all(np.array_equal(got[k], expected[k]) for k in expected):
            raise _fail(check, cls, "aggregating replies with failures differs from aggregating the valid subset")
        third = _build(check, cls, config)
        third.configure_train(1, template, _config(1), grid)
        try:
            third.aggregate_replies(1, _replies(instructions, updates, set(range(NODES))))
        except StrategyError:
            return
        raise _fail(check, cls, "returned a model although every reply failed")


@_conformance_check
def check_deterministic(cls: type[FedChainStrategy]) -> None:
    """The same seed samples the same members, and the same updates aggregate bit-identically."""
    check = "check_deterministic"
    config = conformance_config(strategy=cls.name, fraction_train=0.5)
    outcomes = []
    saved = random.getstate()
    try:
        with flower_sandbox() as grid:
            for _ in range(2):
                strategy = _build(check, cls, config)
                rng = np.random.default_rng(5)
                weights = _template()
                sampled, models = [], []
                for server_round in range(1, ROUNDS + 1):
                    random.seed(1234 + server_round)
                    instructions = strategy.configure_train(server_round, weights, _config(server_round), grid)
                    sampled.append(sorted(m.metadata.dst_node_id for m in instructions))
                    counts = [int(n) for n in rng.integers(1, 30, 4)]
                    deltas = _deltas(rng, len(counts), flatten(weights).size)
                    updates = [(_shifted(weights, d), n) for d, n in zip(deltas, counts, strict=True)]
                    weights = record_to_weights(strategy.aggregate_plain(server_round, updates))
                    models.append(weights)
                outcomes.append((sampled, models))
    finally:
        random.setstate(saved)
    (sampled_a, models_a), (sampled_b, models_b) = outcomes
    if sampled_a != sampled_b:
        raise _fail(check, cls, "sampled different members with the same random seed")
    for server_round, (a, b) in enumerate(zip(models_a, models_b, strict=True), start=1):
        if not all(np.array_equal(a[k], b[k]) for k in a):
            raise _fail(check, cls, f"round {server_round}: the same updates gave different models")


@_conformance_check
def check_identical_updates(cls: type[FedChainStrategy]) -> None:
    """Identical updates: the current model is kept; averaging and plaintext strategies return the update."""
    check = "check_identical_updates"
    config = conformance_config(strategy=cls.name)
    template = _template()
    with flower_sandbox() as grid:
        strategy = _build(check, cls, config)
        kept = _plain_round(strategy, grid, 1, template, [(template, n) for n in (3, 1, 7, 2)])
        _same_layout(check, cls, kept, template)
        worst = _close(kept, template, rtol=1e-6, atol=1e-7)
        if worst is not None:
            raise _fail(check, cls, f"every member sent the current model back, yet it moved by {worst:.3g}")
        if cls.member_update not in (None, "avg"):
            return  # a server optimizer legitimately moves past the members' common update
        update = _shifted(template, np.random.default_rng(9).normal(0, 0.1, flatten(template).size))
        strategy = _build(check, cls, config)
        got = _plain_round(strategy, grid, 1, template, [(update, n) for n in (5, 1, 2, 9)])
        _same_layout(check, cls, got, template)
        worst = _close(got, update, rtol=1e-6, atol=1e-6)
        if worst is not None:
            raise _fail(check, cls, f"aggregating identical updates returned something else (off by {worst:.3g})")


@_conformance_check
def check_example_weights(cls: type[FedChainStrategy]) -> None:
    """Averaging strategies (``member_update="avg"``) weight members by their example counts."""
    check = "check_example_weights"
    if cls.member_update != "avg":
        return  # server optimizers: see check_he_matches_plaintext; plaintext robust rules ignore weights
    template = _template()
    a = _shifted(template, np.full(15, 0.4))
    b = _shifted(template, np.full(15, -0.4))
    with flower_sandbox() as grid:
        got = _plain_round(
            _build(check, cls, conformance_config(strategy=cls.name)), grid, 1, template, [(a, 30), (b, 10)]
        )
    expected = _shifted(template, np.full(15, 0.2))
    worst = _close(got, expected, rtol=1e-5, atol=1e-6)
    if worst is not None:
        raise _fail(check, cls, f"30:10 examples should give a 3:1 weighted mean; off by {worst:.3g}")


@_conformance_check
def check_zero_weight(cls: type[FedChainStrategy]) -> None:
    """Zero example counts never produce NaN; no usable update is a StrategyError; negatives are refused."""
    check = "check_zero_weight"
    config = conformance_config(strategy=cls.name)
    template = _template()
    rng = np.random.default_rng(13)
    updates = [(_shifted(template, d), 0) for d in _deltas(rng, 3, 15)]
    with flower_sandbox() as grid:
        for label, batch in (("all-zero example counts", updates), ("no updates", [])):
            strategy = _build(check, cls, config)
            try:
                got = _plain_round(strategy, grid, 1, template, batch)
            except StrategyError:
                continue
            _same_layout(check, cls, got, template)
            if _close(got, template, rtol=0, atol=0) is not None:
                raise _fail(check, cls, f"{label} must raise StrategyError or keep the model; it moved it")
        mixed = [(updates[0][0], 0), (updates[1][0], 4), (updates[2][0], 6)]
        got = _plain_round(_build(check, cls, config), grid, 1, template, mixed)
        _same_layout(check, cls, got, template)
        expected = _plain_round(_build(check, cls, config), grid, 1, template, mixed[1:])
        if not all(np.array_equal(got[k], expected[k]) for k in expected):
            raise _fail(check, cls, "a zero-example update changed the aggregate")
        try:
            _plain_round(_build(check, cls, config), grid, 1, template, [(updates[0][0], -3), (updates[1][0], 4)])
        except StrategyError:
            return
        raise _fail(check, cls, "accepted a negative example count")


@_conformance_check
def check_describe(cls: type[FedChainStrategy]) -> None:
    """``describe()`` and ``capabilities()`` are complete and JSON-serialisable."""
    check = "check_describe"
    strategy = _build(check, cls, conformance_config(strategy=cls.name))
    required = {"name", "summary", "he", "needs_plaintext", "member_update", "member_training", "scorers", "options"}
    for label, data in (("capabilities()", cls.capabilities()), ("describe()", strategy.describe())):
        missing = required - set(data)
        if missing:
            raise _fail(check, cls, f"{label} lacks {sorted(missing)}")
        try:
            json.dumps(data)
        except (TypeError, ValueError) as exc:
            raise _fail(check, cls, f"{label} is not JSON-serialisable: {exc}") from exc
        if data["name"] != cls.name or data["he"] is cls.needs_plaintext:
            raise _fail(check, cls, f"{label} contradicts the class declarations: {data}")


_CHECKS: tuple[Check, ...] = (
    check_declarations,
    check_he_refusal,
    check_scorers,
    check_he_matches_plaintext,
    check_failed_replies,
    check_deterministic,
    check_identical_updates,
    check_example_weights,
    check_zero_weight,
    check_describe,
)


def strategy_checks(cls: type[FedChainStrategy]) -> list[tuple[str, Check]]:
    """Every check that applies to ``cls``, as ``(name, check)``; call ``check(cls)`` to run one."""
    return [(check.__name__, check) for check in _CHECKS]


def check_strategy(cls: type[FedChainStrategy]) -> None:
    """Run every check on ``cls``; raise :class:`ConformanceError` on the first failure.

    Raises:
        ConformanceError: naming the check, the strategy and what went wrong.
    """
    for name, check in strategy_checks(cls):
        log.debug("conformance: %s on %s", name, cls.__qualname__)
        check(cls)


def parametrize_with_checks(classes: Sequence[type[FedChainStrategy]]) -> Any:
    """A ``pytest.mark.parametrize`` over ``(strategy_cls, check)`` for every class and check.

    Example::

        from strategies.conformance import parametrize_with_checks

        @parametrize_with_checks([MyStrategy])
        def test_conformance(strategy_cls, check):
            check(strategy_cls)
    """
    import pytest

    params = [
        pytest.param(cls, check, id=f"{cls.name or cls.__qualname__}-{name}")
        for cls in classes
        for name, check in strategy_checks(cls)
    ]
    return pytest.mark.parametrize(("strategy_cls", "check"), params)
