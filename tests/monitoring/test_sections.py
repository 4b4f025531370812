"""A collector is one module: it declares its snapshot section, and the snapshot is their sum.

No database: these check the wiring that ``collect_snapshot`` loops over, so that a module
added under ``collectors/`` without its section, or a snapshot field nobody fills (or two fill),
fails here rather than as a silently empty part.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil

from dbops.monitoring import collectors
from dbops.monitoring.cadence import SLOW_COLLECTORS
from dbops.monitoring.collect import COLLECTORS, SECTIONS
from dbops.monitoring.collectors import database
from dbops.monitoring.snapshot import Snapshot

#: Modules under collectors/ that need no database connection: collect_snapshot runs them
#: around it (backups: manifests on disk; access: in-process counters and the server log;
#: pool: the pool's and cache's own statistics; bouncer: PgBouncer's console, a connection of
#: its own).
OFF_CONNECTION = {"access", "backups", "bouncer", "ha", "pool"}
#: Snapshot fields collect_snapshot fills itself: the when, the how long, what went wrong, the
#: off-connection parts, and what the cadence adds.
NOT_FROM_SECTIONS = {
    "taken_at",
    "duration_s",
    "errors",
    "schema_version",
    "pool",
    "cache",
    "app",
    "backups",
    "access",
    "bouncer",
    "ha",
    "carried",
}


def test_every_collector_module_declares_a_section_that_is_collected() -> None:
    modules = [m.name for m in pkgutil.iter_modules(collectors.__path__) if m.name[0] != "_"]
    assert set(modules) > OFF_CONNECTION
    for name in modules:
        module = importlib.import_module(f"{collectors.__name__}.{name}")
        if name in OFF_CONNECTION:
            assert not hasattr(module, "SECTION"), name
        else:
            assert module.SECTION in SECTIONS, name


def test_each_snapshot_field_is_filled_by_exactly_one_source() -> None:
    fields = {f.name for f in dataclasses.fields(Snapshot)}
    from_sections = [section.field for section in SECTIONS]
    assert len(from_sections) == len(set(from_sections))
    assert not set(from_sections) & NOT_FROM_SECTIONS
    assert set(from_sections) | NOT_FROM_SECTIONS == fields


def test_part_names_are_unique_and_are_what_the_cadence_names() -> None:
    names = [part.name for section in SECTIONS for part in section.parts]
    assert len(names) == len(set(names))
    assert list(COLLECTORS) == names
    assert set(SLOW_COLLECTORS) <= set(names)


def test_every_slow_part_has_a_place_the_cadence_carries_it_to() -> None:
    """A slow collector in a section that is not wholly slow must name its database field, or
    the cadence would skip it and never carry it back (its part would stay empty)."""
    whole = {s.field for s in SECTIONS if all(p.name in SLOW_COLLECTORS for p in s.parts)}
    carried = {p.name for s in SECTIONS if s.field in whole for p in s.parts}
    carried |= set(database.LIST_FIELDS) & set(SLOW_COLLECTORS)
    assert carried == set(SLOW_COLLECTORS)
