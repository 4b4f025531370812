"""Which database a command talks to, and whether it may start the embedded cluster for it.

Commands that change the database (`migrate`, `downgrade`, `seed`, `up`) start a stopped
embedded cluster and say so on stderr. Read-only commands (`status`, `current`) never start
it: they fail with :data:`STOPPED` (exit 3, like any database that cannot be reached).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from dbops.cli._render import note
from dbops.errors import EMBEDDED_NOT_CREATED, EMBEDDED_STOPPED

if TYPE_CHECKING:
    from dbops.config import Settings
    from dbops.db import Database, Dsn, EmbeddedCluster

__all__ = [
    "EXTERNAL_NO_SERVER",
    "STOPPED",
    "cluster",
    "database",
    "dsn_to_change",
    "dsn_to_read",
    "monitor_dsn",
    "settings",
]

EXTERNAL_NO_SERVER = "DATABASE_URL is set: dbops manages no server"
NO_MONITOR_ROLE = (
    "the exporter reads as the cluster's superuser: no dbops_monitor role yet "
    "(`dbops up` or `dbops roles setup` creates it)"
)
STOPPED = EMBEDDED_STOPPED
NOT_CREATED = EMBEDDED_NOT_CREATED


def settings() -> Settings:
    """Fresh settings for this command (a ValidationError becomes a one-line config error)."""
    from dbops.config import Settings

    return Settings()


def cluster(settings: Settings) -> EmbeddedCluster:
    """The embedded cluster of ``settings`` (described, not started)."""
    from dbops.db.purpose import project_cluster

    return project_cluster(settings)


def dsn_to_read(settings: Settings) -> Dsn:
    """``DATABASE_URL``, or the embedded cluster's superuser if it runs; never starts it.

    Raises:
        ConfigError: ``DATABASE_URL`` is invalid.
        EmbeddedClusterError: no cluster yet and no PostgreSQL binaries to create one.
        DatabaseUnavailable: the embedded cluster does not exist yet or is stopped (exit 3).
    """
    from dbops.db.purpose import dsn_for

    return dsn_for(settings, "admin")


def dsn_to_change(settings: Settings) -> Dsn:
    """``DATABASE_URL``, or the embedded cluster, created and started first if needed."""
    from dbops.db import configured_dsn, dsn_for

    if configured_dsn(settings) is None:
        embedded = cluster(settings)
        if not embedded.initialized():
            # No binaries: fail with the install hint before saying anything (a pinned build
            # of DBOPS_PG_VERSION is fetched here, once).
            embedded.binaries()
        if not embedded.running():
            note(f"starting the embedded cluster in {embedded.home} ...")
    return dsn_for(settings, "admin", start=True)


@contextmanager
def database(settings: Settings, dsn: Dsn) -> Iterator[Database]:
    """An open :class:`Database` for the command, closed at the end."""
    from dbops.db import open_database

    db = open_database(settings, dsn, purpose="admin")
    try:
        yield db
    finally:
        db.close()


def monitor_dsn(settings: Settings, dsn: Dsn) -> Dsn:
    """The exporter's connection: the monitor role on the embedded cluster, else ``dsn``.

    ``dbops_monitor`` reads statistics and the data section's aggregates, no tenant row
    (dbops.ops.roles); over the cluster's socket it needs no password. A cluster that has no
    such role yet (never set up by `dbops up` or `dbops roles setup`) keeps the superuser, and
    a note says so. With ``DATABASE_URL`` the operator picks the role in the URL.
    """
    if not settings.embedded:
        return dsn
    from dbops.ops.roles import role_status

    with database(settings, dsn) as admin:
        ready = any(s.role == "monitor" and s.exists and s.login for s in role_status(admin))
    if not ready:
        note(NO_MONITOR_ROLE)
        return dsn
    from dbops.db import dsn_for

    return dsn_for(settings, "monitor")
