"""In-process instrumentation: the application's own pool, cache and statement families.

For an application that serves ``/metrics`` itself (:func:`instrument`); the exporter process
reads the same numbers from the process reports instead (:mod:`dbops.telemetry.report`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    Metric,
)
from prometheus_client.registry import Collector

from dbops.db import Database
from dbops.monitoring.collectors.pool import CacheLike, app_stats, cache_stats, pool_stats
from dbops.telemetry.access import ACCESS

if TYPE_CHECKING:
    from psycopg_pool import ConnectionPool
from dbops.exporter.families._base import Families
from dbops.exporter.families.access import access_event_metrics
from dbops.exporter.families.app import app_statement_metrics
from dbops.exporter.families.pool import cache_metrics, pool_metrics


class _AppCollector(Collector):
    """The app process's pool, cache, service statements and access events, read live."""

    def __init__(
        self,
        pool: ConnectionPool | None,
        cache: CacheLike | None,
        *,
        statements: bool,
        access: bool,
    ) -> None:
        self._pool = pool
        self._cache = cache
        self._statements = statements
        self._access = access

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        f = Families()
        if self._pool is not None:
            pool_metrics(f, pool_stats(self._pool))
        if self._cache is not None:
            cache_metrics(f, cache_stats(self._cache))
        if self._access:
            access_event_metrics(f, "app", ACCESS.counts())
        families = f.all()
        if self._statements:
            families.extend(app_statement_metrics(app_stats()))
        return families


def instrument(
    registry: CollectorRegistry,
    *,
    db: Database | ConnectionPool | None = None,
    cache: CacheLike | None = None,
    statements: bool = True,
    access: bool = True,
) -> Collector:
    """Register the app process's own pool, query-cache and statement metrics on ``registry``.

    The pool is read live (``get_stats()``) on each scrape, and with ``statements`` the
    service statements' latency histograms and errors by SQLSTATE class
    (:mod:`dbops.telemetry.metrics`), with ``access`` the access events of the service calls
    (``dbops_access_events_total{source="app"}``, :mod:`dbops.telemetry.access`); nothing
    touches the database. Returns the collector (``registry.unregister`` it to stop).
    """
    pool = db.pool if isinstance(db, Database) else db
    collector = _AppCollector(pool, cache, statements=statements, access=access)
    registry.register(collector)
    return collector
