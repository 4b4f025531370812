"""The application's processes: the reports each writes (migration 0011).

Written by :mod:`dbops.telemetry.report` in every application process.

Reads ``dbops_monitor.process_reports`` (the monitor and read-only roles may; the app role may
only write its own through ``report_process``): the processes that reported within
``keep_s`` (an hour by default), live ones first. Liveness is decided here, once, by
:func:`dbops.monitoring.snapshot.is_live` on the server's clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from dbops.config import MonitorSettings
from dbops.monitoring._fetch import CollectorUnavailable, fetch
from dbops.monitoring.collectors._section import Part, Section, rows
from dbops.monitoring.snapshot import (
    AppStat,
    CacheStat,
    CountBy,
    PoolStat,
    ProcessReport,
    ReplicaRoute,
    ReplicaRouting,
    StatementLatency,
    is_live,
)

__all__ = [
    "KEEP_S",
    "MAX_PROCESSES",
    "SECTION",
    "collect_processes",
    "parse_report",
    "parse_routing",
]

#: Processes that reported within this many seconds are shown (ended ones included).
KEEP_S = 3_600.0
#: Most processes a snapshot carries (live first, then the most recent).
MAX_PROCESSES = 50

PROCESSES_SQL = """
SELECT process, name, host, pid, started_at, reported_at, reported_by, closed, report,
       extract(epoch FROM statement_timestamp() - reported_at)::float8 AS age_s
  FROM dbops_monitor.process_reports
 WHERE reported_at > statement_timestamp() - make_interval(secs => %(keep_s)s)
 ORDER BY closed, reported_at DESC
 LIMIT %(limit)s
"""

MISSING_HINT = "run `dbops migrate` (migration 0011 adds the process reports)"

#: Whether the reports table and dbops' monitoring schema exist.
EXISTS_SQL = """
SELECT to_regclass('dbops_monitor.process_reports') IS NOT NULL AS reports,
       to_regnamespace('dbops_monitor') IS NOT NULL AS schema
"""


@dataclass(frozen=True)
class _Exists:
    reports: bool
    schema: bool


@dataclass(frozen=True)
class _Row:
    process: str
    name: str
    host: str
    pid: int
    started_at: datetime
    reported_at: datetime
    reported_by: str
    closed: bool
    report: dict[str, Any]
    age_s: float


def _int(value: Any) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def parse_report(
    report: dict[str, Any],
) -> tuple[tuple[PoolStat, ...], tuple[CacheStat, ...], AppStat | None, tuple[CountBy, ...]]:
    """The typed sections of a report's JSON; a missing or malformed part reads as empty."""
    pools = tuple(
        PoolStat(
            name=p.get("name") if isinstance(p.get("name"), str) else None,
            min_size=_int(p.get("min_size")),
            max_size=_int(p.get("max_size")),
            size=_int(p.get("size")),
            idle=_int(p.get("idle")),
            waiting=_int(p.get("waiting")),
            requests=_int(p.get("requests")),
            requests_queued=_int(p.get("requests_queued")),
            requests_wait_ms=_int(p.get("requests_wait_ms")),
            timeouts=_int(p.get("timeouts")),
            connection_errors=_int(p.get("connection_errors")),
            connections_lost=_int(p.get("connections_lost")),
        )
        for p in report.get("pools") or ()
        if isinstance(p, dict)
    )
    caches = tuple(
        CacheStat(
            backend=str(c.get("backend", "?")),
            hits=_int(c.get("hits")),
            misses=_int(c.get("misses")),
            invalidations=_int(c.get("invalidations")),
            size=_int(c["size"]) if c.get("size") is not None else None,
        )
        for c in report.get("caches") or ()
        if isinstance(c, dict)
    )
    app = None
    raw_app = report.get("app")
    if isinstance(raw_app, dict):
        buckets = tuple(float(b) for b in raw_app.get("buckets_s") or ())
        app = AppStat(
            buckets_s=buckets,
            statements=tuple(
                StatementLatency(
                    name=str(s.get("name")),
                    count=_int(s.get("count")),
                    sum_s=float(s.get("sum_s") or 0.0),
                    bucket_counts=tuple(_int(n) for n in s.get("bucket_counts") or ()),
                    errors=tuple(
                        CountBy(key=str(k), count=_int(n))
                        for k, n in sorted((s.get("errors") or {}).items())
                    ),
                )
                for s in raw_app.get("statements") or ()
                if isinstance(s, dict) and len(s.get("bucket_counts") or ()) == len(buckets)
            ),
        )
    access = tuple(
        CountBy(key=str(k), count=_int(n)) for k, n in sorted((report.get("access") or {}).items())
    )
    return pools, caches, app, access


def parse_routing(report: dict[str, Any]) -> tuple[ReplicaRouting, ...]:
    """The report's replica routers (empty when it has none, or in an older report)."""
    return tuple(
        ReplicaRouting(
            replica_reads=_int(r.get("replica_reads")),
            primary_reads=_int(r.get("primary_reads")),
            waited=_int(r.get("waited")),
            fallbacks=tuple(
                CountBy(key=str(k), count=_int(n))
                for k, n in sorted((r.get("fallbacks") or {}).items())
            ),
            replicas=tuple(
                ReplicaRoute(
                    name=str(x.get("name")),
                    usable=bool(x.get("usable")),
                    reason=str(x.get("reason", "")),
                    staleness_s=(
                        float(x["staleness_s"])
                        if isinstance(x.get("staleness_s"), int | float)
                        else None
                    ),
                )
                for x in r.get("replicas") or ()
                if isinstance(x, dict)
            ),
        )
        for r in report.get("routing") or ()
        if isinstance(r, dict)
    )


def collect_processes(
    conn: psycopg.Connection[Any], *, settings: MonitorSettings, keep_s: float = KEEP_S
) -> list[ProcessReport] | None:
    """The processes that reported within ``keep_s``: live first, then the latest.

    ``None`` on a database dbops never migrated (no ``dbops_monitor`` schema), like the data
    section.

    Raises:
        CollectorUnavailable: dbops' schema is there but not its reports table (migrate).
    """
    timeout_ms = settings.collector_timeout_ms
    exists = fetch(conn, EXISTS_SQL, _Exists, timeout_ms=timeout_ms)[0]
    if not exists.reports:
        if not exists.schema:
            return None
        raise CollectorUnavailable("no process reports table", MISSING_HINT)
    rows = fetch(
        conn,
        PROCESSES_SQL,
        _Row,
        {"keep_s": keep_s, "limit": MAX_PROCESSES},
        timeout_ms=timeout_ms,
    )
    reports = []
    for row in rows:
        interval = row.report.get("interval_s")
        interval_s = float(interval) if isinstance(interval, int | float) else 10.0
        pools, caches, app, access = parse_report(row.report)
        routing = parse_routing(row.report)
        recent = row.report.get("login_failed_recent")
        login_failed_recent = _int(recent.get("count")) if isinstance(recent, dict) else None
        reports.append(
            ProcessReport(
                process=row.process,
                name=row.name,
                host=row.host,
                pid=row.pid,
                started_at=row.started_at,
                reported_at=row.reported_at,
                reported_by=row.reported_by,
                interval_s=interval_s,
                age_s=max(row.age_s, 0.0),
                live=is_live(closed=row.closed, age_s=row.age_s, interval_s=interval_s),
                closed=row.closed,
                pools=pools,
                caches=caches,
                app=app,
                access=access,
                login_failed_recent=login_failed_recent,
                routing=routing,
            )
        )
    reports.sort(key=lambda r: (not r.live, r.age_s))
    return reports


#: The snapshot's ``processes``: the application processes that report to the database.
SECTION = Section("processes", (Part("processes", collect_processes),), rows("processes"))
