"""The application's processes report their pools, caches and statements (migration 0011).

The tests share one scratch database migrated with dbops' grants (emptied of reports before
each test): the process writes as the app role (``dbops_app``), the snapshot reads as the
monitor role, the numbers are checked against what the test did by hand (connections held,
cache hits, service calls).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import ExitStack

import psycopg
import pytest
from psycopg import errors as pg_errors

from dbops.config import to_libpq_url
from dbops.db import Database, Dsn, EmbeddedCluster, open_database
from dbops.monitoring import collect_snapshot
from dbops.monitoring.snapshot import STALE_GRACE_S, STALE_INTERVALS, Snapshot, is_live
from dbops.ops.migrate import upgrade
from dbops.ops.roles import REPORT_FUNCTION, ROLE_NAMES, grant_privileges
from dbops.services import MemoryCache
from dbops.telemetry import report as process_report
from tests.fixtures.db import scratch_database
from tests.fixtures.monitoring import monitor_settings

pytestmark = pytest.mark.slow


def _as(url: str, role: str) -> str:
    return Dsn.parse(url).as_user(ROLE_NAMES[role]).libpq  # type: ignore[index]


@pytest.fixture(scope="module")
def shared_scratch(pg_cluster: EmbeddedCluster, migrated: str) -> Iterator[str]:
    """A database of this module's (pg_stat_statements, migrated, dbops' grants); its URL."""
    with scratch_database(pg_cluster, "t_proc") as url:
        with psycopg.connect(to_libpq_url(url), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        upgrade(url, monitor_settings(url))
        with psycopg.connect(to_libpq_url(url), autocommit=True) as conn:
            grant_privileges(conn)
        yield url


@pytest.fixture
def scratch(shared_scratch: str) -> str:
    """The module's database with no process report or sample (the superuser's URL)."""
    with psycopg.connect(to_libpq_url(shared_scratch), autocommit=True) as conn:
        conn.execute("TRUNCATE dbops_monitor.process_reports, dbops_monitor.process_samples")
    return shared_scratch


@pytest.fixture
def app(scratch: str) -> Iterator[Database]:
    """The scratch database as the app role, reporting every hour (tests report by hand)."""
    settings = monitor_settings(scratch, process_report_s=3600.0, process_name="test app")
    database = open_database(settings, _as(scratch, "app"))
    try:
        yield database
    finally:
        database.close()


def _monitor_snapshot(scratch: str) -> Snapshot:
    url = _as(scratch, "monitor")
    with open_database(monitor_settings(scratch), url, purpose="monitor") as monitor:
        return collect_snapshot(monitor, monitor.settings)


def _rows(scratch: str, query: str) -> list[tuple[object, ...]]:
    with psycopg.connect(to_libpq_url(scratch)) as conn:
        return conn.execute(query).fetchall()


def test_the_snapshot_shows_the_apps_pool_cache_and_calls_not_its_own(
    app: Database, scratch: str
) -> None:
    reporter = process_report.reporter()
    assert reporter is not None
    assert reporter.name == "test app"
    cache = MemoryCache(ttl_s=60)
    assert cache.get("k") is None  # one miss
    cache.set("k", 1)
    assert cache.get("k") == 1
    assert cache.get("k") == 1
    with ExitStack() as held:
        for _ in range(3):
            held.enter_context(app.pool.connection())
        assert reporter.report_now()
    snap = _monitor_snapshot(scratch)
    assert snap.error("processes") is None
    (proc,) = snap.processes or ()
    assert proc.live
    assert proc.state() == "live"
    assert proc.name == "test app"
    assert proc.reported_by == ROLE_NAMES["app"]
    (pool,) = proc.pools
    # Three connections held when the report was written: all in use, three checkouts.
    assert (pool.size - pool.idle, pool.requests, pool.waiting) == (3, 3, 0)
    assert pool.max_size == app.settings.pool_max_size
    mine = next(c for c in proc.caches if c.hits == 2)
    assert (mine.misses, mine.size) == (1, 1)
    assert snap.app_pools() == (pool,)


def test_a_reported_service_call_is_counted_once_with_its_error_class(
    app: Database, scratch: str
) -> None:
    from dbops.telemetry.metrics import STATEMENTS

    series = STATEMENTS.series("processes_test.call")
    series.observe(2_000_000, None)  # 2 ms, succeeded
    series.observe(30_000_000, "23")  # 30 ms, integrity error
    reporter = process_report.reporter()
    assert reporter is not None
    assert reporter.report_now()
    snap = _monitor_snapshot(scratch)
    (proc,) = snap.processes or ()
    assert proc.app is not None
    stmt = proc.app.statement("processes_test.call")
    assert stmt is not None
    assert (stmt.count, stmt.error_count()) == (2, 1)
    assert stmt.sum_s == pytest.approx(0.032)
    # Cumulative buckets: 2 ms is under the 2.5 ms bound, 30 ms under 50 ms only.
    bounds = dict(zip(proc.app.buckets_s, stmt.bucket_counts, strict=True))
    assert (bounds[0.001], bounds[0.0025], bounds[0.025], bounds[0.05]) == (0, 1, 1, 2)


def test_closing_the_last_app_database_says_so_and_silence_is_not_live(
    scratch: str,
) -> None:
    settings = monitor_settings(scratch, process_report_s=3600.0)
    with open_database(settings, _as(scratch, "app")):
        reporter = process_report.reporter()
        assert reporter is not None
    assert process_report.reporter() is None  # the last pool closed stops it
    (proc,) = _monitor_snapshot(scratch).processes or ()
    assert (proc.closed, proc.live, proc.state()) == (True, False, "closed")
    # A process that stopped reporting without a word: live until three intervals and the
    # grace have passed, silent after (the one rule, both sides of it).
    limit = STALE_INTERVALS * 10.0 + STALE_GRACE_S
    assert is_live(closed=False, age_s=limit, interval_s=10.0)
    assert not is_live(closed=False, age_s=limit + 0.001, interval_s=10.0)
    with psycopg.connect(to_libpq_url(scratch)) as conn:
        conn.execute(
            "UPDATE dbops_monitor.process_reports SET closed = false, "
            "report = jsonb_set(report, '{interval_s}', '10'), "
            "reported_at = now() - make_interval(secs => %s)",
            (limit + 2,),
        )
    (proc,) = _monitor_snapshot(scratch).processes or ()
    assert (proc.live, proc.state()) == (False, "silent")


def test_the_app_role_reports_but_cannot_read_or_rewrite_reports(
    app: Database, scratch: str
) -> None:
    reporter = process_report.reporter()
    assert reporter is not None
    assert reporter.report_now()
    with psycopg.connect(_as(scratch, "app"), autocommit=True) as conn:
        for statement in (
            "SELECT * FROM dbops_monitor.process_reports",
            "DELETE FROM dbops_monitor.process_samples",
            "UPDATE dbops_monitor.process_reports SET closed = true",
        ):
            with pytest.raises(pg_errors.InsufficientPrivilege):
                conn.execute(statement)


@pytest.mark.parametrize(
    ("process", "report", "sqlstate"),
    [
        ("p", "[]", "22023"),  # not an object
        ("", "{}", "22023"),  # no process id
        ("p", json.dumps({"pools": [{}] * 17}), "22023"),  # too many pools
        ("p", json.dumps({"blob": "x" * 270_000}), "22023"),  # too big
        ("p", json.dumps({"pools": [{"size": "many"}]}), "22P02"),  # not a number
    ],
)
def test_a_bad_report_is_refused_and_writes_nothing(
    scratch: str, process: str, report: str, sqlstate: str
) -> None:
    with psycopg.connect(_as(scratch, "app"), autocommit=True) as conn:
        with pytest.raises(psycopg.Error) as info:
            conn.execute(
                "SELECT dbops_monitor.report_process(%s, 'x', 'h', 1, now(), %s::jsonb)",
                (process, report),
            )
        assert info.value.sqlstate == sqlstate
    assert _rows(scratch, "SELECT count(*) FROM dbops_monitor.process_reports") == [(0,)]
    assert _rows(scratch, "SELECT count(*) FROM dbops_monitor.process_samples") == [(0,)]


def test_the_201st_process_within_the_hour_is_refused(scratch: str) -> None:
    with psycopg.connect(to_libpq_url(scratch)) as conn:
        conn.execute(
            "INSERT INTO dbops_monitor.process_reports SELECT 'p' || i, 'x', 'h', i, now(), "
            "now() - interval '59 minutes', 'dbops_app', false, '{}' "
            "FROM generate_series(1, 200) i"
        )
    with psycopg.connect(_as(scratch, "app"), autocommit=True) as conn:
        call = "SELECT dbops_monitor.report_process(%s, 'x', 'h', 1, now(), '{}')"
        with pytest.raises(pg_errors.ProgramLimitExceeded):
            conn.execute(call, ("new",))
        conn.execute(call, ("p7",))  # one of the 200 still reports
    with psycopg.connect(to_libpq_url(scratch)) as conn:
        conn.execute(
            "UPDATE dbops_monitor.process_reports SET reported_at = now() - '61 min'::interval"
        )
    with psycopg.connect(_as(scratch, "app"), autocommit=True) as conn:
        conn.execute(call, ("new",))  # an hour later the old ones no longer count


def test_samples_are_totals_at_most_every_five_seconds(app: Database, scratch: str) -> None:
    reporter = process_report.reporter()
    assert reporter is not None
    with psycopg.connect(to_libpq_url(scratch)) as conn:  # the sample of the first report
        conn.execute("DELETE FROM dbops_monitor.process_samples")
    with app.pool.connection(), app.pool.connection():
        assert reporter.report_now()
        assert reporter.report_now()  # within 5 s: the report is updated, no second sample
    rows = _rows(
        scratch,
        "SELECT pool_size - pool_idle, requests, pool_max FROM dbops_monitor.process_samples",
    )
    assert rows == [(2, 2, app.settings.pool_max_size)]
    (count,) = _rows(scratch, "SELECT count(*) FROM dbops_monitor.process_reports")
    assert count == (1,)


def test_a_report_that_cannot_be_written_never_reaches_the_app(
    scratch: str, caplog: pytest.LogCaptureFixture
) -> None:
    with psycopg.connect(to_libpq_url(scratch), autocommit=True) as conn:
        conn.execute(f"REVOKE EXECUTE ON FUNCTION {REPORT_FUNCTION} FROM dbops_app")
    settings = monitor_settings(scratch, process_report_s=3600.0)
    try:
        with open_database(settings, _as(scratch, "app")) as app:
            reporter = process_report.reporter()
            assert reporter is not None
            assert not reporter.report_now()
            assert not reporter.report_now()
            with app.connection() as conn:  # the app itself goes on
                assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        with psycopg.connect(to_libpq_url(scratch), autocommit=True) as conn:
            conn.execute(f"GRANT EXECUTE ON FUNCTION {REPORT_FUNCTION} TO dbops_app")
    warnings = [r for r in caplog.records if r.name == "dbops.report"]
    assert len(warnings) == 1
    assert "permission denied" in warnings[0].getMessage()


def test_reports_run_in_the_background_at_the_interval(scratch: str) -> None:
    settings = monitor_settings(scratch, process_report_s=0.2)
    done = threading.Event()
    with open_database(settings, _as(scratch, "app")):
        reporter = process_report.reporter()
        assert reporter is not None
        for _ in range(50):
            if reporter.written >= 3:
                done.set()
                break
            threading.Event().wait(0.1)
    assert done.is_set(), "three reports within 5 s at a 0.2 s interval"


def test_the_applications_statements_are_its_roles_not_dbops_own(
    app: Database, scratch: str
) -> None:
    """A statement of the app role and one of the monitor role: only the first is the app's."""
    with psycopg.connect(_as(scratch, "app"), autocommit=True) as conn:
        conn.execute("SELECT pg_sleep(0.3), 1")
    with psycopg.connect(_as(scratch, "monitor"), autocommit=True) as conn:
        conn.execute("SELECT pg_sleep(0.3), 'two', 2")  # another shape: another queryid
    snap = _monitor_snapshot(scratch)
    assert snap.statements is not None
    users = {q.user for q in snap.statements.top if "pg_sleep" in (q.query or "")}
    assert users == {ROLE_NAMES["app"], ROLE_NAMES["monitor"]}
    mine = [q for q in snap.app_statements() if "pg_sleep" in (q.query or "")]
    assert [q.user for q in mine] == [ROLE_NAMES["app"]]
    assert {q.user for q in snap.app_statements()} <= snap.app_roles()
    # The role a reporting process connects as counts as the application's too.
    assert ROLE_NAMES["app"] in snap.app_roles()
    assert ROLE_NAMES["monitor"] not in snap.app_roles()


def test_refused_sign_ins_reach_the_failed_logins_check_through_the_report(
    app: Database, scratch: str
) -> None:
    """The check's application side is what the app processes saw, not the collector's own."""
    from dbops.monitoring.checks import evaluate, problems
    from dbops.telemetry.access import ACCESS

    settings = monitor_settings(scratch, check_failed_logins_warning=1)
    before = ACCESS.snapshot(settings.monitor_access_window_s).login_failed_recent
    ACCESS.record("login_failed", statement="test.processes.sign_in", actor_kind="user")
    reporter = process_report.reporter()
    assert reporter is not None
    assert reporter.report_now()
    snap = _monitor_snapshot(scratch)
    (proc,) = snap.processes or ()
    assert proc.login_failed_recent == before + 1
    assert proc.access
    assert dict((c.key, c.count) for c in proc.access)["login_failed"] >= 1
    (finding,) = problems(evaluate(snap, settings), "failed_logins")
    assert finding.subject == "app"
    assert finding.message.startswith(f"{before + 1} sign-ins refused")
