"""`collect_status`: the revision is read through the pool; pending follows the given history."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from dbops.db import Database, open_database
from dbops.monitoring.status import collect_status, current_revision
from dbops.ops.migrate import head_revision, history
from tests.fixtures.db import make_settings

HEAD = head_revision()
REVISIONS = [info.revision for info in reversed(history())]


@pytest.fixture
def empty_db(empty_database: str) -> Iterator[Database]:
    with open_database(make_settings(empty_database), empty_database) as database:
        yield database


def test_migrated_database_is_up_to_date(db: Database) -> None:
    assert current_revision(db) == HEAD
    report = collect_status(db, head_revision=HEAD, revisions=REVISIONS)
    assert report.current_revision == HEAD
    assert report.pending == ()
    assert report.up_to_date
    assert report.counts is not None
    assert report.url == db.dsn.redacted
    text = report.to_json()
    assert text.startswith('{\n  "url": ')  # indented for people, two spaces
    data = json.loads(text)
    assert data["up_to_date"] is True
    with db.read() as conn:
        row = conn.execute("SELECT current_setting('server_version_num')::int").fetchone()
    assert row is not None
    assert data["server"]["version_num"] == report.server.version_num == row[0]
    assert report.server.supported
    assert data["current_revision"] == HEAD
    assert data["pending"] == []


def test_revision_is_read_through_the_pool(db: Database) -> None:
    before = db.pool.get_stats().get("requests_num", 0)
    current_revision(db)
    assert db.pool.get_stats().get("requests_num", 0) == before + 1


def test_empty_database_has_everything_pending(empty_db: Database) -> None:
    assert current_revision(empty_db) is None
    report = collect_status(empty_db, head_revision=HEAD, revisions=REVISIONS)
    assert report.pending == tuple(REVISIONS)
    assert report.counts is None
    assert not report.up_to_date


def test_partly_migrated_and_unknown_revisions(empty_db: Database) -> None:
    with empty_db.connection() as conn:
        conn.execute("CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY)")
        conn.execute("INSERT INTO alembic_version VALUES (%s)", (REVISIONS[0],))
    report = collect_status(empty_db, head_revision=HEAD, revisions=REVISIONS)
    assert report.current_revision == REVISIONS[0]
    assert report.pending == tuple(REVISIONS[1:])

    with empty_db.connection() as conn:
        conn.execute("UPDATE alembic_version SET version_num = 'from_the_future'")
    report = collect_status(empty_db, head_revision=HEAD, revisions=REVISIONS)
    assert report.current_revision == "from_the_future"
    assert report.pending == ()
    assert not report.up_to_date

    # An unknown revision is never up to date, whichever way its name sorts against the head.
    with empty_db.connection() as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0000_gone'")
    report = collect_status(empty_db, head_revision=HEAD, revisions=REVISIONS)
    assert report.pending == ()
    assert not report.up_to_date


def test_an_unsupported_server_is_flagged_by_status(capsys: pytest.CaptureFixture[str]) -> None:
    """`dbops status` names an unsupported version the way the `server_version` check does."""
    from dbops.cli._render import print_status
    from dbops.config import PoolSettings, Settings
    from dbops.monitoring.status import ConnectionSecurity, ServerSummary, StatusReport

    pool = PoolSettings.of(Settings(_env_file=None))
    tls = ConnectionSecurity(ssl=False, version=None, cipher=None, bits=None, unix_socket=True)
    for num, flagged in ((130016, True), (140000, False), (180006, False), (190000, True)):
        server = ServerSummary(f"{num // 10_000}.x", num, "dbops", 1, "1 byte")
        report = StatusReport("postgresql:///dbops", False, server, HEAD, HEAD, (), None, pool, tls)
        print_status(report)
        out = capsys.readouterr().out
        assert ("not supported" in out) is flagged, num
