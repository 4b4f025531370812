"""Connections (pool, engine, sessions) and the embedded PostgreSQL cluster."""

from __future__ import annotations

from dbops.db.embedded import ClusterStatus, EmbeddedCluster, PgBinaries, find_binaries
from dbops.db.engine import (
    Database,
    connection_kwargs,
    make_engine,
    make_pool,
    open_database,
    resolve_url,
)

__all__ = [
    "ClusterStatus",
    "Database",
    "EmbeddedCluster",
    "PgBinaries",
    "connection_kwargs",
    "find_binaries",
    "make_engine",
    "make_pool",
    "open_database",
    "resolve_url",
]
