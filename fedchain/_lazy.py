"""Package names loaded on first use: a package imports its heavy modules only when a name is read.

Example (in a package's ``__init__.py``)::

    _HOME = {"train_private": "training"}          # name -> submodule that defines it
    __getattr__, __dir__ = lazy_exports(__name__, _HOME)
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, homes: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A module ``__getattr__`` that imports ``package.<homes[name]>`` on first use, and its ``__dir__``.

    A name, once loaded, is stored in the package so later reads cost nothing.
    """

    def load(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{home}"), name)
        setattr(sys.modules[package], name, value)
        return value

    def names() -> list[str]:
        module = sys.modules[package]
        return sorted(set(vars(module)) | set(getattr(module, "__all__", ())))

    return load, names
