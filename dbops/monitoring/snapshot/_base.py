"""What every part of the snapshot shares: the schema version, the server, counts, redaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from dbops.redact import redact

__all__ = [
    "SCHEMA_VERSION",
    "CountBy",
    "ServerInfo",
]


SCHEMA_VERSION = 1


def _redact_fields(obj: object, *names: str) -> None:
    """Redact secret-looking literals in ``obj``'s text fields (a frozen dataclass).

    Every query text of a snapshot passes here however the snapshot was made (collected,
    read from JSON, built by a test): no consumer can show a ``PASSWORD '...'`` literal.
    """
    for name in names:
        value = getattr(obj, name)
        if value is not None:
            object.__setattr__(obj, name, redact(value))


@dataclass(frozen=True)
class ServerInfo:
    """The server and database the snapshot describes."""

    version: str
    version_num: int
    database: str
    current_user: str
    in_recovery: bool
    started_at: datetime | None
    #: ``host:port`` of the server reached (None over a unix socket): with a multi-host URL or
    #: a failover, which node answered.
    address: str | None = None


@dataclass(frozen=True)
class CountBy:
    """A count for one value of a grouping key (state, application, user, role)."""

    key: str | None
    count: int
