"""This process's report: its pools, query caches, service statements and access events.

The dashboard, notebooks and exporter are processes of their own: what they can see of the
application's pool is what the application tells the database. Every process that opens the
app database (:func:`dbops.db.open_database`, ``process_report_s`` > 0) starts one
:class:`ProcessReporter`, a daemon thread that every ``process_report_s`` seconds calls
``dbops_monitor.report_process(...)`` (migration 0011) on a connection of its own, so the
pool's counters never count the reporter. The report holds counters since the process
started (Prometheus-style: a reader computes rates between reports, and a restart shows as a
new process), never SQL text, parameters or arguments of the program. Decision 0009 says why
this design and not a port per process.

A report that cannot be written (the migration has not run, the role lacks ``EXECUTE``, the
server is down) is logged once per kind of failure and retried at the next interval; it never
reaches the application's own calls.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import weakref
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from dbops.telemetry.access import ACCESS
from dbops.telemetry.metrics import STATEMENTS, statement_stats

__all__ = [
    "REPORT_SQL",
    "CacheLike",
    "ProcessReporter",
    "build_report",
    "cache_figures",
    "pool_figures",
    "process_identity",
    "reporter",
    "unwatch_pool",
    "unwatch_routing",
    "watch_cache",
    "watch_pool",
    "watch_routing",
]

LOG = logging.getLogger("dbops.report")

REPORT_SQL = (
    "SELECT dbops_monitor.report_process(%(process)s, %(name)s, %(host)s, %(pid)s, "
    "%(started_at)s, %(report)s)"
)
#: How long :meth:`ProcessReporter.close` waits for a report in flight, in seconds.
CLOSE_WAIT_S = 6.0


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


def pool_figures(pool: ConnectionPool) -> dict[str, Any]:
    """``pool.get_stats()`` under the names of :class:`dbops.monitoring.snapshot.PoolStat`.

    psycopg_pool leaves a counter out while it is 0; a request that ends in an error (timeout,
    queue full) is counted in ``requests_errors``.
    """
    stats = pool.get_stats()
    return {
        "name": pool.name,
        "min_size": stats.get("pool_min", pool.min_size),
        "max_size": stats.get("pool_max", pool.max_size),
        "size": stats.get("pool_size", 0),
        "idle": stats.get("pool_available", 0),
        "waiting": stats.get("requests_waiting", 0),
        "requests": stats.get("requests_num", 0),
        "requests_queued": stats.get("requests_queued", 0),
        "requests_wait_ms": stats.get("requests_wait_ms", 0),
        "timeouts": stats.get("requests_errors", 0),
        "connection_errors": stats.get("connections_errors", 0),
        "connections_lost": stats.get("connections_lost", 0),
    }


def cache_figures(cache: CacheLike) -> dict[str, Any]:
    """The cache's counters under the names of :class:`dbops.monitoring.snapshot.CacheStat`."""
    stats = cache.stats()
    return {
        "backend": stats.backend,
        "hits": stats.hits,
        "misses": stats.misses,
        "invalidations": stats.invalidations,
        "size": stats.size,
    }


def build_report(
    pools: list[ConnectionPool],
    caches: list[CacheLike],
    *,
    routers: Sequence[Any] = (),
    interval_s: float,
    access_window_s: float = 900.0,
    closed: bool = False,
) -> dict[str, Any]:
    """The report's JSON object, from in-process counters only (nothing touches the database).

    ``interval_s`` goes with it: a reader calls the process silent after three intervals.
    ``access_window_s``: the window of the recent failed sign-ins (the ``failed_logins``
    check's, ``monitor_access_window_s``).
    """
    recent = ACCESS.snapshot(access_window_s)
    return {
        "interval_s": interval_s,
        "pools": [pool_figures(p) for p in pools],
        "caches": [cache_figures(c) for c in caches],
        "app": {
            "buckets_s": list(STATEMENTS.buckets_s),
            "statements": [
                {
                    "name": s.name,
                    "count": s.count,
                    "sum_s": s.sum_s,
                    "bucket_counts": list(s.bucket_counts),
                    "errors": dict(s.errors),
                }
                for s in statement_stats()
            ],
        },
        "access": dict(recent.counts),
        # Where the replica router sent lag-tolerant reads (dbops.db.replicas).
        "routing": [r.routing() for r in routers],
        "login_failed_recent": {"count": recent.login_failed_recent, "window_s": access_window_s},
        "closed": closed,
    }


def process_identity(started_at: datetime) -> str:
    """``host:pid:start`` (microseconds since the epoch): a restarted pid is another process."""
    started_us = int(started_at.timestamp() * 1_000_000)
    return f"{socket.gethostname()[:120]}:{os.getpid()}:{started_us}"


def default_name() -> str:
    """The program's name (``gunicorn``, ``dbops``): never its arguments, which may hold secrets."""
    program = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    return program[:100] or "python"


class ProcessReporter:
    """Writes this process's report every ``interval_s`` from a daemon thread.

    Args:
        conninfo: libpq connection string of the app database (its role needs ``EXECUTE`` on
            ``dbops_monitor.report_process``; ``dbops roles setup`` grants it to the app role).
        connect_kwargs: the connection keywords the pool uses (timeouts, TLS, options).
        interval_s: seconds between reports.
        name: what the dashboard calls the process.
    """

    def __init__(
        self,
        conninfo: str,
        connect_kwargs: Mapping[str, Any],
        *,
        interval_s: float,
        name: str,
        access_window_s: float = 900.0,
    ) -> None:
        self._conninfo = conninfo
        self._kwargs = dict(connect_kwargs)
        self.interval_s = interval_s
        self.access_window_s = access_window_s
        self.name = name
        self.started_at = datetime.now(UTC)
        self.process = process_identity(self.started_at)
        self._pools: weakref.WeakSet[ConnectionPool] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._write = threading.Lock()  # one report at a time on the one connection
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: psycopg.Connection[Any] | None = None
        self._failures: set[str] = set()
        #: Reports written so far.
        self.written = 0

    # ---------------------------------------------------------------- what it reports
    def watch_pool(self, pool: ConnectionPool) -> None:
        """Report ``pool`` (held weakly: a pool that is gone drops out of the report)."""
        with self._lock:
            self._pools.add(pool)

    def unwatch_pool(self, pool: ConnectionPool) -> bool:
        """Stop reporting ``pool``; True when no pool is left."""
        with self._lock:
            self._pools.discard(pool)
            return not self._pools

    def report_now(self, *, closed: bool = False) -> bool:
        """Write one report now; True when it was written."""
        with self._lock:
            pools = [p for p in self._pools if not p.closed]
        with _CACHES_LOCK:
            caches = list(_CACHES)
            routers = list(_ROUTERS)
        params = {
            "process": self.process,
            "name": self.name,
            "host": socket.gethostname()[:255],
            "pid": os.getpid(),
            "started_at": self.started_at,
            "report": Jsonb(
                build_report(
                    pools,
                    caches,
                    routers=routers,
                    interval_s=self.interval_s,
                    access_window_s=self.access_window_s,
                    closed=closed,
                )
            ),
        }
        with self._write:
            return self._send(params)

    def _send(self, params: dict[str, Any]) -> bool:
        try:
            if self._conn is None or self._conn.closed:
                # The pool's connection settings (statement and lock timeouts in ``options``);
                # no session SET, which a transaction-pooling PgBouncer would hand on.
                self._conn = psycopg.connect(self._conninfo, autocommit=True, **self._kwargs)
            self._conn.execute(REPORT_SQL, params)
        except psycopg.Error as exc:
            self._failed(exc)
            return False
        self.written += 1
        return True

    def _failed(self, exc: psycopg.Error) -> None:
        kind = exc.sqlstate or type(exc).__name__
        if kind not in self._failures:  # once per kind: a down server is not a log flood
            self._failures.add(kind)
            LOG.warning(
                "dbops: this process's report was not written (%s); retrying every %g s",
                _reason(exc),
                self.interval_s,
            )
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # ----------------------------------------------------------------------- thread
    def start(self) -> ProcessReporter:
        """Report now, then every ``interval_s`` in a daemon thread.

        The first report is written by the caller: the process is visible once its database
        is open.
        """
        if self._thread is None:
            self.report_now()
            self._thread = threading.Thread(target=self._run, name="dbops-report", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.report_now()

    def close(self) -> None:
        """Stop the thread, write a last report marked closed, close the connection."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=CLOSE_WAIT_S)
            self._thread = None
        self.report_now(closed=True)
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _reason(exc: psycopg.Error) -> str:
    """The server's first line (no connection string: psycopg's messages carry no password)."""
    first = str(exc).strip().splitlines()
    return first[0][:200] if first else type(exc).__name__


_LOCK = threading.Lock()
_REPORTER: ProcessReporter | None = None
#: The query caches of this process (each registers itself when built; held weakly).
_CACHES: weakref.WeakSet[Any] = weakref.WeakSet()
#: Replica routers of this process (anything with ``routing() -> dict``), held weakly.
_ROUTERS: weakref.WeakSet[Any] = weakref.WeakSet()
_CACHES_LOCK = threading.Lock()


def reporter() -> ProcessReporter | None:
    """This process's reporter, if an app database is open with reports on."""
    return _REPORTER


def watch_pool(
    pool: ConnectionPool,
    conninfo: str,
    connect_kwargs: Mapping[str, Any],
    *,
    interval_s: float,
    name: str | None,
    access_window_s: float = 900.0,
) -> ProcessReporter:
    """Report ``pool``: the first call starts this process's reporter (one per process)."""
    global _REPORTER
    with _LOCK:
        if _REPORTER is None:
            _REPORTER = ProcessReporter(
                conninfo,
                connect_kwargs,
                interval_s=interval_s,
                name=name or default_name(),
                access_window_s=access_window_s,
            )
            _REPORTER.watch_pool(pool)
            _REPORTER.start()
        else:
            _REPORTER.watch_pool(pool)
        return _REPORTER


def unwatch_pool(pool: ConnectionPool) -> None:
    """Stop reporting ``pool``; the last pool closed stops the reporter with a closed report."""
    global _REPORTER
    with _LOCK:
        current = _REPORTER
        if current is None or not current.unwatch_pool(pool):
            return
        _REPORTER = None
    current.close()


def watch_routing(router: Any) -> None:
    """Report ``router.routing()`` (a replica router's read counts) with this process's pools."""
    with _CACHES_LOCK:
        _ROUTERS.add(router)


def unwatch_routing(router: Any) -> None:
    """Stop reporting ``router`` (it closed)."""
    with _CACHES_LOCK:
        _ROUTERS.discard(router)


def watch_cache(cache: CacheLike) -> None:
    """Report ``cache``'s counters with this process's pools (held weakly)."""
    with _CACHES_LOCK:
        _CACHES.add(cache)
