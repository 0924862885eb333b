"""The public surface of fedchain.ledger and fedchain.rewards is curated, and its examples run."""

from __future__ import annotations

import doctest
import importlib

import pytest

import fedchain.ledger
import fedchain.rewards

MODULES = [
    "fedchain.ledger",
    "fedchain.ledger.base",
    "fedchain.ledger.chain",
    "fedchain.ledger.export",
    "fedchain.ledger.fixedpoint",
    "fedchain.ledger.web3_ledger",
    "fedchain.rewards",
    "fedchain.rewards.rule",
]


@pytest.mark.parametrize("package", [fedchain.ledger, fedchain.rewards])
def test_all_is_sorted_and_complete(package: object) -> None:
    names = package.__all__  # type: ignore[attr-defined]
    assert names == sorted(names)
    for name in names:
        assert hasattr(package, name), name


@pytest.mark.parametrize("module_name", MODULES)
def test_docstring_examples(module_name: str) -> None:
    module = importlib.import_module(module_name)
    extra = {name: getattr(fedchain.ledger, name) for name in fedchain.ledger.__all__}
    result = doctest.testmod(module, extraglobs=extra, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


def test_rewards_does_not_import_web3() -> None:
    import subprocess
    import sys

    code = "import sys, fedchain.rewards; sys.exit('web3' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
