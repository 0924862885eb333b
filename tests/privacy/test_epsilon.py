"""fedchain.privacy.epsilon: Opacus's numbers, without loading torch (the auditor's and coordinator's path)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from fedchain.privacy.epsilon import RDP_ORDERS, compute_epsilon, epsilon_curve

HISTORIES = [
    [(1.1, 0.2, 15)] * 4,
    [(0.8, 0.05, 100), (1.3, 0.01, 1000), (2.375, 0.2, 15)],
    [(5.0, 1.0, 3)],
]


def test_rdp_orders_are_opacus_default_alphas() -> None:
    from opacus.accountants import RDPAccountant

    assert tuple(RDPAccountant.DEFAULT_ALPHAS) == RDP_ORDERS


@pytest.mark.parametrize("history", HISTORIES)
def test_rdp_epsilon_is_opacus_accountant_bit_for_bit(history: list[tuple[float, float, int]]) -> None:
    from opacus.accountants import RDPAccountant

    curve = epsilon_curve(history, delta=1e-5)
    for end in range(len(history)):
        accountant = RDPAccountant()
        accountant.history = list(history[: end + 1])
        assert curve[end] == accountant.get_epsilon(delta=1e-5)
    assert compute_epsilon(history, delta=1e-5) == curve[-1]


def _run(code: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr


def test_auditing_loads_neither_torch_nor_opacus() -> None:
    """The auditor recomputes epsilon (RDP) with Opacus's arithmetic but without torch or Opacus's package."""
    _run(
        """
        import sys
        import fedchain.audit
        from fedchain.audit import audit_ledger
        from fedchain.audit.checks import privacy_history
        from fedchain.privacy import epsilon_curve
        from fedchain.types import DPParams

        curve = epsilon_curve([DPParams(1.1, 0.2, 15, 0.5, 1e-5)] * 3, delta=1e-5)
        assert [round(e, 3) for e in curve] == [5.669, 7.573, 9.106], curve
        loaded = [m for m in ("torch", "opacus", "tenseal", "flwr") if m in sys.modules]
        assert not loaded, loaded
        """
    )


def test_coordinator_checks_declared_dp_without_torch() -> None:
    _run(
        """
        import sys
        import fedchain.coordinator
        from fedchain.config import FedChainConfig
        from fedchain.privacy import declared_dp_problem, federation_dp_config
        from fedchain.types import DPParams

        config = federation_dp_config(FedChainConfig(rounds=20))  # calibrated noise: the RDP check runs
        declared = DPParams(noise_multiplier=50.0, sample_rate=0.2, steps=15, max_grad_norm=0.5, delta=1e-5)
        problem = declared_dp_problem(declared, num_examples=150, config=config, epochs=3, batch_size=32)
        assert problem is not None and "more noise than calibrated" in problem, problem
        loaded = [m for m in ("torch", "opacus") if m in sys.modules]
        assert not loaded, loaded
        """
    )
