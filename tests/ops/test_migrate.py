"""dbops.ops.migrate: concurrent index helpers, offline SQL, revision reads on given connections."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.pool import NullPool

from dbops.config import to_libpq_url, to_sqlalchemy_url
from dbops.errors import DatabaseUnavailable, MigrationError
from dbops.ops.migrate import (
    _first_line,
    create_index_concurrently,
    current_revision,
    drop_index_concurrently,
    head_revision,
    history,
    pending,
    render_sql,
    upgrade,
)
from tests.fixtures.db import make_settings

INDEX_VALID = "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%(name)s)"


def _query(
    url: str, query: str, params: dict[str, object] | None = None
) -> list[tuple[object, ...]]:
    with psycopg.connect(to_libpq_url(url), autocommit=True) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


@pytest.fixture
def sent() -> list[str]:
    """The SQL statements :func:`run_op` sent to the server, in order."""
    return []


@pytest.fixture
def run_op(empty_database: str, sent: list[str]) -> Iterator[Callable[..., None]]:
    """Run a function as a revision would, with ``op`` bound to a connection of the database."""
    engine = create_engine(to_sqlalchemy_url(empty_database), poolclass=NullPool)

    @event.listens_for(engine, "before_cursor_execute")
    def _record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        sent.append(" ".join(statement.split()))

    def run(fn: Callable[[], None], *, autocommit: bool = True) -> None:
        with engine.connect() as conn:
            if autocommit:
                conn.execution_options(isolation_level="AUTOCOMMIT")
            with Operations.context(MigrationContext.configure(conn)):
                fn()
            if conn.in_transaction():
                conn.commit()

    yield run
    engine.dispose()


def test_a_failed_unique_build_leaves_no_invalid_index_and_can_be_retried(
    empty_database: str, run_op: Callable[..., None], sent: list[str]
) -> None:
    _query(empty_database, "CREATE TABLE t (a int)")
    _query(empty_database, "INSERT INTO t VALUES (1), (1), (2)")

    def build() -> None:
        create_index_concurrently("uq_t_a", "t", ["a"], unique=True)

    with pytest.raises(Exception, match="could not create unique index") as caught:
        run_op(build)
    assert "uq_t_a" in str(caught.value)
    assert _query(empty_database, INDEX_VALID, {"name": "uq_t_a"}) == []  # no INVALID leftover

    _query(empty_database, "DELETE FROM t WHERE ctid = (SELECT min(ctid) FROM t WHERE a = 1)")
    sent.clear()
    run_op(build)
    assert _query(empty_database, INDEX_VALID, {"name": "uq_t_a"}) == [(True,)]
    assert [s for s in sent if "INDEX" in s] == ["CREATE UNIQUE INDEX CONCURRENTLY uq_t_a ON t (a)"]
    run_op(build)  # built already: kept, no error
    sent.clear()
    run_op(lambda: drop_index_concurrently("uq_t_a", "t"))
    assert sent == ["DROP INDEX CONCURRENTLY IF EXISTS uq_t_a"]
    run_op(lambda: drop_index_concurrently("uq_t_a", "t"))  # IF EXISTS: retry-safe
    assert _query(empty_database, INDEX_VALID, {"name": "uq_t_a"}) == []


def test_a_build_that_fails_before_creating_the_index_raises_the_database_error(
    empty_database: str, run_op: Callable[..., None]
) -> None:
    """No index was made (an unknown column): the driver's error, nothing to clean up."""
    _query(empty_database, "CREATE TABLE t (a int)")
    with pytest.raises(sa_exc.ProgrammingError, match='column "zz" does not exist'):
        run_op(lambda: create_index_concurrently("ix_t_zz", "t", ["zz"]))
    assert _query(empty_database, INDEX_VALID, {"name": "ix_t_zz"}) == []


def test_an_invalid_leftover_is_dropped_before_the_build(
    empty_database: str, run_op: Callable[..., None], sent: list[str]
) -> None:
    _query(empty_database, "CREATE TABLE t (a int)")
    _query(empty_database, "CREATE INDEX ix_t_a ON t (a)")
    _query(
        empty_database,
        "UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'ix_t_a'::regclass",
    )
    run_op(lambda: create_index_concurrently("ix_t_a", "t", ["a"]))
    assert _query(empty_database, INDEX_VALID, {"name": "ix_t_a"}) == [(True,)]
    assert [s for s in sent if "INDEX" in s] == [
        "DROP INDEX CONCURRENTLY IF EXISTS ix_t_a",
        "CREATE INDEX CONCURRENTLY ix_t_a ON t (a)",
    ]


def test_concurrent_helpers_refuse_to_run_inside_a_transaction(
    empty_database: str, run_op: Callable[..., None]
) -> None:
    _query(empty_database, "CREATE TABLE t (a int)")
    with pytest.raises(MigrationError, match="autocommit_block"):
        run_op(lambda: create_index_concurrently("ix_t_a", "t", ["a"]), autocommit=False)
    with pytest.raises(MigrationError, match="autocommit_block"):
        run_op(lambda: drop_index_concurrently("ix_t_a", "t"), autocommit=False)


def _statements(sql: str) -> list[str]:
    code = "\n".join(line for line in sql.splitlines() if not line.startswith("--"))
    return [s.strip() for s in code.split(";\n") if s.strip()]


def test_render_sql_base_to_head_has_the_tables_and_concurrent_indexes_outside_transactions(
    empty_database: str,
) -> None:
    sql = render_sql(make_settings(empty_database), "base:head")
    assert sql.startswith("SET lock_timeout = 3000;")
    for table in ("users", "teams", "team_members", "invitations"):
        assert f"CREATE TABLE {table} (" in sql
    in_transaction = False
    concurrent = []
    for statement in _statements(sql):
        if statement == "BEGIN":
            in_transaction = True
        elif statement == "COMMIT":
            in_transaction = False
        elif "CONCURRENTLY" in statement:
            assert not in_transaction, statement
            concurrent.append(statement)
    assert any("CREATE INDEX CONCURRENTLY ix_invitations_pending_expiry" in s for s in concurrent)
    # Offline, every concurrent build first drops what an interrupted run may have left.
    for at, statement in enumerate(concurrent):
        if statement.startswith("CREATE INDEX CONCURRENTLY "):
            name = statement.split()[3]
            assert concurrent[at - 1] == f"DROP INDEX CONCURRENTLY IF EXISTS {name}", statement
    assert any("CREATE INDEX CONCURRENTLY ix_users_tags" in s for s in concurrent)
    assert "UPDATE alembic_version SET version_num='0003'" in sql
    assert not in_transaction  # ends committed


def test_render_sql_ranges(empty_database: str) -> None:
    settings = make_settings(empty_database)
    head = head_revision()
    assert "CREATE TABLE users" not in render_sql(settings, f"0002:{head}")
    down = render_sql(settings, f"{head}:0002")
    assert "DROP INDEX CONCURRENTLY IF EXISTS ix_invitations_pending_expiry" in down
    # The only index a downgrade to 0002 builds is 0013's one-column one, back under its name.
    built = [s for s in _statements(down) if "CREATE INDEX" in s]
    assert built == [
        "CREATE INDEX CONCURRENTLY ix_team_members_user_id_building ON team_members (user_id)"
    ]
    # A bare TO starts at the database's revision (or at base without a database).
    assert "CREATE TABLE users" in render_sql(settings, head)
    upgrade(empty_database, settings, "0002")
    from_db = render_sql(settings, head, url=empty_database)
    assert "CREATE TABLE users" not in from_db
    assert "ix_invitations_pending_expiry" in from_db
    with pytest.raises(MigrationError, match="nope"):
        render_sql(settings, "base:nope")


def test_current_revision_and_pending_on_caller_connections(empty_database: str) -> None:
    upgrade(empty_database, make_settings(empty_database), "0002")
    later = [r.revision for r in reversed(history())][2:]
    with psycopg.connect(to_libpq_url(empty_database), autocommit=True) as conn:
        assert current_revision(conn) == "0002"
        assert pending(conn) == later
        assert not conn.closed
    engine = create_engine(to_sqlalchemy_url(empty_database), poolclass=NullPool)
    try:
        with engine.connect() as sa_conn:
            assert isinstance(sa_conn, Connection)
            assert current_revision(sa_conn) == "0002"
            assert pending(sa_conn) == later
    finally:
        engine.dispose()


def test_pending_on_a_database_at_an_unknown_revision_says_so(empty_database: str) -> None:
    """A database migrated by a newer dbops: one clear error, not alembic's traceback."""
    _query(empty_database, "CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY)")
    _query(empty_database, "INSERT INTO alembic_version VALUES ('9999')")
    with (
        psycopg.connect(to_libpq_url(empty_database), autocommit=True) as conn,
        pytest.raises(MigrationError) as info,
    ):
        pending(conn)
    assert str(info.value).startswith(
        "the database is at revision '9999', which this version of dbops does not know "
        "(was it migrated by a newer version?): "
    )


@pytest.mark.parametrize(
    ("message", "line"),
    [
        ("first line\nDETAIL: second\nHINT: third", "first line"),
        ("\n  only line  \n", "only line"),
        ("", "RuntimeError"),
    ],
)
def test_an_error_is_told_by_its_first_line(message: str, line: str) -> None:
    assert _first_line(RuntimeError(message)) == line


def test_current_revision_of_an_unmigrated_database_on_a_psycopg_connection(
    empty_database: str,
) -> None:
    with psycopg.connect(to_libpq_url(empty_database)) as conn:
        assert current_revision(conn) is None


def test_a_failing_step_is_a_migration_error_and_leaves_nothing(empty_database: str) -> None:
    """A database error inside a step: one clear error; the transactional steps roll back."""
    _query(empty_database, "CREATE TABLE users (id int)")
    settings = make_settings(empty_database)
    with pytest.raises(MigrationError, match=r'^migration failed: .*"users" already exists'):
        upgrade(empty_database, settings, "head")
    assert current_revision(empty_database) is None
    assert _query(empty_database, "SELECT to_regclass('teams')") == [(None,)]


def test_an_unreachable_database_is_database_unavailable_not_a_migration_error() -> None:
    url = "postgresql+psycopg://nobody@127.0.0.1:1/none"
    with pytest.raises(DatabaseUnavailable):
        upgrade(url, make_settings(url, connect_timeout_s=2), "head")


def test_the_revision_chain_read_without_alembic_is_alembics(tmp_path: Path) -> None:
    """``dbops.ops.revisions`` parses the files (read-only commands skip importing alembic):
    the same ids in the same order as alembic's history, the same head; a branch is refused."""
    from dbops.ops import revisions

    assert list(revisions.revision_chain()) == [r.revision for r in reversed(history())]
    assert revisions.code_head() == head_revision()
    (tmp_path / "versions").mkdir()
    for name, revision, down in (("a", "0001", None), ("b", "0002", "0001"), ("c", "0003", "0001")):
        (tmp_path / "versions" / f"{name}.py").write_text(
            f"revision: str = {revision!r}\ndown_revision: str | None = {down!r}\n"
        )
    revisions.revision_chain.cache_clear()
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(revisions, "MIGRATIONS_DIR", tmp_path)
            with pytest.raises(MigrationError, match="branches at 0001"):
                revisions.revision_chain()
            (tmp_path / "versions" / "c.py").write_text(
                "revision = '0003'\ndown_revision = '0002'\n"
            )
            assert revisions.revision_chain() == ("0001", "0002", "0003")
    finally:
        revisions.revision_chain.cache_clear()
