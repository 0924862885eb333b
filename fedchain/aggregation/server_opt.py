"""Server optimizers that members apply to the decrypted mean update: FedAvg, FedAvgM, FedAdam, FedYogi.

Under HE the coordinator only adds ciphertexts, so it cannot run a server optimizer. But every
member decrypts the *same* aggregate ``S = sum_i n_i * delta_i`` with the same total weight ``W``;
the mean update ``S / W`` is therefore identical on every member, and a deterministic optimizer
step applied to it, from identical state, keeps every member's model and optimizer state
bit-identical. The coordinator stays blind and FedAvgM / FedAdam / FedYogi still run.

The math is Flower 1.42's, term for term (``flwr/serverapp/strategy/fedavgm.py``, ``fedopt.py``,
``fedadam.py``, ``fedyogi.py``), in float64. Flower's sign convention: FedOpt's ``delta_t`` is
``aggregated - current`` (our ``mean_delta``); FedAvgM's pseudo-gradient is ``current - aggregated``
(``-mean_delta``). State (moments, momentum) is float64, serialisable as safetensors with one JSON
metadata entry: no pickle.

Example:
    >>> import numpy as np
    >>> adam = create_server_optimizer("adam", eta=0.1)
    >>> weights, state = np.zeros(2), None
    >>> for server_round in (1, 2):
    ...     weights, state = adam.step(weights, np.array([0.5, -0.5]), state, server_round=server_round)
    >>> state.server_round, np.round(weights, 4)
    (2, array([ 0.1572, -0.1572]))
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from fedchain._io import atomic_write_bytes
from fedchain._validation import Interval
from fedchain.errors import ConfigError, SerializationError, StrategyError
from fedchain.registry import Registry

__all__ = [
    "FedAdamUpdate",
    "FedAvgMUpdate",
    "FedAvgUpdate",
    "FedYogiUpdate",
    "OptimizerState",
    "ServerOptimizer",
    "available_server_optimizers",
    "create_server_optimizer",
    "load_optimizer_state",
    "register_server_optimizer",
    "save_optimizer_state",
]

log = logging.getLogger(__name__)

#: Format tag written into every saved state; a different tag is refused on load.
STATE_FORMAT = "fedchain-server-optimizer/1"
#: The one safetensors metadata key (safetensors writes metadata in hash-map order: one key is canonical).
_METADATA_KEY = "fedchain"
#: Refuse state files larger than this before reading them (4 GiB: three float64 copies of a 170M model).
MAX_STATE_BYTES = 1 << 32

_POSITIVE = Interval(float, 0, None, closed="neither")
_NONNEGATIVE = Interval(float, 0, None, closed="left")
_BETA = Interval(float, 0, 1, closed="left")


@dataclass(frozen=True, eq=False)
class OptimizerState:
    """A member's server-optimizer state after applying the aggregate of ``server_round``.

    Attributes:
        kind: the optimizer's registry name (``"adam"``...).
        options: the hyperparameters the state was built with; a state is only valid with them.
        server_round: the round of the last aggregate applied (0: none yet).
        arrays: float64 vectors by name (``"m"``, ``"v"``, ``"momentum"``), each as long as the model.
    """

    kind: str
    options: Mapping[str, float]
    server_round: int = 0
    arrays: Mapping[str, np.ndarray] = field(default_factory=dict)

    def digest(self) -> str:
        """``"0x"`` + SHA-256 over kind, options, round and the arrays' bytes: equal on every member in step.

        Example:
            >>> OptimizerState("avg", {}).digest() == OptimizerState("avg", {}).digest()
            True
        """
        h = hashlib.sha256(self._header().encode())
        for name in sorted(self.arrays):
            h.update(b"\0" + np.ascontiguousarray(self.arrays[name], dtype="<f8").tobytes())
        return "0x" + h.hexdigest()

    def _header(self) -> str:
        return json.dumps(
            {
                "format": STATE_FORMAT,
                "kind": self.kind,
                "options": {k: float(v) for k, v in self.options.items()},
                "server_round": int(self.server_round),
            },
            sort_keys=True,
        )

    def to_bytes(self) -> bytes:
        """Safetensors bytes: the arrays (float64) and one JSON metadata entry with the rest."""
        from safetensors.numpy import save

        arrays = {name: np.ascontiguousarray(self.arrays[name], dtype="<f8") for name in sorted(self.arrays)}
        return save(arrays, metadata={_METADATA_KEY: self._header()})

    @classmethod
    def from_bytes(cls, data: bytes) -> OptimizerState:
        """Inverse of :meth:`to_bytes`, validating everything it reads.

        Raises:
            SerializationError: the bytes are not a fedchain optimizer state.
        """
        from safetensors.numpy import load

        try:
            header = _read_metadata(data)
            arrays = load(data)
        except SerializationError:
            raise
        except Exception as exc:  # safetensors raises its own SafetensorError
            raise SerializationError(f"optimizer state is not valid safetensors: {exc}") from exc
        try:
            meta = json.loads(header)
            if meta.get("format") != STATE_FORMAT:
                raise SerializationError(
                    f"optimizer state has format {meta.get('format')!r}, expected {STATE_FORMAT!r}"
                )
            kind, options, server_round = meta["kind"], meta["options"], meta["server_round"]
        except (json.JSONDecodeError, KeyError, AttributeError, TypeError) as exc:
            raise SerializationError(f"optimizer state metadata is malformed: {exc}") from exc
        if not isinstance(kind, str) or not isinstance(options, dict) or not isinstance(server_round, int):
            raise SerializationError("optimizer state metadata has the wrong types")
        if server_round < 0 or not all(isinstance(v, float) and math.isfinite(v) for v in options.values()):
            raise SerializationError("optimizer state metadata has out-of-range values")
        sizes = set()
        for name, array in arrays.items():
            if array.dtype != np.float64 or array.ndim != 1 or not np.all(np.isfinite(array)):
                raise SerializationError(f"optimizer state array {name!r} must be a finite 1-D float64 vector")
            sizes.add(array.size)
        if len(sizes) > 1:
            raise SerializationError(f"optimizer state arrays have different lengths {sorted(sizes)}")
        return cls(kind=kind, options=options, server_round=server_round, arrays=dict(sorted(arrays.items())))


def _read_metadata(data: bytes) -> str:
    """The metadata entry of safetensors ``data``: an 8-byte little-endian length, then a JSON header."""
    if len(data) < 8:
        raise SerializationError("optimizer state is truncated")
    length = int.from_bytes(data[:8], "little")
    if length > len(data) - 8:
        raise SerializationError("optimizer state header is truncated")
    try:
        header = json.loads(data[8 : 8 + length])
        return str(header["__metadata__"][_METADATA_KEY])
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise SerializationError(f"optimizer state has no {_METADATA_KEY!r} metadata: {exc}") from exc


def save_optimizer_state(path: str | Path, state: OptimizerState) -> str:
    """Write ``state`` atomically as safetensors; return its :meth:`~OptimizerState.digest`.

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "server_opt.safetensors"
        >>> digest = save_optimizer_state(path, OptimizerState("avg", {}))
        >>> load_optimizer_state(path, expected_digest=digest).kind
        'avg'
    """
    atomic_write_bytes(path, state.to_bytes())
    return state.digest()


def load_optimizer_state(path: str | Path, *, expected_digest: str | None = None) -> OptimizerState:
    """Read a state written by :func:`save_optimizer_state`, checking it against ``expected_digest``.

    Raises:
        SerializationError: the file is missing, too large or malformed.
        IntegrityError: its digest differs from ``expected_digest``.
    """
    from fedchain.errors import IntegrityError

    path = Path(path)
    if not path.is_file():
        raise SerializationError(f"optimizer state {str(path)!r} does not exist")
    if path.stat().st_size > MAX_STATE_BYTES:
        raise SerializationError(f"optimizer state {str(path)!r} is larger than {MAX_STATE_BYTES} bytes")
    state = OptimizerState.from_bytes(path.read_bytes())
    if expected_digest is not None and state.digest().lower() != expected_digest.lower():
        raise IntegrityError(f"optimizer state {str(path)!r}", expected_digest, state.digest())
    return state


class ServerOptimizer(ABC):
    """A deterministic server-optimizer step on the mean update; subclasses are frozen dataclasses.

    Subclasses set :attr:`kind`, declare their hyperparameters as dataclass fields (validated in
    ``__post_init__``) and implement :meth:`apply_update`. :meth:`step` is the shared, validated
    entry point members call once per aggregate, in round order.
    """

    #: Registry name, used by strategies' ``member_update`` declaration.
    kind: ClassVar[str] = ""

    def options(self) -> dict[str, float]:
        """The hyperparameters, by name (recorded in the state)."""
        return {spec.name: float(getattr(self, spec.name)) for spec in dataclasses.fields(self)}  # type: ignore[arg-type]

    def init_state(self) -> OptimizerState:
        """The state before the first aggregate: no round applied, no arrays."""
        return OptimizerState(kind=self.kind, options=self.options())

    def step(
        self,
        weights: np.ndarray,
        mean_delta: np.ndarray,
        state: OptimizerState | None = None,
        *,
        server_round: int,
    ) -> tuple[np.ndarray, OptimizerState]:
        """Apply the aggregate of ``server_round``: return the new weights and the new state.

        Args:
            weights: the current global model, flattened (any float dtype; computed in float64).
            mean_delta: the decrypted mean update ``S / W`` (Flower's ``aggregated - current``).
            state: the state after the previous aggregate; None before the first one.
            server_round: the round the aggregate belongs to; must exceed ``state.server_round``
                (Flower's FedAdam bias correction uses it).

        Returns:
            ``(new_weights, new_state)``: a new float64 vector and a new state; inputs are not modified.

        Raises:
            StrategyError: the state belongs to another optimizer, options or model size; the
                round does not advance; or an input or the result is not finite.
        """
        if state is None:
            state = self.init_state()
        if isinstance(server_round, bool) or not isinstance(server_round, int | np.integer) or server_round < 1:
            raise ConfigError("server_round", "an int in [1, inf)", server_round)
        server_round = int(server_round)
        if state.kind != self.kind or dict(state.options) != self.options():
            raise StrategyError(
                f"optimizer state was built by {state.kind!r} with {dict(state.options)}, but this member runs "
                f"{self.kind!r} with {self.options()}: a member's server optimizer must not change mid-federation"
            )
        if server_round <= state.server_round:
            raise StrategyError(
                f"the aggregate of round {server_round} is not newer than the state's round {state.server_round}"
            )
        w = np.asarray(weights, dtype=np.float64)
        d = np.asarray(mean_delta, dtype=np.float64)
        if w.ndim != 1 or d.shape != w.shape:
            raise StrategyError(f"weights {w.shape} and mean update {d.shape} must be 1-D vectors of one length")
        for name, array in state.arrays.items():
            if array.shape != w.shape:
                raise StrategyError(f"optimizer state {name!r} has shape {array.shape}, the model {w.shape}")
        if not (np.all(np.isfinite(w)) and np.all(np.isfinite(d))):
            raise StrategyError(f"round {server_round}: weights or mean update hold NaN or infinite values")
        new_weights, arrays = self.apply_update(w, d, dict(state.arrays), server_round)
        if not np.all(np.isfinite(new_weights)):
            raise StrategyError(f"round {server_round}: the {self.kind!r} step produced NaN or infinite weights")
        return new_weights, OptimizerState(self.kind, self.options(), server_round, dict(sorted(arrays.items())))

    @abstractmethod
    def apply_update(
        self, weights: np.ndarray, mean_delta: np.ndarray, arrays: dict[str, np.ndarray], server_round: int
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The optimizer's math on validated float64 inputs.

        Args:
            weights: current weights (float64, do not modify).
            mean_delta: mean update (float64, do not modify).
            arrays: the state's arrays, empty before the first step (a fresh dict; may be updated).
            server_round: the aggregate's round (>= 1).

        Returns:
            The new weights and the new state arrays (float64, same length as ``weights``).
        """


_OPTIMIZERS: Registry[type[ServerOptimizer]] = Registry("server optimizer", parameter="member_update")


def register_server_optimizer(cls: type[ServerOptimizer]) -> type[ServerOptimizer]:
    """Class decorator: register ``cls`` under ``cls.kind``.

    Raises:
        ConfigError: ``cls`` has no kind, or another class holds the kind already.
    """
    return _OPTIMIZERS.register(cls.kind, cls)


def available_server_optimizers() -> dict[str, type[ServerOptimizer]]:
    """Registered server optimizers by kind (sorted).

    Example:
        >>> sorted(available_server_optimizers())
        ['adam', 'avg', 'avgm', 'yogi']
    """
    return _OPTIMIZERS.available()


def create_server_optimizer(kind: str, **options: float) -> ServerOptimizer:
    """The registered optimizer ``kind`` with ``options`` (validated by the optimizer).

    Raises:
        ConfigError: ``kind`` is not registered (the message lists the kinds that are), an option
            is unknown, or an option's value is out of range.

    Example:
        >>> create_server_optimizer("avgm", server_momentum=0.9).options()
        {'server_learning_rate': 1.0, 'server_momentum': 0.9}
    """
    cls = _OPTIMIZERS.resolve(kind)
    known = [spec.name for spec in dataclasses.fields(cls)]  # type: ignore[arg-type]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ConfigError(
            unknown[0], f"an option of the {kind!r} server optimizer ({', '.join(known)})", options[unknown[0]]
        )
    return cls(**options)


def _check(interval: Interval, obj: Any, name: str) -> None:
    object.__setattr__(obj, name, interval.check(name, getattr(obj, name)))


@register_server_optimizer
@dataclass(frozen=True)
class FedAvgUpdate(ServerOptimizer):
    """FedAvg (and FedProx): ``w <- w + mean_delta``, no state.

    Example:
        >>> import numpy as np
        >>> FedAvgUpdate().step(np.ones(2), np.array([0.5, -1.0]), server_round=1)[0]
        array([1.5, 0. ])
    """

    kind: ClassVar[str] = "avg"

    def apply_update(
        self, weights: np.ndarray, mean_delta: np.ndarray, arrays: dict[str, np.ndarray], server_round: int
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """``weights + mean_delta``."""
        return weights + mean_delta, {}


@register_server_optimizer
@dataclass(frozen=True)
class FedAvgMUpdate(ServerOptimizer):
    """FedAvgM (Hsu et al. 2019) as Flower computes it: SGD with momentum on ``-mean_delta``.

    Attributes:
        server_learning_rate: server SGD step size (Flower's ``server_learning_rate``), > 0.
        server_momentum: server momentum in [0, 1) (Flower's ``server_momentum``).

    Example:
        >>> import numpy as np
        >>> opt = FedAvgMUpdate(server_momentum=0.5)
        >>> w, s = opt.step(np.zeros(1), np.ones(1), server_round=1)
        >>> opt.step(w, np.ones(1), s, server_round=2)[0]
        array([2.5])
    """

    kind: ClassVar[str] = "avgm"
    server_learning_rate: float = 1.0
    server_momentum: float = 0.0

    def __post_init__(self) -> None:
        _check(_POSITIVE, self, "server_learning_rate")
        _check(_BETA, self, "server_momentum")

    def apply_update(
        self, weights: np.ndarray, mean_delta: np.ndarray, arrays: dict[str, np.ndarray], server_round: int
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Flower's ``FedAvgM.aggregate_train`` after the weighted mean."""
        if self.server_momentum == 0.0 and self.server_learning_rate == 1.0:
            return weights + mean_delta, arrays  # Flower's FedAvgM is then plain FedAvg
        pseudo_gradient = -mean_delta  # Flower: current - aggregated
        if self.server_momentum > 0.0:
            previous = arrays.get("momentum")
            momentum = pseudo_gradient if previous is None else self.server_momentum * previous + pseudo_gradient
            arrays["momentum"] = momentum
            pseudo_gradient = momentum
        return weights - self.server_learning_rate * pseudo_gradient, arrays


@dataclass(frozen=True)
class _FedOptUpdate(ServerOptimizer):
    """Shared hyperparameters and first moment of Flower's FedOpt family (Reddi et al. 2020)."""

    eta: float = 0.1
    beta_1: float = 0.9
    beta_2: float = 0.99
    tau: float = 1e-3

    def __post_init__(self) -> None:
        _check(_POSITIVE, self, "eta")
        _check(_BETA, self, "beta_1")
        _check(_BETA, self, "beta_2")
        _check(_POSITIVE, self, "tau")

    def _first_moment(self, mean_delta: np.ndarray, arrays: dict[str, np.ndarray]) -> np.ndarray:
        """Flower's ``FedOpt._compute_deltat_and_mt``: ``m <- beta_1 m + (1 - beta_1) delta``."""
        m = arrays.get("m", np.zeros_like(mean_delta))
        arrays["m"] = self.beta_1 * m + (1 - self.beta_1) * mean_delta
        return arrays["m"]


@register_server_optimizer
@dataclass(frozen=True)
class FedAdamUpdate(_FedOptUpdate):
    """FedAdam as Flower computes it, bias correction on ``server_round + 1`` included.

    Attributes:
        eta: server learning rate (Flower's default 0.1), > 0.
        beta_1: first-moment decay in [0, 1).
        beta_2: second-moment decay in [0, 1).
        tau: adaptivity (added to ``sqrt(v)``), > 0.
    """

    kind: ClassVar[str] = "adam"

    def apply_update(
        self, weights: np.ndarray, mean_delta: np.ndarray, arrays: dict[str, np.ndarray], server_round: int
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Flower's ``FedAdam.aggregate_train`` after the weighted mean."""
        m = self._first_moment(mean_delta, arrays)
        v = arrays.get("v", np.zeros_like(mean_delta))
        v = self.beta_2 * v + (1 - self.beta_2) * (mean_delta**2)
        arrays["v"] = v
        eta_norm = (
            self.eta
            * np.sqrt(1 - np.power(self.beta_2, server_round + 1.0))
            / (1 - np.power(self.beta_1, server_round + 1.0))
        )
        return weights + eta_norm * m / (np.sqrt(v) + self.tau), arrays


@register_server_optimizer
@dataclass(frozen=True)
class FedYogiUpdate(_FedOptUpdate):
    """FedYogi as Flower computes it (no bias correction).

    Attributes:
        eta: server learning rate (Flower's FedYogi default is 0.01), > 0.
        beta_1: first-moment decay in [0, 1).
        beta_2: second-moment decay in [0, 1).
        tau: adaptivity (added to ``sqrt(v)``), > 0.
    """

    kind: ClassVar[str] = "yogi"
    eta: float = 0.01

    def apply_update(
        self, weights: np.ndarray, mean_delta: np.ndarray, arrays: dict[str, np.ndarray], server_round: int
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Flower's ``FedYogi.aggregate_train`` after the weighted mean."""
        m = self._first_moment(mean_delta, arrays)
        v = arrays.get("v", np.zeros_like(mean_delta))
        squared = mean_delta**2
        v = v - (1.0 - self.beta_2) * squared * np.sign(v - squared)
        arrays["v"] = v
        return weights + self.eta * m / (np.sqrt(v) + self.tau), arrays
