"""What a collector module declares: the snapshot section it fills and the parts that fill it.

A module under ``collectors/`` ends with one :class:`Section`: the :class:`Snapshot` field, its
parts (each a named function run on the snapshot's connection under its own timeout; the name
is what errors, timeouts and ``skip`` lists use) and how the parts' results become the field's
value. :func:`dbops.monitoring.collect.collect_snapshot` runs the sections in order; a new
collector is its module and one entry in ``collect.SECTIONS``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dbops.config import Settings

__all__ = ["Collector", "Context", "Part", "Section", "only", "rows"]

#: ``collect(conn, *, settings, **needs)``: one collector function.
Collector = Callable[..., Any]


@dataclass
class Context:
    """What a part may need besides its connection and its section of the settings."""

    #: All of the settings, for a part that reads more than its section (the index advice).
    settings: Settings
    #: The server's data directory when it runs on this host (the resources collector).
    data_dir: Path | None = None
    #: Whether the caller asked for index advice (the advice part runs only then).
    advice: bool = False
    #: Every part's result so far, by part name (``None``: it failed, was skipped or not run).
    results: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Part:
    """One collector of a section."""

    name: str
    collect: Collector
    #: Keyword arguments from the context: an earlier part's result, the data directory.
    needs: Callable[[Context], dict[str, Any]] | None = None
    #: Run only when this says so (default: always).
    when: Callable[[Context], bool] | None = None


@dataclass(frozen=True)
class Section:
    """A field of the snapshot, the parts that fill it, and how their results make its value."""

    field: str
    parts: tuple[Part, ...]
    build: Callable[[Mapping[str, Any]], Any]


def only(name: str) -> Callable[[Mapping[str, Any]], Any]:
    """A builder: the field is part ``name``'s result as it is."""
    return lambda results: results.get(name)


def rows(name: str) -> Callable[[Mapping[str, Any]], tuple[Any, ...] | None]:
    """A builder: the field is part ``name``'s list of rows as a tuple (``None`` stays)."""

    def build(results: Mapping[str, Any]) -> tuple[Any, ...] | None:
        found = results.get(name)
        return None if found is None else tuple(found)

    return build
