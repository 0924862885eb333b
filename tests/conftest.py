"""Shared test setup: Flower never installs dependencies, phones home or writes outside the repo."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

os.environ.setdefault("FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION", "1")
os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
os.environ.setdefault("FLWR_HOME", str(ROOT / ".flwr"))
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
