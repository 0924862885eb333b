"""FedProx's proximal term: moved to :mod:`fedchain.privacy.proximal`, with members' local training.

Re-exported here so that existing ``from fedchain.aggregation.proximal import ProximalTerm`` keeps
working; this is the one import of :mod:`fedchain.privacy` from :mod:`fedchain.aggregation`, listed
in the import contracts (pyproject.toml, ``[tool.importlinter]``). New code imports it from
:mod:`fedchain.privacy.proximal`.
"""

from fedchain.privacy.proximal import ProximalTerm

__all__ = ["ProximalTerm"]
