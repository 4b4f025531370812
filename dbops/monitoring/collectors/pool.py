"""The process's own side: psycopg_pool statistics, query cache counters, statement latencies."""

from __future__ import annotations

from psycopg_pool import ConnectionPool

from dbops.monitoring.snapshot import (
    AppStat,
    CacheStat,
    CountBy,
    PoolStat,
    StatementLatency,
)
from dbops.telemetry.metrics import STATEMENTS, StatementMetrics, statement_stats
from dbops.telemetry.report import CacheLike, cache_figures, pool_figures

__all__ = ["CacheLike", "app_stats", "cache_stats", "pool_stats"]


def pool_stats(pool: ConnectionPool) -> PoolStat:
    """``pool.get_stats()`` (counters since the pool opened; nothing is reset).

    The same figures a process reports (:func:`dbops.telemetry.report.pool_figures`).
    """
    return PoolStat(**pool_figures(pool))


def cache_stats(cache: CacheLike) -> CacheStat:
    """The cache's hit/miss/invalidation counters (:func:`dbops.telemetry.report.cache_figures`)."""
    return CacheStat(**cache_figures(cache))


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
