"""The process's own side: psycopg_pool statistics, query cache counters, statement latencies."""

from __future__ import annotations

from typing import Protocol

from psycopg_pool import ConnectionPool

from dbops.db.metrics import STATEMENTS, StatementMetrics, statement_stats
from dbops.monitoring.snapshot import (
    AppStat,
    CacheStat,
    CountBy,
    PoolStat,
    StatementLatency,
)

__all__ = ["CacheLike", "app_stats", "cache_stats", "pool_stats"]


class _CacheCounters(Protocol):
    """Read-only counters (the services' ``CacheStats`` is a frozen dataclass)."""

    @property
    def backend(self) -> str: ...
    @property
    def hits(self) -> int: ...
    @property
    def misses(self) -> int: ...
    @property
    def invalidations(self) -> int: ...
    @property
    def size(self) -> int | None: ...


class CacheLike(Protocol):
    """Anything with ``stats()`` like the service layer's query caches."""

    def stats(self) -> _CacheCounters:
        """Hit/miss/invalidation counters."""
        ...


def pool_stats(pool: ConnectionPool) -> PoolStat:
    """``pool.get_stats()`` (counters since the pool opened; nothing is reset)."""
    stats = pool.get_stats()
    return PoolStat(
        name=pool.name,
        min_size=stats.get("pool_min", pool.min_size),
        max_size=stats.get("pool_max", pool.max_size),
        size=stats.get("pool_size", 0),
        idle=stats.get("pool_available", 0),
        waiting=stats.get("requests_waiting", 0),
        requests=stats.get("requests_num", 0),
        requests_queued=stats.get("requests_queued", 0),
        requests_wait_ms=stats.get("requests_wait_ms", 0),
        # psycopg_pool counts a request that ends in an error (timeout, queue full) here.
        timeouts=stats.get("requests_errors", 0),
        connection_errors=stats.get("connections_errors", 0),
        connections_lost=stats.get("connections_lost", 0),
    )


def cache_stats(cache: CacheLike) -> CacheStat:
    """The cache's hit/miss/invalidation counters."""
    stats = cache.stats()
    return CacheStat(
        backend=stats.backend,
        hits=stats.hits,
        misses=stats.misses,
        invalidations=stats.invalidations,
        size=stats.size,
    )


def app_stats(metrics: StatementMetrics | None = None) -> AppStat:
    """This process's service statement latencies and errors (default: the process recorder).

    Reads in-process counters only; nothing touches the database.
    """
    recorder = metrics or STATEMENTS
    return AppStat(
        buckets_s=recorder.buckets_s,
        statements=tuple(
            StatementLatency(
                name=s.name,
                count=s.count,
                sum_s=s.sum_s,
                bucket_counts=s.bucket_counts,
                errors=tuple(CountBy(key=k, count=n) for k, n in s.errors),
            )
            for s in statement_stats(recorder)
        ),
    )
