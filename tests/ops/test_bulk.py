"""Bulk loading on a scratch table: COPY text and rows, progress, deferred indexes, ANALYZE."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import errors as pg_errors

from dbops.ops._bulk import (
    analyze,
    copy_rows,
    copy_text,
    defer_indexes,
    escape_copy_text,
    rebuild_indexes,
    row_count,
    table_exists,
)

SCRATCH = """
CREATE TEMPORARY TABLE bulk_scratch (
    id integer PRIMARY KEY,
    name text NOT NULL,
    note text,
    CONSTRAINT uq_bulk_scratch_name UNIQUE (name)
)
"""
INDEXES = """
SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'bulk_scratch' ORDER BY indexname
"""


@pytest.fixture
def conn(raw_conn: psycopg.Connection[Any]) -> Iterator[psycopg.Connection[Any]]:
    """A connection in an open transaction with an empty scratch table (rolled back after)."""
    raw_conn.execute(SCRATCH)
    raw_conn.execute("CREATE INDEX ix_bulk_scratch_note ON bulk_scratch (note)")
    raw_conn.execute("CREATE INDEX ix_bulk_scratch_lower ON bulk_scratch (lower(name))")
    raw_conn.execute("COMMENT ON INDEX ix_bulk_scratch_note IS 'by note'")
    yield raw_conn
    raw_conn.rollback()


def _chunks(n: int, size: int) -> Iterator[tuple[str, int]]:
    for start in range(0, n, size):
        stop = min(n, start + size)
        notes = (escape_copy_text("tab\there " + str(i)) for i in range(start, stop))
        text = "".join(
            f"{i}\tname {i}\t{note}\n" for i, note in zip(range(start, stop), notes, strict=True)
        )
        yield text, stop - start


def test_escape_copy_text_round_trips_special_characters(conn: psycopg.Connection[Any]) -> None:
    tricky = "back\\slash\ttab\nnewline\rreturn \\N"
    copy_text(
        conn, "bulk_scratch", ["id", "name", "note"], [(f"1\tx\t{escape_copy_text(tricky)}\n", 1)]
    )
    row = conn.execute("SELECT note FROM bulk_scratch").fetchone()
    assert row == (tricky,)


def test_copy_text_loads_chunks_and_reports_progress(conn: psycopg.Connection[Any]) -> None:
    calls: list[tuple[str, int, int]] = []
    stats = copy_text(
        conn,
        "bulk_scratch",
        ("id", "name", "note"),
        _chunks(250, 100),
        total=250,
        progress=lambda *call: calls.append(call),
    )
    assert (stats.table, stats.rows) == ("bulk_scratch", 250)
    assert stats.seconds >= 0
    assert calls == [
        ("bulk_scratch", 0, 250),
        ("bulk_scratch", 100, 250),
        ("bulk_scratch", 200, 250),
        ("bulk_scratch", 250, 250),
    ]
    assert row_count(conn, "bulk_scratch") == 250
    assert conn.execute("SELECT note FROM bulk_scratch WHERE id = 7").fetchone() == ("tab\there 7",)


TRICKY_ROWS = [(1, "a", None), (2, "b\tc", "x\ny"), (3, "d", "")]


@pytest.mark.parametrize(
    ("rows", "reported"),
    [
        (TRICKY_ROWS, [0, 2, 3]),
        # 4 rows with a step of 2: the last step is already the end, not reported twice
        ([*TRICKY_ROWS, (4, "e", "f")], [0, 2, 4]),
    ],
    ids=["3 rows", "4 rows"],
)
def test_copy_rows_adapts_values_and_reports_each_step_once(
    conn: psycopg.Connection[Any],
    monkeypatch: pytest.MonkeyPatch,
    rows: list[tuple[int, str, str | None]],
    reported: list[int],
) -> None:
    monkeypatch.setattr("dbops.ops._bulk.ROWS_PER_PROGRESS", 2)
    calls: list[tuple[str, int, int]] = []
    stats = copy_rows(
        conn,
        "bulk_scratch",
        ["id", "name", "note"],
        iter(rows),
        progress=lambda *c: calls.append(c),
    )
    assert stats.rows == len(rows)
    assert calls == [("bulk_scratch", done, 0) for done in reported]
    assert conn.execute("SELECT id, name, note FROM bulk_scratch ORDER BY id").fetchall() == rows


def test_deferred_indexes_are_rebuilt_identically_with_comments(
    conn: psycopg.Connection[Any],
) -> None:
    before = conn.execute(INDEXES).fetchall()
    deferred = defer_indexes(conn, {"bulk_scratch": 300}, min_rows=100)
    # Only the plain secondary indexes: not the primary key, not the unique constraint.
    assert [i.index_name for i in deferred] == ["ix_bulk_scratch_lower", "ix_bulk_scratch_note"]
    assert {name for name, _ in conn.execute(INDEXES)} == {
        "bulk_scratch_pkey",
        "uq_bulk_scratch_name",
    }
    copy_text(conn, "bulk_scratch", ["id", "name", "note"], _chunks(300, 1000))
    calls: list[tuple[str, int, int]] = []
    rebuild_indexes(conn, deferred, progress=lambda *c: calls.append(c))
    assert calls == [("indexes", 0, 2), ("indexes", 1, 2), ("indexes", 2, 2)]
    assert conn.execute(INDEXES).fetchall() == before
    comment = conn.execute("SELECT obj_description('ix_bulk_scratch_note'::regclass)").fetchone()
    assert comment == ("by note",)


def test_indexes_stay_for_small_loads_and_tables_holding_more(
    conn: psycopg.Connection[Any],
) -> None:
    assert defer_indexes(conn, {"bulk_scratch": 99}, min_rows=100) == []
    copy_text(conn, "bulk_scratch", ["id", "name", "note"], _chunks(150, 1000))
    assert defer_indexes(conn, {"bulk_scratch": 120}, min_rows=100) == []
    assert len(defer_indexes(conn, {"bulk_scratch": 150}, min_rows=100)) == 2


def test_loads_from_fifty_thousand_rows_defer_the_indexes_by_default(
    conn: psycopg.Connection[Any],
) -> None:
    assert defer_indexes(conn, {"bulk_scratch": 49_999}) == []
    assert len(defer_indexes(conn, {"bulk_scratch": 50_000})) == 2


def test_a_failed_rebuild_fails_the_load(conn: psycopg.Connection[Any]) -> None:
    conn.execute("CREATE UNIQUE INDEX ix_bulk_scratch_note_unique ON bulk_scratch (note)")
    deferred = defer_indexes(conn, {"bulk_scratch": 10}, min_rows=1)
    assert "ix_bulk_scratch_note_unique" in {i.index_name for i in deferred}
    copy_text(conn, "bulk_scratch", ["id", "name", "note"], [("1\ta\tsame\n2\tb\tsame\n", 2)])
    with pytest.raises(pg_errors.UniqueViolation):
        rebuild_indexes(conn, deferred)


def test_table_exists_and_analyze(conn: psycopg.Connection[Any]) -> None:
    assert table_exists(conn, "bulk_scratch")
    assert table_exists(conn, "public.users")
    assert not table_exists(conn, "no_such_table")
    copy_text(conn, "bulk_scratch", ["id", "name", "note"], _chunks(50, 1000))
    analyze(conn, ["bulk_scratch", "public.users"])
    analyze(conn, [])
    stats = conn.execute(
        "SELECT reltuples FROM pg_class WHERE relname = 'bulk_scratch' AND relpersistence = 't'"
    ).fetchone()
    assert stats == (50.0,)


@pytest.mark.parametrize("count", [1, 37, 10_001])
def test_the_last_progress_call_reports_every_row(
    conn: psycopg.Connection[Any], count: int
) -> None:
    """Whatever the count (fewer rows than a progress step, or one more than a step), the
    last call says all of them: the loader's bar ends full."""
    calls: list[tuple[str, int, int]] = []
    stats = copy_rows(
        conn,
        "bulk_scratch",
        ["id", "name", "note"],
        ((i, f"n{i}", None) for i in range(count)),
        total=count,
        progress=lambda *c: calls.append(c),
    )
    assert stats.rows == count
    assert calls[0] == ("bulk_scratch", 0, count)
    assert calls[-1] == ("bulk_scratch", count, count)
    assert [c[1] for c in calls] == sorted({c[1] for c in calls})  # no step reported twice
