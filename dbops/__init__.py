"""dbops: the PostgreSQL data layer and data-ops toolkit for team-based SaaS products.

The public names below are imported on first use (module ``__getattr__``), so that
``import dbops`` and the `dbops` command start without loading SQLAlchemy, alembic or
pydantic-settings until a command needs them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dbops._lazy import lazy_exports

if TYPE_CHECKING:
    from dbops.config import Settings, load_settings, redact_dsn
    from dbops.db import Database, Dsn, EmbeddedCluster, open_database
    from dbops.errors import DbopsError

__all__ = [
    "Database",
    "DbopsError",
    "Dsn",
    "EmbeddedCluster",
    "Settings",
    "load_settings",
    "open_database",
    "redact_dsn",
]
__version__ = "0.1.0"

#: Public name -> module that defines it.
_WHERE = {
    "Database": "dbops.db",
    "DbopsError": "dbops.errors",
    "Dsn": "dbops.db",
    "EmbeddedCluster": "dbops.db",
    "Settings": "dbops.config",
    "load_settings": "dbops.config",
    "open_database": "dbops.db",
    "redact_dsn": "dbops.config",
}


__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
