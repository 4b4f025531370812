"""Connection pool and query cache families, for the app's pool and the exporter's own."""

from __future__ import annotations

from dbops.exporter.families._base import Families
from dbops.monitoring.snapshot import (
    CacheStat,
    PoolStat,
)


def pool_metrics(f: Families, pool: PoolStat, **who: str) -> None:
    """A pool's families into ``f``, labelled with ``who``."""
    labels = {**who, "pool": pool.name or ""}
    f.gauge("dbops_pool_min_size", "Connections the pool keeps open.", pool.min_size, **labels)
    f.gauge("dbops_pool_max_size", "Most connections the pool opens.", pool.max_size, **labels)
    f.gauge("dbops_pool_size", "Connections open now.", pool.size, **labels)
    f.gauge("dbops_pool_idle", "Open connections not handed out.", pool.idle, **labels)
    f.gauge("dbops_pool_in_use", "Connections handed out now.", pool.in_use(), **labels)
    f.gauge("dbops_pool_waiting", "Requests waiting for a connection now.", pool.waiting, **labels)
    f.counter("dbops_pool_requests", "Connection requests.", pool.requests, **labels)
    f.counter(
        "dbops_pool_requests_queued", "Requests that had to wait.", pool.requests_queued, **labels
    )
    f.counter(
        "dbops_pool_requests_wait_seconds",
        "Time requests waited.",
        pool.requests_wait_ms / 1000.0,
        **labels,
    )
    f.counter(
        "dbops_pool_request_errors",
        "Connection requests that failed: timed out waiting, or refused with the queue full.",
        pool.timeouts,
        **labels,
    )
    f.counter(
        "dbops_pool_connection_errors",
        "Failed connection attempts.",
        pool.connection_errors,
        **labels,
    )
    f.counter(
        "dbops_pool_connections_lost", "Connections found broken.", pool.connections_lost, **labels
    )


def cache_metrics(f: Families, cache: CacheStat, **who: str) -> None:
    """A query cache's families into ``f``, labelled with ``who``."""
    labels = {**who, "backend": cache.backend}
    f.counter("dbops_cache_hits", "Query cache hits.", cache.hits, **labels)
    f.counter("dbops_cache_misses", "Query cache misses.", cache.misses, **labels)
    f.counter(
        "dbops_cache_invalidations", "Query cache invalidations.", cache.invalidations, **labels
    )
    f.gauge("dbops_cache_entries", "Entries in the query cache.", cache.size, **labels)
