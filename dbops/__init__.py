"""dbops: the PostgreSQL data layer and data-ops toolkit for team-based SaaS products."""

from __future__ import annotations

from dbops.config import Settings, load_settings, redact_dsn
from dbops.db import Database, EmbeddedCluster, open_database
from dbops.errors import DbopsError

__all__ = [
    "Database",
    "DbopsError",
    "EmbeddedCluster",
    "Settings",
    "load_settings",
    "open_database",
    "redact_dsn",
]
__version__ = "0.1.0"
