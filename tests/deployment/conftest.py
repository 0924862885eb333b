"""Shared fixtures of the deployment tests: one provisioned (and keyed) federation for the session."""

from __future__ import annotations

import pytest

from fedchain.keyceremony import run_local_ceremony
from fedchain.provision import ProvisionedFederation, provision_federation


@pytest.fixture(scope="session")
def provisioned(tmp_path_factory: pytest.TempPathFactory) -> ProvisionedFederation:
    """3 members, enrolled and keyed by the member key ceremony; SANs for loopback and the compose service name."""
    directory = tmp_path_factory.mktemp("prov") / "fed"
    provision_federation(directory, members=3, addresses=["127.0.0.1", "superlink", "::1"])
    return run_local_ceremony(directory)
