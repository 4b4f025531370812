"""Alembic environment: target metadata from dbops.models, URL from dbops settings.

Safety nets around every online run (see docs/decisions/0003-migration-safety.md):
- a **session-level advisory lock** held for the whole run, so two `dbops migrate` started
  together run one after the other (the second reads the revision only once it holds the lock,
  and finds nothing to do). It survives the commits of ``autocommit_block()`` and is released
  at the end of the run (or with the connection);
- a short ``lock_timeout`` for the whole run (session-level, restored afterwards), so no step
  queues forever behind a long transaction, not even a ``CONCURRENTLY`` step outside the
  transaction;
- the revisions of one run apply in **one transaction**, except that a revision's
  ``autocommit_block()`` (``CREATE/DROP INDEX CONCURRENTLY``) commits what ran before it. A
  revision puts that block first, so its transactional part and its version stamp still commit
  together.

Offline mode (``alembic upgrade --sql``, ``dbops.ops.migrate.render_sql``) writes the SQL of a
range of revisions instead of running it.

The connection comes from ``config.attributes["connection"]`` when the caller hands one over:
a ``Connection`` (``dbops.ops.migrate``) or an ``Engine`` (pytest-alembic hands its
``alembic_engine``). Only without one does this file build its own engine. What the run did is
left in ``config.attributes``: ``before`` (read under the lock), ``after`` and ``applied``.
"""

from __future__ import annotations

import importlib.util
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from alembic import context
from alembic.runtime.migration import MigrationContext, MigrationInfo
from sqlalchemy import Connection, Engine
from sqlalchemy import exc as sa_exc

from dbops.errors import LockTimeout, MigrationError
from dbops.models import Base
from dbops.ops.migrate import MIGRATION_LOCK_KEY

if importlib.util.find_spec("geoalchemy2") is not None:
    # The optional geo extra: registers team_locations on Base for autogenerate/compare.
    import dbops.models.geo  # noqa: F401

config = context.config
target_metadata = Base.metadata
_log = logging.getLogger("alembic.runtime.migration")

#: Tables PostgreSQL extensions own; they are not ours to create, drop or compare.
EXTENSION_TABLES = frozenset({"spatial_ref_sys"})
#: Tables migration 0002 creates only when the server has PostGIS (see its docstring).
POSTGIS_TABLES = frozenset({"team_locations"})

#: ``is_local`` true: until the end of the transaction; false: for the session.
SET_LOCK_TIMEOUT = sa.text("SELECT set_config('lock_timeout', :value, :is_local)")
SHOW_LOCK_TIMEOUT = sa.text("SELECT current_setting('lock_timeout')")
#: Migrations act as an explicit system actor (row-level security, migration 0008, is FORCED:
#: the owner role running them sees no row otherwise); the audit trail names them "migration".
SET_MIGRATION_ACTOR = sa.text(
    "SELECT set_config('app.actor_kind', :kind, false), set_config('app.actor_id', '', false), "
    "set_config('app.actor_name', :name, false)"
)
TRY_MIGRATION_LOCK = sa.text("SELECT pg_try_advisory_lock(:key)")
RELEASE_MIGRATION_LOCK = sa.text("SELECT pg_advisory_unlock(:key)")
POSTGIS_INSTALLED = sa.text("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'postgis')")


class _Run:
    """What one run found out about the database, for :func:`include_object`."""

    postgis: bool = True


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """Leave out of autogenerate what is not ours or legitimately absent."""
    if type_ == "table" and name in EXTENSION_TABLES:
        return False
    table_name = obj.table.name if type_ in {"index", "column"} else name
    # Without PostGIS on the server, migration 0002 skips team_locations on purpose: its
    # absence is not drift. With PostGIS it is compared like any other table.
    return not (table_name in POSTGIS_TABLES and not reflected and not _Run.postgis)


def _record_step(*, ctx: MigrationContext, step: MigrationInfo, heads: Any, run_args: Any) -> None:
    """Note each revision applied (upgrade) or reverted (downgrade), in order."""
    config.attributes.setdefault("applied", []).append(step.up_revision_id)


def _wait_for_migration_lock(connection: Connection, wait_s: float) -> None:
    """Poll ``pg_try_advisory_lock`` for up to ``wait_s``, idle between tries.

    Not a blocking ``pg_advisory_lock``: a run building an index ``CONCURRENTLY`` waits for
    every transaction with an older snapshot, including a second run blocked in that call,
    which waits for the first run's lock: a deadlock. Between tries this connection is idle,
    outside a transaction, so a concurrent build does not wait for it.
    """
    deadline = time.monotonic() + wait_s
    pause = 0.02
    while True:
        with connection.begin():
            if connection.execute(TRY_MIGRATION_LOCK, {"key": MIGRATION_LOCK_KEY}).scalar_one():
                return
        left = deadline - time.monotonic()
        if left <= 0:
            raise LockTimeout(
                f"another migration has been running for over {wait_s:g}s; "
                "retry when it has finished"
            )
        time.sleep(min(pause, left))
        pause = min(pause * 2, 0.5)


@contextmanager
def _migration_session(
    connection: Connection, *, use_lock: bool, wait_s: float, lock_timeout_ms: int
) -> Iterator[None]:
    """Hold the migration lock and the run's ``lock_timeout`` on ``connection`` for the run.

    Both are session-level because ``autocommit_block()`` commits in the middle of a run; both
    are undone at the end, so a connection the caller handed over is left as it was.
    """
    if connection.in_transaction():
        raise MigrationError("hand the migration a connection that is not in a transaction")
    with connection.begin():
        previous = str(connection.execute(SHOW_LOCK_TIMEOUT).scalar_one())
    if use_lock:
        _wait_for_migration_lock(connection, wait_s)
    try:
        with connection.begin():
            value = str(lock_timeout_ms)
            connection.execute(SET_LOCK_TIMEOUT, {"value": value, "is_local": False})
            connection.execute(SET_MIGRATION_ACTOR, {"kind": "system", "name": "migration"})
        yield
    finally:
        try:
            if connection.in_transaction():
                connection.rollback()
            with connection.begin():
                connection.execute(SET_LOCK_TIMEOUT, {"value": previous, "is_local": False})
                connection.execute(SET_MIGRATION_ACTOR, {"kind": "", "name": ""})
                if use_lock:
                    connection.execute(RELEASE_MIGRATION_LOCK, {"key": MIGRATION_LOCK_KEY})
        except sa_exc.DBAPIError as exc:  # a broken connection takes its lock with it
            _log.warning("could not release the migration lock: %s", exc.orig)


def _run(connection: Connection) -> None:
    attrs = config.attributes
    lock_timeout_ms = int(attrs.get("lock_timeout_ms", 3000))
    wait_s = float(attrs.get("migration_wait_s", 120))
    use_lock = bool(attrs.get("advisory_lock", True))
    attrs["applied"] = []
    with _migration_session(
        connection, use_lock=use_lock, wait_s=wait_s, lock_timeout_ms=lock_timeout_ms
    ):
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            include_object=include_object,
            compare_type=True,
            compare_server_default=False,
            # One transaction for the run, split only by a revision's autocommit_block().
            transaction_per_migration=False,
            on_version_apply=_record_step,
        )
        with context.begin_transaction():
            migration = context.get_context()
            attrs["before"] = migration.get_current_revision()
            _Run.postgis = bool(connection.execute(POSTGIS_INSTALLED).scalar())
            context.run_migrations()
            attrs["after"] = migration.get_current_revision()


def run_migrations_online() -> None:
    handed = config.attributes.get("connection")
    if isinstance(handed, Connection):
        _run(handed)
        return
    if isinstance(handed, Engine):
        with handed.connect() as conn:
            _run(conn)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        from dbops.config import load_settings
        from dbops.db import resolve_url

        url = resolve_url(load_settings())
    from dbops.db.engine import url_engine

    engine = url_engine(url)
    try:
        with engine.connect() as conn:
            _run(conn)
    finally:
        engine.dispose()


def run_migrations_offline() -> None:
    """Write the SQL of the requested range (no database needed, PostgreSQL dialect)."""
    context.configure(
        dialect_name="postgresql",
        target_metadata=target_metadata,
        literal_binds=True,
        transaction_per_migration=False,
    )
    # Session-level, so it still holds after the COMMITs around CONCURRENTLY steps. SET takes
    # no bind parameters; the value is an int from Settings.
    lock_timeout_ms = int(config.attributes.get("lock_timeout_ms", 3000))
    context.execute(f"SET lock_timeout = {lock_timeout_ms:d}")
    context.execute("SET app.actor_kind = 'system'")
    context.execute("SET app.actor_name = 'migration'")
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
