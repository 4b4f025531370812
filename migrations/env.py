"""Alembic environment: target metadata from dbops.models, URL from dbops settings.

Two safety nets around every run (see docs/decisions/0003-migration-safety.md):
- a session-level advisory lock, so two `dbops migrate` started together run one after the other;
- a short ``lock_timeout`` for the DDL, so a migration never queues forever behind a long
  transaction (and every query behind it); the error tells the operator to retry.
"""

from __future__ import annotations

import time

from alembic import context
from sqlalchemy import Connection, create_engine, text
from sqlalchemy.pool import NullPool

from dbops.errors import LockTimeout
from dbops.models import Base

config = context.config
target_metadata = Base.metadata

#: Key of the advisory lock that serializes migration runs (any constant 64-bit number).
MIGRATION_LOCK_KEY = 0x64626F70_73_6D6967  # "dbops" "mig"

#: Objects PostgreSQL extensions own; they are not ours to create or drop.
EXTENSION_TABLES = {"spatial_ref_sys"}


def include_object(obj, name, type_, reflected, compare_to):  # type: ignore[no-untyped-def]
    if type_ == "table" and name in EXTENSION_TABLES:
        return False
    return True


def _acquire_lock(connection: Connection, wait_s: float) -> None:
    deadline = time.monotonic() + wait_s
    while True:
        got = connection.execute(
            text("SELECT pg_try_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
        ).scalar()
        connection.commit()
        if got:
            return
        if time.monotonic() >= deadline:
            raise LockTimeout(
                f"another migration has been running for over {wait_s:.0f}s; "
                "retry when it has finished"
            )
        time.sleep(0.2)


def _run(connection: Connection) -> None:
    attrs = config.attributes
    lock_timeout_ms = int(attrs.get("lock_timeout_ms", 3000))
    wait_s = float(attrs.get("migration_wait_s", 120))
    use_lock = attrs.get("advisory_lock", True)
    if use_lock:
        _acquire_lock(connection, wait_s)
    try:
        connection.execute(text(f"SET lock_timeout = {lock_timeout_ms:d}"))
        connection.commit()
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            include_object=include_object,
            compare_type=True,
            compare_server_default=False,
        )
        with context.begin_transaction():
            context.run_migrations()
    finally:
        if use_lock:
            if connection.in_transaction():
                connection.rollback()
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
            connection.commit()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        # pytest-alembic and dbops.ops.migrate hand over a connection: use it, always.
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        from dbops.config import load_settings
        from dbops.db import resolve_url

        url = resolve_url(load_settings())
    engine = create_engine(url, poolclass=NullPool)
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported: run against a database")
run_migrations_online()
