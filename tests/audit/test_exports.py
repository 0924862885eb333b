"""The public surface of fedchain.audit, and a light import for the CLI."""

from __future__ import annotations

import subprocess
import sys

import fedchain.audit


def test_every_exported_name_resolves() -> None:
    assert fedchain.audit.__all__ == sorted(fedchain.audit.__all__, key=lambda n: (not n.isupper(), n))
    for name in fedchain.audit.__all__:
        assert getattr(fedchain.audit, name) is not None, name


def test_importing_the_cli_does_not_load_opacus_or_web3() -> None:
    code = "import sys, fedchain.audit.cli; print(sorted(m for m in ('opacus', 'web3', 'torch') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]"
