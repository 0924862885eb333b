"""The web3.py implementation of :class:`~fedchain.ledger.Ledger` (embedded chain or JSON-RPC)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from eth_abi import encode as abi_encode
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_tester.exceptions import TransactionFailed
from eth_typing import ChecksumAddress, HexStr
from eth_utils import keccak, to_checksum_address
from web3.contract import Contract
from web3.exceptions import (
    BadFunctionCallOutput,
    ContractCustomError,
    ContractLogicError,
    ContractPanicError,
    TimeExhausted,
)
from web3.types import TxParams

from fedchain.errors import ChainTimeoutError, ConfigError, LedgerError, TransactionError
from fedchain.ledger._abi import (
    ContractAbi,
    DecodedEvent,
    build_round,
    dispute_from_event,
    header_from_tuple,
    load_artifact,
    member_from_event,
    normalize_log,
    registration_from_event,
    spend_from_event,
)
from fedchain.ledger.base import (
    Ledger,
    RecordedDispute,
    RecordedMember,
    RecordedRound,
    RecordedSpend,
    RegistrationEvent,
    RoundConflictError,
)
from fedchain.ledger.chain import Chain
from fedchain.ledger.fixedpoint import (
    budget_to_fixed,
    epsilon_to_fixed,
    fixed_to_budget,
    hex_to_bytes32,
    pack_dp,
    score_to_fixed,
    status_to_code,
)
from fedchain.types import MEMBER_STATUSES, Dispute, MemberRoundRecord, Receipt, RoundRecord

__all__ = ["Web3Ledger"]

logger = logging.getLogger(__name__)

# JSON-RPC nodes revert as web3's Contract*Error; the embedded eth-tester as TransactionFailed.
_REVERTS = (ContractCustomError, ContractLogicError, ContractPanicError, TransactionFailed)


def _hex(value: bytes | str) -> str:
    if isinstance(value, str):
        return value if value.startswith("0x") else "0x" + value
    return "0x" + bytes(value).hex()


def _uint_topic(value: int) -> str:
    return "0x" + value.to_bytes(32, "big").hex()


def _address_topic(address: str) -> str:
    return "0x" + "00" * 12 + address[2:].lower()


def _checksum(address: str, name: str) -> ChecksumAddress:
    try:
        return to_checksum_address(address)
    except (TypeError, ValueError):
        raise ConfigError(name, "a 20-byte hex address", address) from None


def _round_number(value: int, name: str = "server_round") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(name, "an int in [1, inf)", value)
    return value


#: Statuses a spend recorded after its round may have (``recordSpends``).
SPEND_STATUSES = ("rejected", "late", "replayed")


def _member_status(member: MemberRoundRecord, score_fixed: int, *, allowed: tuple[str, ...] = MEMBER_STATUSES) -> int:
    """The status code of a member-round; refuses an unknown status and a score without acceptance."""
    name = f"members[{member.address}].status"
    if member.status not in allowed:
        raise ConfigError(name, f"one of {', '.join(repr(s) for s in allowed)}", member.status)
    code = status_to_code(member.status, name=name)
    if member.status != "accepted" and score_fixed != 0:
        raise ConfigError(
            f"members[{member.address}].score", f"0 for a member-round with status {member.status!r}", member.score
        )
    return code


class Web3Ledger(Ledger):
    """A ``ContributionLedger`` + ``FedToken`` pair on an EVM chain, driven through web3.py.

    Every write is built, signed locally with the chain's account, sent raw and awaited; a revert
    raises :class:`~fedchain.errors.TransactionError` whose ``reason`` names the contract's custom
    error, and a missing receipt raises :class:`~fedchain.errors.ChainTimeoutError`.

    Args:
        chain: a connected chain (:func:`~fedchain.ledger.connect`).
        ledger_address: address of a deployed ``ContributionLedger``.
        timeout_s: how long to wait for each receipt.

    Raises:
        LedgerError: there is no contract at ``ledger_address``.

    Example:
        >>> from fedchain.ledger import Web3Ledger, connect
        >>> chain = connect("embedded")
        >>> deployed = Web3Ledger.deploy(chain)
        >>> Web3Ledger(chain, deployed.address).token_address == deployed.token_address
        True
    """

    def __init__(self, chain: Chain, ledger_address: str, *, timeout_s: float = 120.0) -> None:
        if not timeout_s > 0:
            raise ConfigError("timeout_s", "a float in (0, inf)", timeout_s)
        self.chain = chain
        self.timeout_s = float(timeout_s)
        #: Called with the tx hash right after a transaction is sent, before its receipt (fault tests).
        self.on_sent: Callable[[str], None] | None = None
        w3 = chain.w3
        address = _checksum(ledger_address, "ledger_address")
        if not w3.eth.get_code(address):
            raise LedgerError(f"no contract at {address} on {chain.target}")
        self._abi = ContractAbi.fedchain()
        self._ledger: Contract = w3.eth.contract(address=address, abi=load_artifact("ContributionLedger")["abi"])
        self._token: Contract = w3.eth.contract(
            address=self._ledger.functions.token().call(), abi=load_artifact("FedToken")["abi"]
        )
        self.deploy_block: int = int(self._ledger.functions.deployBlock().call())

    # ---- deployment --------------------------------------------------------------------------

    @classmethod
    def deploy(
        cls,
        chain: Chain,
        *,
        recorder: str | None = None,
        treasury: str | None = None,
        token_name: str = "FedChain Token",
        token_symbol: str = "FED",
        timeout_s: float = 120.0,
    ) -> Web3Ledger:
        """Deploy a ledger (which deploys its token) with the chain's account as admin.

        Args:
            chain: the chain; its account becomes the admin (registers members).
            recorder: address given the recorder role (default: the chain's account).
            treasury: address receiving each round's remainder (default: the chain's account).
            token_name: ERC-20 name of the reward token.
            token_symbol: ERC-20 symbol of the reward token.
            timeout_s: how long to wait for each receipt.

        Returns:
            The deployed ledger.

        Example:
            >>> from fedchain.ledger import Web3Ledger, connect
            >>> ledger = Web3Ledger.deploy(connect("embedded"), token_symbol="FED")
            >>> ledger.token_symbol()
            'FED'
        """
        artifact = load_artifact("ContributionLedger")
        factory = chain.w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
        admin = chain.address
        constructor = factory.constructor(
            admin,
            _checksum(recorder or admin, "recorder"),
            _checksum(treasury or admin, "treasury"),
            token_name,
            token_symbol,
        )
        receipt = _send(chain, ContractAbi.fedchain(), constructor, "deploy ContributionLedger", timeout_s)
        address = receipt["contractAddress"]
        logger.info("deployed ContributionLedger at %s (gas %d)", address, receipt["gasUsed"])
        return cls(chain, address, timeout_s=timeout_s)

    # ---- properties --------------------------------------------------------------------------

    @property
    def address(self) -> str:
        """Checksummed address of the ``ContributionLedger``."""
        return str(self._ledger.address)

    @property
    def chain_id(self) -> int:
        """The EVM chain id of the chain the ledger lives on (part of every signature's domain)."""
        return int(self.chain.w3.eth.chain_id)

    @property
    def token_address(self) -> str:
        """Checksummed address of the ``FedToken``."""
        return str(self._token.address)

    @property
    def treasury(self) -> str:
        """The treasury that receives each round's remainder."""
        return str(self._ledger.functions.treasury().call())

    @property
    def ledger_contract(self) -> Contract:
        """The web3 contract object of the ledger (for advanced reads)."""
        return self._ledger

    @property
    def token_contract(self) -> Contract:
        """The web3 contract object of the token (for advanced reads)."""
        return self._token

    def token_symbol(self) -> str:
        """The ERC-20 symbol of the reward token."""
        return str(self._token.functions.symbol().call())

    # ---- writes ------------------------------------------------------------------------------

    def register_members(self, addresses: Sequence[str]) -> None:
        """Register member addresses (see :meth:`Ledger.register_members`)."""
        members = [_checksum(a, "members") for a in addresses]
        receipt = self._send(self._ledger.functions.registerMembers(members), "registerMembers")
        logger.info("registered %d members (gas %d)", len(members), receipt["gasUsed"])

    def deregister_members(self, addresses: Sequence[str]) -> None:
        """Deregister member addresses (see :meth:`Ledger.deregister_members`)."""
        members = [_checksum(a, "members") for a in addresses]
        receipt = self._send(self._ledger.functions.deregisterMembers(members), "deregisterMembers")
        logger.info("deregistered %d members (gas %d)", len(members), receipt["gasUsed"])

    def set_privacy_budgets(self, budgets: Mapping[str, tuple[float, float]]) -> None:
        """Set members' lifetime privacy budgets, once each (see :meth:`Ledger.set_privacy_budgets`).

        Every value is validated before anything is sent; an empty mapping sends nothing.

        Example:
            >>> from fedchain.ledger import Web3Ledger, connect
            >>> ledger = Web3Ledger.deploy(connect("embedded"))
            >>> member = "0x" + "11" * 20
            >>> ledger.register_members([member])
            >>> ledger.set_privacy_budgets({member: (8.0, 1e-5)})
            >>> ledger.privacy_budget(member)
            (8.0, 1e-05)
        """
        members: list[ChecksumAddress] = []
        epsilons: list[int] = []
        deltas: list[int] = []
        for address, budget in budgets.items():
            member = _checksum(address, "budgets")
            if not isinstance(budget, Sequence) or isinstance(budget, str) or len(budget) != 2:
                raise ConfigError(f"budgets[{member}]", "an (epsilon, delta) pair", budget)
            epsilon_fixed, delta_fixed = budget_to_fixed(budget[0], budget[1], name=f"budgets[{member}]")
            members.append(member)
            epsilons.append(epsilon_fixed)
            deltas.append(delta_fixed)
        if not members:
            return
        call = self._ledger.functions.setPrivacyBudgets(members, epsilons, deltas)
        receipt = self._send(call, f"setPrivacyBudgets({len(members)} members)")
        logger.info("set privacy budgets of %d members (gas %d)", len(members), receipt["gasUsed"])

    def claim_for(self, addresses: Sequence[str]) -> None:
        """Move members' claimable credit into their ERC-20 balances (anyone may pay for this).

        Example:
            >>> from fedchain.ledger import Web3Ledger, connect
            >>> ledger = Web3Ledger.deploy(connect("embedded"))
            >>> ledger.claim_for(["0x" + "11" * 20])  # nothing to claim: a no-op
        """
        members = [_checksum(a, "members") for a in addresses]
        self._send(self._ledger.functions.claimFor(members), "claimFor")

    def record_round(self, record: RoundRecord) -> Receipt:
        """Record a round and pay its rewards (see :meth:`Ledger.record_round`)."""
        args = self.encode_round(record)
        record_hash = self.record_hash(record)
        existing = self._existing_receipt(record.server_round, record_hash)
        if existing is not None:
            return existing
        call = self._ledger.functions.recordRound(*args)
        try:
            receipt = self._send(call, f"recordRound(round={record.server_round})")
        except TransactionError as exc:
            # Another process may have recorded the identical round between our check and send.
            if exc.reason and exc.reason.startswith("RoundAlreadyRecorded"):
                existing = self._existing_receipt(record.server_round, record_hash)
                if existing is not None:
                    return existing
            raise
        result = self._receipt(receipt)
        logger.info(
            "recorded round %d: %d members, tx %s, block %d, gas %d",
            record.server_round,
            len(record.members),
            result.tx_hash,
            result.block_number,
            result.gas_used,
        )
        return result

    def record_spends(
        self, server_round: int, members: Sequence[MemberRoundRecord], *, spend_id: str | None = None
    ) -> Receipt:
        """Record privacy spends after their round was recorded (see :meth:`Ledger.record_spends`).

        Example:
            >>> from fedchain.ledger import Web3Ledger, connect
            >>> from fedchain.types import DPParams, MemberRoundRecord, RoundRecord, ZERO_HASH
            >>> ledger = Web3Ledger.deploy(connect("embedded"))
            >>> member = "0x" + "11" * 20
            >>> ledger.register_members([member])
            >>> _ = ledger.record_round(RoundRecord(1, "aa" * 32, "bb" * 32, ZERO_HASH, (), 0))
            >>> dp = DPParams(noise_multiplier=1.1, sample_rate=0.02, steps=150, max_grad_norm=1.0, delta=1e-5)
            >>> late = MemberRoundRecord(member, 0.0, dp=dp, epsilon=0.6, status="late")
            >>> receipt = ledger.record_spends(1, [late])
            >>> ledger.record_spends(1, [late]) == receipt  # a retry records nothing twice
            True
            >>> [(s.server_round, s.status, s.epsilon) for s in ledger.spends()]
            [(1, 'late', 0.6)]
        """
        args = self.encode_spends(server_round, members, spend_id=spend_id)
        batch = _hex(args[1])
        existing = self._existing_spends(batch)
        if existing is not None:
            return existing
        call = self._ledger.functions.recordSpends(*args)
        try:
            receipt = self._send(call, f"recordSpends(round={server_round}, {len(args[2])} members)")
        except TransactionError as exc:
            # Another process may have recorded the same batch between our check and send.
            if exc.reason and exc.reason.startswith("SpendsAlreadyRecorded"):
                existing = self._existing_spends(batch)
                if existing is not None:
                    return existing
            raise
        result = self._receipt(receipt)
        logger.info(
            "recorded %d privacy spends of round %d (batch %s), tx %s, gas %d",
            len(args[2]),
            server_round,
            batch,
            result.tx_hash,
            result.gas_used,
        )
        return result

    def file_dispute(self, dispute: Dispute) -> Receipt:
        """Submit a member's signed dispute (see :meth:`Ledger.file_dispute`); any account may send it.

        Example:
            >>> from eth_account import Account
            >>> from fedchain.identity.signing import dispute_digest, sign_digest
            >>> from fedchain.ledger import Web3Ledger, connect
            >>> from fedchain.types import Dispute
            >>> ledger = Web3Ledger.deploy(connect("embedded"))
            >>> key = bytes(range(1, 33))
            >>> member = Account.from_key(key).address
            >>> ledger.register_members([member])
            >>> commitment = "0x" + "cc" * 32
            >>> digest = dispute_digest(chain_id=ledger.chain_id, ledger_address=ledger.address,
            ...     server_round=1, scalars_commitment=commitment)
            >>> _ = ledger.file_dispute(Dispute(1, member, commitment, sign_digest(key, digest)))
            >>> ledger.dispute_count(1), [d.member == member for d in ledger.disputes(1)]
            (1, [True])
        """
        server_round = _round_number(dispute.server_round, "dispute.server_round")
        member = _checksum(dispute.member, "dispute.member")
        commitment = hex_to_bytes32(dispute.scalars_commitment, name="dispute.scalars_commitment")
        try:
            text = dispute.signature
            signature = bytes.fromhex(text[2:] if text.startswith("0x") else text)
        except (AttributeError, TypeError, ValueError):
            raise ConfigError("dispute.signature", "a 65-byte 0x-hex signature", dispute.signature) from None
        digest = bytes(self._ledger.functions.disputeDigest(server_round, commitment).call())
        try:
            signer = Account.recover_message(encode_defunct(primitive=digest), signature=signature)
        except Exception:  # malformed signature: eth_account raises several types
            raise ConfigError("dispute.signature", "a 65-byte 0x-hex signature", dispute.signature) from None
        if signer != member:
            raise ConfigError(
                "dispute.signature",
                f"{member}'s EIP-191 signature of this ledger's dispute digest for round {server_round}",
                f"a signature by {signer}",
            )
        call = self._ledger.functions.fileDispute(server_round, commitment, signature)
        receipt = self._receipt(self._send(call, f"fileDispute(round={server_round}, member={member})"))
        logger.warning("round %d disputed by %s (tx %s)", server_round, member, receipt.tx_hash)
        return receipt

    # ---- encoding ------------------------------------------------------------------------------

    @staticmethod
    def encode_round(record: RoundRecord) -> tuple[Any, ...]:
        """The ``recordRound`` arguments for a record: members sorted by address, values fixed point.

        Raises:
            ConfigError: a value cannot be encoded.

        Example:
            >>> from fedchain.types import RoundRecord, ZERO_HASH
            >>> args = Web3Ledger.encode_round(RoundRecord(1, "aa" * 32, "bb" * 32, ZERO_HASH, (), 0))
            >>> args[0][0], args[1]
            (1, [])
        """
        round_number = _round_number(record.server_round)
        pool = record.reward_pool_wei
        if isinstance(pool, bool) or not isinstance(pool, int) or not 0 <= pool < 2**128:
            raise ConfigError("reward_pool_wei", "an int in [0, 2**128)", pool)
        header = (
            round_number,
            hex_to_bytes32(record.aggregate_hash, name="aggregate_hash"),
            hex_to_bytes32(record.model_hash, name="model_hash"),
            hex_to_bytes32(record.previous_model_hash, name="previous_model_hash"),
            hex_to_bytes32(record.update_merkle_root, name="update_merkle_root"),
            hex_to_bytes32(record.scalars_commitment, name="scalars_commitment"),
            pool,
        )
        rows = []
        for m in record.members:
            score_fixed = score_to_fixed(m.score)
            rows.append(
                (
                    _checksum(m.address, "members.address"),
                    score_fixed,
                    pack_dp(m.dp),
                    epsilon_to_fixed(m.epsilon),
                    _member_status(m, score_fixed),
                )
            )
        rows.sort(key=lambda row: int(row[0], 16))
        return (header, *([r[i] for r in rows] for i in range(5)))

    @staticmethod
    def encode_spends(
        server_round: int, members: Sequence[MemberRoundRecord], *, spend_id: str | None = None
    ) -> tuple[Any, ...]:
        """The ``recordSpends`` arguments: ``(round, spendId, members, dpParams, epsilons, statuses)``.

        Entries are sorted (address, then values), so the default ``spendId`` (keccak256 of the
        encoded round and entries) does not depend on their order.

        Raises:
            ConfigError: no members, a non-zero score, a status other than rejected/late/replayed,
                or a value that cannot be encoded.

        Example:
            >>> from fedchain.types import MemberRoundRecord
            >>> args = Web3Ledger.encode_spends(2, [MemberRoundRecord("0x" + "11" * 20, 0.0, status="late")])
            >>> args[0], args[5], len(args[1])
            (2, [2], 32)
        """
        round_number = _round_number(server_round)
        if isinstance(members, str) or not isinstance(members, Sequence) or not members:
            raise ConfigError("members", "a non-empty sequence of MemberRoundRecord", members)
        rows = []
        for m in members:
            score_fixed = score_to_fixed(m.score)
            status = _member_status(m, score_fixed, allowed=SPEND_STATUSES)
            rows.append((_checksum(m.address, "members.address"), pack_dp(m.dp), epsilon_to_fixed(m.epsilon), status))
        rows.sort(key=lambda row: (int(row[0], 16), row[1], row[2], row[3]))
        columns = [[r[i] for r in rows] for i in range(4)]
        if spend_id is None:
            encoded = abi_encode(
                ["string", "uint256", "address[]", "uint256[]", "uint256[]", "uint256[]"],
                ["fedchain-spends-v1", round_number, *columns],
            )
            batch = keccak(encoded)
        elif not isinstance(spend_id, str) or not spend_id:
            raise ConfigError("spend_id", "a non-empty str (0x hex of 32 bytes, or a label to hash)", spend_id)
        elif len(spend_id) == 66 and spend_id.startswith("0x"):
            batch = hex_to_bytes32(spend_id, name="spend_id")
        else:
            batch = keccak(text=spend_id)
        return (round_number, batch, *columns)

    def record_hash(self, record: RoundRecord) -> str:
        """keccak256 of the ``recordRound`` calldata for a record: what the chain stores as ``recordHash``."""
        calldata = self._ledger.encode_abi("recordRound", args=list(self.encode_round(record)))
        return _hex(keccak(hexstr=calldata))

    # ---- reads -------------------------------------------------------------------------------

    def last_round(self) -> int:
        """The last recorded round (0 before the first)."""
        return int(self._ledger.functions.lastRound().call())

    def get_round(self, server_round: int) -> RecordedRound:
        """A recorded round with its members (see :meth:`LedgerReader.get_round`)."""
        header = self._header(server_round)
        block = header["blockNumber"]
        logs = self.chain.w3.eth.get_logs(
            {
                "address": self._ledger.address,
                "fromBlock": block,
                "toBlock": block,
                "topics": [None, _uint_topic(server_round)],
            }
        )
        return build_round(server_round, header, self._decode(logs))

    def member_history(self, address: str) -> list[RecordedMember]:
        """Every recorded entry of a member, in round order."""
        member = _checksum(address, "address")
        logs = self._logs([self._abi.event_topics("MemberRecorded"), None, _address_topic(member)])
        entries = [member_from_event(e) for e in self._decode(logs)]
        return sorted(entries, key=lambda m: m.server_round)

    def spends(self, server_round: int | None = None, *, address: str | None = None) -> list[RecordedSpend]:
        """Privacy spends recorded after their round, in chain order (see :meth:`LedgerReader.spends`)."""
        round_topic = None if server_round is None else _uint_topic(server_round)
        member_topic = None if address is None else _address_topic(_checksum(address, "address"))
        events = self._decode(self._logs([self._abi.topics["SpendRecorded"], round_topic, member_topic]))
        events.sort(key=lambda e: (e.block_number, e.log_index))
        return [spend_from_event(e) for e in events]

    def disputes(self, server_round: int | None = None) -> list[RecordedDispute]:
        """Members' disputes, in chain order (see :meth:`LedgerReader.disputes`)."""
        round_topic = None if server_round is None else _uint_topic(server_round)
        events = self._decode(self._logs([self._abi.topics["RoundDisputed"], round_topic]))
        events.sort(key=lambda e: (e.block_number, e.log_index))
        return [dispute_from_event(e) for e in events]

    def dispute_count(self, server_round: int) -> int:
        """Disputes filed against a round, as the contract counts them (0 for a ledger without disputes)."""
        try:
            return int(self._ledger.functions.disputeCount(server_round).call())
        except (*_REVERTS, BadFunctionCallOutput):
            return 0

    def registrations(self) -> list[RegistrationEvent]:
        """Every (de)registration, in chain order."""
        events: list[DecodedEvent] = []
        for name in ("MemberRegistered", "MemberDeregistered"):
            events.extend(self._decode(self._logs([self._abi.topics[name]])))
        events.sort(key=lambda e: (e.block_number, e.log_index))
        return [registration_from_event(e) for e in events]

    def privacy_budget(self, address: str) -> tuple[float, float] | None:
        """A member's on-chain ``(epsilon, delta)`` budget; None when unset or the contract predates budgets.

        Example:
            >>> from fedchain.ledger import Web3Ledger, connect
            >>> Web3Ledger.deploy(connect("embedded")).privacy_budget("0x" + "11" * 20) is None
            True
        """
        words = self.privacy_budget_fixed(address)
        return None if words is None else fixed_to_budget(*words)

    def privacy_budget_fixed(self, address: str) -> tuple[int, int] | None:
        """The stored budget words ``(epsilon, delta)`` (1e18 fixed point, zeros when unset).

        None when the contract has no ``privacyBudget`` (a ledger deployed before budgets existed).
        """
        member = _checksum(address, "address")
        try:
            epsilon_fixed, delta_fixed = self._ledger.functions.privacyBudget(member).call()
        except (*_REVERTS, BadFunctionCallOutput):
            logger.debug("ledger %s has no privacyBudget: no budget on chain for %s", self.address, member)
            return None
        return int(epsilon_fixed), int(delta_fixed)

    def balance_of(self, address: str) -> int:
        """ERC-20 balance plus unclaimed credit, in wei."""
        return int(self._ledger.functions.balanceOf(_checksum(address, "address")).call())

    def token_balance_of(self, address: str) -> int:
        """The plain ERC-20 ``balanceOf`` of an address, in wei."""
        return int(self._token.functions.balanceOf(_checksum(address, "address")).call())

    def claimable_of(self, address: str) -> int:
        """Rewards credited to a member and not yet claimed, in wei."""
        return int(self._ledger.functions.claimable(_checksum(address, "address")).call())

    def total_supply(self) -> int:
        """FedToken total supply in wei."""
        return int(self._token.functions.totalSupply().call())

    def is_registered(self, address: str) -> bool:
        """Whether an address is registered now."""
        return bool(self._ledger.functions.isRegistered(_checksum(address, "address")).call())

    def raw_logs(self) -> list[dict[str, Any]]:
        """Every log of the ledger and the token since deployment, normalized and in chain order."""
        logs: list[dict[str, Any]] = []
        for address in (self._ledger.address, self._token.address):
            logs.extend(
                normalize_log(log)
                for log in self.chain.w3.eth.get_logs(
                    {"address": address, "fromBlock": self.deploy_block, "toBlock": "latest"}
                )
            )
        logs.sort(key=lambda log: (log["blockNumber"], log["logIndex"]))
        return logs

    def round_header(self, server_round: int) -> dict[str, Any]:
        """The stored header of a recorded round as a JSON-ready dict."""
        return self._header(server_round)

    # ---- internals ---------------------------------------------------------------------------

    def _header(self, server_round: int) -> dict[str, Any]:
        last = self.last_round()
        if isinstance(server_round, bool) or not isinstance(server_round, int) or not 1 <= server_round <= last:
            raise LedgerError(f"round {server_round} is not recorded (last recorded round: {last})")
        return header_from_tuple(self._ledger.functions.getRound(server_round).call())

    def _logs(self, topics: list[Any]) -> list[Any]:
        return list(
            self.chain.w3.eth.get_logs(
                {"address": self._ledger.address, "fromBlock": self.deploy_block, "toBlock": "latest", "topics": topics}
            )
        )

    def _decode(self, logs: Sequence[Any]) -> list[DecodedEvent]:
        decoded = (self._abi.decode_log(normalize_log(log)) for log in logs)
        return [event for event in decoded if event is not None]

    def _existing_receipt(self, server_round: int, record_hash: str) -> Receipt | None:
        if server_round > self.last_round():
            return None
        header = self._header(server_round)
        if header["recordHash"] != record_hash:
            raise RoundConflictError(server_round, header["recordHash"], record_hash)
        block = header["blockNumber"]
        logs = self.chain.w3.eth.get_logs(
            {
                "address": self._ledger.address,
                "fromBlock": block,
                "toBlock": block,
                "topics": [self._abi.event_topics("RoundRecorded"), _uint_topic(server_round)],
            }
        )
        if not logs:
            raise LedgerError(f"round {server_round}: header found but no RoundRecorded event in block {block}")
        tx_hash = logs[0]["transactionHash"]
        receipt = self._receipt(self.chain.w3.eth.get_transaction_receipt(tx_hash))
        logger.info("round %d already recorded identically in tx %s; nothing sent", server_round, receipt.tx_hash)
        return receipt

    def _existing_spends(self, spend_id: str) -> Receipt | None:
        if not self._ledger.functions.spendsRecorded(hex_to_bytes32(spend_id, name="spend_id")).call():
            return None
        logs = self._logs([self._abi.topics["SpendRecorded"], None, None, spend_id])
        if not logs:  # an empty batch has no events: nothing to point at, and nothing to record again
            raise LedgerError(f"spend batch {spend_id} is recorded but has no SpendRecorded event")
        receipt = self._receipt(self.chain.w3.eth.get_transaction_receipt(logs[0]["transactionHash"]))
        logger.info("spend batch %s already recorded in tx %s; nothing sent", spend_id, receipt.tx_hash)
        return receipt

    def _receipt(self, receipt: Any) -> Receipt:
        rewards: dict[str, int] = {}
        treasury_wei = 0
        for log in receipt["logs"]:
            if to_checksum_address(log["address"]) != self.address:
                continue
            event = self._abi.decode_log(normalize_log(log))
            if event is None:
                continue
            if event.name == "MemberRecorded":
                rewards[event.args["member"]] = int(event.args["reward"])
            elif event.name == "RoundRecorded":
                treasury_wei = int(event.args["treasuryAmount"])
        return Receipt(
            tx_hash=_hex(receipt["transactionHash"]),
            block_number=int(receipt["blockNumber"]),
            gas_used=int(receipt["gasUsed"]),
            rewards_wei=rewards,
            treasury_wei=treasury_wei,
        )

    def _send(self, call: Any, what: str) -> Any:
        return _send(self.chain, self._abi, call, what, self.timeout_s, on_sent=self.on_sent)


def _send(
    chain: Chain,
    abi: ContractAbi,
    call: Any,
    what: str,
    timeout_s: float,
    *,
    on_sent: Callable[[str], None] | None = None,
) -> Any:
    """Estimate, sign locally, send raw and await one transaction; map failures to fedchain errors."""
    w3 = chain.w3
    sender = _checksum(chain.address, "sender")
    try:
        gas = int(call.estimate_gas({"from": sender}))
    except _REVERTS as exc:
        raise TransactionError(f"{what} would revert", reason=abi.revert_reason(exc)) from exc
    block_gas_limit = int(w3.eth.get_block("latest")["gasLimit"])
    tx = call.build_transaction(
        {
            "from": sender,
            "nonce": w3.eth.get_transaction_count(sender, "pending"),
            "gas": min(block_gas_limit, gas * 6 // 5 + 20_000),
            "chainId": chain.chain_id,
        }
    )
    signed = chain.account.sign_transaction(tx)
    try:
        tx_hash = _hex(w3.eth.send_raw_transaction(signed.raw_transaction))
    except Exception as exc:  # the node refused the transaction (nonce, funds, fees): no hash exists
        raise TransactionError(f"{what} was refused by the node", reason=str(exc)) from exc
    logger.debug("%s sent as tx %s", what, tx_hash)
    if on_sent is not None:
        on_sent(tx_hash)
    try:
        receipt = w3.eth.wait_for_transaction_receipt(cast(HexStr, tx_hash), timeout=timeout_s, poll_latency=0.05)
    except TimeExhausted as exc:
        raise ChainTimeoutError(tx_hash, timeout_s) from exc
    if receipt["status"] != 1:
        reason: str | None = "out of gas or unknown"
        try:
            replay = {k: v for k, v in tx.items() if k in ("from", "to", "data", "value", "gas")}
            w3.eth.call(cast(TxParams, replay), receipt["blockNumber"] - 1)
        except _REVERTS as exc:
            reason = abi.revert_reason(exc)
        except Exception:  # replay unavailable on this node: keep the generic reason
            logger.debug("could not replay failed tx %s", tx_hash)
        raise TransactionError(f"{what} reverted", tx_hash=tx_hash, reason=reason)
    return receipt
