"""Sessions, their states and who blocks whom."""

from __future__ import annotations

from dataclasses import dataclass

from dbops.monitoring.snapshot._base import CountBy, _redact_fields

__all__ = [
    "ActivityStat",
    "BlockedPair",
    "SessionStat",
]


@dataclass(frozen=True)
class SessionStat:
    """A client session that is running a statement or holds a transaction open.

    ``query_s`` is how long the current statement has run (active sessions only), ``state_s``
    how long the session has been in its state, ``transaction_s`` the age of its transaction.
    """

    pid: int
    user: str | None
    application: str | None
    database: str | None
    state: str | None
    query_s: float | None
    state_s: float | None
    transaction_s: float | None
    wait_event_type: str | None
    wait_event: str | None
    query: str | None

    def __post_init__(self) -> None:
        _redact_fields(self, "query")


@dataclass(frozen=True)
class BlockedPair:
    """A session waiting for a lock (``blocked_*``) and one session it waits for."""

    blocked_pid: int
    blocked_user: str | None
    blocked_query: str | None
    blocked_s: float | None
    wait_event_type: str | None
    wait_event: str | None
    blocking_pid: int
    blocking_user: str | None
    blocking_state: str | None
    blocking_query: str | None

    def __post_init__(self) -> None:
        _redact_fields(self, "blocked_query", "blocking_query")


@dataclass(frozen=True)
class ActivityStat:
    """Client connections of the whole cluster vs ``max_connections``.

    Each part comes from its own query; a part is ``None`` when that query failed.
    """

    max_connections: int | None
    total: int | None
    by_state: tuple[CountBy, ...] | None
    by_application: tuple[CountBy, ...] | None
    by_user: tuple[CountBy, ...] | None
    sessions: tuple[SessionStat, ...] | None
    blocked: tuple[BlockedPair, ...] | None
    #: By client address (``local``: the unix socket); None also in snapshots written before it.
    by_client: tuple[CountBy, ...] | None = None
