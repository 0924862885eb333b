"""Is this process part of fedchain's own simulation? The one place a member node asks.

Testing hooks (simulated adversaries, injected faults) and a fixed DP noise seed make a member
weaker on purpose. They must never be switched on by whoever writes the run config (the
coordinator), so a node decides from its own process: fedchain's simulation runner
(:func:`fedchain.runner.run_simulation`) sets :data:`SIMULATION_ENV` in its own environment before
Flower starts the simulated members (Ray actors inherit it), and Flower's own simulation runtime
(``flwr run .`` on a local simulation SuperLink) runs every ClientApp in a Ray actor. A SuperNode
started by an organization (Flower's deployment runtime) has neither.

Example:
    >>> import os
    >>> os.environ.pop(SIMULATION_ENV, None) and None
    >>> is_simulation()
    False
"""

from __future__ import annotations

import os
import sys

__all__ = ["SIMULATION_ENV", "is_simulation"]

#: Environment variable fedchain's simulation runner sets to "1" for itself and its simulated members.
SIMULATION_ENV = "FEDCHAIN_SIMULATION"


def is_simulation() -> bool:
    """True only in a process of a simulation: fedchain's runner, or Flower's simulation runtime.

    Flower's simulation runtime (``flwr run`` on a local simulation SuperLink) runs every
    ClientApp in a Ray actor; Flower's deployment runtime never does (a SuperNode starts a
    ``flwr-clientapp`` process per message). Neither fact can be set through the run config.
    """
    return os.environ.get(SIMULATION_ENV) == "1" or _in_ray_actor()


def _in_ray_actor() -> bool:
    """Whether this process is a Ray actor (where Flower's simulation runs ClientApps); never imports Ray."""
    ray = sys.modules.get("ray")
    if ray is None:
        return False
    try:
        return bool(ray.is_initialized()) and ray.get_runtime_context().get_actor_id() is not None
    except Exception:  # a partly imported or shut-down Ray is not a simulation
        return False
