#!/usr/bin/env python3
"""Bring a real fedchain federation up on this machine, or down.

A thin wrapper around ``python -m fedchain.deployment`` (see ``deploy/README.md``)::

    deploy/launcher.py up runs/fed --members 3 --rounds 2      # provision, start, run, leave running
    deploy/launcher.py status runs/fed
    deploy/launcher.py down runs/fed                            # stop every process by PID
"""

from __future__ import annotations

import sys

from fedchain.deployment.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
