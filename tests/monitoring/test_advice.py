"""Index advice on a real database: hypopg what-if plans over pg_stat_statements entries."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from dbops.config import to_libpq_url
from dbops.monitoring._fetch import CollectorUnavailable
from dbops.monitoring.advice import Advice, advise, advise_report
from dbops.monitoring.collectors.statements import extension_version, top_statements
from dbops.monitoring.snapshot import QueryStat
from tests.fixtures.db import create_extension_or_skip
from tests.fixtures.monitoring import monitor_settings

#: advise() wall time of every test, printed at the end of the module (for the report).

SETUP_SQL = """
CREATE TABLE adv_orders (
    id bigint PRIMARY KEY,
    customer_id int NOT NULL,
    code int NOT NULL,
    flag int NOT NULL,
    status text NOT NULL,
    amount int NOT NULL,
    note text
);
INSERT INTO adv_orders
SELECT g, g % 5000, g, g % 2, 'status_' || (g % 7000), g % 1000, repeat('x', 40)
FROM generate_series(1, 50000) AS g;
ANALYZE adv_orders;
"""


@pytest.fixture
def adv_url(mon_url: str) -> str:
    """The monitoring test database with hypopg and a 50k-row table without secondary indexes."""
    with psycopg.connect(to_libpq_url(mon_url), autocommit=True) as conn:
        create_extension_or_skip(conn, "hypopg")
        conn.execute(SETUP_SQL)
    return mon_url


@pytest.fixture
def conn(adv_url: str) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection, as the pool hands out."""
    with psycopg.connect(to_libpq_url(adv_url), autocommit=True) as connection:
        yield connection


def run(conn: psycopg.Connection[Any], query: str, *args: list[Any]) -> None:
    """Run ``query`` once per parameter tuple (server-side binds, so pg_stat_statements has $n)."""
    for params in args:
        conn.execute(query, params, prepare=False)


def workload(conn: psycopg.Connection[Any], url: str) -> list[QueryStat]:
    """This database's top statements, as the statements collector reports them."""
    settings = monitor_settings(url)
    version = extension_version(conn, settings=settings.monitor)
    return [
        s
        for s in top_statements(conn, settings=settings.monitor, version=version)
        if s.query
        and "adv_orders" in s.query
        and s.query.lstrip().upper().startswith(("SELECT", "UPDATE"))
    ]


def timed(name: str, conn: psycopg.Connection[Any], stats: list[QueryStat], **kw: Any) -> Advice:
    """advise_report() with the tests' settings (``name`` says which case it is)."""
    return advise_report(conn, stats, settings=monitor_settings("postgresql:///x", **kw))


def uses_index(plan: Any, name: str) -> bool:
    """True when a plan node scans index ``name``."""
    if isinstance(plan, dict):
        if plan.get("Index Name") == name:
            return True
        return any(uses_index(child, name) for child in plan.get("Plans", ()))
    return False


def test_slow_unindexed_query_gets_a_verified_suggestion(conn: Any, adv_url: str) -> None:
    run(conn, "SELECT * FROM adv_orders WHERE customer_id = %s", *[[i] for i in range(5)])
    stats = workload(conn, adv_url)
    broken = QueryStat(
        **{**stats[0].__dict__, "queryid": -1, "query": "SELECT * FROM adv_orders WHERE"}
    )
    started = time.perf_counter()
    advice = timed("one slow query", conn, [*stats, broken])
    took_ms = (time.perf_counter() - started) * 1000
    assert 1 < advice.elapsed_ms <= took_ms  # its own time, in milliseconds

    assert len(advice.suggestions) == 1
    suggestion = advice.suggestions[0]
    assert (suggestion.table, suggestion.columns, suggestion.using) == (
        "adv_orders",
        ("customer_id",),
        "btree",
    )
    assert suggestion.create_sql.startswith("CREATE INDEX CONCURRENTLY ")
    assert suggestion.queryids == (stats[0].queryid,)
    gain = suggestion.statements[0]
    assert gain.cost_after * 2 <= gain.cost_before
    # Time saved: the statement's own calls and mean time (the collector's numbers, the input)
    # times the share of its cost the index cuts, never its whole execution time.
    stat = stats[0]
    assert (gain.calls, gain.mean_exec_time_ms) == (stat.calls, stat.mean_exec_time_ms)
    whole = stat.calls * stat.mean_exec_time_ms
    assert gain.saved_ms == pytest.approx(whole * (1 - gain.cost_after / gain.cost_before))
    assert 0 < gain.saved_ms < whole
    assert suggestion.saved_ms == pytest.approx(gain.saved_ms)
    assert "hypothetical" in suggestion.reason
    assert any(r.queryid == -1 and "pglast" in r.reason for r in advice.rejected)
    # Nothing left behind: no hypothetical index, no real one, no open transaction.
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    assert conn.execute("SELECT count(*) FROM hypopg_list_indexes").fetchone()[0] == 0
    assert (
        conn.execute("SELECT count(*) FROM pg_indexes WHERE tablename = 'adv_orders'").fetchone()[0]
        == 1
    )

    conn.execute(suggestion.create_sql)  # CONCURRENTLY: autocommit, outside a transaction
    plan = conn.execute(
        "EXPLAIN (FORMAT JSON) SELECT * FROM adv_orders WHERE customer_id = 42"
    ).fetchone()[0][0]["Plan"]
    name = suggestion.create_sql.split()[3].strip('"')
    assert uses_index(plan, name), plan
    # Once the index exists, the same workload gets no suggestion for that column any more.
    assert advise(conn, stats, settings=monitor_settings(adv_url)) == ()


def test_no_suggestion_on_a_column_an_index_already_leads(conn: Any, adv_url: str) -> None:
    conn.execute("CREATE INDEX adv_orders_status_amount ON adv_orders (status, amount)")
    run(conn, "SELECT * FROM adv_orders WHERE status = %s", *[[f"status_{i}"] for i in range(5)])
    advice = timed("column already indexed", conn, workload(conn, adv_url))
    assert advice.suggestions == ()
    assert any("already leading" in r.reason for r in advice.rejected)


def test_two_statements_on_the_same_columns_share_one_suggestion(conn: Any, adv_url: str) -> None:
    run(conn, "SELECT id FROM adv_orders WHERE customer_id = %s", *[[i] for i in range(4)])
    run(conn, "SELECT count(*) FROM adv_orders WHERE customer_id = %s", *[[i] for i in range(4)])
    run(
        conn,
        "SELECT amount FROM adv_orders WHERE customer_id = %s ORDER BY amount",
        *[[i] for i in range(4)],
    )
    stats = workload(conn, adv_url)
    assert len(stats) == 3
    advice = timed("three statements, one table", conn, stats)
    assert len(advice.suggestions) == 1, advice.suggestions
    suggestion = advice.suggestions[0]
    assert suggestion.columns[0] == "customer_id"
    assert set(suggestion.queryids) == {s.queryid for s in stats}
    assert suggestion.saved_ms == pytest.approx(sum(g.saved_ms for g in suggestion.statements))


def test_a_wider_index_serves_the_statements_of_its_prefix(conn: Any, adv_url: str) -> None:
    """(customer_id, status) is tried for the customer_id-only statement too: one index, not two."""
    run(conn, "SELECT id FROM adv_orders WHERE customer_id = %s", *[[i] for i in range(6)])
    run(
        conn,
        "SELECT id FROM adv_orders WHERE customer_id = %s AND status = %s",
        *[[i, f"status_{i}"] for i in range(6)],
    )
    stats = workload(conn, adv_url)
    assert len(stats) == 2
    advice = timed("a prefix", conn, stats)
    assert [(s.columns, set(s.queryids)) for s in advice.suggestions] == [
        (("customer_id", "status"), {s.queryid for s in stats})
    ]


def test_a_candidate_that_does_not_cut_the_cost_is_dropped(conn: Any, adv_url: str) -> None:
    # flag has two values: the generic plan reads half the table, an index does not help.
    run(conn, "SELECT * FROM adv_orders WHERE flag = %s", [0], [1], [0])
    advice = timed("useless candidate", conn, workload(conn, adv_url))
    assert advice.suggestions == ()
    assert any(r.columns == ("flag",) for r in advice.rejected), advice.rejected


def test_the_cost_factor_setting_drops_a_small_cut(conn: Any, adv_url: str) -> None:
    run(conn, "SELECT * FROM adv_orders WHERE customer_id = %s", [1], [2], [3])
    stats = workload(conn, adv_url)
    advice = timed("factor too high", conn, stats, advice_min_cost_factor=1e9)
    assert advice.suggestions == ()
    assert any("cut" in r.reason and r.columns == ("customer_id",) for r in advice.rejected)
    assert advise(conn, stats, settings=monitor_settings(adv_url))  # default factor keeps it


def test_an_updated_column_mentions_the_write_cost(conn: Any, adv_url: str) -> None:
    run(conn, "SELECT * FROM adv_orders WHERE code = %s", *[[i] for i in range(8)])
    run(conn, "UPDATE adv_orders SET code = %s WHERE id = %s", *[[i, i] for i in range(1, 301)])
    run(conn, "SELECT * FROM adv_orders WHERE customer_id = %s", *[[i] for i in range(8)])
    stats = workload(conn, adv_url)
    advice = timed("updated column", conn, stats)
    by_column = {s.columns: s for s in advice.suggestions}
    code = by_column[("code",)]
    # Write cost: every call of the UPDATE that sets the column, times its mean time, times
    # the update overhead setting (the UPDATE's numbers are the collector's, the input).
    update = next(s for s in stats if (s.query or "").upper().startswith("UPDATE"))
    overhead = monitor_settings("postgresql:///x").advice_update_overhead
    assert code.write_ms == pytest.approx(update.calls * update.mean_exec_time_ms * overhead)
    assert code.write_ms > 0
    assert code.write_note is not None
    assert "HOT" in code.write_note
    assert "Write cost" in code.reason
    assert "300 calls" in code.reason
    customer = by_column[("customer_id",)]
    assert customer.write_ms == 0
    assert "Write cost" not in customer.reason


def test_without_hypopg_the_error_says_how_to_install_it(mon_conn: Any, mon_url: str) -> None:
    with pytest.raises(CollectorUnavailable) as info:
        advise(mon_conn, [], settings=monitor_settings(mon_url))
    assert info.value.hint is not None
    assert "CREATE EXTENSION hypopg" in info.value.hint
    assert "hypopg" in info.value.hint.split(";")[1]
