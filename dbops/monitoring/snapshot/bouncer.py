"""PgBouncer's own figures: its pools (``SHOW POOLS``) and traffic (``SHOW STATS``)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BouncerDatabase", "BouncerPool", "BouncerStat"]


@dataclass(frozen=True)
class BouncerPool:
    """One pool of PgBouncer (a database and role): its clients and server connections.

    ``clients_waiting`` have no server connection yet; ``max_wait_s`` is how long the oldest
    of them has waited (0 when none waits).
    """

    database: str
    user: str
    clients_active: int
    clients_waiting: int
    servers_active: int
    servers_idle: int
    servers_used: int
    max_wait_s: float
    pool_mode: str | None


@dataclass(frozen=True)
class BouncerDatabase:
    """What went through PgBouncer to one database since it started (``SHOW STATS``).

    Times are seconds spent in transactions, in queries and waiting for a server connection,
    summed over every client; the averages are PgBouncer's, per second of its last period.
    """

    database: str
    transactions: int
    queries: int
    bytes_received: int
    bytes_sent: int
    transaction_s: float
    query_s: float
    wait_s: float
    avg_transaction_s: float
    avg_wait_s: float


@dataclass(frozen=True)
class BouncerStat:
    """PgBouncer in front of the database (``DBOPS_MONITOR_PGBOUNCER_URL``)."""

    pools: tuple[BouncerPool, ...]
    databases: tuple[BouncerDatabase, ...]
    #: ``SHOW VERSION``: ``PgBouncer 1.18.0``.
    version: str | None = None
