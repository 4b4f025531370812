"""Engine and pool: session settings, pool limits, timeouts, prepared statements, pre-ping."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import make_url, text

from dbops.config import to_libpq_url
from dbops.db import Database, EmbeddedCluster, connection_kwargs, open_database
from dbops.errors import DatabaseUnavailable, LockTimeout, OperationTimeout
from tests.fixtures.db import make_settings

SHOW_SESSION_SETTINGS = """
SELECT current_setting('statement_timeout'),
       current_setting('lock_timeout'),
       current_setting('idle_in_transaction_session_timeout'),
       current_setting('application_name')
"""
BACKEND_PID = "SELECT pg_backend_pid()"
APPLICATION_NAME_OF = "SELECT application_name FROM pg_stat_activity WHERE pid = %(pid)s"
#: The read whose preparation is checked; psycopg sends it as ``... = $1``.
POINT_READ = "SELECT count(*) FROM users WHERE email = :email"
POINT_READ_SERVER_FORM = "SELECT count(*) FROM users WHERE email = $1"
PREPARED_COUNT = "SELECT count(*) FROM pg_prepared_statements WHERE statement = %(statement)s"
ALL_PREPARED_COUNT = "SELECT count(*) FROM pg_prepared_statements"
TERMINATE = "SELECT pg_terminate_backend(%(pid)s)"
BACKEND_ALIVE = "SELECT count(*) FROM pg_stat_activity WHERE pid = %(pid)s"

DatabaseFactory = Callable[..., Database]


@pytest.fixture
def open_db(migrated: str) -> Iterator[DatabaseFactory]:
    """Open a private :class:`Database` on the migrated test database with setting overrides."""
    with ExitStack() as stack:

        def factory(url: str = migrated, **overrides: Any) -> Database:
            return stack.enter_context(open_database(make_settings(url, **overrides), url))

        yield factory


def _pid(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute(BACKEND_PID).fetchone()
    assert row is not None
    return int(row[0])


def _scalar(conn: psycopg.Connection[Any], query: str, params: dict[str, Any]) -> Any:
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]


# -------------------------------------------------------- session settings
def test_default_session_settings_on_every_path(db: Database) -> None:
    expected = ("30s", "5s", "1min", "dbops")
    with db.session() as session:
        assert tuple(session.execute(text(SHOW_SESSION_SETTINGS)).one()) == expected
    with db.connection() as conn:
        assert conn.execute(SHOW_SESSION_SETTINGS).fetchone() == expected
    with db.read() as conn:
        assert conn.execute(SHOW_SESSION_SETTINGS).fetchone() == expected


def test_custom_session_settings_on_every_connection(open_db: DatabaseFactory) -> None:
    database = open_db(
        statement_timeout_ms=1234,
        lock_timeout_ms=250,
        idle_in_transaction_timeout_ms=4321,
        application_name="x",
        pool_min_size=0,
    )
    expected = ("1234ms", "250ms", "4321ms", "x")
    # Hold three connections at once, so three distinct backends are checked.
    with ExitStack() as stack:
        conns = [stack.enter_context(database.connection()) for _ in range(3)]
        pids = {_pid(conn) for conn in conns}
        assert len(pids) == 3
        for conn in conns:
            assert conn.execute(SHOW_SESSION_SETTINGS).fetchone() == expected
        with database.session() as session:
            assert tuple(session.execute(text(SHOW_SESSION_SETTINGS)).one()) == expected
        # The server sees the name too (pg_stat_activity, logs).
        assert {_scalar(conns[0], APPLICATION_NAME_OF, {"pid": pid}) for pid in pids} == {"x"}


def test_connection_kwargs_switch_prepared_statements_off(migrated: str) -> None:
    assert connection_kwargs(make_settings(migrated))["prepare_threshold"] == 2
    assert connection_kwargs(make_settings(migrated, prepare_threshold=5))["prepare_threshold"] == 5
    off = make_settings(migrated, prepared_statements=False)
    assert connection_kwargs(off)["prepare_threshold"] is None


def test_timestamps_are_utc_whatever_the_server_zone(
    pg_cluster: EmbeddedCluster, empty_database: str, open_db: DatabaseFactory
) -> None:
    name = make_url(empty_database).database
    assert name is not None
    with psycopg.connect(pg_cluster.libpq_url("postgres"), autocommit=True) as admin:
        admin.execute(
            sql.SQL("ALTER DATABASE {} SET TimeZone = 'America/New_York'").format(
                sql.Identifier(name)
            )
        )
    database = open_db(empty_database)
    with database.connection() as conn:
        now = _scalar(conn, "SELECT now()", {})
    assert now.utcoffset() == timedelta(0)


# ------------------------------------------------------------------ the pool
def test_pool_defaults_match_the_seed(db: Database) -> None:
    assert db.pool.max_size == 20
    assert db.pool.max_idle == 30.0
    assert db.pool.timeout == 2.0
    assert db.pool.min_size == 1
    assert db.pool.max_lifetime == 3600.0


def test_waiting_for_a_busy_pool_times_out_quickly(open_db: DatabaseFactory) -> None:
    database = open_db(pool_min_size=1, pool_max_size=1, pool_timeout_s=0.2)
    with database.connection():
        started = time.monotonic()
        with pytest.raises(OperationTimeout, match="free database connection"):  # noqa: SIM117
            with database.connection():
                pass
        waited = time.monotonic() - started
        # The ORM path borrows from the same pool and fails the same way.
        with pytest.raises(OperationTimeout, match="free database connection"):  # noqa: SIM117
            with database.session() as session:
                session.execute(text("SELECT 1"))
    assert 0.2 <= waited < 1.5
    with database.connection() as conn:  # released: usable again
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_statement_timeout_raises_operation_timeout(open_db: DatabaseFactory) -> None:
    database = open_db(statement_timeout_ms=100)
    started = time.monotonic()
    with pytest.raises(OperationTimeout, match="statement_timeout"):  # noqa: SIM117
        with database.session() as session:
            session.execute(text("SELECT pg_sleep(3)"))
    with pytest.raises(OperationTimeout, match="statement_timeout"):  # noqa: SIM117
        with database.connection() as conn:
            conn.execute("SELECT pg_sleep(3)")
    assert time.monotonic() - started < 2.0
    with database.connection() as conn:  # the connection survived the cancel
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_lock_timeout_raises_lock_timeout(
    pg_cluster: EmbeddedCluster, empty_database: str, open_db: DatabaseFactory
) -> None:
    database = open_db(empty_database, lock_timeout_ms=100)
    with database.connection() as conn:
        conn.execute("CREATE TABLE locked (id int)")
    with psycopg.connect(to_libpq_url(empty_database)) as holder:
        holder.execute("LOCK TABLE locked IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        with pytest.raises(LockTimeout, match="lock"):  # noqa: SIM117
            with database.connection() as conn:
                conn.execute("SELECT * FROM locked")
        assert time.monotonic() - started < 2.0
        holder.rollback()


def test_orm_and_raw_code_share_the_pool(open_db: DatabaseFactory, db: Database) -> None:
    before = db.pool.get_stats().get("requests_num", 0)
    with db.session() as session:
        session.execute(text("SELECT 1"))
    assert db.pool.get_stats().get("requests_num", 0) == before + 1

    single = open_db(pool_min_size=1, pool_max_size=1)
    with single.connection() as conn:
        raw_pid = _pid(conn)
    with single.session() as session:
        orm_pid = session.execute(text(BACKEND_PID)).scalar_one()
    assert orm_pid == raw_pid, "the engine borrowed the pool's only connection"


# -------------------------------------------------------- prepared statements
def _repeat_point_read(database: Database, times: int = 5) -> None:
    for _ in range(times):
        with database.session() as session:
            session.execute(text(POINT_READ), {"email": "nobody@example.com"}).scalar_one()


def test_prepared_statements_survive_repeated_session_reads(open_db: DatabaseFactory) -> None:
    """``Database.session()`` commits reads, so psycopg keeps what it prepared."""
    database = open_db(pool_min_size=1, pool_max_size=1)
    _repeat_point_read(database)
    with database.connection() as conn:
        assert _scalar(conn, PREPARED_COUNT, {"statement": POINT_READ_SERVER_FORM}) == 1


def test_prepared_statements_survive_autocommit_reads(open_db: DatabaseFactory) -> None:
    database = open_db(pool_min_size=1, pool_max_size=1)
    for _ in range(3):
        with database.read() as conn:
            conn.execute(POINT_READ.replace(":email", "%(email)s"), {"email": "x@example.com"})
    with database.connection() as conn:
        assert _scalar(conn, PREPARED_COUNT, {"statement": POINT_READ_SERVER_FORM}) == 1


def test_rollback_drops_prepared_statements(open_db: DatabaseFactory) -> None:
    """Why sessions commit: SQLAlchemy's usual read path ends in ROLLBACK, which deallocates."""
    database = open_db(pool_min_size=1, pool_max_size=1)
    with database.sessions() as session:
        for _ in range(3):
            session.execute(text(POINT_READ), {"email": "nobody@example.com"}).scalar_one()
        session.rollback()
    with database.connection() as conn:
        assert _scalar(conn, PREPARED_COUNT, {"statement": POINT_READ_SERVER_FORM}) == 0


def test_prepared_statements_can_be_switched_off(open_db: DatabaseFactory) -> None:
    database = open_db(pool_min_size=1, pool_max_size=1, prepared_statements=False)
    _repeat_point_read(database)
    with database.connection() as conn:
        for _ in range(3):
            assert _scalar(conn, ALL_PREPARED_COUNT, {}) == 0


# ----------------------------------------------------------------- pre-ping
def _kill(pg_cluster: EmbeddedCluster, pid: int) -> None:
    with psycopg.connect(pg_cluster.libpq_url(), autocommit=True) as admin:
        assert _scalar(admin, TERMINATE, {"pid": pid}) is True
        deadline = time.monotonic() + 5
        while _scalar(admin, BACKEND_ALIVE, {"pid": pid}) and time.monotonic() < deadline:
            time.sleep(0.02)


def test_pre_ping_replaces_a_killed_connection(
    pg_cluster: EmbeddedCluster, open_db: DatabaseFactory
) -> None:
    database = open_db(pool_min_size=1, pool_max_size=1, pool_pre_ping_bypass_s=0.1)
    with database.connection() as conn:
        old_pid = _pid(conn)
    _kill(pg_cluster, old_pid)
    time.sleep(0.2)  # past the bypass window: the next checkout is pinged
    with database.connection() as conn:
        new_pid = _pid(conn)
    assert new_pid != old_pid
    with database.session() as session:
        assert session.execute(text("SELECT 1")).scalar_one() == 1


def test_pre_ping_bypass_window_trades_one_error_for_latency(
    pg_cluster: EmbeddedCluster, open_db: DatabaseFactory
) -> None:
    """A connection returned moments ago is not pinged: if it died, one call fails, then heals."""
    database = open_db(pool_min_size=1, pool_max_size=1, pool_pre_ping_bypass_s=60)
    with database.connection() as conn:
        old_pid = _pid(conn)
    _kill(pg_cluster, old_pid)
    with pytest.raises(DatabaseUnavailable), database.connection() as conn:
        _pid(conn)
    with database.connection() as conn:
        assert _pid(conn) != old_pid


def test_read_is_autocommit_translates_errors_and_returns_the_connection(
    open_db: DatabaseFactory,
) -> None:
    database = open_db(
        pool_min_size=1, pool_max_size=1, pool_timeout_s=0.2, statement_timeout_ms=50
    )
    with database.read() as conn:
        assert conn.autocommit
        assert conn.execute("SELECT 1").fetchone() == (1,)
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        with pytest.raises(OperationTimeout, match="free database connection"):  # noqa: SIM117
            with database.read():
                pass
    with pytest.raises(OperationTimeout, match="statement_timeout"):  # noqa: SIM117
        with database.read() as conn:
            conn.execute("SELECT pg_sleep(1)")
    # The one connection went back to the pool each time, and a transaction gets it unchanged.
    with database.connection() as conn:
        assert not conn.autocommit
        conn.execute("SELECT 1")
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
    assert database.pool.get_stats()["pool_size"] == 1
