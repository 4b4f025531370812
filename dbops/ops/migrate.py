"""Migrations: thin wrappers over ``alembic.command`` with a Config built from dbops settings.

Every run goes through ``migrations/env.py``, which holds an advisory lock and a short
``lock_timeout`` for the whole run and applies its revisions in one transaction, split only by a
revision's ``autocommit_block()`` (docs/decisions/0003-migration-safety.md). This module turns
what can go wrong into :mod:`dbops.errors` types with a message an operator can act on, renders
the SQL of a range of revisions (offline mode), and holds the helpers revision files use to
build and drop indexes ``CONCURRENTLY``.
"""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
import sqlalchemy as sa
from alembic import command, op
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.script.revision import ResolutionError, RevisionError
from alembic.util.exc import CommandError
from psycopg import errors as pg_errors
from sqlalchemy import Connection
from sqlalchemy import exc as sa_exc

from dbops.config import Settings, to_sqlalchemy_url
from dbops.db.engine import url_engine
from dbops.errors import (
    DatabaseUnavailable,
    DbopsError,
    LockTimeout,
    MigrationError,
    OperationTimeout,
    translate_exception,
)
from dbops.ops.revisions import MIGRATIONS_DIR, database_revision

__all__ = [
    "MIGRATIONS_DIR",
    "MIGRATION_LOCK_KEY",
    "MigrationResult",
    "RevisionInfo",
    "alembic_config",
    "create_index_concurrently",
    "current_revision",
    "downgrade",
    "drop_index_concurrently",
    "head_revision",
    "history",
    "pending",
    "render_sql",
    "upgrade",
]

_log = logging.getLogger("alembic.runtime.migration")


#: Key of the advisory lock that serializes migration runs (any constant 64-bit number).
MIGRATION_LOCK_KEY = 0x64626F70_73_6D6967  # "dbops" "mig"

#: alembic keeps the running environment in process-wide proxies (``alembic.context``,
#: ``alembic.op``): two commands in one process at once would share them. The advisory lock
#: serializes processes; this serializes the threads of one process.
_IN_PROCESS = threading.Lock()


#: Whether index ``index`` of table ``table`` exists and is valid (no row: no such index).
INDEX_IS_VALID = sa.text(
    "SELECT i.indisvalid FROM pg_index AS i "
    "WHERE i.indexrelid = to_regclass(:index) AND i.indrelid = to_regclass(:table)"
)

#: Where :func:`current_revision` can read the revision from.
RevisionSource = str | Connection | psycopg.Connection[Any]


@dataclass(frozen=True)
class MigrationResult:
    """What one ``upgrade``/``downgrade`` run did.

    ``before`` is read after the run took the migration lock, so of several runs started
    together only the first reports revisions in ``applied`` (applied on upgrade, reverted on
    downgrade, in the order they ran). ``None`` means no revision (an empty database).
    """

    before: str | None
    after: str | None
    applied: tuple[str, ...]


@dataclass(frozen=True)
class RevisionInfo:
    """One revision of the migration history, as ``dbops history`` shows it."""

    revision: str
    down_revision: str | None
    message: str
    is_head: bool


def alembic_config(url: str, settings: Settings) -> Config:
    """An alembic Config pointing at ``migrations/`` and ``url``, carrying the safety settings."""
    cfg = _script_config()
    cfg.set_main_option("sqlalchemy.url", to_sqlalchemy_url(url).replace("%", "%%"))
    cfg.attributes["lock_timeout_ms"] = settings.migration.lock_timeout_ms
    cfg.attributes["migration_wait_s"] = settings.migration.wait_s
    return cfg


def upgrade(url: str, settings: Settings, revision: str = "head") -> MigrationResult:
    """Upgrade the database at ``url`` to ``revision``.

    The run is one transaction except where a revision builds indexes ``CONCURRENTLY``: that
    commits what ran before it (docs/decisions/0003-migration-safety.md).

    Raises:
        LockTimeout: a step waited longer than ``migration_lock_timeout_ms`` for a table lock,
            or another migration run held the migration lock longer than ``migration_wait_s``.
            The message says which revision the database is at now.
        MigrationError: unknown revision, or any other alembic failure.
    """
    return _run("upgrade", url, settings, revision)


def downgrade(url: str, settings: Settings, revision: str) -> MigrationResult:
    """Downgrade the database at ``url`` to ``revision`` (``base`` undoes everything).

    Raises:
        LockTimeout: as for :func:`upgrade`.
        MigrationError: unknown revision, a target that is not below the current revision, or
            any other alembic failure.
    """
    return _run("downgrade", url, settings, revision)


def current_revision(source: RevisionSource) -> str | None:
    """The revision the database is at; ``None`` when it was never migrated.

    Args:
        source: a URL (a connection of its own, closed afterwards), or a connection the caller
            owns: a SQLAlchemy ``Connection`` or a psycopg connection, e.g. from the app's pool.
            A connection is only read from; a transaction it begins stays the caller's.
    """
    if isinstance(source, Connection):
        with _translate_migration_errors(None, settings=None):
            return MigrationContext.configure(source).get_current_revision()
    if isinstance(source, psycopg.Connection):
        return database_revision(source)
    engine = url_engine(source)
    try:
        with _translate_migration_errors(None, settings=None), engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def head_revision() -> str:
    """The newest revision of the migration history (the one ``dbops migrate`` goes to)."""
    script = ScriptDirectory.from_config(_script_config())
    try:
        head = script.get_current_head()
    except CommandError as exc:
        raise MigrationError(f"the migration history is broken: {_first_line(exc)}") from exc
    if head is None:
        raise MigrationError("the migration history is empty")
    return head


def history() -> list[RevisionInfo]:
    """Every revision, newest first (the order of ``alembic history``)."""
    script = ScriptDirectory.from_config(_script_config())
    heads = set(script.get_heads())
    try:
        revisions = list(script.walk_revisions())
    except (CommandError, RevisionError) as exc:
        raise MigrationError(f"the migration history is broken: {_first_line(exc)}") from exc
    return [
        RevisionInfo(
            revision=rev.revision,
            down_revision=_join(rev.down_revision),
            message=(rev.doc or "").strip(),
            is_head=rev.revision in heads,
        )
        for rev in revisions
    ]


def pending(source: RevisionSource) -> list[str]:
    """Revisions not applied yet, in the order they would apply.

    Args:
        source: as for :func:`current_revision`.
    """
    current = current_revision(source)
    script = ScriptDirectory.from_config(_script_config())
    try:
        ahead = list(script.iterate_revisions("heads", current or "base"))
    except (CommandError, RevisionError) as exc:
        raise MigrationError(_unknown_db_revision(current, exc)) from exc
    return [rev.revision for rev in reversed(ahead) if rev.revision != current]


def render_sql(settings: Settings, revision_range: str = "head", *, url: str | None = None) -> str:
    """The SQL a migration run would execute, for review (alembic's offline mode).

    Args:
        settings: carries ``migration_lock_timeout_ms`` (the SQL starts with ``SET lock_timeout``).
        revision_range: ``FROM:TO`` (``TO`` below ``FROM`` gives the downgrade's SQL), or just
            ``TO``: from the revision of the database at ``url``, or from ``base`` without one.
        url: the database whose current revision a bare ``TO`` starts from; nothing is run.

    Raises:
        MigrationError: an unknown revision, or a range alembic cannot walk.
    """
    start, sep, end = revision_range.partition(":")
    if not sep:
        start, end = (current_revision(url) if url else None) or "base", revision_range
    buffer = io.StringIO()
    cfg = _script_config(buffer)
    cfg.attributes["lock_timeout_ms"] = settings.migration.lock_timeout_ms
    with _IN_PROCESS, _translate_migration_errors(None, settings):
        if _is_downgrade(ScriptDirectory.from_config(cfg), start, end):
            command.downgrade(cfg, f"{start}:{end}", sql=True)
        else:
            command.upgrade(cfg, f"{start}:{end}", sql=True)
    return buffer.getvalue()


# ------------------------------------------------------------ helpers for revision files
def create_index_concurrently(
    index_name: str, table_name: str, columns: Sequence[str | sa.TextClause], **kw: Any
) -> None:
    """Build an index on an existing table without blocking its writes; retry-safe.

    Call it inside ``op.get_context().autocommit_block()``; ``kw`` goes to
    ``op.create_index``. Online, a valid index of that name on that table is taken as built by
    an earlier, interrupted run (or ahead of time by a DBA) and kept; an INVALID one (a failed
    build) is dropped first; a build that fails drops what it left behind before re-raising
    (if that drop cannot get its lock in time either, the next run drops it). Offline, the SQL
    drops any index of that name before building it.
    """
    if op.get_context().as_sql:
        op.drop_index(
            index_name, table_name=table_name, postgresql_concurrently=True, if_exists=True
        )
        op.create_index(index_name, table_name, columns, postgresql_concurrently=True, **kw)
        return
    _require_autocommit(index_name)
    state = _index_state(index_name, table_name)
    if state is True:
        _log.info("index %s is already built: kept", index_name)
        return
    if state is False:
        _log.warning("dropping invalid index %s left by a failed build", index_name)
        _drop_concurrently(index_name, table_name)
    try:
        op.create_index(index_name, table_name, columns, postgresql_concurrently=True, **kw)
    except sa_exc.DBAPIError:
        if _index_state(index_name, table_name) is False:
            try:
                _drop_concurrently(index_name, table_name)
            except sa_exc.DBAPIError as exc:
                _log.warning(
                    "could not drop invalid index %s (%s): the next run drops it",
                    index_name,
                    _driver_message(exc),
                )
        raise


def drop_index_concurrently(index_name: str, table_name: str) -> None:
    """Drop an index without blocking its table's reads and writes; retry-safe (``IF EXISTS``).

    Call it inside ``op.get_context().autocommit_block()``. A drop that times out leaves the
    index marked invalid (unused by queries, still maintained) until the next run drops it.
    """
    if not op.get_context().as_sql:
        _require_autocommit(index_name)
    _drop_concurrently(index_name, table_name)


# ----------------------------------------------------------------------------- internals
def _script_config(output: io.StringIO | None = None) -> Config:
    cfg = Config(output_buffer=output)
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def _drop_concurrently(index_name: str, table_name: str) -> None:
    op.drop_index(index_name, table_name=table_name, postgresql_concurrently=True, if_exists=True)


def _index_state(index_name: str, table_name: str) -> bool | None:
    """True: a valid index; False: an invalid one (a failed build); None: no such index."""
    row = op.get_bind().execute(INDEX_IS_VALID, {"index": index_name, "table": table_name})
    value = row.scalar_one_or_none()
    return None if value is None else bool(value)


def _require_autocommit(index_name: str) -> None:
    if op.get_bind().get_execution_options().get("isolation_level") != "AUTOCOMMIT":
        raise MigrationError(
            f"index {index_name}: CONCURRENTLY needs op.get_context().autocommit_block()"
        )


def _is_downgrade(script: ScriptDirectory, start: str, end: str) -> bool:
    """Whether the range ``start:end`` walks down (``end`` is an ancestor of ``start``)."""
    if start == "base":
        return False
    if end == "base":
        return True
    try:
        upper, lower = _resolve(script, start), _resolve(script, end)
        below_upper = {rev.revision for rev in script.iterate_revisions(upper, "base")}
    except (CommandError, RevisionError) as exc:
        raise MigrationError(f"unknown revision range '{start}:{end}': {_first_line(exc)}") from exc
    return lower != upper and lower in below_upper


def _resolve(script: ScriptDirectory, name: str) -> str:
    rev = script.get_revision(name)
    if rev is None:
        raise MigrationError(f"unknown revision '{name}'; see `dbops history`")
    return rev.revision


def _run(action: str, url: str, settings: Settings, revision: str) -> MigrationResult:
    cfg = alembic_config(url, settings)
    if not _IN_PROCESS.acquire(timeout=settings.migration.wait_s):
        raise LockTimeout(
            f"another migration has been running for over {settings.migration.wait_s:g}s; "
            "retry when it has finished"
        )
    engine = url_engine(url)
    try:
        try:
            with _translate_migration_errors(revision, settings), engine.connect() as conn:
                cfg.attributes["connection"] = conn
                if action == "upgrade":
                    command.upgrade(cfg, revision)
                else:
                    command.downgrade(cfg, revision)
        except (LockTimeout, MigrationError) as exc:
            if "before" not in cfg.attributes or isinstance(
                exc.__cause__, CommandError | RevisionError
            ):  # failed before the run held the lock, or alembic refused before running
                raise
            raise type(exc)(f"{exc}{_progress(cfg.attributes['before'], url)}") from exc
        attrs = cfg.attributes
        return MigrationResult(
            before=attrs["before"], after=attrs["after"], applied=tuple(attrs["applied"])
        )
    finally:
        engine.dispose()
        _IN_PROCESS.release()


def _progress(before: str | None, url: str) -> str:
    """Where a failed run left the database, to append to its error message."""
    try:
        now = current_revision(url)
    except DbopsError:
        return ""
    if now == before:
        return f"; nothing was applied (the database is still at {_name(before)})"
    return (
        f"; the database is now at {_name(now)} (the run started at {_name(before)}): the "
        "revisions before the failing one are complete, and running again continues from there"
    )


def _name(revision: str | None) -> str:
    return "base (empty)" if revision is None else f"revision {revision}"


@contextmanager
def _translate_migration_errors(revision: str | None, settings: Settings | None) -> Iterator[None]:
    """Map alembic and driver failures of one migration run to :mod:`dbops.errors`."""
    try:
        yield
    except DbopsError:
        raise
    except sa_exc.DBAPIError as exc:
        if settings is not None and isinstance(exc.orig, pg_errors.LockNotAvailable):
            raise LockTimeout(
                "a migration step waited more than "
                f"{settings.migration.lock_timeout_ms} ms for a table lock held by another "
                "transaction and was rolled back. Retry when that transaction has ended "
                "(pg_stat_activity shows the long-running ones)"
            ) from exc
        translated = translate_exception(exc)
        if isinstance(translated, DatabaseUnavailable | OperationTimeout):
            raise translated from exc
        raise MigrationError(f"migration failed: {_driver_message(exc)}") from exc
    except CommandError as exc:
        cause = exc.__cause__
        if isinstance(cause, ResolutionError) and cause.argument == revision:
            raise MigrationError(f"unknown revision '{revision}'; see `dbops history`") from exc
        if isinstance(cause, ResolutionError):
            raise MigrationError(_unknown_db_revision(cause.argument, exc)) from exc
        raise MigrationError(f"migration failed: {_first_line(exc)}") from exc
    except RevisionError as exc:
        raise MigrationError(f"migration failed: {_first_line(exc)}") from exc


def _driver_message(exc: sa_exc.DBAPIError) -> str:
    """The server's one-line message, without the SQL SQLAlchemy appends."""
    orig = exc.orig
    if isinstance(orig, psycopg.Error) and orig.diag.message_primary:
        return orig.diag.message_primary
    return type(orig).__name__


def _unknown_db_revision(current: object, exc: BaseException) -> str:
    return (
        f"the database is at revision '{current}', which this version of dbops does not know "
        f"(was it migrated by a newer version?): {_first_line(exc)}"
    )


def _join(value: str | tuple[str, ...] | list[str] | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return ", ".join(value)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
