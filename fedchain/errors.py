"""The exception tree of fedchain.

Every error fedchain raises inside a process derives from :class:`FedChainError`, so callers can
catch the whole family at once. Across the network, failures are data (Flower ``Error`` replies
counted per reason), never exceptions.

::

    FedChainError
    ├── ConfigError (ValueError)          an option has an invalid value
    ├── DataError (ValueError)            a data file is missing, empty or malformed
    ├── SerializationError (ValueError)   bytes on the wire or on disk cannot be decoded safely
    │   └── IntegrityError                a hash does not match the recorded one
    ├── PrivacyError                      differential privacy cannot be applied as configured
    │   ├── BudgetExhaustedError          the next round would exceed a member's budget
    │   ├── PolicyError                   an instruction would weaken the member's own privacy policy
    │   └── PrivacyStateMissingError      a deployed member has no accountant state and was not told it is new
    ├── CryptoError                       homomorphic encryption failed or a context is wrong
    │   └── CeremonyError                 a key-ceremony file is forged, altered or not for this member
    ├── StrategyError                     a strategy cannot run as configured
    ├── LedgerError                       the chain refused or lost a record
    │   ├── TransactionError              a transaction reverted or failed (carries the tx hash)
    │   └── ChainTimeoutError             no receipt within the time limit (carries the tx hash)
    ├── AuditError                        an audit could not be carried out
    └── FederationError                   a round could not complete (too few members)

Example:
    >>> from fedchain.errors import ConfigError, FedChainError
    >>> try:
    ...     raise ConfigError("rounds", "an int in [1, inf)", 0)
    ... except FedChainError as exc:
    ...     print(exc)
    The 'rounds' parameter must be an int in [1, inf). Got 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "AuditError",
    "BudgetExhaustedError",
    "CeremonyError",
    "ChainTimeoutError",
    "ConfigError",
    "CryptoError",
    "DataError",
    "FedChainError",
    "FederationError",
    "IntegrityError",
    "LedgerError",
    "PolicyError",
    "PrivacyError",
    "PrivacyStateMissingError",
    "SerializationError",
    "StrategyError",
    "TransactionError",
]


class FedChainError(Exception):
    """Root of every error fedchain raises."""


class ConfigError(FedChainError, ValueError):
    """An option has an invalid value.

    Attributes:
        parameter: the option's name as the user spells it.
        constraint: what is allowed, e.g. ``"a float in (0, inf)"``.
        value: the value given.
    """

    def __init__(self, parameter: str, constraint: str, value: Any, hint: str = "") -> None:
        self.parameter = parameter
        self.constraint = constraint
        self.value = value
        self.hint = hint
        message = f"The {parameter!r} parameter must be {constraint}. Got {value!r}."
        if hint:
            message = f"{message} {hint}"
        super().__init__(message)

    def cli_message(self, names: Mapping[str, str] | None = None) -> str:
        """The message with the parameter named as a command line spells it.

        Args:
            names: what to call a parameter instead of ``'--its-name' option`` (e.g. ``"DIR argument"``).

        Example:
            >>> ConfigError("epsilon_budget", "a float in (0, inf)", -1.0).cli_message()
            "The '--epsilon-budget' option must be a float in (0, inf). Got -1.0."
            >>> ConfigError("directory", "a directory", "x").cli_message({"directory": "DIR argument"})
            "The DIR argument must be a directory. Got 'x'."
        """
        default = f"'--{self.parameter.replace('_', '-')}' option"
        name = (names or {}).get(self.parameter, default)
        return str(self).replace(f"{self.parameter!r} parameter", name)


class DataError(FedChainError, ValueError):
    """A data set is missing, empty or malformed; the message says what to fix."""


class SerializationError(FedChainError, ValueError):
    """Bytes read from the network or disk could not be decoded safely."""


class IntegrityError(SerializationError):
    """Content does not match the hash it was announced or recorded with.

    Attributes:
        expected: the recorded hash (hex).
        actual: the hash of what was received (hex).
    """

    def __init__(self, what: str, expected: str, actual: str) -> None:
        self.expected = expected
        self.actual = actual
        super().__init__(f"{what}: hash {actual} does not match the recorded {expected}")


class PrivacyError(FedChainError):
    """Differential privacy cannot be applied as configured."""


class BudgetExhaustedError(PrivacyError):
    """A member's next round would take its cumulative epsilon past its budget.

    Attributes:
        epsilon_spent: cumulative epsilon so far.
        epsilon_next: cumulative epsilon after the next round.
        epsilon_budget: the member's target epsilon.
    """

    def __init__(self, epsilon_spent: float, epsilon_next: float, epsilon_budget: float) -> None:
        self.epsilon_spent = epsilon_spent
        self.epsilon_next = epsilon_next
        self.epsilon_budget = epsilon_budget
        super().__init__(
            f"privacy budget exhausted: epsilon spent {epsilon_spent:.4f}, next round would reach "
            f"{epsilon_next:.4f} > budget {epsilon_budget:.4f}"
        )


class PolicyError(PrivacyError):
    """An instruction would weaken the member's own privacy policy: the member refuses it.

    Attributes:
        field: the policy field (or instruction option) at stake.
        proposed: what the instruction proposed.
        accepted: what the member's policy accepts, in words.

    Example:
        >>> print(PolicyError("he", False, "HE on (this member requires it)"))
        policy refused: he = False proposed; this member accepts HE on (this member requires it)
    """

    def __init__(self, field: str, proposed: Any, accepted: str) -> None:
        self.field = field
        self.proposed = proposed
        self.accepted = accepted
        super().__init__(f"policy refused: {field} = {proposed!r} proposed; this member accepts {accepted}")


class PrivacyStateMissingError(PrivacyError):
    """A deployed member with DP on has no accountant state and its node config does not say it is new.

    Starting a fresh accountant would report epsilon 0 for a member that may have spent its budget
    already; only the member's operator may say it is new (node config ``new-member = true``).

    Attributes:
        path: where the accountant state should be.

    Example:
        >>> print(PrivacyStateMissingError("/var/lib/fedchain/privacy.json"))  # doctest: +ELLIPSIS
        no privacy accountant state at /var/lib/fedchain/privacy.json: ... new-member = true ...
    """

    def __init__(self, path: Any) -> None:
        self.path = path
        super().__init__(
            f"no privacy accountant state at {path}: this member refuses to train rather than start its "
            "epsilon at 0; restore the state directory, or set new-member = true in the node config "
            "if this member has never trained"
        )


class CryptoError(FedChainError):
    """Homomorphic encryption failed, or a context is of the wrong kind."""


class CeremonyError(CryptoError):
    """A key-ceremony file (enrollment, sealed share, transport key) is refused.

    It was signed by someone else than it claims, altered after signing, sealed for another member
    or another federation, or its password is wrong. The message names the file's party and why.
    """


class StrategyError(FedChainError):
    """A strategy cannot run as configured (e.g. it needs plaintext while HE is on)."""


class LedgerError(FedChainError):
    """The chain refused, lost or contradicts a record."""


class TransactionError(LedgerError):
    """A transaction reverted or failed.

    Attributes:
        tx_hash: hex hash of the transaction, when one was sent.
        reason: the revert reason or custom error name, when known.
    """

    def __init__(self, message: str, *, tx_hash: str | None = None, reason: str | None = None) -> None:
        self.tx_hash = tx_hash
        self.reason = reason
        detail = message
        if reason:
            detail = f"{detail} (reason: {reason})"
        if tx_hash:
            detail = f"{detail} [tx {tx_hash}]"
        super().__init__(detail)


class ChainTimeoutError(LedgerError):
    """No receipt arrived in time; the transaction may still be mined later.

    Attributes:
        tx_hash: hex hash of the transaction that is pending.
        timeout_s: how long fedchain waited.
    """

    def __init__(self, tx_hash: str, timeout_s: float) -> None:
        self.tx_hash = tx_hash
        self.timeout_s = timeout_s
        super().__init__(f"no receipt for tx {tx_hash} after {timeout_s:g} s")


class AuditError(FedChainError):
    """An audit could not be carried out (chain unreachable, not a ledger address...)."""


class FederationError(FedChainError):
    """A round could not complete, e.g. fewer members replied than the configured minimum.

    Attributes:
        server_round: the round concerned, when known.
    """

    def __init__(self, message: str, *, server_round: int | None = None) -> None:
        self.server_round = server_round
        prefix = f"round {server_round}: " if server_round is not None else ""
        super().__init__(prefix + message)
