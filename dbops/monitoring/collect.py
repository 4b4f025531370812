"""``collect_snapshot``: run every collector on one connection, each with its own timeout.

The collectors are the parts of :data:`SECTIONS`, which each module under ``collectors/``
declares for itself (:mod:`dbops.monitoring.collectors._section`). Each part runs in its own
transaction under its own ``statement_timeout``; one that fails or times out is recorded in
``Snapshot.errors`` and its result is ``None``, the others go on.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from psycopg import errors as pg_errors
from psycopg_pool import ConnectionPool

from dbops.config import MonitorSettings, Settings
from dbops.db import Database
from dbops.monitoring._fetch import CollectorUnavailable, fetch_one, one_round_trip_each
from dbops.monitoring.collectors import (
    access,
    activity,
    backups,
    bouncer,
    data,
    database,
    ha,
    indexes,
    processes,
    resources,
    statements,
    tables,
)
from dbops.monitoring.collectors._section import Collector, Context, Part, Section, only
from dbops.monitoring.collectors.pool import CacheLike, app_stats, cache_stats, pool_stats
from dbops.monitoring.snapshot import (
    Advice,
    QueryStat,
    SectionError,
    ServerInfo,
    Snapshot,
)

__all__ = ["COLLECTORS", "SECTIONS", "collect_snapshot", "server_info"]

T = TypeVar("T")

SERVER_SQL = """
SELECT current_setting('server_version') AS version,
       current_setting('server_version_num')::int AS version_num,
       current_database()::text AS database,
       current_user::text AS current_user,
       pg_is_in_recovery() AS in_recovery,
       pg_postmaster_start_time() AS started_at,
       host(inet_server_addr()) || ':' || inet_server_port() AS address
"""

PRIVILEGE_HINT = (
    "GRANT pg_monitor TO <monitoring role>; the data collector also needs EXECUTE on the "
    "dbops_monitor.data_* functions (migration 0009, `dbops roles setup`) or SELECT on the "
    "dbops tables"
)


def server_info(conn: psycopg.Connection[Any], *, settings: MonitorSettings) -> ServerInfo:
    """Version, database, role and recovery state of the server."""
    row = fetch_one(conn, SERVER_SQL, ServerInfo, timeout_ms=settings.collector_timeout_ms)
    assert row is not None
    return row


def _advice(
    conn: psycopg.Connection[Any],
    statements: Sequence[QueryStat],
    *,
    settings: MonitorSettings,
    everything: Settings,
) -> Advice:
    """The ``advice`` collector: :func:`dbops.monitoring.advice.advise_report`.

    Imported when advice is asked for: its SQL parser, pglast, was a fifth of a monitoring
    command's start-up.
    """
    from dbops.monitoring.advice import advise_report

    return advise_report(
        conn, statements, settings=everything, timeout_ms=settings.collector_timeout_ms
    )


def _advice_needs(ctx: Context) -> dict[str, Any]:
    return {"statements": ctx.results["statements"].top, "everything": ctx.settings}


def _advice_wanted(ctx: Context) -> bool:
    return ctx.advice and ctx.results.get("statements") is not None


#: The sections collected on the snapshot's connection, in this order (each module under
#: ``collectors/`` declares its own; ``server`` and ``advice`` are declared here).
SECTIONS: tuple[Section, ...] = (
    Section("server", (Part("server", server_info),), only("server")),
    statements.SECTION,
    indexes.SECTION,
    tables.SECTION,
    activity.SECTION,
    database.SECTION,
    data.SECTION,
    processes.SECTION,
    resources.SECTION,
    Section(
        "advice",
        (Part("advice", _advice, needs=_advice_needs, when=_advice_wanted),),
        only("advice"),
    ),
)

#: Every database collector by the name its errors are recorded under (tests may replace one:
#: a run looks its function up here).
COLLECTORS: dict[str, Collector] = {
    part.name: part.collect for section in SECTIONS for part in section.parts
}


@dataclass
class _CollectorRun:
    """Runs collectors on one connection and keeps their errors."""

    conn: psycopg.Connection[Any]
    settings: MonitorSettings
    timeouts_ms: Mapping[str, int]
    errors: list[SectionError]
    skip: Collection[str] = ()

    def __call__(self, name: str, **kwargs: Any) -> Any:
        if name in self.skip:
            return None
        settings = self.settings
        if name in self.timeouts_ms:
            settings = dataclasses.replace(settings, collector_timeout_ms=self.timeouts_ms[name])
        start = time.perf_counter()
        try:
            return COLLECTORS[name](self.conn, settings=settings, **kwargs)
        except Exception as exc:
            elapsed = time.perf_counter() - start
            self.errors.append(_section_error(name, exc, elapsed, settings.collector_timeout_ms))
            return None


def _section_error(name: str, exc: Exception, elapsed: float, timeout_ms: int) -> SectionError:
    hint: str | None = None
    if isinstance(exc, CollectorUnavailable):
        message, hint = exc.message, exc.hint
    elif isinstance(exc, pg_errors.QueryCanceled):
        message = f"timed out after {timeout_ms} ms"
        hint = (
            "raise DBOPS_MONITOR_COLLECTOR_TIMEOUT_MS (DBOPS_MONITOR_SLOW_COLLECTOR_TIMEOUT_MS "
            "for the parts the exporter and the dashboard refresh in the background), or find "
            "what slows the catalog query"
        )
    elif isinstance(exc, pg_errors.InsufficientPrivilege):
        message = _first_line(exc)
        hint = PRIVILEGE_HINT
    else:
        message = f"{type(exc).__name__}: {_first_line(exc)}"
    return SectionError(collector=name, message=message, elapsed_s=round(elapsed, 6), hint=hint)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def collect_snapshot(
    source: Database | ConnectionPool,
    settings: Settings,
    *,
    cache: CacheLike | None = None,
    timeouts_ms: Mapping[str, int] | None = None,
    advice: bool = False,
    app: bool = False,
    data_dir: Path | None = None,
    skip: Collection[str] = (),
) -> Snapshot:
    """Collect one :class:`Snapshot` of the database behind ``source`` and of this process.

    Args:
        source: a :class:`dbops.db.Database` or a psycopg pool; one pooled connection is used
            for all collectors, and the pool's own statistics go into ``snapshot.pool``.
        settings: limits and the per-collector ``statement_timeout``.
        cache: the service layer's query cache, for its counters (optional).
        timeouts_ms: per-collector ``statement_timeout`` overrides, by collector name.
        advice: also run the ``advice`` collector (planner-verified index suggestions for the
            top statements, with hypopg; it costs planning time, so it is off by default).
            Skipped when the statements are unknown; a missing hypopg is recorded in
            ``snapshot.errors`` like any failing collector.
        app: include this process's service statement latencies (``snapshot.app``) and
            access events (``snapshot.access.app``); for a snapshot taken inside the
            application process.
        data_dir: the server's data directory when it runs on this host: adds its volume,
            CPU, memory and log errors to ``snapshot.resources``, and its log's refused logins
            and denials to ``snapshot.access.server``. Defaults to the embedded cluster's when
            ``settings`` point at it (no ``DATABASE_URL``).
        skip: names of :data:`COLLECTORS` (or ``backups``, ``access``) not to run: their parts
            stay ``None``, with no error (the exporter collects its expensive ones on their own
            cadence).

    Never raises for a failing collector: the failure is in ``snapshot.errors``. Only a pool
    that cannot hand out a connection at all raises (from :mod:`dbops.errors`).
    """
    started = time.perf_counter()
    taken_at = datetime.now(UTC)
    if data_dir is None and settings.embedded:
        from dbops.db.purpose import project_cluster

        data_dir = project_cluster(settings).datadir
    pool = source.pool if isinstance(source, Database) else source
    errors: list[SectionError] = []
    pool_stat = pool_stats(pool)  # before borrowing, so our own checkout is not counted
    cache_stat = None
    if cache is not None:
        cache_started = time.perf_counter()
        try:
            cache_stat = cache_stats(cache)
        except Exception as exc:  # a Redis that went away: this section only
            elapsed = time.perf_counter() - cache_started
            errors.append(
                _section_error("cache", exc, elapsed, settings.monitor.collector_timeout_ms)
            )

    # Every query its own short transaction, one round trip each (no BEGIN/COMMIT).
    context = Context(settings, data_dir=data_dir, advice=advice)
    sections: dict[str, Any] = {}
    with pool.connection() as conn, one_round_trip_each(conn):
        run = _CollectorRun(conn, settings.monitor, timeouts_ms or {}, errors, skip)
        for section in SECTIONS:
            for part in section.parts:
                wanted = part.when is None or part.when(context)
                needs = part.needs(context) if wanted and part.needs is not None else {}
                context.results[part.name] = run(part.name, **needs) if wanted else None
            sections[section.field] = section.build(context.results)

    # The parts that need no database connection, each recorded as an error on its own.
    def off_connection(name: str, collect: Callable[[], T]) -> T | None:
        if name in skip:
            return None
        part_started = time.perf_counter()
        try:
            return collect()
        except Exception as exc:
            elapsed = time.perf_counter() - part_started
            errors.append(_section_error(name, exc, elapsed, settings.monitor.collector_timeout_ms))
            return None

    # manifests on disk; in-process counters and the server log; PgBouncer's console (a
    # connection of its own); Patroni's REST API
    backups_stat = off_connection(
        "backups", lambda: backups.collect_backups(settings, now=taken_at)
    )
    access_stat = off_connection(
        "access",
        lambda: access.collect_access(settings, now=taken_at, app=app, data_dir=data_dir),
    )
    bouncer_stat = off_connection("bouncer", lambda: bouncer.collect_bouncer(settings))
    ha_stat = off_connection("ha", lambda: ha.collect_ha(settings))

    return Snapshot(
        taken_at=taken_at,
        bouncer=bouncer_stat,
        ha=ha_stat,
        pool=pool_stat,
        cache=cache_stat,
        errors=tuple(errors),
        duration_s=time.perf_counter() - started,
        app=app_stats() if app else None,
        backups=backups_stat,
        access=access_stat,
        **sections,
    )
