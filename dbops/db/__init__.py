"""Connections (pool, engine, sessions), the database URL and the embedded PostgreSQL cluster.

Names are imported on first use (module ``__getattr__``): the embedded cluster's commands need
neither SQLAlchemy nor the pool, and importing them would slow every `dbops` command down.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dbops._lazy import lazy_exports

if TYPE_CHECKING:
    from dbops.db.dsn import Dsn, configured_dsn
    from dbops.db.embedded import ClusterStatus, EmbeddedCluster, PgBinaries, find_binaries
    from dbops.db.engine import (
        Database,
        connection_kwargs,
        make_engine,
        make_pool,
        open_database,
        readonly_dsn,
        resolve_dsn,
        resolve_url,
        running_dsn,
    )
    from dbops.db.purpose import PURPOSES, Purpose, dsn_for, project_cluster

__all__ = [
    "PURPOSES",
    "ClusterStatus",
    "Database",
    "Dsn",
    "EmbeddedCluster",
    "PgBinaries",
    "Purpose",
    "configured_dsn",
    "connection_kwargs",
    "dsn_for",
    "find_binaries",
    "make_engine",
    "make_pool",
    "open_database",
    "project_cluster",
    "readonly_dsn",
    "resolve_dsn",
    "resolve_url",
    "running_dsn",
]

#: Public name -> module that defines it.
_WHERE = {
    "Dsn": "dbops.db.dsn",
    "ClusterStatus": "dbops.db.embedded",
    "EmbeddedCluster": "dbops.db.embedded",
    "PgBinaries": "dbops.db.embedded",
    "find_binaries": "dbops.db.embedded",
    "Database": "dbops.db.engine",
    "configured_dsn": "dbops.db.dsn",
    "connection_kwargs": "dbops.db.engine",
    "make_engine": "dbops.db.engine",
    "make_pool": "dbops.db.engine",
    "open_database": "dbops.db.engine",
    "readonly_dsn": "dbops.db.engine",
    "resolve_dsn": "dbops.db.engine",
    "resolve_url": "dbops.db.engine",
    "running_dsn": "dbops.db.engine",
    "PURPOSES": "dbops.db.purpose",
    "Purpose": "dbops.db.purpose",
    "dsn_for": "dbops.db.purpose",
    "project_cluster": "dbops.db.purpose",
}


__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
