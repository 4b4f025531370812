"""The dashboard against the real test database: content the test made happen shows up."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from dbops.config import to_libpq_url
from dbops.db import Database, EmbeddedCluster
from dbops.ops.roles import ensure_readonly_role
from dbops.services import Actor, TeamService, UserService
from tests.dashboard.conftest import PAGES, app, texts

ADMIN = Actor.system("dashboard-test")
UNUSED_INDEX = "dash_probe_unused_idx"


@pytest.fixture
def seeded(clean_db: Database, migrated: str) -> Iterator[dict[str, str]]:
    """A team with two members, a probe statement and an index nothing uses."""
    users = UserService(clean_db)
    teams = TeamService(clean_db)
    owner = users.create(
        ADMIN, email="alice.dash@example.com", password="correct horse 1", display_name="Alice"
    )
    team = teams.create(ADMIN, name="Zanzibar Dashboards", slug="zanzibar-dash", owner_id=owner.id)
    with psycopg.connect(to_libpq_url(migrated), autocommit=True) as conn:
        # Earlier tests' processes may have reported as the superuser, which would make the
        # superuser's statements the application's (Snapshot.app_roles).
        conn.execute("DELETE FROM dbops_monitor.process_reports")
        conn.execute(f"CREATE INDEX {UNUSED_INDEX} ON teams (updated_at, name)")
        for _ in range(3):
            conn.execute("SELECT pg_sleep(0.1) FROM (VALUES (1)) AS dashboard_probe (x)")
    yield {"team_id": str(team.id), "email": owner.email}
    with psycopg.connect(to_libpq_url(migrated), autocommit=True) as conn:
        conn.execute(f"DROP INDEX IF EXISTS {UNUSED_INDEX}")


def test_pages_show_what_the_test_did(
    seeded: dict[str, str], migrated: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", migrated)
    at = app()
    at.run()
    assert not at.exception, at.exception
    shown: dict[str, str] = {}
    for page in PAGES:
        at.switch_page(page)
        at.run()
        assert not at.exception, (page, at.exception)
        shown[page] = texts(at)
    # The probe ran as the superuser: dbops' own side, shown once the toggle includes it.
    assert "dashboard_probe" not in shown["views/queries.py"]
    at.switch_page("views/queries.py").run()
    at.toggle[0].set_value(True).run()
    assert not at.exception, at.exception
    assert "dashboard_probe" in texts(at)
    assert UNUSED_INDEX in shown["views/indexes.py"]

    at.switch_page("views/teams.py").run()
    at.text_input(key="team-q").input("Zanzibar").run()
    assert not at.exception, at.exception
    page = texts(at)
    assert "Zanzibar Dashboards" in page
    assert "a***@example.com" in page
    assert seeded["email"] not in page


def test_unused_index_is_in_the_unused_tab(
    seeded: dict[str, str], migrated: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The page lists what the unused_indexes check finds: the same count, schema-qualified."""
    from dashboard import data

    monkeypatch.setenv("DATABASE_URL", migrated)
    monkeypatch.setenv("DBOPS_CHECK_UNUSED_INDEX_MIN_BYTES", "0")  # the test's index is tiny
    monkeypatch.setenv("DBOPS_CHECK_UNUSED_INDEX_MIN_STATS_AGE_S", "0")  # a fresh cluster
    at = app()
    at.run()
    at.switch_page("views/indexes.py").run()
    assert not at.exception
    unused_tab = at.tabs[0]
    frames = [df.value for df in unused_tab.dataframe]
    assert any(UNUSED_INDEX in set(df["index"]) for df in frames)
    drop = f'DROP INDEX CONCURRENTLY "public"."{UNUSED_INDEX}";'
    assert any(drop in c.value for c in unused_tab.code)
    checked = [
        f for f in data.findings() if f.check == "unused_indexes" and f.severity.value != "ok"
    ]
    assert f"public.{UNUSED_INDEX}" in {f.subject for f in checked}
    shown = next(m for m in at.metric if m.label == "Unused")
    assert int(shown.value) == len(checked)
    code = "\n".join(c.value for c in unused_tab.code)
    assert all(line.startswith('DROP INDEX CONCURRENTLY "') for line in code.splitlines())


def test_emails_shown_when_the_setting_allows(
    seeded: dict[str, str], migrated: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dashboard import data

    monkeypatch.setenv("DATABASE_URL", migrated)
    monkeypatch.setenv("DBOPS_DASHBOARD_SHOW_EMAILS", "true")
    members = data.team_members(seeded["team_id"])
    assert not isinstance(members, data.Note)
    assert list(members["email"]) == [seeded["email"]]


def test_mask_email() -> None:
    from dashboard import data

    assert data.mask_email("alice@example.com") == "a***@example.com"
    assert data.mask_email("not-an-email") == "***"


def _write_fails(database: Database) -> str:
    with pytest.raises(Exception) as info, database.connection() as conn:
        conn.execute(
            "INSERT INTO teams (id, name, slug) VALUES (%(id)s, 'x', %(slug)s)",
            {"id": uuid.uuid4(), "slug": f"x-{uuid.uuid4().hex[:8]}"},
        )
    return str(info.value)


def test_dashboard_database_is_read_only(
    clean_db: Database, migrated: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dashboard import data

    monkeypatch.setenv("DATABASE_URL", migrated)
    message = _write_fails(data.get_database())
    assert "read-only transaction" in message


def test_readonly_role_cannot_write_even_when_asking_for_read_write(
    clean_db: Database, migrated: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dashboard import data

    password = uuid.uuid4().hex
    name = ensure_readonly_role(clean_db, f"ro_{uuid.uuid4().hex[:8]}", password=password)
    ensure_readonly_role(clean_db, name, password=password)  # idempotent
    role_url = migrated.replace("://postgres@", f"://{name}:{password}@", 1)
    try:
        with psycopg.connect(to_libpq_url(role_url)) as conn:
            conn.execute("SET TRANSACTION READ WRITE")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("UPDATE teams SET name = name")
        monkeypatch.setenv("DATABASE_URL", migrated)
        monkeypatch.setenv("DBOPS_DASHBOARD_DATABASE_URL", role_url)
        database = data.get_database()
        assert database.dsn.redacted.count(name) == 1
        assert "read-only transaction" in _write_fails(database)
        snap = data.load_snapshot()
        assert snap.server is not None
        assert snap.server.current_user == name
        assert snap.statements is not None
        assert snap.tables is not None
        assert snap.data is not None, snap.errors
    finally:
        data.close_all()
        with psycopg.connect(to_libpq_url(migrated), autocommit=True) as conn:
            conn.execute(f"DROP OWNED BY {name}")
            conn.execute(f"DROP ROLE {name}")


def test_history_and_explain_contracts_feed_the_statement_detail(
    seeded: dict[str, str], migrated: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Coded against dbops.monitoring.history / .explain: fakes of those contracts render."""
    import dataclasses
    import sys
    import types
    from datetime import UTC, datetime, timedelta

    @dataclasses.dataclass(frozen=True)
    class StatementPoint:
        captured_at: datetime
        interval_s: float
        calls: int
        calls_per_s: float
        total_exec_time_ms: float
        mean_exec_time_ms: float
        rows: int

    @dataclasses.dataclass(frozen=True)
    class ExplainResult:
        text: str

    seen: dict[str, object] = {}
    now = datetime.now(UTC)

    def statement_series(db, queryid, *, since=None):
        seen["queryid"] = queryid
        return tuple(
            StatementPoint(now - timedelta(minutes=i), 60.0, 60, 1.0, 6.0, 0.1, 60)
            for i in range(5)
        )

    def explain(db, sql, *, settings, analyze=False):
        seen["sql"] = sql
        return ExplainResult("Result  (cost=0.00..0.01 rows=1 width=4) PLAN-MARKER")

    history = types.ModuleType("dbops.monitoring.history")
    history.statement_series = statement_series  # type: ignore[attr-defined]
    explainer = types.ModuleType("dbops.monitoring.explain")
    explainer.explain = explain  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "dbops.monitoring.history", history)
    monkeypatch.setitem(sys.modules, "dbops.monitoring.explain", explainer)
    monkeypatch.setenv("DATABASE_URL", migrated)
    at = app()
    at.run()
    at.switch_page("views/queries.py").run()
    at.toggle[0].set_value(True).run()  # the shared test database's statements are dbops' own
    assert not at.exception
    assert isinstance(seen["queryid"], int)
    assert not any("No history captured" in i.value for i in at.info)
    explain_button = next(b for b in at.button if b.label == "EXPLAIN")
    explain_button.click().run()
    assert not at.exception
    assert any("PLAN-MARKER" in c.value for c in at.code)
    assert isinstance(seen["sql"], str)


def test_missing_history_is_a_note(
    seeded: dict[str, str], migrated: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys
    import types

    def broken(*args, **kwargs):
        raise RuntimeError("relation dbops_monitor.statements does not exist")

    history = types.ModuleType("dbops.monitoring.history")
    history.statement_series = broken  # type: ignore[attr-defined]
    history.table_growth = broken  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "dbops.monitoring.history", history)
    monkeypatch.setenv("DATABASE_URL", migrated)
    at = app()
    at.run()
    for page in ("views/queries.py", "views/tables.py"):
        at.switch_page(page).run()
        if page == "views/queries.py":
            at.toggle[0].set_value(True).run()  # the superuser's statements: dbops' own side
        assert not at.exception
        assert any("No history captured yet" in i.value for i in at.info), page


def test_the_dashboard_never_starts_an_embedded_cluster(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Like `dbops status`, the dashboard only reads: no DATABASE_URL and no running cluster
    is a note on the page, never a cluster created (or started) as a side effect."""
    from dashboard import data

    home = tmp_path / "home"
    monkeypatch.setenv("DBOPS_HOME", str(home))
    assert data.source().label.startswith("unavailable (no embedded cluster in ")
    at = app().run()
    assert not at.exception
    assert "no embedded cluster" in texts(at)
    assert not (home / "pgdata").exists()


def test_the_embedded_dashboard_reads_as_the_readonly_role(
    pg_cluster: EmbeddedCluster, migrated: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No DATABASE_URL: the dashboard reads the embedded cluster as dbops_readonly, the role
    without secret columns and without writes, not as the app role or the superuser."""
    from dashboard import data

    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("DBOPS_HOME", str(pg_cluster.home))
    monkeypatch.setenv("DBOPS_EMBEDDED_DATABASE", pg_cluster.database)
    try:
        database = data.get_database()
        with database.read() as conn:
            assert conn.execute("SELECT current_user").fetchone() == ("dbops_readonly",)
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("SELECT password_hash FROM users LIMIT 1")
        snap = data.load_snapshot()
        assert snap.server is not None
        assert snap.server.current_user == "dbops_readonly"
    finally:
        data.close_all()


def test_the_pool_page_shows_the_applications_pool_not_its_own(
    migrated: str, pg_cluster: EmbeddedCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An app process holding two connections: the Pool page and the Overview say 2 in use."""
    import os
    from contextlib import ExitStack

    from dbops.db import open_database
    from dbops.telemetry import report as process_report
    from tests.fixtures.db import make_settings, role_url

    settings = make_settings(migrated, process_report_s=3600.0, process_name="dash-probe")
    label = f"dash-probe (pid {os.getpid()})"
    try:
        with open_database(settings, role_url(pg_cluster, "app")) as app_db, ExitStack() as held:
            for _ in range(2):
                held.enter_context(app_db.pool.connection())
            reporter = process_report.reporter()
            assert reporter is not None
            assert reporter.report_now()
            monkeypatch.setenv("DATABASE_URL", migrated)
            at = app()
            at.run()
            assert not at.exception, at.exception
            overview = {m.label: m.value for m in at.metric}
            assert overview["App pool in use / waiting"] == "2 / 0"
            at.switch_page("views/pool.py").run()
            assert not at.exception, at.exception
            table = at.dataframe[0].value
            row = table[table["process"] == label].iloc[0]
            assert (row["state"], row["in use"], row["waiting"]) == ("live", 2, 0)
            assert {m.label: m.value for m in at.metric}["In use"] == "2"
    finally:
        with psycopg.connect(to_libpq_url(migrated), autocommit=True) as conn:
            conn.execute("DELETE FROM dbops_monitor.process_samples")
            conn.execute("DELETE FROM dbops_monitor.process_reports")


def test_slow_parts_are_carried_with_their_time_until_refresh_now(
    seeded: dict[str, str], migrated: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A page view collects the cheap parts only: a new index (the slow ``indexes`` part)
    shows after "Refresh now", not before, and the sidebar says when the slow parts were
    taken."""
    monkeypatch.setenv("DATABASE_URL", migrated)
    monkeypatch.setenv("DBOPS_DASHBOARD_CACHE_TTL_S", "0")  # every run takes a snapshot
    late = "dash_probe_late_idx"
    at = app()
    at.switch_page("views/indexes.py").run()
    assert not at.exception, at.exception
    assert UNUSED_INDEX in texts(at)
    assert any("Statements, tables, indexes and data counts:" in c.value for c in at.caption)
    with psycopg.connect(to_libpq_url(migrated), autocommit=True) as conn:
        conn.execute(f"CREATE INDEX {late} ON teams (name, updated_at)")
    try:
        at.run()
        assert not at.exception, at.exception
        assert late not in texts(at)  # carried: the slow parts are younger than 30 s
        next(b for b in at.button if b.label == "Refresh now").click().run()
        assert not at.exception, at.exception
        assert late in texts(at)
    finally:
        with psycopg.connect(to_libpq_url(migrated), autocommit=True) as conn:
            conn.execute(f"DROP INDEX IF EXISTS {late}")
