"""Provisioning: the federation's key material.

``provision_keys`` creates the CKKS secret context for members and the public context for the
coordinator (no secret key), written with 0600 / 0644 permissions.

Example::

    from fedchain.provision import provision_keys
    paths = provision_keys("runs/keys", scoring=False)
    paths["coordinator"]  # runs/keys/coordinator.ckks
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["provision_keys"]


def provision_keys(directory: str | Path, *, scoring: bool = False) -> dict[str, Path]:
    """Create ``member.ckks`` (secret, 0600) and ``coordinator.ckks`` (public) in ``directory``.

    Args:
        directory: where to write; created with mode 0700 if missing.
        scoring: use the parameters with one multiplicative level (encrypted scoring), else the
            cheaper addition-only parameters.
    """
    from fedchain import crypto

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    secret = crypto.create_secret_context(crypto.SCORING if scoring else crypto.AGGREGATION)
    paths = {"member": directory / "member.ckks", "coordinator": directory / "coordinator.ckks"}
    crypto.write_context(paths["member"], crypto.export_secret_context(secret), secret=True)
    crypto.write_context(paths["coordinator"], crypto.export_public_context(secret), secret=False)
    return paths
