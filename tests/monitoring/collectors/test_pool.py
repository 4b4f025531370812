"""The pool collector: psycopg_pool's statistics under the snapshot's names."""

from __future__ import annotations

from psycopg_pool import ConnectionPool

from dbops.config import to_libpq_url
from dbops.monitoring.collectors.pool import pool_stats


def test_a_fresh_pool_has_lost_no_connection(mon_url: str) -> None:
    """psycopg_pool leaves counters that are still 0 out of get_stats(): they read as 0."""
    with ConnectionPool(to_libpq_url(mon_url), min_size=1, max_size=2, open=True) as pool:
        pool.wait()
        assert "connections_lost" not in pool.get_stats()
        stat = pool_stats(pool)
    assert (stat.connections_lost, stat.connection_errors, stat.timeouts) == (0, 0, 0)
    assert (stat.requests_queued, stat.requests_wait_ms, stat.waiting) == (0, 0, 0)
    assert (stat.min_size, stat.max_size) == (1, 2)


def test_a_borrowed_connection_is_in_use_not_idle(mon_url: str) -> None:
    with ConnectionPool(to_libpq_url(mon_url), min_size=2, max_size=2, open=True) as pool:
        pool.wait()
        with pool.connection():
            stat = pool_stats(pool)
    assert (stat.size, stat.idle, stat.requests) == (2, 1, 1)
