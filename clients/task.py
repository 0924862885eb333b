"""The demo task, as the member node imports it: :mod:`fedchain.task` (moved to the library).

Both apps use the task (the coordinator builds the initial model from it), so it lives in the
library and neither app imports the other (docs/architecture.md, "Import rules"). Re-exported
here so that existing ``from clients import task`` keeps working.
"""

from fedchain.task import build_model, evaluate, get_weights, set_weights

__all__ = ["build_model", "evaluate", "get_weights", "set_weights"]
