"""Alembic environment: target metadata from dbops.models, URL from dbops settings.

Three safety nets around every run (see docs/decisions/0003-migration-safety.md):
- every revision of one run applies in **one transaction** (PostgreSQL has transactional DDL),
  so a failure leaves the schema exactly as it was;
- a transaction-level advisory lock taken first in that transaction, so two `dbops migrate`
  started together run one after the other (the second then finds nothing to do);
- a short ``lock_timeout`` for the DDL, so a migration never queues forever behind a long
  transaction (and every query behind it); the error tells the operator to retry.

The connection comes from ``config.attributes["connection"]`` when the caller hands one over:
a ``Connection`` (``dbops.ops.migrate``) or an ``Engine`` (pytest-alembic hands its
``alembic_engine``). Only without one does this file build its own engine.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import context
from psycopg import errors as pg_errors
from sqlalchemy import Connection, Engine, create_engine
from sqlalchemy import exc as sa_exc
from sqlalchemy.pool import NullPool

import dbops.models.geo  # noqa: F401  (registers team_locations and 0002's indexes on Base)
from dbops.errors import LockTimeout
from dbops.models import Base
from dbops.ops.migrate import MIGRATION_LOCK_KEY

config = context.config
target_metadata = Base.metadata

#: Tables PostgreSQL extensions own; they are not ours to create, drop or compare.
EXTENSION_TABLES = frozenset({"spatial_ref_sys"})
#: Tables migration 0002 creates only when the server has PostGIS (see its docstring).
POSTGIS_TABLES = frozenset({"team_locations"})

# Both take effect only inside the transaction (``is_local`` = true): nothing leaks into the
# session of a connection the caller handed over.
SET_LOCAL_LOCK_TIMEOUT = sa.text("SELECT set_config('lock_timeout', :ms, true)")
TAKE_MIGRATION_LOCK = sa.text("SELECT pg_advisory_xact_lock(:key)")
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


def _take_migration_lock(connection: Connection, wait_s: float) -> None:
    """Wait up to ``wait_s`` for the advisory lock; it is released when the transaction ends.

    A transaction-level lock needs no unlock (and no commit juggling on a connection the caller
    owns): commit, rollback and a dropped connection all release it.
    """
    connection.execute(SET_LOCAL_LOCK_TIMEOUT, {"ms": str(max(1, int(wait_s * 1000)))})
    try:
        connection.execute(TAKE_MIGRATION_LOCK, {"key": MIGRATION_LOCK_KEY})
    except sa_exc.OperationalError as exc:
        if isinstance(exc.orig, pg_errors.LockNotAvailable):
            raise LockTimeout(
                f"another migration has been running for over {wait_s:g}s; "
                "retry when it has finished"
            ) from exc
        raise


def _run(connection: Connection) -> None:
    attrs = config.attributes
    lock_timeout_ms = int(attrs.get("lock_timeout_ms", 3000))
    wait_s = float(attrs.get("migration_wait_s", 120))
    use_lock = bool(attrs.get("advisory_lock", True))
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        include_object=include_object,
        compare_type=True,
        compare_server_default=False,
        # One transaction for the whole run (the default, stated because it is a promise).
        transaction_per_migration=False,
    )
    with context.begin_transaction():
        if use_lock:
            _take_migration_lock(connection, wait_s)
        connection.execute(SET_LOCAL_LOCK_TIMEOUT, {"ms": str(lock_timeout_ms)})
        _Run.postgis = bool(connection.execute(POSTGIS_INSTALLED).scalar())
        context.run_migrations()


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
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported: run against a database")
run_migrations_online()
