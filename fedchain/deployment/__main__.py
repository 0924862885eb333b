"""``python -m fedchain.deployment {provision,up,down,status,setup,demo-data}``: the deployment commands.

The same typer app as ``fedchain deploy`` (:mod:`fedchain.deployment.cli`), for where the
``fedchain`` script is not on the ``PATH`` (``deploy/compose.yaml``, the container image).
"""

from __future__ import annotations

from fedchain.deployment.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
