"""The advisor's reading of a statement and its candidate columns, without a database.

Each row is a statement as pg_stat_statements keeps it and what a person reading it sees:
the one table, the columns compared with a value (equality or range), the ORDER BY prefix,
the updated columns, or why the advisor must skip it. The database-bound half (hypopg, the
planner's verdict, the write cost) is tested in test_advice.py.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import pytest

from dbops.monitoring.advice import (
    _candidates,
    _parse,
    _Parsed,
    _Relation,
    _select,
    _Skip,
    _write_cost,
    _Writes,
    cuts_enough,
)
from dbops.monitoring.snapshot import QueryStat, StatementGain
from tests.fixtures.db import make_settings


def _stat(query: str | None) -> QueryStat:
    return QueryStat(
        queryid=1,
        query=query,
        user="app",
        database="dbops",
        calls=10,
        total_exec_time_ms=100.0,
        mean_exec_time_ms=10.0,
        max_exec_time_ms=20.0,
        stddev_exec_time_ms=1.0,
        rows=10,
        shared_blks_hit=0,
        shared_blks_read=0,
        temp_blks_read=0,
        temp_blks_written=0,
        total_plan_time_ms=None,
        blk_read_time_ms=None,
        blk_write_time_ms=None,
    )


#: query -> (kind, schema, table, params, equality, ranges, order, updates)
READS: list[tuple[str, tuple[object, ...]]] = [
    (
        "SELECT * FROM users WHERE email = $1",
        ("select", None, "users", 1, ["email"], [], [], []),
    ),
    (
        "SELECT * FROM public.users u WHERE u.team = $1 AND $2 < u.created_at "
        "ORDER BY u.created_at, u.id",
        ("select", "public", "users", 2, ["team"], ["created_at"], ["created_at", "id"], []),
    ),
    ("SELECT id FROM users WHERE $1 = email", ("select", None, "users", 1, ["email"], [], [], [])),
    ("SELECT id FROM users WHERE $1 >= age", ("select", None, "users", 1, [], ["age"], [], [])),
    ("SELECT id FROM users WHERE $1 <> age", ("select", None, "users", 1, [], [], [], [])),
    ("SELECT id FROM users WHERE age <= 3", ("select", None, "users", 0, [], ["age"], [], [])),
    ("SELECT id FROM users WHERE age > $1", ("select", None, "users", 1, [], ["age"], [], [])),
    ("SELECT id FROM users WHERE age <> $1", ("select", None, "users", 1, [], [], [], [])),
    ("SELECT id FROM users WHERE id = ANY($1)", ("select", None, "users", 1, ["id"], [], [], [])),
    ("SELECT id FROM users WHERE id > ANY($1)", ("select", None, "users", 1, [], [], [], [])),
    (
        "SELECT id FROM users WHERE id IN ($1, $2, 3)",
        ("select", None, "users", 2, ["id"], [], [], []),
    ),
    ("SELECT id FROM users WHERE id NOT IN ($1, $2)", ("select", None, "users", 2, [], [], [], [])),
    (
        "SELECT id FROM users WHERE id IN ($1, lower($2))",
        ("select", None, "users", 2, [], [], [], []),
    ),
    (
        "SELECT id FROM users WHERE created_at BETWEEN $1 AND $2",
        ("select", None, "users", 2, [], ["created_at"], [], []),
    ),
    (
        "SELECT id FROM users WHERE created_at NOT BETWEEN $1 AND $2",
        ("select", None, "users", 2, [], [], [], []),
    ),
    (
        "SELECT id FROM users WHERE created_at BETWEEN SYMMETRIC $1 AND $2",
        ("select", None, "users", 2, [], [], [], []),
    ),
    (
        "SELECT id FROM users WHERE created_at BETWEEN $1 AND now()",
        ("select", None, "users", 1, [], [], [], []),
    ),
    (
        "SELECT id FROM users WHERE deleted_at IS NULL",
        ("select", None, "users", 0, ["deleted_at"], [], [], []),
    ),
    (
        "SELECT id FROM users WHERE deleted_at IS NOT NULL",
        ("select", None, "users", 0, [], [], [], []),
    ),
    (
        "SELECT id FROM users WHERE lower(email) IS NULL",
        ("select", None, "users", 0, [], [], [], []),
    ),
    ("SELECT id FROM users WHERE a = $1 OR b = $2", ("select", None, "users", 2, [], [], [], [])),
    ("SELECT id FROM users WHERE NOT (a = $1)", ("select", None, "users", 1, [], [], [], [])),
    ("SELECT id FROM users WHERE a = b", ("select", None, "users", 0, [], [], [], [])),
    ("SELECT id FROM users WHERE a = $1::int", ("select", None, "users", 1, ["a"], [], [], [])),
    (
        "SELECT id FROM users WHERE a = $1::text::varchar",
        ("select", None, "users", 1, ["a"], [], [], []),
    ),
    ("SELECT id FROM users WHERE a = lower($1)", ("select", None, "users", 1, [], [], [], [])),
    ("SELECT id FROM users WHERE lower(email) = $1", ("select", None, "users", 1, [], [], [], [])),
    ("SELECT id FROM users WHERE email LIKE $1", ("select", None, "users", 1, [], [], [], [])),
    ("SELECT id FROM users WHERE x.a = $1", ("select", None, "users", 1, [], [], [], [])),
    ("SELECT id FROM users WHERE users.a = $1", ("select", None, "users", 1, ["a"], [], [], [])),
    ("SELECT id FROM users u WHERE users.a = $1", ("select", None, "users", 1, [], [], [], [])),
    ("SELECT id FROM users WHERE s.users.a = $1", ("select", None, "users", 1, [], [], [], [])),
    (
        "SELECT id FROM users WHERE a = $3 AND b = $1",
        ("select", None, "users", 3, ["a", "b"], [], [], []),
    ),
    (
        "SELECT id FROM users WHERE a = $1 AND (b = $2 AND c > $3)",
        ("select", None, "users", 3, ["a", "b"], ["c"], [], []),
    ),
    (
        "SELECT id FROM users ORDER BY name, lower(email), id",
        ("select", None, "users", 0, [], [], ["name"], []),
    ),
    (
        "SELECT id FROM users ORDER BY lower(email), id",
        ("select", None, "users", 0, [], [], [], []),
    ),
    (
        "UPDATE users SET display_name = $1, updated_at = now() WHERE id = $2",
        ("update", None, "users", 2, ["id"], [], [], ["display_name", "updated_at"]),
    ),
    (
        "DELETE FROM app.sessions WHERE expires_at < $1",
        ("delete", "app", "sessions", 1, [], ["expires_at"], [], []),
    ),
    ("DELETE FROM sessions s WHERE s.id = $1", ("delete", None, "sessions", 1, ["id"], [], [], [])),
]


@pytest.mark.parametrize(("query", "expected"), READS, ids=[q for q, _ in READS])
def test_a_statement_is_read_as_a_person_reads_it(query: str, expected: tuple[object, ...]) -> None:
    parsed = _parse(_stat(query))
    got = (
        parsed.kind,
        parsed.schema,
        parsed.table,
        parsed.params,
        parsed.equality,
        parsed.ranges,
        parsed.order,
        parsed.updates,
    )
    assert got == expected


def test_the_text_is_the_one_statement_re_deparsed() -> None:
    parsed = _parse(_stat("select *   from users\n where email = $1 -- a comment"))
    assert parsed.text == "SELECT * FROM users WHERE email = $1"


SKIPS = [
    (None, "no query text"),
    ("", "no query text"),
    ("SELEC * FROM users", "pglast cannot parse it"),
    ("SELECT 1; SELECT 2", "not exactly one statement"),
    (";", "not exactly one statement"),  # no statement at all
    ("-- only a comment", "not exactly one statement"),
    ("SELECT a FROM t UNION SELECT a FROM u", "set operation (UNION/INTERSECT/EXCEPT)"),
    ("WITH x AS (SELECT 1) SELECT * FROM x", "WITH query"),
    ("WITH x AS (SELECT 1) UPDATE t SET a = 1", "WITH query"),
    ("WITH x AS (SELECT 1) DELETE FROM t", "WITH query"),
    ("SELECT * FROM a, b", "not a single-table query"),
    ("SELECT * FROM a JOIN b ON a.id = b.id", "not a single-table query"),
    ("SELECT 1", "not a single-table query"),
    ("SELECT * FROM (SELECT 1) s", "not a single-table query"),
    ("UPDATE a SET x = 1 FROM b WHERE a.id = b.id", "not a single-table statement"),
    ("DELETE FROM a USING b WHERE a.id = b.id", "not a single-table statement"),
    ("INSERT INTO a VALUES ($1)", "InsertStmt is not SELECT, UPDATE or DELETE"),
]


@pytest.mark.parametrize(("query", "reason"), SKIPS, ids=[str(q) for q, _ in SKIPS])
def test_a_statement_the_advisor_cannot_use_says_why(query: str | None, reason: str) -> None:
    with pytest.raises(_Skip) as err:
        _parse(_stat(query))
    assert str(err.value).startswith(reason)


def _parsed(equality: list[str], ranges: list[str], order: list[str]) -> _Parsed:
    return _Parsed(
        stat=_stat("SELECT 1"),
        schema=None,
        table="t",
        text="",
        params=0,
        equality=list(equality),
        ranges=list(ranges),
        order=list(order),
    )


COLUMNS = {"a", "b", "c", "d", "e"}

#: (equality, ranges, order, leading) -> candidates
CANDIDATES: list[tuple[list[str], list[str], list[str], set[str], list[tuple[str, ...]]]] = [
    # equality sorted by name, then the first range; the order as a second tail
    (["b", "a"], ["c", "e"], ["d"], set(), [("a", "b", "c"), ("a", "b", "d")]),
    # an order starting with the range adds nothing
    (["a"], ["c"], ["c", "d"], set(), [("a", "c")]),
    (["a"], ["c", "e"], ["c", "d"], set(), [("a", "c")]),  # only the first range counts
    (["a"], ["c"], ["d", "c"], set(), [("a", "c"), ("a", "d", "c")]),
    # columns the table does not have are dropped, duplicates counted once
    (["a", "zz", "a"], ["yy"], [], set(), [("a",)]),
    # a range or order column that is also an equality column is not repeated
    (["a"], ["a", "c"], ["a", "d"], set(), [("a", "c"), ("a", "d")]),
    # an existing index leading with the first column: the candidate starts after it
    (["a", "b"], [], [], {"a"}, [("b",)]),
    (["a", "b"], [], [], {"a", "b"}, []),
    (["a", "b"], [], [], {"b"}, [("a", "b")]),
    ([], [], [], set(), []),
    ([], ["c"], [], set(), [("c",)]),
    ([], [], ["d", "e"], set(), [("d", "e")]),
]


@pytest.mark.parametrize(("equality", "ranges", "order", "leading", "expected"), CANDIDATES)
def test_candidates_are_equality_columns_then_one_range_or_the_order(
    equality: list[str],
    ranges: list[str],
    order: list[str],
    leading: set[str],
    expected: list[tuple[str, ...]],
) -> None:
    assert _candidates(_parsed(equality, ranges, order), COLUMNS, leading) == expected


def _updater(query: str, queryid: int, calls: int, mean_ms: float) -> _Parsed:
    stat = dataclasses.replace(
        _stat(query), queryid=queryid, calls=calls, mean_exec_time_ms=mean_ms
    )
    return _parse(stat)


ADVICE = make_settings("postgresql://unused/none", advice_update_overhead=0.5).advice


def test_write_cost_counts_only_the_updates_that_set_a_candidate_column() -> None:
    updaters = [
        _updater("UPDATE t SET a = $1 WHERE id = $2", 11, 3, 2.0),
        _updater("UPDATE t SET b = $1, c = $2 WHERE id = $3", 12, 5, 4.0),
        _updater("UPDATE t SET d = $1 WHERE id = $2", 13, 1_000, 9.0),  # sets no candidate column
    ]
    writes = _Writes(inserts=10, updates=8, hot_updates=6, deletes=2)
    write_ms, note = _write_cost(("a", "c"), updaters, writes, ADVICE)
    # (3 calls x 2.0 ms + 5 calls x 4.0 ms) x 50 % overhead
    assert write_ms == 13.0
    assert note == (
        "Write cost: UPDATE statements (11, 12; 8 calls) set a, c, so with this index those "
        "updates can no longer be HOT and must write every index of the table (about 13 ms "
        "more at 50% extra per update); the table had 8 updates (75% HOT), 10 inserts and "
        "2 deletes since the statistics reset."
    )


def test_write_cost_without_a_touching_update() -> None:
    updaters = [_updater("UPDATE t SET d = $1 WHERE id = $2", 13, 7, 9.0)]
    busy = _Writes(inserts=4, updates=3, hot_updates=1, deletes=0)
    assert _write_cost(("a",), updaters, busy, ADVICE) == (
        0.0,
        "No workload UPDATE sets a; the table had 3 updates (33% HOT), 4 inserts and 0 deletes "
        "since the statistics reset.",
    )
    quiet = _Writes(inserts=4, updates=0, hot_updates=0, deletes=1)
    assert _write_cost(("a",), updaters, quiet, ADVICE) == (0.0, None)
    write_ms, note = _write_cost(("d",), updaters, quiet, ADVICE)
    assert write_ms == 31.5
    assert note is not None
    assert note.endswith("the table had 4 inserts and 1 deletes and no updates.")


# -- the greedy cover (pure: candidates with hand-made gains) ---------------------------------

RELATION = _Relation(oid=1, schema="public", table="t")
NO_WRITES = _Writes(inserts=0, updates=0, hot_updates=0, deletes=0)


def _gain(queryid: int, saved_ms: float) -> StatementGain:
    return StatementGain(
        queryid=queryid,
        calls=4,
        mean_exec_time_ms=saved_ms,
        cost_before=400.0,
        cost_after=4.0,
        saved_ms=saved_ms,
    )


def _pick(
    evaluated: Sequence[tuple[tuple[str, ...], dict[int, StatementGain]]],
    updaters: list[_Parsed] = [],  # noqa: B006 - never mutated
    writes: _Writes = NO_WRITES,
) -> list[tuple[tuple[str, ...], tuple[int | None, ...], float]]:
    chosen = _select(RELATION, list(evaluated), [], updaters, writes, ADVICE)
    return [(s.columns, s.queryids, s.saved_ms) for s in chosen]


def test_the_cover_takes_the_biggest_net_saving_first_and_never_counts_a_statement_twice() -> None:
    evaluated = [
        (("a",), {0: _gain(10, 30.0), 1: _gain(11, 5.0)}),
        (("b",), {1: _gain(11, 20.0), 2: _gain(12, 12.0)}),
        (("c",), {2: _gain(12, 1.0)}),  # its one statement is served by b already
    ]
    # a saves 35 ms (10 and 11), b then only what 11 does not: 12 ms; c nothing new.
    assert _pick(evaluated) == [(("a",), (10, 11), 35.0), (("b",), (12,), 12.0)]


def test_a_tie_goes_to_more_statements_then_to_the_narrower_index() -> None:
    wide = (("a", "b"), {0: _gain(10, 10.0)})
    narrow = (("a",), {0: _gain(10, 10.0)})
    assert _pick([wide, narrow]) == [(("a",), (10,), 10.0)]
    assert _pick([narrow, wide]) == [(("a",), (10,), 10.0)]
    two = (("a", "b"), {0: _gain(10, 6.0), 1: _gain(11, 4.0)})
    assert _pick([narrow, two]) == [(("a", "b"), (10, 11), 10.0)]
    assert _pick([two, narrow]) == [(("a", "b"), (10, 11), 10.0)]


def test_a_candidate_whose_write_cost_eats_its_saving_is_not_suggested() -> None:
    # 2 calls x 5 ms x 50 % overhead = 5 ms of extra writes for an index on a.
    updaters = [_updater("UPDATE t SET a = $1 WHERE id = $2", 20, 2, 5.0)]
    writes = _Writes(inserts=0, updates=2, hot_updates=2, deletes=0)
    assert _pick([(("a",), {0: _gain(10, 5.0)})], updaters, writes) == []  # net 0: not worth it
    picked = _select(RELATION, [(("a",), {0: _gain(10, 5.5)})], [], updaters, writes, ADVICE)
    assert [(s.saved_ms, s.write_ms) for s in picked] == [(5.5, 5.0)]
    assert picked[0].reason.startswith(
        "The planner uses a hypothetical btree on t (a) for 1 statement (10: cost 400 -> 4 over "
        "4 calls); estimated 6 ms of execution time saved, 5 ms of extra write time. Write cost: "
    )
    # The write cost ranks too: a smaller saving without writes beats a bigger one with them.
    evaluated = [(("a",), {0: _gain(10, 9.0)}), (("b",), {0: _gain(10, 7.0)})]
    assert _pick(evaluated, updaters, writes) == [(("b",), (10,), 7.0)]


def test_a_suggestion_reason_counts_its_statements() -> None:
    two = _select(
        RELATION, [(("a",), {0: _gain(10, 2.0), 1: _gain(11, 3.0)})], [], [], NO_WRITES, ADVICE
    )
    assert two[0].reason == (
        "The planner uses a hypothetical btree on t (a) for 2 statements (10: cost 400 -> 4 over "
        "4 calls; 11: cost 400 -> 4 over 4 calls); estimated 5 ms of execution time saved."
    )
    assert (
        two[0].create_sql == 'CREATE INDEX CONCURRENTLY "t_a_idx" ON "public"."t" USING btree ("a")'
    )
    assert _pick([(("a",), {0: _gain(10, 0.0)})]) == []


def test_a_suggested_index_name_fits_postgresql_s_63_bytes() -> None:
    from dbops.monitoring.advice import _index_name

    assert _index_name("t", ["a", "b"]) == "t_a_b_idx"
    long = _index_name("team_members_archive", ["organization_id", "created_at", "deleted_at_x"])
    assert long == "team_members_archive_organization_id_created_at_deleted_at_x_idx"[:63]
    assert len(long) == 63


@pytest.mark.parametrize(
    ("before", "after", "factor", "kept"),
    [
        (10.0, 5.0, 2.0, True),  # exactly the factor: "at least" (docs/settings.md)
        (10.0, 5.01, 2.0, False),  # just short of it
        (10.0, 4.99, 2.0, True),
        (9.0, 6.0, 1.5, True),
        (10.0, 0.0, 2.0, False),  # no cost after: no measurement, never a cut
        (10.0, -1.0, 2.0, False),
    ],
)
def test_a_cost_cut_counts_from_exactly_the_factor(
    before: float, after: float, factor: float, kept: bool
) -> None:
    assert cuts_enough(before, after, factor) is kept
