"""SCORING contexts are expensive (Galois keys): build each once per session."""

from __future__ import annotations

from typing import Any

import pytest

from fedchain import crypto


@pytest.fixture(scope="session")
def scoring_member() -> Any:
    return crypto.create_secret_context(crypto.SCORING)


@pytest.fixture(scope="session")
def scoring_other_member(scoring_member: Any) -> Any:
    """Another member's copy of the federation's secret context (what a second committee member holds)."""
    return crypto.load_member_context(crypto.export_secret_context(scoring_member))


@pytest.fixture(scope="session")
def scoring_coordinator(scoring_member: Any) -> Any:
    return crypto.load_coordinator_context(crypto.export_public_context(scoring_member))
