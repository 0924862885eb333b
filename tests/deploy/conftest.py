"""Shared fixtures of the deployment tests: one provisioned federation for the session."""

from __future__ import annotations

import pytest

from fedchain.provision import ProvisionedFederation, provision_federation


@pytest.fixture(scope="session")
def provisioned(tmp_path_factory: pytest.TempPathFactory) -> ProvisionedFederation:
    """3 members; SANs for loopback IPv4 and IPv6 and the compose service name."""
    return provision_federation(
        tmp_path_factory.mktemp("prov") / "fed", members=3, addresses=["127.0.0.1", "superlink", "::1"]
    )
