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
    │   ├── DPIncompatibleModelError      DP-SGD cannot train the model: each layer at fault, and the fix
    │   ├── PolicyError                   an instruction would weaken the member's own privacy policy
    │   └── PrivacyStateMissingError      a deployed member has no accountant state and was not told it is new
    ├── CryptoError                       homomorphic encryption failed or a context is wrong
    │   ├── CeremonyError                 a key-ceremony file is forged, altered or not for this member
    │   └── UpdateRejectedError           one member's ciphertext cannot enter the sum (index, reason)
    ├── StrategyError                     a strategy cannot run as configured
    │   └── ConformanceError              a strategy failed a conformance check (check, strategy)
    ├── LedgerError                       the chain refused or lost a record
    │   ├── TransactionError              a transaction reverted or failed (carries the tx hash)
    │   ├── ChainTimeoutError             no receipt within the time limit (carries the tx hash)
    │   ├── RoundConflictError            a round is on chain already with another payload
    │   ├── ChainIdMismatchError          the node is on another chain than expected
    │   ├── UnfundedAccountError          the signing account cannot pay the gas
    │   └── MissingRoleError              the signing account lacks a contract role
    ├── AuditError                        an audit could not be carried out
    ├── FederationError                   a round could not complete (too few members)
    ├── ReplyRejectedError                a member's reply is well formed but not acceptable (reason)
    ├── CommitteeRequestError             a committee member refuses a request
    └── DeploymentError                   a deployed federation cannot start, run or stop (component)
        ├── ToolMissingError              an executable fedchain runs is not installed (tool)
        ├── ProcessError                  a process did not start, listen, come online or stop
        ├── FlwrCommandError              the ``flwr`` CLI failed or answered nothing usable (command)
        └── DeploymentTimeoutError        a run did not finish in time (run_id, timeout_s)

``ConfigError``, ``DataError`` and ``SerializationError`` are also ``ValueError``: they are what a
caller gets for a bad value, and code and tests outside fedchain catch them as such (e.g. argument
parsers and ``pytest.raises(ValueError)``). Each class is importable from this module and from the
module that raises it.

Example:
    >>> from fedchain.errors import ConfigError, FedChainError
    >>> try:
    ...     raise ConfigError("rounds", "an int in [1, inf)", 0)
    ... except FedChainError as exc:
    ...     print(exc)
    The 'rounds' parameter must be an int in [1, inf). Got 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "AuditError",
    "BudgetExhaustedError",
    "CeremonyError",
    "ChainIdMismatchError",
    "ChainTimeoutError",
    "CommitteeRequestError",
    "ConfigError",
    "ConformanceError",
    "CryptoError",
    "DPIncompatibleModelError",
    "DataError",
    "DeploymentError",
    "DeploymentTimeoutError",
    "FedChainError",
    "FederationError",
    "FlwrCommandError",
    "IntegrityError",
    "LedgerError",
    "MissingRoleError",
    "PolicyError",
    "PrivacyError",
    "PrivacyStateMissingError",
    "ProcessError",
    "ReplyRejectedError",
    "RoundConflictError",
    "SerializationError",
    "StrategyError",
    "ToolMissingError",
    "TransactionError",
    "UnfundedAccountError",
    "UpdateRejectedError",
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


class DPIncompatibleModelError(PrivacyError):
    """DP-SGD cannot train a model: it has layers Opacus refuses or has no per-sample rule for.

    Raised before any training step and before any budget is spent
    (:func:`fedchain.privacy.check_dp_compatible`).

    Attributes:
        problems: one line per offending submodule: its dotted name and type, what Opacus says, the fix.
        grad_sample_mode: the mode the model was checked for (``"auto"``: any mode fedchain can pick).

    Example:
        >>> print(DPIncompatibleModelError(["1 (LSTM): ...; replace it with opacus.layers.DPLSTM"], "auto"))
        DP-SGD (grad_sample_mode 'auto') cannot train this model:
          - 1 (LSTM): ...; replace it with opacus.layers.DPLSTM
    """

    def __init__(self, problems: Sequence[str], grad_sample_mode: str, hint: str = "") -> None:
        self.problems = tuple(problems)
        self.grad_sample_mode = grad_sample_mode
        lines = "".join(f"\n  - {problem}" for problem in self.problems)
        message = f"DP-SGD (grad_sample_mode {grad_sample_mode!r}) cannot train this model:{lines}"
        if hint:
            message = f"{message}\n{hint}"
        super().__init__(message)


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


class UpdateRejectedError(CryptoError):
    """One member's update cannot enter the sum; the others can.

    Attributes:
        index: position of the update in the list given to :func:`sum_encrypted`.
        reason: what was wrong, without the index.
    """

    def __init__(self, index: int, reason: str) -> None:
        self.index = index
        self.reason = reason
        super().__init__(f"update {index} rejected: {reason}")


class StrategyError(FedChainError):
    """A strategy cannot run as configured (e.g. it needs plaintext while HE is on)."""


class ConformanceError(StrategyError):
    """A strategy failed a conformance check.

    Attributes:
        check: the check's name, e.g. ``"check_zero_weight"``.
        strategy: the strategy's registry name.
    """

    def __init__(self, check: str, strategy: str, message: str) -> None:
        self.check = check
        self.strategy = strategy
        super().__init__(f"{check} failed for strategy {strategy!r}: {message}")


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


class RoundConflictError(LedgerError):
    """A round is already recorded on chain with a different payload.

    Retrying the *identical* record is not an error (the existing receipt is returned); this error
    means the coordinator tried to rewrite history.

    Attributes:
        server_round: the round concerned.
        recorded_hash: ``recordHash`` stored on chain for the round.
        attempted_hash: ``recordHash`` of the payload that was refused.
    """

    def __init__(self, server_round: int, recorded_hash: str, attempted_hash: str) -> None:
        self.server_round = server_round
        self.recorded_hash = recorded_hash
        self.attempted_hash = attempted_hash
        super().__init__(
            f"round {server_round} is already recorded with a different payload "
            f"(recorded recordHash {recorded_hash}, attempted {attempted_hash})"
        )


class ChainIdMismatchError(LedgerError):
    """The node reports another chain id than the one expected (``--chain-id``).

    Attributes:
        expected: the chain id the caller expected.
        actual: the chain id the node reports.
        target: the JSON-RPC URL.
    """

    def __init__(self, expected: int, actual: int, target: str) -> None:
        self.expected, self.actual, self.target = expected, actual, target
        super().__init__(
            f"the node at {target} is on chain id {actual}, not the expected chain id {expected}: nothing was sent"
        )


class UnfundedAccountError(LedgerError):
    """The signing account cannot pay for a transaction's gas.

    Attributes:
        address: the account.
        balance_wei: what it holds.
        needed_wei: the estimated cost (gas x gas price).
        what: the transaction.
    """

    def __init__(self, address: str, balance_wei: int, needed_wei: int, what: str) -> None:
        self.address, self.balance_wei, self.needed_wei, self.what = address, balance_wei, needed_wei, what
        super().__init__(
            f"account {address} cannot pay for {what}: it holds {balance_wei} wei and the transaction costs "
            f"about {needed_wei} wei; fund it with the chain's native currency"
        )


class MissingRoleError(LedgerError):
    """The signing account lacks the contract role a call needs.

    Attributes:
        role: the role's name, e.g. ``"DEFAULT_ADMIN_ROLE"``.
        address: the account lacking it.
        ledger: the ledger's address.
    """

    def __init__(self, role: str, address: str, ledger: str, what: str) -> None:
        self.role, self.address, self.ledger = role, address, ledger
        super().__init__(
            f"{what} needs {role} on ledger {ledger}, and account {address} does not hold it: "
            f"use a key that holds {role}, or have a holder grant it (fedchain chain roles grant {role} {address})"
        )


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


class ReplyRejectedError(FedChainError):
    """A reply that is well formed but not acceptable; ``reason`` is the metrics label."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


class CommitteeRequestError(FedChainError):
    """A committee member refuses a request: malformed, not of the current round, or beyond the quota.

    Across the network this is the Flower ``Error`` reply ``ERROR_COMMITTEE_REFUSED`` whose reason is
    ``str(exc)``.
    """


class DeploymentError(FedChainError):
    """A deployed federation (SuperLink, SuperNodes, chain node) cannot be started, run or stopped.

    Attributes:
        component: what failed, e.g. ``"superlink"``, ``"member-1"``, ``"flwr"``, ``"federation"``.

    Example:
        >>> print(DeploymentError("the federation is not started: call start() first", component="federation"))
        the federation is not started: call start() first
    """

    def __init__(self, message: str, *, component: str) -> None:
        self.component = component
        super().__init__(message)


class ToolMissingError(DeploymentError):
    """An executable fedchain runs is not installed.

    Attributes:
        tool: the executable, e.g. ``"anvil"``.
        fix: how to install it.

    Example:
        >>> print(ToolMissingError("anvil", "run `make node`"))
        anvil is not installed: run `make node`
    """

    def __init__(self, tool: str, fix: str) -> None:
        self.tool = tool
        self.fix = fix
        super().__init__(f"{tool} is not installed: {fix}", component=tool)


class ProcessError(DeploymentError):
    """A process did not start, exited, did not listen or come online in time, or did not stop.

    Attributes:
        component: the process (or processes) concerned, as the supervisor names them.
        exit_code: its exit code, when it exited.

    Example:
        >>> print(ProcessError("superlink", "superlink exited during startup (code 1): bad flag", exit_code=1))
        superlink exited during startup (code 1): bad flag
    """

    def __init__(self, component: str, message: str, *, exit_code: int | None = None) -> None:
        self.exit_code = exit_code
        super().__init__(message, component=component)


class FlwrCommandError(DeploymentError):
    """The ``flwr`` CLI failed, timed out, or answered nothing fedchain can use.

    Attributes:
        command: the ``flwr`` sub-command, e.g. ``"flwr run"``.
        exit_code: its exit code, when it exited with one.

    Example:
        >>> print(FlwrCommandError("flwr run", "`flwr run` failed (exit 2): no such app", exit_code=2))
        `flwr run` failed (exit 2): no such app
    """

    def __init__(self, command: str, message: str, *, exit_code: int | None = None) -> None:
        self.command = command
        self.exit_code = exit_code
        super().__init__(message, component="flwr")


class DeploymentTimeoutError(DeploymentError):
    """A run of a deployed federation did not finish in time (it may still be running).

    Attributes:
        run_id: the Flower run.
        timeout_s: how long fedchain waited.

    Example:
        >>> print(DeploymentTimeoutError(7, 60.0))
        run 7 did not finish within 60 s
    """

    def __init__(self, run_id: int, timeout_s: float) -> None:
        self.run_id = run_id
        self.timeout_s = timeout_s
        super().__init__(f"run {run_id} did not finish within {timeout_s:g} s", component="superlink")
