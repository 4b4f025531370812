"""The tables collector against a hand-built table: counts by hand, sizes from the files."""

from __future__ import annotations

import psycopg

from dbops.config import to_libpq_url
from dbops.monitoring.collectors.tables import collect_tables
from tests.fixtures.db import flush_stats
from tests.fixtures.monitoring import monitor_settings

#: The main fork's size on disk, read from the file itself (one segment: the table is small).
FILE_BYTES = "SELECT (pg_stat_file(pg_relation_filepath(%s::regclass))).size"


def test_counts_and_sizes_of_a_table_built_by_hand(mon_url: str) -> None:
    """1,000 rows inserted, 100 deleted by one full scan, then two full counts: 900 live, 100
    dead, 3 sequential scans reading 1,000 + 900 + 900 tuples, no index scan (no index)."""
    with psycopg.connect(to_libpq_url(mon_url), autocommit=True) as conn:
        conn.execute("CREATE TABLE counted (i int, pad text)")
        conn.execute(
            "INSERT INTO counted SELECT i, repeat('x', 200) FROM generate_series(1, 1000) i"
        )
        conn.execute("DELETE FROM counted WHERE i <= 100")
        for _ in range(2):
            assert conn.execute("SELECT count(*) FROM counted").fetchone() == (900,)
        flush_stats(conn)  # a backend reports lazily
        conn.execute("SELECT 1")  # the flush happens at the end of the previous statement
        on_disk = conn.execute(FILE_BYTES, ("counted",)).fetchone()
        assert on_disk is not None
        tables = collect_tables(conn, settings=monitor_settings(mon_url).monitor)
    (table,) = [t for t in tables if t.name == "counted"]
    assert (table.schema, table.live_rows, table.dead_rows) == ("public", 900, 100)
    assert (table.seq_scans, table.seq_tuples_read) == (3, 2800)
    assert table.index_scans is None  # no index: pg_stat_user_tables says NULL, not 0
    assert table.table_bytes == on_disk[0] > 200 * 900
    assert table.indexes_bytes == 0
    assert table.total_bytes >= table.table_bytes + table.toast_bytes


def test_the_largest_first_and_no_more_than_the_limit(mon_url: str) -> None:
    with psycopg.connect(to_libpq_url(mon_url), autocommit=True) as conn:
        for name, rows in (("small", 10), ("large", 5000), ("medium", 500)):
            conn.execute(f"CREATE TABLE {name} AS SELECT i FROM generate_series(1, {rows}) i")
        tables = collect_tables(
            conn, settings=monitor_settings(mon_url, monitor_max_tables=2).monitor
        )
    assert [t.name for t in tables] == ["large", "medium"]
