"""Is this process part of fedchain's own simulation? The one place a member node asks.

Testing hooks (simulated adversaries, injected faults) and a fixed DP noise seed make a member
weaker on purpose. They must never be switched on by whoever writes the run config (the
coordinator), so a node decides from its own process: fedchain's simulation runner
(:func:`fedchain.runner.run_simulation`) sets :data:`SIMULATION_ENV` in its own environment before
Flower starts the simulated members (Ray actors inherit it). A SuperNode started by an
organization (deployment, or ``flwr run`` against any SuperLink) does not have it.

Example:
    >>> import os
    >>> os.environ.pop(SIMULATION_ENV, None) and None
    >>> is_simulation()
    False
"""

from __future__ import annotations

import os

__all__ = ["SIMULATION_ENV", "is_simulation"]

#: Environment variable fedchain's simulation runner sets to "1" for itself and its simulated members.
SIMULATION_ENV = "FEDCHAIN_SIMULATION"


def is_simulation() -> bool:
    """True only in a process started by fedchain's simulation runner."""
    return os.environ.get(SIMULATION_ENV) == "1"
