"""Contexts are expensive (SCORING's Galois keys take about a second): build each once per session."""

from __future__ import annotations

import pytest
import tenseal as ts

from fedchain import crypto


@pytest.fixture(scope="session")
def agg_member() -> ts.Context:
    return crypto.create_secret_context(crypto.AGGREGATION)


@pytest.fixture(scope="session")
def agg_coordinator(agg_member: ts.Context) -> ts.Context:
    return crypto.load_coordinator_context(crypto.export_public_context(agg_member))


@pytest.fixture(scope="session")
def scoring_member() -> ts.Context:
    return crypto.create_secret_context(crypto.SCORING)


@pytest.fixture(scope="session")
def scoring_coordinator(scoring_member: ts.Context) -> ts.Context:
    return crypto.load_coordinator_context(crypto.export_public_context(scoring_member))
