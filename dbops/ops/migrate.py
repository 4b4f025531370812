"""Migrations: thin wrappers over ``alembic.command`` with a Config built from dbops settings.

Every run goes through ``migrations/env.py``, which applies all revisions of the run in one
transaction behind an advisory lock and a short ``lock_timeout``
(docs/decisions/0003-migration-safety.md). This module turns what can go wrong into
:mod:`dbops.errors` types with a message an operator can act on.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.script.revision import ResolutionError, RevisionError
from alembic.util.exc import CommandError
from psycopg import errors as pg_errors
from sqlalchemy import create_engine
from sqlalchemy import exc as sa_exc
from sqlalchemy.pool import NullPool

from dbops.config import Settings, to_sqlalchemy_url
from dbops.errors import (
    DatabaseUnavailable,
    DbopsError,
    LockTimeout,
    MigrationError,
    OperationTimeout,
    translate_exception,
)

__all__ = [
    "MIGRATIONS_DIR",
    "MIGRATION_LOCK_KEY",
    "RevisionInfo",
    "alembic_config",
    "current_revision",
    "downgrade",
    "head_revision",
    "history",
    "pending",
    "upgrade",
]

#: The alembic script directory (``migrations/`` at the repository root).
MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"
#: Key of the advisory lock that serializes migration runs (any constant 64-bit number).
MIGRATION_LOCK_KEY = 0x64626F70_73_6D6967  # "dbops" "mig"

#: alembic keeps the running environment in process-wide proxies (``alembic.context``,
#: ``alembic.op``): two commands in one process at once would share them. The advisory lock
#: serializes processes; this serializes the threads of one process.
_IN_PROCESS = threading.Lock()


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
    cfg.attributes["lock_timeout_ms"] = settings.migration_lock_timeout_ms
    cfg.attributes["migration_wait_s"] = settings.migration_wait_s
    return cfg


def upgrade(url: str, settings: Settings, revision: str = "head") -> None:
    """Upgrade the database at ``url`` to ``revision`` (all steps in one transaction).

    Raises:
        LockTimeout: a step waited longer than ``migration_lock_timeout_ms`` for a table lock,
            or another migration run held the migration lock longer than ``migration_wait_s``.
            Nothing was applied.
        MigrationError: unknown revision, or any other alembic failure.
    """
    _run("upgrade", url, settings, revision)


def downgrade(url: str, settings: Settings, revision: str) -> None:
    """Downgrade the database at ``url`` to ``revision`` (``base`` undoes everything).

    Raises:
        LockTimeout: as for :func:`upgrade`; nothing was reverted.
        MigrationError: unknown revision, a target that is not below the current revision, or
            any other alembic failure.
    """
    _run("downgrade", url, settings, revision)


def current_revision(url: str) -> str | None:
    """The revision the database at ``url`` is at; ``None`` when it was never migrated."""
    engine = create_engine(to_sqlalchemy_url(url), poolclass=NullPool)
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


def pending(url: str) -> list[str]:
    """Revisions not applied yet to the database at ``url``, in the order they would apply."""
    current = current_revision(url)
    script = ScriptDirectory.from_config(_script_config())
    try:
        ahead = list(script.iterate_revisions("heads", current or "base"))
    except (CommandError, RevisionError) as exc:
        raise MigrationError(_unknown_db_revision(current, exc)) from exc
    return [rev.revision for rev in reversed(ahead) if rev.revision != current]


# ----------------------------------------------------------------------------- internals
def _script_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def _run(action: str, url: str, settings: Settings, revision: str) -> None:
    cfg = alembic_config(url, settings)
    if not _IN_PROCESS.acquire(timeout=settings.migration_wait_s):
        raise LockTimeout(
            f"another migration has been running for over {settings.migration_wait_s:g}s; "
            "retry when it has finished"
        )
    engine = create_engine(to_sqlalchemy_url(url), poolclass=NullPool)
    try:
        with _translate_migration_errors(revision, settings), engine.connect() as conn:
            cfg.attributes["connection"] = conn
            if action == "upgrade":
                command.upgrade(cfg, revision)
            else:
                command.downgrade(cfg, revision)
    finally:
        engine.dispose()
        _IN_PROCESS.release()


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
                f"{settings.migration_lock_timeout_ms} ms for a table lock held by another "
                "transaction; nothing was applied. Retry when that transaction has ended "
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
