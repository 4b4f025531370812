"""collect_snapshot: failures stay in their section; pg_monitor is enough; pool and cache."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from dbops.config import MonitorSettings, to_libpq_url
from dbops.db import Database
from dbops.monitoring import Snapshot, collect, collect_snapshot, collectors
from dbops.monitoring._fetch import (
    RESET_TIMEOUT_SQL,
    SET_SESSION_TIMEOUT_SQL,
    fetch,
    one_round_trip_each,
)
from dbops.monitoring.collectors import indexes
from dbops.services import MemoryCache
from tests.fixtures.db import create_extension_or_skip
from tests.fixtures.monitoring import monitor_settings


class _Slept:
    def __init__(self, pg_sleep: str) -> None:
        self.pg_sleep = pg_sleep


def _slow_tables(conn: psycopg.Connection[Any], *, settings: MonitorSettings) -> list[_Slept]:
    return fetch(
        conn,
        "SELECT pg_sleep(2)::text AS pg_sleep",
        _Slept,
        timeout_ms=settings.collector_timeout_ms,
    )


def test_timed_out_collector_is_recorded_and_the_rest_runs(
    mon_db: Database, mon_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(collect.COLLECTORS, "tables", _slow_tables)
    started = time.perf_counter()
    snap = collect_snapshot(mon_db, monitor_settings(mon_url), timeouts_ms={"tables": 50})
    assert time.perf_counter() - started < 1.5
    assert snap.tables is None
    err = snap.error("tables")
    assert err is not None
    assert err.message == "timed out after 50 ms"
    assert err.hint
    assert "DBOPS_MONITOR_COLLECTOR_TIMEOUT_MS" in err.hint
    assert 0.04 < err.elapsed_s < 1.0
    assert [e.collector for e in snap.errors] == ["tables"]
    # Every other section is there, and the timeout did not leak into later collectors.
    assert snap.indexes is not None
    assert snap.statements is not None
    assert snap.activity is not None
    assert snap.activity.sessions is not None
    assert snap.database is not None
    assert snap.database.settings is not None


def test_collector_timeouts_do_not_leak_into_the_pooled_connection(mon_url: str) -> None:
    url = to_libpq_url(mon_url)
    opts = {"options": "-c statement_timeout=30000"}
    with ConnectionPool(url, min_size=1, max_size=1, kwargs=opts, open=True) as pool:
        snap = collect_snapshot(pool, monitor_settings(mon_url, monitor_collector_timeout_ms=1234))
        assert snap.errors == ()
        with pool.connection() as conn:
            assert conn.execute("SHOW statement_timeout").fetchone() == ("30s",)


class _Counting(psycopg.Connection[Any]):
    """Counts what goes through ``execute`` (the timeout settings; queries use a cursor)."""

    sent: list[str]

    def execute(self, query: Any, *args: Any, **kwargs: Any) -> Any:
        self.sent.append(str(query))
        return super().execute(query, *args, **kwargs)


@dataclass(frozen=True)
class _One:
    one: int


def test_one_round_trip_each_sends_the_timeout_only_when_it_changes(mon_url: str) -> None:
    """Inside ``one_round_trip_each`` a fetch is its query alone (no BEGIN/COMMIT), preceded by
    the session timeout only when it differs from the last one sent; the timeout still cancels;
    on exit the connection has its own timeout back."""
    with _Counting.connect(to_libpq_url(mon_url), options="-c statement_timeout=30000") as conn:
        conn.sent = []
        with one_round_trip_each(conn):
            for _ in range(3):
                assert fetch(conn, "SELECT 1 AS one", _One, timeout_ms=1234) == [_One(1)]
            assert conn.sent == [SET_SESSION_TIMEOUT_SQL]
            assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
            with conn.cursor() as cur:
                assert cur.execute("SHOW statement_timeout").fetchone() == ("1234ms",)
            with pytest.raises(psycopg.errors.QueryCanceled):
                fetch(conn, "SELECT 1 AS one FROM pg_sleep(1)", _One, timeout_ms=50)
            assert fetch(conn, "SELECT 1 AS one", _One, timeout_ms=1234) == [_One(1)]
            assert len(conn.sent) == 3  # 1234, 50, 1234 again
        assert conn.sent[-1] == RESET_TIMEOUT_SQL
        with conn.cursor() as cur:
            assert cur.execute("SHOW statement_timeout").fetchone() == ("30s",)


def test_broken_collector_is_recorded_and_the_rest_runs(
    mon_db: Database, mon_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(indexes, "INDEXES_SQL", "SELECT no_such_column FROM pg_class")
    snap = collect_snapshot(mon_db, monitor_settings(mon_url))
    assert snap.indexes is None
    err = snap.error("indexes")
    assert err is not None
    assert err.message.startswith("UndefinedColumn:")
    assert [e.collector for e in snap.errors] == ["indexes"]
    assert snap.tables is not None
    assert snap.statements is not None
    assert snap.server is not None


@pytest.mark.parametrize("section", ["backups", "access"])
def test_a_failing_section_outside_the_database_records_its_own_time(
    mon_db: Database, mon_url: str, monkeypatch: pytest.MonkeyPatch, section: str
) -> None:
    """The backups and access sections read files and counters, not the database."""

    def slow_failure(*_args: Any, **_kwargs: Any) -> None:
        time.sleep(0.3)
        raise OSError("disk went away")

    module = {"backups": collectors.backups, "access": collectors.access}[section]
    monkeypatch.setattr(module, f"collect_{section}", slow_failure)
    started = time.perf_counter()
    snap = collect_snapshot(mon_db, monitor_settings(mon_url))
    total = time.perf_counter() - started
    assert getattr(snap, section) is None
    assert [e.collector for e in snap.errors] == [section]
    err = snap.errors[0]
    assert err.message == "OSError: disk went away"
    # Its own time: from its start to its failure, not the snapshot's whole time (seconds).
    assert 0.3 <= err.elapsed_s < min(total, 0.3 + 0.25)
    assert snap.duration_s >= err.elapsed_s


def test_pg_monitor_member_without_superuser_collects_everything(
    mon_db: Database, mon_conn: psycopg.Connection, mon_url: str, monitor_role: str
) -> None:
    mon_conn.execute("CREATE TABLE secret (id bigserial PRIMARY KEY, v int)")
    mon_conn.execute("CREATE INDEX ix_secret_v ON secret (v)")
    mon_conn.execute("INSERT INTO secret (v) SELECT g FROM generate_series(1, 100) AS g")
    mon_conn.execute("SELECT count(*) FROM secret WHERE v = 7").fetchone()
    url = to_libpq_url(mon_url).replace("postgres@", f"{monitor_role}@", 1)
    settings = monitor_settings(mon_url)
    with ConnectionPool(url, min_size=1, max_size=2, open=True, name="monitor") as pool:
        with pool.connection() as conn:
            row = conn.execute(
                "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
            ).fetchone()
            assert row == (False,)
        snap = collect_snapshot(pool, settings)
    assert snap.errors == (), snap.errors
    assert snap.server is not None
    assert snap.server.current_user == monitor_role
    assert snap.statements is not None
    texts = [q.query or "" for q in snap.statements.top]
    assert any("FROM secret WHERE v" in t for t in texts)  # other roles' text is visible
    assert snap.indexes is not None
    assert "ix_secret_v" in {ix.name for ix in snap.indexes}
    assert snap.database is not None
    assert snap.database.sequences is not None
    seq = next(s for s in snap.database.sequences if s.name == "secret_id_seq")
    assert seq.last_value is None
    assert seq.used_ratio is None
    assert snap.pool is not None
    assert snap.pool.name == "monitor"
    assert snap.pool.max_size == 2


def test_pool_and_cache_counters(mon_db: Database, mon_url: str) -> None:
    cache = MemoryCache(ttl_s=30)
    cache.set("k", 1)
    cache.get("k")
    cache.get("missing")
    collect_snapshot(mon_db, monitor_settings(mon_url))  # one checkout counted before the next
    snap = collect_snapshot(mon_db, monitor_settings(mon_url), cache=cache)
    assert snap.cache is not None
    assert (snap.cache.backend, snap.cache.hits, snap.cache.misses) == ("memory", 1, 1)
    assert snap.pool is not None
    assert snap.pool.max_size == mon_db.settings.pool_max_size
    assert snap.pool.requests >= 1
    assert snap.pool.timeouts == 0


def test_index_advice_runs_only_when_asked(mon_db: Database, mon_url: str) -> None:
    settings = monitor_settings(mon_url)
    with psycopg.connect(to_libpq_url(mon_url), autocommit=True) as conn:
        create_extension_or_skip(conn, "hypopg")
        conn.execute(
            "CREATE TABLE col_orders AS SELECT g AS id, g % 5000 AS customer_id, "
            "repeat('x', 40) AS note FROM generate_series(1, 50000) AS g"
        )
        conn.execute("ANALYZE col_orders")
        for i in range(5):
            conn.execute("SELECT * FROM col_orders WHERE customer_id = %s", [i], prepare=False)

    plain = collect_snapshot(mon_db, settings)
    assert plain.advice is None
    assert plain.error("advice") is None

    snap = collect_snapshot(mon_db, settings, advice=True)
    assert snap.error("advice") is None, snap.errors
    assert snap.advice is not None
    (suggestion,) = [s for s in snap.advice.suggestions if s.table == "col_orders"]
    assert suggestion.columns == ("customer_id",)
    assert suggestion.create_sql.startswith("CREATE INDEX CONCURRENTLY ")
    assert Snapshot.from_json(snap.to_json()) == snap


def test_index_advice_without_hypopg_is_a_recorded_error(mon_db: Database, mon_url: str) -> None:
    snap = collect_snapshot(mon_db, monitor_settings(mon_url), advice=True)
    assert snap.advice is None
    err = snap.error("advice")
    assert err is not None
    assert "hypopg" in err.message
    assert err.hint is not None
    assert "CREATE EXTENSION hypopg" in err.hint
    # The other collectors ran.
    assert snap.statements is not None
    assert snap.indexes is not None


def test_a_failing_cache_is_its_own_error_with_its_own_time(mon_db: Database, mon_url: str) -> None:
    class GoneCache(MemoryCache):
        def stats(self) -> Any:
            time.sleep(0.2)
            raise ConnectionError("redis went away")

    snap = collect_snapshot(mon_db, monitor_settings(mon_url), cache=GoneCache(ttl_s=1))
    assert snap.cache is None
    assert [e.collector for e in snap.errors] == ["cache"]
    err = snap.errors[0]
    assert err.message == "ConnectionError: redis went away"
    assert 0.2 <= err.elapsed_s < 0.2 + 0.25
    assert snap.statements is not None  # the rest was collected
