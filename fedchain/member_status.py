"""What a member organization wants to know about its node: privacy spent, budget left, rewards.

:func:`member_status` reads the node's state directory (``metrics.json``: cumulative epsilon,
budget, instructions answered; ``privacy.json``: the DP rounds in its lifetime accountant;
``global.json`` under HE: the model round and hash it holds) and, given the federation's ledger,
what the chain says about the member: registration, its on-chain privacy budget, the rounds that
recorded it, the rewards credited and its balance, and whether the model it holds is the one
recorded for that round. ``fedchain member status`` prints it.

Example:
    >>> import tempfile
    >>> member_status(tempfile.mkdtemp()).rounds_trained
    0
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from fedchain.errors import ConfigError, FedChainError
from fedchain.ledger.base import LedgerReader
from fedchain.ledger.fixedpoint import fixed_to_epsilon

__all__ = ["ChainStatus", "MemberStatus", "member_status"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChainStatus:
    """The member as the federation's ledger records it.

    Attributes:
        ledger: the ledger's address.
        registered: whether the member is registered now.
        budget: its lifetime ``(epsilon, delta)`` set on chain, None if none was set.
        rounds_recorded: the rounds whose record includes the member.
        recorded_epsilon: its cumulative epsilon as last recorded, None without DP.
        rewards_wei: the sum of the rewards those rounds credited to it.
        balance_wei: what it holds now (tokens plus unclaimed credit).
        token_balance_wei: its plain ERC-20 balance (what a wallet shows); None when the reader
            cannot tell (an exported run without token balances).
        claimable_wei: credit not yet claimed into that balance (``fedchain member claim``); None
            when the reader cannot tell.
        model_matches_chain: whether the model its node holds has the hash the chain recorded for
            that round; None when the node holds no model round (plaintext mode) or the round
            is not recorded.
    """

    ledger: str
    registered: bool
    budget: tuple[float, float] | None
    rounds_recorded: list[int]
    recorded_epsilon: float | None
    rewards_wei: int
    balance_wei: int
    model_matches_chain: bool | None
    token_balance_wei: int | None = None
    claimable_wei: int | None = None


@dataclass(frozen=True)
class MemberStatus:
    """A member node's status (see the module docstring).

    Attributes:
        state_dir: the node's state directory.
        address: the member's chain address (from ``metrics.json``, or given).
        instructions: instructions answered, by outcome (trained, evaluated, declined, failed).
        rounds_trained: DP rounds in the node's lifetime privacy accountant.
        epsilon: cumulative epsilon the node reported last; None without DP.
        epsilon_budget: the node's epsilon budget; None without DP.
        model_round: the round of the global model the node holds (HE); None in plaintext mode.
        model_hash: that model's hash.
        chain: what the ledger says, when one was given.
    """

    state_dir: str
    address: str | None
    instructions: dict[str, int] = field(default_factory=dict)
    rounds_trained: int = 0
    epsilon: float | None = None
    epsilon_budget: float | None = None
    model_round: int | None = None
    model_hash: str | None = None
    chain: ChainStatus | None = None

    @property
    def epsilon_remaining(self) -> float | None:
        """Budget left: the on-chain budget when there is one, else the node's; None without DP."""
        budget = self.chain.budget[0] if self.chain is not None and self.chain.budget else self.epsilon_budget
        if budget is None:
            return None
        return max(budget - (self.epsilon or 0.0), 0.0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (money as decimal strings of wei)."""
        data = asdict(self)
        data["epsilon_remaining"] = self.epsilon_remaining
        if self.chain is not None:
            data["chain"]["rewards_wei"] = str(self.chain.rewards_wei)
            data["chain"]["balance_wei"] = str(self.chain.balance_wei)
            for key in ("token_balance_wei", "claimable_wei"):
                if data["chain"][key] is not None:
                    data["chain"][key] = str(data["chain"][key])
        return data


def _read_json(path: Path, what: str) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise FedChainError(f"{what} {path} is unreadable: {exc}") from exc
    if not isinstance(data, dict):
        raise FedChainError(f"{what} {path} is not a JSON object")
    return data


def member_status(
    state_dir: str | Path, *, ledger: LedgerReader | None = None, address: str | None = None
) -> MemberStatus:
    """Read a member node's status from its state directory and, optionally, the ledger.

    Args:
        state_dir: the node's ``state-dir``.
        ledger: the federation's ledger (``Web3Ledger`` or a run's ``ExportedLedger``); None to
            report the node's own files only.
        address: the member's address; read from ``metrics.json`` when None.

    Raises:
        ConfigError: ``state_dir`` is not a directory, or a ledger is given but no address is known.
        FedChainError: a state file is unreadable.
    """
    directory = Path(state_dir)
    if not directory.is_dir():
        raise ConfigError("state_dir", "a member node's state directory", str(state_dir))
    metrics = _read_json(directory / "metrics.json", "metrics state") or {}
    privacy = _read_json(directory / "privacy.json", "privacy ledger") or {}
    model = _read_json(directory / "global.json", "model state") or {}
    address = address or metrics.get("member")
    status = MemberStatus(
        state_dir=str(directory),
        address=address,
        instructions={str(k): int(v) for k, v in dict(metrics.get("outcomes", {})).items()},
        rounds_trained=len(privacy.get("history", [])),
        epsilon=metrics.get("epsilon"),
        epsilon_budget=metrics.get("epsilon_budget"),
        model_round=model.get("model_round"),
        model_hash=model.get("model_hash"),
    )
    if ledger is None:
        return status
    if not address:
        raise ConfigError("address", "the member's address (its metrics.json has none yet)", address)
    return replace(status, chain=_chain_status(ledger, address, status))


def _chain_status(ledger: LedgerReader, address: str, status: MemberStatus) -> ChainStatus:
    history = ledger.member_history(address)
    registered = False
    for event in ledger.registrations():  # in chain order: the last event for the address decides
        if event.address.lower() == address.lower():
            registered = event.registered
    matches: bool | None = None
    if status.model_round and status.model_hash and 0 < status.model_round <= ledger.last_round():
        matches = ledger.get_round(status.model_round).model_hash.lower() == status.model_hash.lower()
    return ChainStatus(
        ledger=ledger.address,
        registered=registered,
        budget=ledger.privacy_budget(address),
        rounds_recorded=[entry.server_round for entry in history],
        recorded_epsilon=fixed_to_epsilon(history[-1].epsilon_fixed) if history else None,
        rewards_wei=sum(entry.reward_wei for entry in history),
        balance_wei=ledger.balance_of(address),
        model_matches_chain=matches,
        token_balance_wei=_optional_wei(ledger, "token_balance_of", address),
        claimable_wei=_optional_wei(ledger, "claimable_of", address),
    )


def _optional_wei(ledger: LedgerReader, method: str, address: str) -> int | None:
    """``ledger.method(address)`` for readers that have it (a live ledger), else None."""
    read = getattr(ledger, method, None)
    return None if read is None else int(read(address))
