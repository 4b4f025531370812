"""Index collector: unused, duplicate/covered, invalid and bloat, on a real database."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from dbops.db import Database
from dbops.monitoring import Severity, collect_snapshot, evaluate
from dbops.monitoring.collectors.indexes import IndexRow, find_covering
from dbops.monitoring.snapshot import IndexStat, Snapshot
from tests.fixtures.db import flush_stats
from tests.fixtures.monitoring import monitor_settings

SETUP = """
CREATE TABLE items (id bigint PRIMARY KEY, a int NOT NULL, b int NOT NULL, c text);
INSERT INTO items SELECT g, g % 100, g % 7, md5(g::text) FROM generate_series(1, 5000) AS g;
CREATE INDEX ix_items_a ON items (a);
CREATE INDEX ix_items_a_b ON items (a, b);
CREATE INDEX ix_items_a_copy ON items (a);
CREATE INDEX ix_items_b_desc ON items (b DESC);
CREATE INDEX ix_items_c_partial ON items (c) WHERE b = 1;
CREATE INDEX ix_items_c ON items (c);
CREATE UNIQUE INDEX uq_items_a_b ON items (a, b, id);
CREATE INDEX ix_items_never_used ON items (c, b);
ANALYZE items;
"""


def _indexes(snap: Snapshot) -> dict[str, IndexStat]:
    assert snap.indexes is not None
    return {ix.name: ix for ix in snap.indexes}


def test_indexes_structure_unused_and_covered(
    mon_db: Database, mon_conn: psycopg.Connection, mon_url: str
) -> None:
    mon_conn.execute(SETUP)
    # Use one index so that it is not "unused".
    mon_conn.execute("SET enable_seqscan = off")
    mon_conn.execute("SELECT count(*) FROM items WHERE b = 3").fetchone()
    flush_stats(mon_conn)  # a backend reports lazily
    settings = monitor_settings(mon_url)
    snap = collect_snapshot(mon_db, settings)
    assert snap.errors == ()
    ix = _indexes(snap)
    assert set(ix) >= {"items_pkey", "ix_items_a", "ix_items_never_used", "uq_items_a_b"}
    never = ix["ix_items_never_used"]
    assert never.scans == 0
    assert never.size_bytes > 0
    assert never.is_valid
    assert ix["items_pkey"].is_primary
    assert ix["items_pkey"].is_constraint
    assert (ix["ix_items_b_desc"].scans or 0) >= 1
    # (a) is a prefix of (a, b); its exact copy is reported once, against the first name.
    assert ix["ix_items_a"].covered_by == "ix_items_a_b"
    assert ix["ix_items_a_copy"].covered_by in {"ix_items_a", "ix_items_a_b"}
    # (c) is a prefix of (c, b). Different predicate, unique, primary: not covered.
    assert ix["ix_items_c_partial"].covered_by is None
    assert ix["ix_items_c"].covered_by == "ix_items_never_used"
    assert ix["uq_items_a_b"].covered_by is None
    assert ix["items_pkey"].covered_by is None
    # Bloat estimate exists for analyzed btree indexes.
    assert ix["ix_items_a_b"].bloat_bytes is not None

    findings = evaluate(snap, settings)
    unused = {f.subject for f in findings if f.check == "unused_indexes" and f.subject}
    dups = {f.subject for f in findings if f.check == "duplicate_indexes" and f.subject}
    assert "public.ix_items_never_used" in unused
    assert "public.items_pkey" not in unused
    assert "public.uq_items_a_b" not in unused
    assert "public.ix_items_b_desc" not in unused
    # (a, b) is itself a prefix of the unique (a, b, id): a non-unique index is covered by it.
    assert dups == {
        "public.ix_items_a",
        "public.ix_items_a_copy",
        "public.ix_items_a_b",
        "public.ix_items_c",
    }
    assert all(f.severity == Severity.WARNING for f in findings if f.check == "duplicate_indexes")


def test_invalid_index_is_reported(
    mon_db: Database, mon_conn: psycopg.Connection, mon_url: str
) -> None:
    mon_conn.execute("CREATE TABLE dupes (v int)")
    mon_conn.execute("INSERT INTO dupes VALUES (1), (1)")
    with pytest.raises(psycopg.errors.UniqueViolation):
        mon_conn.execute("CREATE UNIQUE INDEX CONCURRENTLY uq_dupes_v ON dupes (v)")
    settings = monitor_settings(mon_url)
    snap = collect_snapshot(mon_db, settings)
    assert _indexes(snap)["uq_dupes_v"].is_valid is False
    found = [f for f in evaluate(snap, settings) if f.check == "invalid_indexes"]
    assert [f.subject for f in found] == ["public.uq_dupes_v"]
    assert "REINDEX INDEX CONCURRENTLY" in (found[0].hint or "")


def _row(name: str, columns: list[int], **kw: object) -> IndexRow:
    values: dict[str, Any] = {
        "schema": "public",
        "table": "t",
        "name": name,
        "method": "btree",
        "definition": "",
        "size_bytes": 8192,
        "scans": 0,
        "tuples_read": 0,
        "is_unique": False,
        "is_primary": False,
        "is_valid": True,
        "is_constraint": False,
        "key_count": len(columns),
        "columns": columns,
        "opclasses": [1] * len(columns),
        "collations": [0] * len(columns),
        "options": [0] * len(columns),
        "expressions": None,
        "predicate": None,
    }
    values.update(kw)
    return IndexRow(**values)


def test_find_covering_rules() -> None:
    rows = [
        _row("a", [1]),
        _row("ab", [1, 2]),
        _row("uq_a", [1], is_unique=True),
        _row("uq_ab", [1, 2], is_unique=True),
        _row("hash_a", [1], method="hash"),
        _row("a_where", [1], predicate="(x > 1)"),
        _row("a_incl", [1, 3], key_count=1),
        _row("other_table_a", [1], table="u"),
        _row("ab_invalid", [1, 2, 4], is_valid=False),
    ]
    covered = find_covering(rows)
    # uq_a is not covered by uq_ab (it enforces more); hash, partial, INCLUDE, other table: no.
    assert covered == {"public.a": "ab", "public.ab": "uq_ab"}
    # A unique index is covered only by an identical unique index, a constraint's one is kept.
    twins = [
        _row("uq_x", [5], is_unique=True, is_constraint=True),
        _row("uq_y", [5], is_unique=True),
    ]
    assert find_covering(twins) == {"public.uq_y": "uq_x"}
    # ... identical INCLUDE columns too: other ones (or none beside some) are another index.
    included = [
        _row("uq_k_b", [1, 2], key_count=1, is_unique=True),
        _row("uq_k_c", [1, 3], key_count=1, is_unique=True),
        _row("uq_k", [1], is_unique=True, table="v"),
        _row("uq_k_d", [1, 4], key_count=1, is_unique=True, table="v"),
    ]
    assert find_covering(included) == {}
    # An invalid index covers nothing.
    assert find_covering([_row("c", [7]), _row("cd", [7, 8], is_valid=False)]) == {}
    # Prefix use is a btree property: a wider index of any other method serves no prefix
    # (brin sorts before btree, gist after it: both kinds of name are checked).
    for method in ("brin", "gist", "gin", "hash", "spgist"):
        same = [_row("m_a", [1], method=method), _row("m_ab", [1, 2], method=method)]
        assert find_covering(same) == {}, method
    # ... while the same keys in the same method still do.
    assert find_covering([_row("m_a", [1], method="brin"), _row("m_a2", [1], method="brin")])


def test_partial_indexes_with_the_same_predicate_text_cover_each_other() -> None:
    """Predicates read from the server are equal strings, not the same object."""
    same = "".join(["(deleted_at ", "IS NULL)"])
    rows = [
        _row("live_a", [1], predicate=same),
        _row("live_ab", [1, 2], predicate="(deleted_at IS NULL)"),
        _row("dead_a", [1], predicate="(deleted_at IS NOT NULL)"),
    ]
    assert find_covering(rows) == {"public.live_a": "live_ab"}
