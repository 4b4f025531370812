"""dbops.ops.migrate against real databases: round trip, concurrency, lock timeout, atomicity."""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from dbops.config import to_libpq_url
from dbops.db.embedded import EmbeddedCluster, find_binaries
from dbops.errors import LockTimeout, MigrationError
from dbops.ops.migrate import (
    MIGRATION_LOCK_KEY,
    RevisionInfo,
    current_revision,
    downgrade,
    head_revision,
    history,
    pending,
    upgrade,
)
from tests.fixtures.db import SUITE_PG_VERSION, make_settings

#: Everything in the database that is not PostgreSQL's own, an extension member, or alembic's
#: bookkeeping table: after a downgrade to base this must be empty.
OUR_OBJECTS = """
WITH ext_members AS (
    SELECT classid, objid FROM pg_depend WHERE deptype = 'e'
), ns AS (
    SELECT oid, nspname FROM pg_namespace
    WHERE nspname NOT IN ('pg_catalog', 'information_schema') AND nspname NOT LIKE 'pg\\_%'
)
SELECT 'relation ' || ns.nspname || '.' || c.relname
FROM pg_class c JOIN ns ON ns.oid = c.relnamespace
WHERE c.relname NOT IN ('alembic_version', 'alembic_version_pkc')
  AND (c.oid) NOT IN (SELECT objid FROM ext_members WHERE classid = 'pg_class'::regclass)
UNION ALL
SELECT 'type ' || ns.nspname || '.' || t.typname
FROM pg_type t JOIN ns ON ns.oid = t.typnamespace
WHERE t.typcategory <> 'A'
  AND (t.typrelid = 0 OR t.typrelid NOT IN (
      SELECT oid FROM pg_class WHERE relname = 'alembic_version'))
  AND t.oid NOT IN (SELECT objid FROM ext_members WHERE classid = 'pg_type'::regclass)
UNION ALL
SELECT 'function ' || ns.nspname || '.' || p.proname
FROM pg_proc p JOIN ns ON ns.oid = p.pronamespace
WHERE p.oid NOT IN (SELECT objid FROM ext_members WHERE classid = 'pg_proc'::regclass)
UNION ALL
SELECT 'trigger ' || tg.tgname FROM pg_trigger tg WHERE NOT tg.tgisinternal
UNION ALL
SELECT 'extension ' || extname FROM pg_extension WHERE extname <> 'plpgsql'
UNION ALL
SELECT 'schema ' || nspname FROM ns WHERE nspname <> 'public'
ORDER BY 1
"""

TABLE_EXISTS = "SELECT to_regclass(%(name)s) IS NOT NULL"
INDEX_VALID = "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%(name)s)"
EXTENSION_EXISTS = "SELECT true FROM pg_extension WHERE extname = %(name)s"

HOLD_ADVISORY_LOCK = "SELECT pg_advisory_xact_lock(%(key)s)"

#: pg_dump >= 15.14 wraps its output in ``\restrict <random key>``: not part of the schema.
_RESTRICT = re.compile(r"^\\(un)?restrict .*$", re.MULTILINE)


def _schema_dump(url: str) -> str:
    pg_dump = find_binaries(SUITE_PG_VERSION).tool("pg_dump")
    out = subprocess.run(
        [pg_dump, "--schema-only", "--no-owner", "--dbname", to_libpq_url(url)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return _RESTRICT.sub("", out.stdout)


def _query(
    url: str, query: str, params: dict[str, object] | None = None
) -> list[tuple[object, ...]]:
    with psycopg.connect(to_libpq_url(url), autocommit=True) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


def _revisions_after(revision: str) -> tuple[str, ...]:
    """The revisions above ``revision`` up to head, oldest first (later revisions included)."""
    ordered = [r.revision for r in reversed(history())]
    return tuple(ordered[ordered.index(revision) + 1 :])


def _exists(url: str, name: str) -> bool:
    return bool(_query(url, TABLE_EXISTS, {"name": name})[0][0])


@pytest.fixture
def holder(empty_database: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """A second connection to the same database, for holding locks across a migration run."""
    with psycopg.connect(to_libpq_url(empty_database)) as conn:
        yield conn
        conn.rollback()


def test_history_head_and_pending_on_an_empty_database(empty_database: str) -> None:
    revisions = history()
    assert all(isinstance(r, RevisionInfo) for r in revisions)
    assert [r.is_head for r in revisions] == [True] + [False] * (len(revisions) - 1)
    assert revisions[0].revision == head_revision()
    assert revisions[-1].down_revision is None
    for newer, older in itertools.pairwise(revisions):
        assert newer.down_revision == older.revision
    assert all(r.message for r in revisions)

    assert current_revision(empty_database) is None
    assert pending(empty_database) == [r.revision for r in reversed(revisions)]

    upgrade(empty_database, make_settings(empty_database))
    assert current_revision(empty_database) == head_revision()
    assert pending(empty_database) == []


def test_stairway_each_revision_down_one_and_up_again_gives_the_same_schema(
    empty_database: str,
) -> None:
    """For every revision: upgrade to it, downgrade one step, upgrade again.

    After the downgrade the schema must be the one the previous revision had on the way up
    (a downgrade that leaves something behind fails here, even when the re-upgrade tolerates
    it), and after the re-upgrade the one this revision had.
    """
    settings = make_settings(empty_database)
    below: str | None = None  # base: only alembic's own table is left, see OUR_OBJECTS
    for info in reversed(history()):
        upgrade(empty_database, settings, info.revision)
        at_revision = _schema_dump(empty_database)
        down = downgrade(empty_database, settings, "-1")
        assert (down.before, down.after) == (info.revision, info.down_revision)
        if below is None:
            assert _query(empty_database, OUR_OBJECTS) == []
        else:
            assert _schema_dump(empty_database) == below, f"downgrade of {info.revision}"
        up = upgrade(empty_database, settings, info.revision)
        assert up.applied == (info.revision,)
        assert _schema_dump(empty_database) == at_revision, f"re-upgrade of {info.revision}"
        below = at_revision


def test_round_trip_head_base_head_gives_the_same_schema(empty_database: str) -> None:
    settings = make_settings(empty_database)
    upgrade(empty_database, settings)
    first = _schema_dump(empty_database)
    assert "CREATE TABLE public.users" in first

    downgrade(empty_database, settings, "base")
    assert current_revision(empty_database) is None
    assert _query(empty_database, OUR_OBJECTS) == []

    upgrade(empty_database, settings)
    assert _schema_dump(empty_database) == first


def test_two_migrate_threads_started_together_apply_once(
    empty_database: str, caplog: pytest.LogCaptureFixture
) -> None:
    """alembic's process-wide proxies make dbops serialize threads before the advisory lock."""
    caplog.set_level(logging.INFO, logger="alembic.runtime.migration")
    settings = make_settings(empty_database)
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def run() -> None:
        start.wait()
        try:
            upgrade(empty_database, settings)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert current_revision(empty_database) == head_revision()
    first = history()[-1].revision
    applied = [
        r for r in caplog.records if r.getMessage().startswith(f"Running upgrade  -> {first}")
    ]
    assert len(applied) == 1


def _upgrade_in_child(url: str, start: Any, results: Any) -> None:
    """One `dbops migrate` in its own process: report how many revisions it applied."""
    applied: list[str] = []

    class _Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage().startswith("Running upgrade"):
                applied.append(record.getMessage())

    log = logging.getLogger("alembic.runtime.migration")
    log.setLevel(logging.INFO)
    log.addHandler(_Collect())
    start.wait(timeout=60)
    try:
        result = upgrade(url, make_settings(url))
    except Exception as exc:
        results.put(("error", repr(exc)))
        return
    # What alembic logged and what dbops reports (``before`` read under the lock) must agree.
    results.put(("ok", len(applied), len(result.applied), result.before))


def test_two_migrate_processes_started_together_apply_once(empty_database: str) -> None:
    """Across processes only the advisory lock serializes: the second finds nothing to do."""
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(2)
    results = ctx.Queue()
    children = [
        ctx.Process(target=_upgrade_in_child, args=(empty_database, start, results))
        for _ in range(2)
    ]
    for child in children:
        child.start()
    outcomes = sorted(results.get(timeout=120) for _ in children)
    for child in children:
        child.join(timeout=30)

    head, count = head_revision(), len(history())
    assert outcomes == [("ok", 0, 0, head), ("ok", count, count, None)]
    assert current_revision(empty_database) == head_revision()


def test_migrate_waits_for_a_running_migration_then_gives_up(
    empty_database: str, holder: psycopg.Connection[tuple[object, ...]]
) -> None:
    holder.execute(HOLD_ADVISORY_LOCK, {"key": MIGRATION_LOCK_KEY})
    started = time.monotonic()
    with pytest.raises(LockTimeout, match="another migration has been running"):
        upgrade(empty_database, make_settings(empty_database, migration_wait_s=0.5))
    assert 0.4 < time.monotonic() - started < 5
    holder.rollback()
    assert current_revision(empty_database) is None


def test_ddl_behind_a_long_transaction_times_out_and_says_where_it_stopped(
    empty_database: str, holder: psycopg.Connection[tuple[object, ...]]
) -> None:
    """0004 and 0003 revert (0003's autocommit block), 0002's concurrent drop on users times out."""
    settings = make_settings(empty_database, migration_lock_timeout_ms=300)
    # Pinned at 0004: later revisions have steps on users (0006 drops triggers, 0007 an index).
    upgrade(empty_database, settings, "0004")
    holder.execute("SELECT count(*) FROM users")  # ACCESS SHARE until the transaction ends

    started = time.monotonic()
    with pytest.raises(LockTimeout) as caught:
        downgrade(empty_database, settings, "base")
    elapsed = time.monotonic() - started

    assert elapsed < 5, f"waited {elapsed:.1f}s for a 300 ms lock_timeout"
    message = str(caught.value)
    assert "300 ms" in message
    assert "Retry" in message
    assert "now at revision 0002 (the run started at revision 0004)" in message
    holder.rollback()
    assert current_revision(empty_database) == "0002"

    result = downgrade(empty_database, settings, "base")  # the retry finishes the job
    assert (result.before, result.after, result.applied) == ("0002", None, ("0002", "0001"))
    assert _query(empty_database, OUR_OBJECTS) == []


def test_a_blocked_concurrent_build_applies_nothing_and_the_retry_cleans_up(
    empty_database: str, holder: psycopg.Connection[tuple[object, ...]]
) -> None:
    """A writer's open transaction makes CREATE INDEX CONCURRENTLY time out after phase 1."""
    settings = make_settings(empty_database, migration_lock_timeout_ms=300)
    upgrade(empty_database, settings, "0002")
    holder.execute("LOCK TABLE invitations IN ROW EXCLUSIVE MODE")  # what an INSERT holds

    with pytest.raises(LockTimeout) as caught:
        upgrade(empty_database, settings)
    assert "nothing was applied (the database is still at revision 0002)" in str(caught.value)
    assert current_revision(empty_database) == "0002"
    holder.rollback()
    # The build's catalog entry (INVALID) stays: its cleanup timed out behind the same writer.
    assert _query(empty_database, INDEX_VALID, {"name": "ix_invitations_pending_expiry"}) == [
        (False,)
    ]

    result = upgrade(empty_database, settings)
    assert result.applied == _revisions_after("0002")
    assert _query(empty_database, INDEX_VALID, {"name": "ix_invitations_pending_expiry"}) == [
        (True,)
    ]


def test_all_revisions_of_one_downgrade_segment_roll_back_together(
    empty_database: str, holder: psycopg.Connection[tuple[object, ...]]
) -> None:
    """0002's transactional part and 0001 share a transaction: 0001 times out, neither stays."""
    settings = make_settings(empty_database, migration_lock_timeout_ms=300)
    # At 0004: 0006's downgrade drops triggers on team_members and would wait first.
    upgrade(empty_database, settings, "0004")
    # Only 0001 touches team_members on the way down; every later revision reverts first.
    holder.execute("SELECT count(*) FROM team_members")

    with pytest.raises(LockTimeout):
        downgrade(empty_database, settings, "base")

    holder.rollback()
    assert current_revision(empty_database) == "0002"
    # Dropped by 0002's transactional part, in 0001's transaction: rolled back with it.
    assert _query(empty_database, EXTENSION_EXISTS, {"name": "pg_trgm"}) == [(True,)]
    assert _exists(empty_database, "users")


def test_a_failing_concurrent_build_keeps_the_complete_revisions(empty_database: str) -> None:
    # A table squatting on the name of an index 0002 builds CONCURRENTLY: 0001 was committed
    # by 0002's autocommit block, 0002 fails and is not stamped.
    _query(empty_database, "CREATE TABLE ix_users_tags (x int)")

    with pytest.raises(MigrationError, match='relation "ix_users_tags" already exists') as caught:
        upgrade(empty_database, make_settings(empty_database))

    assert "now at revision 0001 (the run started at base (empty))" in str(caught.value)
    assert current_revision(empty_database) == "0001"
    assert _exists(empty_database, "users")

    _query(empty_database, "DROP TABLE ix_users_tags")
    result = upgrade(empty_database, make_settings(empty_database))
    assert (result.before, result.applied) == ("0001", _revisions_after("0001"))


def test_a_failure_inside_a_transaction_applies_nothing(empty_database: str) -> None:
    # A function squatting on 0001's trigger function: 0001 fails in its (first) transaction.
    _query(
        empty_database, "CREATE FUNCTION set_updated_at() RETURNS int LANGUAGE sql AS 'SELECT 1'"
    )

    with pytest.raises(MigrationError, match=r"set_updated_at.* already exists") as caught:
        upgrade(empty_database, make_settings(empty_database))

    assert "nothing was applied (the database is still at base (empty))" in str(caught.value)
    assert current_revision(empty_database) is None
    assert not _exists(empty_database, "users")
    assert not _exists(empty_database, "alembic_version")


@pytest.mark.parametrize("action", ["upgrade", "downgrade"])
def test_unknown_revision_is_a_clear_error(empty_database: str, action: str) -> None:
    settings = make_settings(empty_database)
    run = upgrade if action == "upgrade" else downgrade
    with pytest.raises(MigrationError) as caught:
        run(empty_database, settings, "nope")
    assert str(caught.value) == "unknown revision 'nope'; see `dbops history`"
    assert current_revision(empty_database) is None


def test_downgrade_above_the_current_revision_is_a_migration_error(empty_database: str) -> None:
    settings = make_settings(empty_database)
    first = history()[-1].revision
    upgrade(empty_database, settings, first)
    with pytest.raises(MigrationError, match="migration failed"):
        downgrade(empty_database, settings, head_revision())
    assert current_revision(empty_database) == first


#: Tables with an ``updated_at`` column that lack the ``set_updated_at`` BEFORE UPDATE trigger.
TABLES_WITHOUT_TRIGGER = """
SELECT c.relname
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'updated_at' AND NOT a.attisdropped
WHERE n.nspname = 'public' AND c.relkind = 'r'
  AND NOT EXISTS (
      SELECT 1 FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
      WHERE t.tgrelid = c.oid AND p.proname = 'set_updated_at' AND NOT t.tgisinternal
  )
ORDER BY 1
"""

#: Pairs of indexes on one table with the same columns, expressions, predicate and opclasses.
DUPLICATE_INDEXES = """
SELECT a.indexrelid::regclass::text, b.indexrelid::regclass::text
FROM pg_index a
JOIN pg_index b ON a.indrelid = b.indrelid AND a.indexrelid < b.indexrelid
JOIN pg_class t ON t.oid = a.indrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
WHERE n.nspname = 'public'
  AND a.indkey::text = b.indkey::text
  AND a.indclass::text = b.indclass::text
  AND pg_get_expr(a.indexprs, a.indrelid) IS NOT DISTINCT FROM pg_get_expr(b.indexprs, b.indrelid)
  AND pg_get_expr(a.indpred, a.indrelid) IS NOT DISTINCT FROM pg_get_expr(b.indpred, b.indrelid)
"""


def test_every_table_with_updated_at_has_the_trigger(empty_database: str) -> None:
    upgrade(empty_database, make_settings(empty_database))
    assert _query(empty_database, TABLES_WITHOUT_TRIGGER) == []


def test_no_index_duplicates_another(empty_database: str) -> None:
    """The seed's idx_users_email/idx_teams_slug copied what the unique constraints build."""
    upgrade(empty_database, make_settings(empty_database))
    assert _query(empty_database, DUPLICATE_INDEXES) == []


USERS_EMAIL_STATE = """
SELECT pg_get_indexdef('uq_users_email_live'::regclass),
       (SELECT convalidated FROM pg_constraint WHERE conname = 'ck_users_email_lowercase'),
       to_regprocedure('rls_actor_user_ids()') IS NOT NULL
"""
INSERT_USER = """
INSERT INTO users (email, password_hash, display_name)
VALUES (%(email)s, 'x', 'someone') RETURNING id
"""


def test_0012_lowercases_stored_emails_and_makes_it_the_rule(empty_database: str) -> None:
    """Rows written around dbops with capitals (0011 allowed them) come out lowercase, the CHECK
    refuses new ones, and the unique index on ``email`` stays case-insensitive in effect."""
    settings = make_settings(empty_database)
    upgrade(empty_database, settings, "0011")
    mixed = _query(empty_database, INSERT_USER, {"email": "Ada.Lovelace@Example.COM"})[0][0]
    plain = _query(empty_database, INSERT_USER, {"email": "grace@example.com"})[0][0]
    _query(empty_database, "UPDATE users SET deleted_at = now() WHERE id = %(id)s", {"id": plain})
    gone = _query(empty_database, INSERT_USER, {"email": "GRACE@example.com"})[0][0]
    _query(empty_database, "UPDATE users SET deleted_at = now() WHERE id = %(id)s", {"id": gone})
    assert _query(empty_database, USERS_EMAIL_STATE)[0][1:] == (None, True)

    assert upgrade(empty_database, settings, "0012").applied == ("0012",)
    index, validated, teammates_function = _query(empty_database, USERS_EMAIL_STATE)[0]
    assert "(email) WHERE (deleted_at IS NULL)" in str(index)
    assert "lower" not in str(index)
    assert (validated, teammates_function) == (True, False)
    emails = {row[0]: row[1] for row in _query(empty_database, "SELECT id, email FROM users")}
    # Two soft-deleted rows may share an address once lowercased; the live one is unique.
    assert emails == {
        mixed: "ada.lovelace@example.com",
        plain: "grace@example.com",
        gone: "grace@example.com",
    }
    with psycopg.connect(to_libpq_url(empty_database), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.CheckViolation, match="ck_users_email_lowercase"):
            conn.execute(INSERT_USER, {"email": "New@example.com"})
        with pytest.raises(psycopg.errors.UniqueViolation, match="uq_users_email_live"):
            conn.execute(INSERT_USER, {"email": "ada.lovelace@example.com"})

    downgrade(empty_database, settings, "0011")
    index, validated, teammates_function = _query(empty_database, USERS_EMAIL_STATE)[0]
    assert "(lower(email)) WHERE (deleted_at IS NULL)" in str(index)
    assert (validated, teammates_function) == (None, True)


MEMBER_COUNTS_ORACLE = """
SELECT t.slug, coalesce(c.members, -1), (SELECT count(*) FROM team_members AS m
                                         WHERE m.team_id = t.id)
FROM teams AS t LEFT JOIN team_member_counts AS c ON c.team_id = t.id ORDER BY t.slug
"""
SEED_TEAMS = """
WITH u AS (
  INSERT INTO users (email, password_hash, display_name)
  SELECT 'm' || i || '@example.com', 'x', 'm' || i FROM generate_series(1, 30) AS i RETURNING id
), t AS (
  INSERT INTO teams (name, slug) VALUES ('Big', 'big'), ('Small', 'small'), ('Empty', 'empty')
  RETURNING id, slug
)
INSERT INTO team_members (team_id, user_id, role)
SELECT t.id, u.id, 'MEMBER' FROM t, u
WHERE t.slug = 'big' OR (t.slug = 'small' AND u.id IN (SELECT id FROM u ORDER BY id LIMIT 3))
"""


def test_0014_counts_the_members_there_are_as_the_owner_under_rls(
    empty_database: str, pg_cluster: EmbeddedCluster, migrated: str
) -> None:
    """The backfill counts what 0013 left, run as the owner role (forced RLS, the policy
    functions still its own: 0013's portable views recursed while planning any read of
    ``team_members`` then); the downgrade drops the counts and leaves the views readable.
    (``migrated``: dbops' roles exist.)"""
    name = str(_query(empty_database, "SELECT current_database()")[0][0])
    _query(empty_database, f'ALTER DATABASE "{name}" OWNER TO dbops_owner')
    _query(empty_database, "ALTER SCHEMA public OWNER TO dbops_owner")
    owner = pg_cluster.url(name, user="dbops_owner")
    settings = make_settings(owner)
    upgrade(owner, settings, "0013")
    _query(empty_database, SEED_TEAMS)  # the superuser: no policy

    assert upgrade(owner, settings, "0014").applied == ("0014",)
    assert _query(empty_database, MEMBER_COUNTS_ORACLE) == [
        ("big", 30, 30),
        ("empty", -1, 0),  # never had a member: no row, read as 0
        ("small", 3, 3),
    ]
    # The owner, as a system actor, reads the tables again (0013's views made it recurse).
    with psycopg.connect(to_libpq_url(owner), autocommit=True) as conn:
        conn.execute("SELECT set_config('app.actor_kind', 'system', false)")
        assert conn.execute("SELECT count(*) FROM team_members").fetchone() == (33,)

    downgrade(owner, settings, "0013")
    assert _query(empty_database, "SELECT to_regclass('public.team_member_counts')") == [(None,)]
    views = _query(
        empty_database,
        "SELECT pg_get_viewdef('public.rls_actor_teams'::regclass), "
        "pg_get_viewdef('public.rls_actor_team_memberships'::regclass)",
    )[0]
    assert all("rls_actor_team_ids()" in str(v) and "SELECT rls_actor" not in str(v) for v in views)
