"""Every threshold of the maintenance plan on both sides, with values written out by hand.

The module docstring of :mod:`dbops.monitoring.maintenance` says "at least" and "or more" for
every rule: a value exactly on a threshold calls for the action, one just below does not.
Thresholds are round numbers so that "exactly" is exact; the numbers an action reports (bytes
to reclaim, shares in percent, days) are computed here by hand.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

import pytest

from dbops.config import Settings
from dbops.monitoring.maintenance import plan
from dbops.monitoring.snapshot import SequenceStat, Snapshot, TableStat
from dbops.ops.maintenance import ActionKind
from tests.fixtures.snapshots import TAKEN_AT
from tests.monitoring.test_maintenance import index
from tests.monitoring.test_maintenance import snap as _with

SETTINGS = Settings(
    _env_file=None,
    maintain_dead_rows_min=1_000,
    maintain_dead_ratio=0.25,
    maintain_vacuum_age_days=7,
    maintain_analyze_rows_min=1_000,
    maintain_analyze_ratio=0.5,
    maintain_bloat_min_bytes=1_000_000,
    maintain_bloat_ratio=0.25,
    check_sequence_warning=0.75,
)
RECENT = TAKEN_AT - timedelta(hours=1)


def _table(**kw: Any) -> TableStat:
    base = {
        "schema": "public",
        "name": "t",
        "live_rows": 3_000,
        "dead_rows": 0,
        "seq_scans": 1,
        "seq_tuples_read": 1,
        "index_scans": 1,
        "table_bytes": 4_000_000,
        "indexes_bytes": 0,
        "toast_bytes": 0,
        "total_bytes": 4_000_000,
        "heap_blks_hit": 1,
        "heap_blks_read": 1,
        "modifications_since_analyze": 0,
        "last_vacuum": RECENT,
        "last_autovacuum": None,
        "last_analyze": RECENT,
        "last_autoanalyze": None,
    }
    return TableStat(**{**base, **kw})


def _kinds(snap: Snapshot, settings: Settings = SETTINGS) -> list[tuple[str, str]]:
    return [(str(a.kind), a.reason) for a in plan(snap, settings).actions]


@pytest.mark.parametrize(
    ("dead", "live", "expected"),
    [
        (999, 1, []),  # below the minimum count, whatever the share
        (1_000, 3_000, ["vacuum: 1,000 dead rows (25.0% of rows)"]),  # exactly 25 %
        (1_000, 3_001, []),  # just below 25 %, vacuumed recently
    ],
)
def test_dead_rows_on_both_sides(dead: int, live: int, expected: list[str]) -> None:
    snap = _with(tables=(_table(dead_rows=dead, live_rows=live),))
    assert [f"{k}: {r}" for k, r in _kinds(snap)] == expected


@pytest.mark.parametrize(
    ("age", "expected"),
    [
        (timedelta(days=7), "vacuum: 1,000 dead rows (1.0%), last vacuum 7 days ago"),
        (timedelta(days=7) - timedelta(seconds=1), None),
    ],
)
def test_vacuum_age_on_both_sides(age: timedelta, expected: str | None) -> None:
    table = _table(dead_rows=1_000, live_rows=99_000, last_vacuum=None, last_autovacuum=None)
    never = _kinds(_with(tables=(table,)))
    assert never == [("vacuum", "1,000 dead rows (1.0%), never vacuumed")]
    # The newer of manual and auto vacuum counts.
    table = dataclasses.replace(
        table, last_vacuum=TAKEN_AT - timedelta(days=30), last_autovacuum=TAKEN_AT - age
    )
    got = [f"{k}: {r}" for k, r in _kinds(_with(tables=(table,)))]
    assert got == ([expected] if expected else [])


@pytest.mark.parametrize(
    ("modified", "live", "expected"),
    [
        (999, 1, None),  # below the minimum count
        (1_000, 2_000, "1,000 rows modified since the last analyze (50.0% of live rows)"),
        (1_000, 2_001, None),  # just below 50 %
    ],
)
def test_analyze_on_both_sides(modified: int, live: int, expected: str | None) -> None:
    snap = _with(tables=(_table(modifications_since_analyze=modified, live_rows=live),))
    assert _kinds(snap) == ([("analyze", expected)] if expected else [])


@pytest.mark.parametrize(("live", "expected"), [(999, []), (1_000, ["analyze"])])
def test_never_analyzed_from_the_minimum_on(live: int, expected: list[str]) -> None:
    table = _table(live_rows=live, last_analyze=None, last_autoanalyze=None)
    assert [k for k, _ in _kinds(_with(tables=(table,)))] == expected
    autoanalyzed = dataclasses.replace(table, last_autoanalyze=RECENT)
    assert _kinds(_with(tables=(autoanalyzed,))) == []


def test_both_needs_are_one_vacuum_analyze_with_the_bytes_to_reclaim() -> None:
    table = _table(dead_rows=1_000, live_rows=3_000, modifications_since_analyze=3_000)
    (action,) = plan(_with(tables=(table,)), SETTINGS).actions
    assert action.kind is ActionKind.VACUUM_ANALYZE
    assert action.reason == (
        "1,000 dead rows (25.0% of rows); 3,000 rows modified since the last analyze "
        "(100.0% of live rows)"
    )
    assert action.estimated_bytes == 1_000_000  # 1,000 of 4,000 rows of 4,000,000 bytes


@pytest.mark.parametrize(
    ("bloat", "size", "expected"),
    [
        (999_999, 3_000_000, None),  # below the minimum bytes
        (1_000_000, 4_000_000, "estimated bloat 1,000,000 of 4,000,000 bytes (25.0%)"),
        (1_000_000, 4_000_001, None),  # just below 25 %
        (None, 4_000_000, None),  # unknown: nothing
    ],
)
def test_bloat_on_both_sides(bloat: int | None, size: int, expected: str | None) -> None:
    snap = _with(indexes=(index("ix_t", bloat_bytes=bloat, size_bytes=size),))
    actions = plan(snap, SETTINGS).actions
    assert [a.reason for a in actions] == ([expected] if expected else [])
    if expected:
        assert actions[0].estimated_bytes == bloat


@pytest.mark.parametrize(("ratio", "advised"), [(0.749, False), (0.75, True)])
def test_sequences_from_the_check_threshold(ratio: float, advised: bool) -> None:
    seq = SequenceStat("public", "t_id_seq", "bigint", 1, 1, 100, 1, "t.id", "integer", ratio)
    base = _with()
    assert base.database is not None
    snap = dataclasses.replace(base, database=dataclasses.replace(base.database, sequences=(seq,)))
    actions = plan(snap, SETTINGS).actions
    assert len(actions) == int(advised)
    if advised:
        (a,) = actions
        assert (a.table, a.sequence) == ("t", "t_id_seq")
        assert a.reason == "sequence has used 75.0% of its range (column t.id is integer)"
        assert a.note == (
            "ALTER SEQUENCE ... AS bigint and ALTER TABLE ... ALTER COLUMN id TYPE bigint "
            "(a table rewrite: plan it)"
        )
        assert not a.runs


def test_a_bigint_column_needs_only_the_sequence_change() -> None:
    seq = SequenceStat("public", "s", "bigint", 1, 1, 100, 1, "t.id", "bigint", 0.9)
    base = _with()
    assert base.database is not None
    snap = dataclasses.replace(base, database=dataclasses.replace(base.database, sequences=(seq,)))
    (a,) = plan(snap, SETTINGS).actions
    assert a.note == "ALTER SEQUENCE ... AS bigint"


def test_order_within_a_rank_is_by_weight_then_name() -> None:
    small = _table(name="small", dead_rows=1_000, live_rows=1_000, table_bytes=2_000)
    big = _table(name="big", dead_rows=1_000, live_rows=1_000, table_bytes=8_000)
    twin = _table(name="a_twin", dead_rows=1_000, live_rows=1_000, table_bytes=8_000)
    actions = plan(_with(tables=(small, big, twin)), SETTINGS).actions
    assert [(a.table, a.estimated_bytes) for a in actions] == [
        ("a_twin", 4_000),
        ("big", 4_000),
        ("small", 1_000),
    ]


def test_advisories_come_after_the_work_sequences_before_leftovers() -> None:
    """Ranks: invalid indexes, then vacuums and bloat, analyzes, sequences, leftovers."""
    leftover = index("ix_t_ccnew", is_valid=False, size_bytes=10**9, bloat_bytes=None)
    invalid = index("ix_broken", is_valid=False, size_bytes=10, bloat_bytes=None)
    bloated = index("ix_bloated", bloat_bytes=3_000_000, size_bytes=4_000_000)
    analyze = _table(name="stale", modifications_since_analyze=1_600)  # 53.3 %
    vacuum = _table(name="dirty", dead_rows=1_000, live_rows=1_000)
    seq = SequenceStat("public", "s", "bigint", 1, 1, 100, 1, None, None, 0.99)
    base = _with(tables=(analyze, vacuum), indexes=(leftover, bloated, invalid))
    assert base.database is not None
    snap = dataclasses.replace(base, database=dataclasses.replace(base.database, sequences=(seq,)))
    got = [(str(a.kind), a.index or a.sequence or a.table) for a in plan(snap, SETTINGS).actions]
    assert got == [
        ("reindex", "ix_broken"),
        ("reindex", "ix_bloated"),  # 3,000,000 bytes to give back
        ("vacuum", "dirty"),  # 2,000,000 bytes
        ("analyze", "stale"),
        ("advisory", "s"),
        ("advisory", "ix_t_ccnew"),
    ]


def test_unknown_modifications_count_as_none() -> None:
    """``modifications_since_analyze`` unknown is zero rows modified, even at a minimum of 1."""
    one = SETTINGS.model_copy(update={"maintain_analyze_rows_min": 1})
    table = _table(live_rows=1, modifications_since_analyze=None)
    assert _kinds(_with(tables=(table,)), one) == []


def test_an_empty_table_divides_by_one_row() -> None:
    table = _table(live_rows=0, modifications_since_analyze=1_000)
    assert _kinds(_with(tables=(table,))) == [
        ("analyze", "1,000 rows modified since the last analyze (100000.0% of live rows)")
    ]


def test_an_analyze_never_outranks_a_vacuum() -> None:
    """Analyzes rank after vacuums even when the vacuum gives back no byte at all."""
    empty_vacuum = _table(name="dirty", dead_rows=1_000, live_rows=1_000, table_bytes=0)
    analyze = _table(name="stale", modifications_since_analyze=3_000)
    actions = plan(_with(tables=(analyze, empty_vacuum)), SETTINGS).actions
    assert [(str(a.kind), a.table, a.estimated_bytes) for a in actions] == [
        ("vacuum", "dirty", 0),
        ("analyze", "stale", None),
    ]


def test_days_round_and_bytes_stay_whole() -> None:
    old = _table(
        dead_rows=1_000, live_rows=99_000, last_vacuum=TAKEN_AT - timedelta(days=7, hours=14)
    )
    assert _kinds(_with(tables=(old,))) == [
        ("vacuum", "1,000 dead rows (1.0%), last vacuum 8 days ago")  # 7.6 days
    ]
    odd = _table(dead_rows=1_000, live_rows=2_000, table_bytes=10)
    (action,) = plan(_with(tables=(odd,)), SETTINGS).actions
    assert action.estimated_bytes == 3  # 1,000 of 3,000 rows of 10 bytes, whole bytes
    assert isinstance(action.estimated_bytes, int)


def test_a_never_analyzed_table_weighs_as_100_percent_modified() -> None:
    never = _table(name="never", live_rows=5_000, last_analyze=None, last_autoanalyze=None)
    busy = _table(name="busy", live_rows=2_000, modifications_since_analyze=3_000)  # 150 %
    calm = _table(name="calm", live_rows=2_000, modifications_since_analyze=1_200)  # 60 %
    actions = plan(_with(tables=(calm, never, busy)), SETTINGS).actions
    assert [a.table for a in actions] == ["busy", "never", "calm"]


def test_the_plan_json_is_indented_and_the_plan_frozen() -> None:
    result = plan(_with(tables=(_table(dead_rows=1_000, live_rows=1_000),)), SETTINGS)
    assert result.to_json().startswith('{\n  "taken_at": ')
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.actions = ()  # type: ignore[misc]
