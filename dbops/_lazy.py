"""Package names imported on first use: a module ``__getattr__`` and ``__dir__`` (PEP 562).

A package's ``__init__`` that imported every submodule would make each ``dbops`` command pay
for all of them (SQLAlchemy, alembic, the collectors): bench/bench_cli.py measures start-up.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, where: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``: name -> the module (dotted) that defines it.

    A name is imported on its first access and then kept in the package's namespace.
    """
    namespace = sys.modules[package].__dict__

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *where})

    return __getattr__, __dir__
