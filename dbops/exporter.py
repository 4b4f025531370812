"""The Prometheus endpoint: snapshots as metric families, a scrape budget, ``/metrics``.

The exporter never opens a cursor: :class:`SnapshotSource` asks
:func:`dbops.monitoring.collect_snapshot` for a :class:`Snapshot` in a worker thread and waits
at most ``exporter_scrape_budget_s``; :class:`SnapshotCollector` turns what it gets into metric
families. A slow database therefore never hangs a scrape: past the budget the scrape answers
``dbops_up 0`` with the previous snapshot marked stale. A snapshot younger than
``exporter_min_interval_s`` is served again, so a scrape storm costs one collection.

Names follow Prometheus conventions: base units (seconds, bytes), ``_total`` for counters,
label values bounded (schema/table/index names, queryids, check ids; query text only in the
truncated ``dbops_statement_info`` label).
"""

from __future__ import annotations

import collections
import contextlib
import gzip
import threading
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import datetime
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer
from wsgiref.simple_server import make_server as _wsgi_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder, gzip_accepted
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from dbops.config import Settings
from dbops.db import Database, open_database
from dbops.db.access import ACCESS
from dbops.monitoring.cadence import SLOW_COLLECTORS, Cadence
from dbops.monitoring.checks import CHECKS, Severity, evaluate
from dbops.monitoring.checks import worst as worst_of
from dbops.monitoring.collect import COLLECTORS
from dbops.monitoring.collectors.pool import CacheLike, app_stats, cache_stats, pool_stats
from dbops.monitoring.snapshot import (
    AppStat,
    BackupsStat,
    CacheStat,
    PoolStat,
    QueryStat,
    ResourceStat,
    Snapshot,
)

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment
    from psycopg_pool import ConnectionPool

__all__ = [
    "ExporterServer",
    "Reading",
    "Scrape",
    "SnapshotCollector",
    "SnapshotSource",
    "app_statement_metrics",
    "exported_statements",
    "instrument",
    "make_app",
    "make_server",
    "serve",
    "slow_part_metrics",
    "snapshot_metrics",
]

#: Error counter key for a scrape that got no fresh snapshot within the budget.
SCRAPE_TIMEOUT = "scrape_timeout"
#: ``dbops_connections_by_client`` has a series for the busiest client addresses only, the
#: others summed as ``client="other"``: a label per address is unbounded (every new pod or NAT
#: port would be a new series), and the snapshot keeps every address for the dashboard.
MAX_CLIENT_SERIES = 10
#: Error counter key for a collection that raised as a whole (database unreachable).
SNAPSHOT_FAILED = "snapshot"


# ------------------------------------------------------------------------------- source
@dataclass(frozen=True)
class Reading:
    """What one scrape got: a snapshot (or none yet), and whether it is fresh.

    ``up`` is true when this scrape got a snapshot within the budget whose server query ran.
    ``stale`` marks a previous snapshot served because no fresh one came in time.
    """

    snapshot: Snapshot | None
    up: bool
    stale: bool
    age_s: float | None
    errors_total: dict[str, int]


class SnapshotSource:
    """Takes snapshots on demand under a time budget, and caches them briefly.

    Args:
        collect: takes one snapshot (``collect_snapshot`` bound to a database, or a test's).
        budget_s: longest :meth:`read` waits for a snapshot in progress.
        min_interval_s: a snapshot younger than this is served again without collecting.
        clock: monotonic clock (tests pass their own).

    Only one collection runs at a time: concurrent scrapes wait for the same one, and a
    collection that outlives the budget goes on in the background and is served once done.
    """

    def __init__(
        self,
        collect: Callable[[], Snapshot],
        *,
        budget_s: float,
        min_interval_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._collect = collect
        self._budget_s = budget_s
        self._min_interval_s = min_interval_s
        self._clock = clock
        self._lock = threading.RLock()
        self._closed = False
        self._inflight: Future[Snapshot] | None = None
        self._recorded: Future[Snapshot] | None = None
        self._last: Snapshot | None = None
        self._last_at: float | None = None
        self._errors: collections.Counter[str] = collections.Counter(
            {name: 0 for name in (*COLLECTORS, SNAPSHOT_FAILED, SCRAPE_TIMEOUT)}
        )
        #: When the part behind each error counted last was taken (carried parts: once each).
        self._counted: dict[str, datetime] = {}

    @classmethod
    def for_database(cls, db: Database, settings: Settings) -> SnapshotSource:
        """A source that snapshots ``db`` with the exporter settings of ``settings``.

        Each collection runs the cheap collectors; :data:`SLOW_COLLECTORS` are carried
        (:class:`~dbops.monitoring.cadence.Cadence`), refreshed every
        ``exporter_slow_interval_s``.
        """
        return cls(
            Cadence(db, settings, interval_s=settings.exporter_slow_interval_s),
            budget_s=settings.exporter_scrape_budget_s,
            min_interval_s=settings.exporter_min_interval_s,
        )

    def read(self) -> Reading:
        """The snapshot for this scrape: cached, fresh within the budget, or the stale one."""
        with self._lock:
            now = self._clock()
            last, last_at = self._last, self._last_at
            if last is not None and last_at is not None and now - last_at < self._min_interval_s:
                return self._reading(last, stale=False, now=now)
            future = self._inflight
            if future is None:
                future = self._inflight = self._start_collection()
                # Runs at once, in this thread, when the collection already finished.
                future.add_done_callback(self._done)
        try:
            snapshot = future.result(timeout=self._budget_s)
        except FutureTimeout:
            with self._lock:
                self._errors[SCRAPE_TIMEOUT] += 1
                return self._stale()
        except Exception:
            self._done(future)  # counts the failure once
            with self._lock:
                return self._stale()
        self._done(future)
        with self._lock:
            return self._reading(snapshot, stale=False, now=self._clock())

    def close(self) -> None:
        """Start no more collections; one in progress is abandoned (its thread is a daemon)."""
        with self._lock:
            self._closed = True

    def _start_collection(self) -> Future[Snapshot]:
        """One collection in a daemon thread.

        A collection stuck behind a lock (up to its collector timeouts) then never keeps the
        process from exiting on Ctrl-C, as a thread pool's worker would (joined at exit).
        """
        future: Future[Snapshot] = Future()
        if self._closed:
            future.set_exception(RuntimeError("the snapshot source is closed"))
            return future

        def run() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                future.set_result(self._collect())
            except BaseException as exc:  # handed to the scrape that waits on it
                future.set_exception(exc)

        threading.Thread(target=run, name="dbops-exporter-collect", daemon=True).start()
        return future

    def _done(self, future: Future[Snapshot]) -> None:
        # Called by the worker when the collection ends, and by read() once it has the result
        # (result() can return before the callbacks ran): bookkeeping happens once per future.
        with self._lock:
            if self._inflight is future:
                self._inflight = None
            if future.cancelled() or future is self._recorded:
                return
            self._recorded = future
            exc = future.exception()
            if exc is not None:
                self._errors[SNAPSHOT_FAILED] += 1
                return
            snapshot = future.result()
            self._last, self._last_at = snapshot, self._clock()
            carried = {part.collector: part.taken_at for part in snapshot.carried}
            for error in snapshot.errors:
                # A carried part's error is counted once, for the collection that made it.
                made_at = carried.get(error.collector)
                if made_at is None or self._counted.get(error.collector) != made_at:
                    self._errors[error.collector] += 1
                if made_at is not None:
                    self._counted[error.collector] = made_at

    def _stale(self) -> Reading:
        if self._last is None:
            return Reading(None, up=False, stale=False, age_s=None, errors_total=dict(self._errors))
        return self._reading(self._last, stale=True, now=self._clock(), up=False)

    def _reading(
        self, snapshot: Snapshot, *, stale: bool, now: float, up: bool | None = None
    ) -> Reading:
        age = None if self._last_at is None else max(now - self._last_at, 0.0)
        return Reading(
            snapshot,
            up=(snapshot.server is not None) if up is None else up,
            stale=stale,
            age_s=age,
            errors_total=dict(self._errors),
        )


# ---------------------------------------------------------------------------- collector
@dataclass(frozen=True)
class Scrape:
    """One scrape's families: ``slow`` are :func:`slow_part_metrics`, ``fast`` the rest.

    ``slow_key`` identifies the slow parts when they are carried (the same key, the same
    ``slow`` families: their rendering may be reused); None when they were collected with
    the snapshot. ``slow`` is None when the caller said it holds them already.
    """

    fast: list[Metric]
    slow: list[Metric] | None
    slow_key: object


class SnapshotCollector(Collector):
    """A prometheus_client collector: one :meth:`SnapshotSource.read` per scrape."""

    def __init__(self, source: SnapshotSource | Callable[[], Reading], settings: Settings) -> None:
        self._read = source.read if isinstance(source, SnapshotSource) else source
        self._settings = settings
        #: The queryids the last scrape exported (:func:`exported_statements`).
        self._exported: frozenset[str] = frozenset()

    def describe(self) -> Iterable[Metric]:
        """Nothing: registering must not take a snapshot (names vary with the database)."""
        return []

    def collect(self) -> Iterable[Metric]:
        """Metric families of this scrape's snapshot, plus up/staleness/error counters."""
        scrape = self.collect_parts()
        return [*scrape.fast, *(scrape.slow or ())]

    def collect_parts(self, have: object = None) -> Scrape:
        """This scrape's families, the slow parts' apart (see :class:`Scrape`).

        ``have``: the ``slow_key`` of slow families the caller already holds; when this
        scrape's is the same, they are not built again (``slow`` is None).
        """
        started = time.perf_counter()
        reading = self._read()
        families: list[Metric] = []
        slow: list[Metric] | None = []
        slow_key: object = None
        if reading.snapshot is not None:
            snapshot, keep = reading.snapshot, self._exported
            families.extend(snapshot_metrics(snapshot, self._settings, keep=keep, slow=False))
            self._exported = frozenset(
                str(q.queryid) for q in exported_statements(snapshot, self._settings, keep)
            )
            if snapshot.carried:  # the same parts and statements: the same slow families
                slow_key = (tuple(snapshot.carried), self._exported)
            if slow_key is None or slow_key != have:
                slow = slow_part_metrics(snapshot, self._settings, keep=keep)
            else:
                slow = None
        up = GaugeMetricFamily(
            "dbops_up", "1 when this scrape got a fresh snapshot and the database answered."
        )
        up.add_metric([], 1.0 if reading.up else 0.0)
        stale = GaugeMetricFamily(
            "dbops_snapshot_stale",
            "1 when the snapshot served is the previous one (no fresh one within the budget).",
        )
        stale.add_metric([], 1.0 if reading.stale else 0.0)
        errors = CounterMetricFamily(
            "dbops_collector_errors",
            "Collectors that failed or timed out, since the exporter started "
            f"({SNAPSHOT_FAILED}: whole snapshot failed; {SCRAPE_TIMEOUT}: scrape budget hit).",
            labels=["collector"],
        )
        for name, count in sorted(reading.errors_total.items()):
            errors.add_metric([name], float(count))
        families.extend([up, stale, errors])
        if reading.age_s is not None:
            families.append(
                _gauge("dbops_snapshot_age_seconds", "Age of the snapshot served.", reading.age_s)
            )
        families.append(
            _gauge(
                "dbops_scrape_duration_seconds",
                "Time this scrape took to get a snapshot and build the metrics.",
                time.perf_counter() - started,
            )
        )
        return Scrape(families, slow, slow_key)


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc)
    family.add_metric([], value)
    return family


class _Families:
    """Builds metric families by name, adding one sample at a time."""

    def __init__(self) -> None:
        self._families: dict[str, Metric] = {}

    def _get(self, kind: str, name: str, doc: str, labels: tuple[str, ...]) -> Any:
        family = self._families.get(name)
        if family is None:
            if kind == "counter":
                family = CounterMetricFamily(name, doc, labels=list(labels))
            elif kind == "info":
                family = InfoMetricFamily(name, doc, labels=list(labels))
            else:
                family = GaugeMetricFamily(name, doc, labels=list(labels))
            self._families[name] = family
        return family

    def gauge(self, name: str, doc: str, value: float | None, **labels: str) -> None:
        """One gauge sample (skipped when ``value`` is unknown)."""
        if value is None:
            return
        self._get("gauge", name, doc, tuple(labels)).add_metric(list(labels.values()), value)

    def counter(self, name: str, doc: str, value: float | None, **labels: str) -> None:
        """One counter sample; ``name`` without ``_total`` (skipped when unknown)."""
        if value is None:
            return
        self._get("counter", name, doc, tuple(labels)).add_metric(list(labels.values()), value)

    def info(self, name: str, doc: str, value: dict[str, str], **labels: str) -> None:
        """One info sample; ``name`` without ``_info``."""
        self._get("info", name, doc, tuple(labels)).add_metric(list(labels.values()), value)

    def timestamp(self, name: str, doc: str, value: datetime | None, **labels: str) -> None:
        """A timestamp as Unix seconds (skipped when unknown)."""
        if value is not None:
            self.gauge(name, doc, value.timestamp(), **labels)

    def all(self) -> list[Metric]:
        """Every family built so far."""
        return list(self._families.values())


def _s(ms: float | None) -> float | None:
    return None if ms is None else ms / 1000.0


def _truncate(text: str | None, chars: int) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= chars else text[: chars - 1] + "…"


def snapshot_metrics(
    snapshot: Snapshot, settings: Settings, *, keep: Collection[str] = (), slow: bool = True
) -> list[Metric]:
    """Every metric family a snapshot gives (pure: same snapshot and ``keep``, same families).

    ``keep``: queryids exported by the previous scrape (:func:`exported_statements`); they stay
    while the snapshot still holds them, so that a statement's series do not come and go.
    ``slow`` false leaves out :func:`slow_part_metrics`.
    """
    f = _Families()
    f.gauge(
        "dbops_snapshot_duration_seconds", "Time the snapshot took to collect.", snapshot.duration_s
    )
    f.timestamp(
        "dbops_snapshot_timestamp_seconds", "When the snapshot was taken.", snapshot.taken_at
    )
    f.gauge(
        "dbops_snapshot_errors", "Collectors that failed in this snapshot.", len(snapshot.errors)
    )
    for name in SLOW_COLLECTORS:
        f.gauge(
            "dbops_collector_age_seconds",
            "How much older than the snapshot this collector's part is (the exporter refreshes "
            "the expensive ones every exporter_slow_interval_s; 0: taken with the snapshot).",
            snapshot.part_age_s(name),
            collector=name,
        )
    if snapshot.server is not None:
        server = snapshot.server
        f.info(
            "dbops_server",
            "The PostgreSQL server and database.",
            {"version": server.version, "database": server.database},
        )
        f.gauge("dbops_server_version_num", "server_version_num.", server.version_num)
        f.gauge("dbops_in_recovery", "1 on a standby.", 1.0 if server.in_recovery else 0.0)
        f.timestamp("dbops_server_start_timestamp_seconds", "Postmaster start.", server.started_at)
    _activity_metrics(f, snapshot)
    _database_metrics(f, snapshot)
    if snapshot.resources is not None:
        _resource_metrics(f, snapshot.resources)
    if snapshot.backups is not None:
        _backup_metrics(f, snapshot.backups)
    if snapshot.access is not None and snapshot.access.server is not None:
        counts = [(str(c.key), c.count) for c in snapshot.access.server.by_kind()]
        _access_event_metrics(f, "server", counts, process="", pid="")
    _process_metrics(f, snapshot)
    _check_metrics(f, snapshot, settings)
    families = f.all()
    apps = [
        (p.app, {"process": p.name, "pid": str(p.pid)})
        for p in snapshot.live_processes()
        if p.app is not None
    ]
    if apps:
        families.extend(_statement_families(apps))
    if slow:
        families.extend(slow_part_metrics(snapshot, settings, keep=keep))
    return families


def slow_part_metrics(
    snapshot: Snapshot, settings: Settings, *, keep: Collection[str] = ()
) -> list[Metric]:
    """The families of the :data:`SLOW_COLLECTORS`' parts: statements, indexes, tables, data.

    They depend on those parts alone (and ``keep``), so while the parts are carried unchanged
    the exporter serves them rendered once (:class:`_MetricsApp`): they are most of the series.
    """
    f = _Families()
    _statement_metrics(f, snapshot, settings, keep)
    _index_metrics(f, snapshot)
    _table_metrics(f, snapshot)
    _data_metrics(f, snapshot)
    return f.all()


def _process_metrics(f: _Families, snap: Snapshot) -> None:
    """The application's processes: each live one's pools, caches and access events.

    One route for these facts: the processes' reports (:mod:`dbops.db.report`), never the
    pool of the process that took the snapshot (the exporter's own). Labels ``process`` (its
    name) and ``pid``: a restarted process is a new series, as with a scraped target.
    """
    if snap.processes is None:
        return
    states = collections.Counter(p.state() for p in snap.processes)
    for state in ("live", "silent", "closed"):
        f.gauge(
            "dbops_processes",
            "Application processes that reported within the last hour, by state (live: within "
            "three of their report intervals).",
            float(states[state]),
            state=state,
        )
    for process in snap.live_processes():
        who = {"process": process.name, "pid": str(process.pid)}
        f.gauge(
            "dbops_process_report_age_seconds",
            "Seconds since the process's last report (server clock).",
            process.age_s,
            **who,
        )
        f.timestamp(
            "dbops_process_start_timestamp_seconds",
            "When the process started (its counters count from then).",
            process.started_at,
            **who,
        )
        for pool in process.pools:
            _pool_metrics(f, pool, **who)
        for cache in process.caches:
            _cache_metrics(f, cache, **who)
        counts = [(str(c.key), c.count) for c in process.access]
        _access_event_metrics(f, "app", counts, **who)


#: A kept statement's series last while the kept set is at most this many times the top N.
KEEP_FACTOR = 2


def exported_statements(
    snapshot: Snapshot, settings: Settings, keep: Collection[str] = ()
) -> list[QueryStat]:
    """The statements whose ``dbops_statement_*`` series a scrape exports.

    The ``exporter_top_statements`` heaviest by total time, then those of ``keep`` (exported
    before) that the snapshot still holds, heaviest first, up to ``KEEP_FACTOR`` times the top
    N in all: a statement that drops a few places keeps its series (``rate()`` needs them),
    one that leaves the snapshot's own top list ends them. Entries without a queryid (another
    role's statement, hidden) are never exported.
    """
    limit = settings.exporter_top_statements
    ranked = [
        q
        for q in sorted(snapshot.statements.top if snapshot.statements else (), key=_heaviest)
        if q.queryid is not None
    ]
    ids: list[str] = []
    for q in ranked:
        if len(ids) >= limit:
            break
        if str(q.queryid) not in ids:
            ids.append(str(q.queryid))
    for q in ranked:
        if len(ids) >= KEEP_FACTOR * limit:
            break
        if str(q.queryid) in keep and str(q.queryid) not in ids:
            ids.append(str(q.queryid))
    chosen = set(ids)
    return [q for q in ranked if str(q.queryid) in chosen]


def _heaviest(q: QueryStat) -> float:
    return -q.total_exec_time_ms


def _statement_metrics(
    f: _Families, snap: Snapshot, settings: Settings, keep: Collection[str]
) -> None:
    stmts = snap.statements
    if stmts is None:
        return
    # The whole view: dbops_stat_statements_* (every entry of this database); one statement's
    # series are dbops_statement_*{queryid} (the heaviest ones only).
    f.gauge("dbops_stat_statements_entries", "Entries in pg_stat_statements.", stmts.entries)
    f.gauge("dbops_stat_statements_max_entries", "pg_stat_statements.max.", stmts.max_entries)
    f.counter(
        "dbops_stat_statements_dealloc", "Entries evicted from pg_stat_statements.", stmts.dealloc
    )
    f.counter(
        "dbops_stat_statements_calls",
        "Calls of every statement of this database in pg_stat_statements.",
        stmts.total_calls,
    )
    f.counter(
        "dbops_stat_statements_exec_seconds",
        "Execution time of all statements.",
        _s(stmts.total_exec_time_ms),
    )
    f.timestamp(
        "dbops_stat_statements_reset_timestamp_seconds",
        "Last reset of pg_stat_statements.",
        stmts.stats_reset,
    )
    # Several entries may share a queryid (one per user, database, top level): sum them.
    merged: dict[tuple[str, str, str], list[Any]] = {}
    for q in exported_statements(snap, settings, keep):
        key = (str(q.queryid), q.user or "", q.database or "")
        merged.setdefault(key, []).append(q)
    for (queryid, user, database), entries in merged.items():
        labels = {"queryid": queryid, "user": user, "database": database}
        calls = sum(q.calls for q in entries)
        total_ms = sum(q.total_exec_time_ms for q in entries)
        f.counter("dbops_statement_calls", "Calls of the statement.", calls, **labels)
        f.counter(
            "dbops_statement_exec_seconds",
            "Execution time of the statement.",
            total_ms / 1000.0,
            **labels,
        )
        plan = [q.total_plan_time_ms for q in entries if q.total_plan_time_ms is not None]
        f.counter(
            "dbops_statement_plan_seconds",
            "Planning time (pg_stat_statements.track_planning).",
            sum(plan) / 1000.0 if plan else None,
            **labels,
        )
        f.counter(
            "dbops_statement_rows",
            "Rows returned or affected.",
            sum(q.rows for q in entries),
            **labels,
        )
        f.counter(
            "dbops_statement_shared_blocks_hit",
            "Shared buffer hits.",
            sum(q.shared_blks_hit for q in entries),
            **labels,
        )
        f.counter(
            "dbops_statement_shared_blocks_read",
            "Shared blocks read from disk or OS cache.",
            sum(q.shared_blks_read for q in entries),
            **labels,
        )
        f.counter(
            "dbops_statement_temp_blocks_written",
            "Temp blocks written (work_mem spills).",
            sum(q.temp_blks_written for q in entries),
            **labels,
        )
        f.gauge(
            "dbops_statement_mean_exec_seconds",
            "Mean execution time since the stats reset.",
            total_ms / calls / 1000.0 if calls else None,
            **labels,
        )
        f.gauge(
            "dbops_statement_max_exec_seconds",
            "Longest execution since the stats reset.",
            max(q.max_exec_time_ms for q in entries) / 1000.0,
            **labels,
        )
        f.info(
            "dbops_statement",
            "Normalized query text of the statement (truncated).",
            {"query": _truncate(entries[0].query, settings.exporter_query_label_chars)},
            **labels,
        )


def _index_metrics(f: _Families, snap: Snapshot) -> None:
    for ix in snap.indexes or ():
        labels = {"schema": ix.schema, "table": ix.table, "index": ix.name}
        f.counter("dbops_index_scans", "Index scans since the stats reset.", ix.scans, **labels)
        f.counter(
            "dbops_index_tuples_read", "Index entries returned by scans.", ix.tuples_read, **labels
        )
        f.gauge("dbops_index_size_bytes", "Size of the index.", ix.size_bytes, **labels)
        f.gauge("dbops_index_bloat_bytes", "Estimated btree bloat.", ix.bloat_bytes, **labels)
        f.gauge(
            "dbops_index_valid",
            "0 for an invalid index (failed build).",
            float(ix.is_valid),
            **labels,
        )
        f.gauge(
            "dbops_index_redundant",
            "1 when another index of the table covers this one.",
            float(ix.covered_by is not None),
            **labels,
        )


def _table_metrics(f: _Families, snap: Snapshot) -> None:
    for t in snap.tables or ():
        labels = {"schema": t.schema, "table": t.name}
        f.gauge("dbops_table_live_rows", "Estimated live rows.", t.live_rows, **labels)
        f.gauge("dbops_table_dead_rows", "Estimated dead rows.", t.dead_rows, **labels)
        f.counter("dbops_table_seq_scans", "Sequential scans.", t.seq_scans, **labels)
        f.counter(
            "dbops_table_seq_tuples_read",
            "Rows read by sequential scans.",
            t.seq_tuples_read,
            **labels,
        )
        f.counter("dbops_table_index_scans", "Index scans on the table.", t.index_scans, **labels)
        f.gauge("dbops_table_heap_bytes", "Size of the table's heap.", t.table_bytes, **labels)
        f.gauge(
            "dbops_table_indexes_bytes", "Size of the table's indexes.", t.indexes_bytes, **labels
        )
        f.gauge("dbops_table_toast_bytes", "Size of the table's TOAST.", t.toast_bytes, **labels)
        f.gauge("dbops_table_total_bytes", "Heap, indexes and TOAST.", t.total_bytes, **labels)
        f.counter("dbops_table_heap_blocks_hit", "Heap buffer hits.", t.heap_blks_hit, **labels)
        f.counter("dbops_table_heap_blocks_read", "Heap blocks read.", t.heap_blks_read, **labels)
        f.gauge(
            "dbops_table_modifications_since_analyze",
            "Rows changed since the last analyze.",
            t.modifications_since_analyze,
            **labels,
        )
        for name, value in (
            ("vacuum", t.last_vacuum),
            ("autovacuum", t.last_autovacuum),
            ("analyze", t.last_analyze),
            ("autoanalyze", t.last_autoanalyze),
        ):
            f.timestamp(
                f"dbops_table_last_{name}_timestamp_seconds",
                f"Last {name} of the table.",
                value,
                **labels,
            )


def _activity_metrics(f: _Families, snap: Snapshot) -> None:
    act = snap.activity
    if act is None:
        return
    f.gauge("dbops_max_connections", "max_connections of the server.", act.max_connections)
    f.gauge("dbops_connections", "Client connections of the cluster.", act.total)
    for item in act.by_state or ():
        f.gauge(
            "dbops_connections_by_state",
            "Client connections by state.",
            item.count,
            state=item.key or "unknown",
        )
    # Access monitoring: who is connected and from where. Bounded labels: the roles and the
    # client hosts of the cluster (``local`` for the unix socket), not per session.
    for item in act.by_user or ():
        f.gauge(
            "dbops_connections_by_user",
            "Client connections by database role.",
            item.count,
            user=item.key or "unknown",
        )
    clients = sorted(act.by_client or (), key=lambda c: (-c.count, str(c.key)))
    by_client_doc = (
        f"Client connections by client address (local = unix socket; the {MAX_CLIENT_SERIES} "
        'busiest addresses, the others summed as client="other").'
    )
    for item in clients[:MAX_CLIENT_SERIES]:
        f.gauge(
            "dbops_connections_by_client", by_client_doc, item.count, client=item.key or "unknown"
        )
    if len(clients) > MAX_CLIENT_SERIES:
        rest = sum(c.count for c in clients[MAX_CLIENT_SERIES:])
        f.gauge("dbops_connections_by_client", by_client_doc, rest, client="other")
    if act.sessions is not None:
        running = [s.query_s for s in act.sessions if s.state == "active" and s.query_s is not None]
        idle_tx = [
            s.state_s
            for s in act.sessions
            if s.state and s.state.startswith("idle in transaction") and s.state_s is not None
        ]
        f.gauge(
            "dbops_longest_query_seconds",
            "Longest-running active statement (0 when none).",
            max(running, default=0.0),
        )
        f.gauge(
            "dbops_longest_idle_in_transaction_seconds",
            "Longest idle-in-transaction session (0 when none).",
            max(idle_tx, default=0.0),
        )
    if act.blocked is not None:
        f.gauge(
            "dbops_blocked_sessions",
            "Sessions waiting for a lock held by another.",
            len({p.blocked_pid for p in act.blocked}),
        )


def _database_metrics(f: _Families, snap: Snapshot) -> None:
    db = snap.database
    if db is None:
        return
    labels = {"database": db.name or ""}
    f.gauge("dbops_database_size_bytes", "Size of the database.", db.size_bytes, **labels)
    f.counter("dbops_database_commits", "Committed transactions.", db.commits, **labels)
    f.counter("dbops_database_rollbacks", "Rolled-back transactions.", db.rollbacks, **labels)
    f.counter("dbops_database_deadlocks", "Deadlocks detected.", db.deadlocks, **labels)
    f.counter("dbops_database_temp_files", "Temporary files created.", db.temp_files, **labels)
    f.counter(
        "dbops_database_temp_bytes", "Bytes written to temporary files.", db.temp_bytes, **labels
    )
    # The hit ratio is a PromQL ratio of rates (recording rule dbops:database_cache_hit:ratio5m
    # in deploy/prometheus/alerts.yml); a ratio since the stats reset would barely move.
    f.counter(
        "dbops_database_blocks_hit",
        "Block reads served from shared buffers.",
        db.blks_hit,
        **labels,
    )
    f.counter(
        "dbops_database_blocks_read",
        "Block reads that went to the OS (page cache or disk).",
        db.blks_read,
        **labels,
    )
    f.gauge(
        "dbops_standby_replay_lag_seconds",
        "On a standby: time since the last replayed transaction.",
        db.replica_lag_s,
    )
    for x in db.xid_ages or ():
        f.gauge(
            "dbops_database_xid_age",
            "Transaction-ID age (wraparound at 2^31).",
            x.xid_age,
            database=x.database,
        )
        f.gauge(
            "dbops_database_multixact_age", "Multixact age.", x.multixact_age, database=x.database
        )
        f.gauge(
            "dbops_database_wraparound_ratio",
            "Transaction-ID age as a share of the 2^31 wraparound limit.",
            x.wraparound_ratio(),
            database=x.database,
        )
    for seq in db.sequences or ():
        f.gauge(
            "dbops_sequence_used_ratio",
            "Share of the sequence's range (or its column's) used.",
            seq.used_ratio,
            schema=seq.schema,
            sequence=seq.name,
        )
    if db.not_valid_constraints is not None:
        f.gauge(
            "dbops_not_valid_constraints", "NOT VALID constraints.", len(db.not_valid_constraints)
        )
    for r in db.replicas or ():
        name = r.application or r.client_addr or "replica"
        f.gauge(
            "dbops_replication_lag_seconds",
            "Replay lag of a standby.",
            r.replay_lag_s,
            replica=name,
        )
        f.gauge(
            "dbops_replication_lag_bytes",
            "WAL bytes a standby has not replayed.",
            r.lag_bytes,
            replica=name,
        )
    for slot in db.slots or ():
        f.gauge(
            "dbops_replication_slot_active",
            "1 when the slot is in use.",
            float(slot.active),
            slot=slot.name,
        )
        f.gauge(
            "dbops_replication_slot_retained_bytes",
            "WAL kept for the slot.",
            slot.retained_bytes,
            slot=slot.name,
        )
    if db.checkpoints is not None:
        cp = db.checkpoints
        f.counter("dbops_checkpoint_timed", "Scheduled checkpoints.", cp.timed)
        f.counter("dbops_checkpoint_requested", "Requested checkpoints.", cp.requested)
        f.counter(
            "dbops_checkpoint_write_seconds", "Time writing checkpoint files.", _s(cp.write_time_ms)
        )
        f.counter(
            "dbops_checkpoint_sync_seconds", "Time syncing checkpoint files.", _s(cp.sync_time_ms)
        )
        f.counter(
            "dbops_checkpoint_buffers_written",
            "Buffers written by checkpoints.",
            cp.buffers_written,
        )


def _resource_metrics(f: _Families, res: ResourceStat) -> None:
    f.gauge("dbops_wal_bytes", "Size of the WAL directory.", res.wal_bytes)
    f.gauge(
        "dbops_volume_free_bytes",
        "Free space on the data directory's volume.",
        res.volume_free_bytes,
    )
    f.gauge(
        "dbops_volume_total_bytes", "Size of the data directory's volume.", res.volume_total_bytes
    )
    f.counter(
        "dbops_server_cpu_seconds",
        "CPU seconds of the postmaster and its children (exited ones included).",
        res.cpu_seconds,
    )
    f.gauge(
        "dbops_server_memory_rss_bytes",
        "Resident memory of the postmaster and its children.",
        res.memory_rss_bytes,
    )
    for item in res.log_errors or ():
        f.counter(
            "dbops_server_log_errors",
            "ERROR/FATAL/PANIC lines in the server log, by SQLSTATE class.",
            item.count,
            sqlstate_class=item.key or "other",
        )


#: Help of ``dbops_access_events_total`` (the same from the snapshot and from the app collector).
ACCESS_EVENTS_DOC = (
    "Access events: refused logins (login_failed), denials by row-level security (rls_denied) "
    "or a missing privilege (privilege_denied); app also forbidden and not_found service calls. "
    "source=app: this process's service calls; source=server: the server log."
)


def _access_event_metrics(
    f: _Families, source: str, counts: Iterable[tuple[str, int]], **who: str
) -> None:
    for kind, count in counts:
        f.counter("dbops_access_events", ACCESS_EVENTS_DOC, count, kind=kind, source=source, **who)


def _pool_metrics(f: _Families, pool: PoolStat, **who: str) -> None:
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


def _cache_metrics(f: _Families, cache: CacheStat, **who: str) -> None:
    labels = {**who, "backend": cache.backend}
    f.counter("dbops_cache_hits", "Query cache hits.", cache.hits, **labels)
    f.counter("dbops_cache_misses", "Query cache misses.", cache.misses, **labels)
    f.counter(
        "dbops_cache_invalidations", "Query cache invalidations.", cache.invalidations, **labels
    )
    f.gauge("dbops_cache_entries", "Entries in the query cache.", cache.size, **labels)


def _data_metrics(f: _Families, snap: Snapshot) -> None:
    data = snap.data
    if data is None:
        return
    f.gauge("dbops_data_users", "Users by state.", data.live_users, state="live")
    f.gauge("dbops_data_users", "Users by state.", data.deleted_users, state="deleted")
    f.gauge("dbops_data_teams", "Teams by state.", data.live_teams, state="live")
    f.gauge("dbops_data_teams", "Teams by state.", data.deleted_teams, state="deleted")
    for item in data.memberships_by_role:
        f.gauge(
            "dbops_data_memberships", "Live memberships by role.", item.count, role=item.key or ""
        )
    f.gauge(
        "dbops_data_invitations", "Invitations by state.", data.pending_invitations, state="pending"
    )
    f.gauge(
        "dbops_data_invitations", "Invitations by state.", data.expired_invitations, state="expired"
    )
    f.gauge(
        "dbops_data_zero_owner_teams",
        "Live teams without a live owner (must be 0).",
        data.zero_owner_teams,
    )
    if data.audit_last_id is not None:
        f.gauge(
            "dbops_audit_head_id",
            "Id of the audit trail's last record; it only grows (a drop: records deleted).",
            data.audit_last_id,
        )


def _backup_metrics(f: _Families, b: BackupsStat) -> None:
    f.gauge(
        "dbops_backup_manifests", "Backups in the backup directory (readable manifests).", b.count
    )
    f.gauge("dbops_backup_size_bytes", "Bytes of every backup in the directory.", b.total_bytes)
    f.gauge("dbops_backup_broken", "Backup folders whose manifest cannot be read.", b.broken)
    f.gauge(
        "dbops_backup_newest_age_seconds",
        "Age of the newest backup (absent: no backup).",
        b.newest_age_s,
    )
    f.gauge(
        "dbops_backup_verified_newest_age_seconds",
        "Age of the newest backup that passed a restore drill (absent: none did).",
        b.verified_age_s,
    )
    f.gauge(
        "dbops_backup_last_drill_success",
        "1 when the most recent restore drill passed, 0 when it failed (absent: no drill).",
        None if b.last_drill_ok is None else float(b.last_drill_ok),
    )
    f.gauge(
        "dbops_backup_last_drill_duration_seconds",
        "Duration of the most recent restore drill.",
        b.last_drill_duration_s,
    )


def _check_metrics(f: _Families, snap: Snapshot, settings: Settings) -> None:
    findings = evaluate(snap, settings)
    counts = collections.Counter((finding.check, finding.severity) for finding in findings)
    worst = {
        check: worst_of([x for x in findings if x.check == check])
        for check in {x.check for x in findings}
    }
    # A check whose input is unknown has no findings and no series (collector errors say why).
    for check in CHECKS:
        if check.id not in worst:
            continue
        for severity in Severity:
            f.gauge(
                "dbops_check_status",
                "1 for the worst severity of the check's findings, 0 for the others.",
                float(worst[check.id] is severity),
                check=check.id,
                severity=severity.value,
            )
            f.gauge(
                "dbops_check_findings",
                "Findings of the check by severity.",
                counts[(check.id, severity)],
                check=check.id,
                severity=severity.value,
            )


# ------------------------------------------------------------------------------ app side
def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(float(bound))


def app_statement_metrics(app: AppStat) -> list[Metric]:
    """The service statements' latency histograms and error counters (label: statement name).

    ``dbops_app_statement_duration_seconds{statement}`` (histogram, failed calls included)
    and ``dbops_app_statement_errors_total{statement, sqlstate_class}``. Label values are
    statement names and SQLSTATE classes only, both bounded sets.
    """
    return _statement_families([(app, {})])


def _statement_families(apps: Sequence[tuple[AppStat, dict[str, str]]]) -> list[Metric]:
    """One histogram and one error family for ``apps``, each with its ``who`` labels."""
    who_labels = list(apps[0][1]) if apps else []
    duration = HistogramMetricFamily(
        "dbops_app_statement_duration_seconds",
        "Service statement latency in the application process (failed calls included).",
        labels=[*who_labels, "statement"],
    )
    errors = CounterMetricFamily(
        "dbops_app_statement_errors",
        "Failed service statements by SQLSTATE class ('other': no SQLSTATE).",
        labels=[*who_labels, "statement", "sqlstate_class"],
    )
    for app, who in apps:
        values = list(who.values())
        for stmt in app.statements:
            buckets = [
                (_le(bound), float(n))
                for bound, n in zip(app.buckets_s, stmt.bucket_counts, strict=True)
            ]
            buckets.append(("+Inf", float(stmt.count)))
            duration.add_metric([*values, stmt.name], buckets, stmt.sum_s)
            for err in stmt.errors:
                errors.add_metric([*values, stmt.name, err.key or "other"], float(err.count))
    return [duration, errors]


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
        f = _Families()
        if self._pool is not None:
            _pool_metrics(f, pool_stats(self._pool))
        if self._cache is not None:
            _cache_metrics(f, cache_stats(self._cache))
        if self._access:
            _access_event_metrics(f, "app", ACCESS.counts())
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
    (:mod:`dbops.db.metrics`), with ``access`` the access events of the service calls
    (``dbops_access_events_total{source="app"}``, :mod:`dbops.db.access`); nothing touches the
    database. Returns the collector (``registry.unregister`` it to stop).
    """
    pool = db.pool if isinstance(db, Database) else db
    collector = _AppCollector(pool, cache, statements=statements, access=access)
    registry.register(collector)
    return collector


# --------------------------------------------------------------------------------- HTTP
class _Collects(Protocol):
    def collect(self) -> Iterable[Metric]: ...


class _Part(Metric):
    """A family with only some of its samples (``/metrics?name[]=...``)."""

    def __init__(self, family: Metric, samples: list[Sample]) -> None:
        super().__init__(family.name, family.documentation, family.type, family.unit)
        self.samples = samples


class _Exposed:
    """What the exposition reads: the registry's families, optionally only some samples.

    ``/metrics?name[]=...`` restricts by sample name here (prometheus_client's own restriction
    finds nothing: the collectors describe no names in advance).
    """

    def __init__(self, registry: _Collects, names: frozenset[str] | None = None) -> None:
        self._registry = registry
        self._names = names

    def collect(self) -> Iterable[Metric]:
        """The families, restricted to the names asked for."""
        families = list(self._registry.collect())
        if self._names is None:
            return families
        kept: list[Metric] = []
        for family in families:
            samples = [x for x in family.samples if x.name in self._names]
            if samples:
                kept.append(_Part(family, samples))
        return kept

    def restricted_registry(self, names: Iterable[str]) -> _Exposed:
        """Only the samples called ``names`` (``dbops_access_events_total``, ...)."""
        return _Exposed(self._registry, frozenset(names))


class _Static:
    """Families already built, as the encoders want them (something with ``collect``)."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> list[Metric]:
        return self._families


#: The end marker of the OpenMetrics format: once, at the end of the whole body.
_EOF = b"# EOF\n"


class _MetricsApp:
    """``GET /metrics``: the families of one scrape, the carried slow ones rendered once.

    Rendering is most of a scrape's cost in Python (prometheus_client formats and checks every
    sample), and the slow parts' families (statements, indexes, tables, data) are most of the
    samples. While their parts are carried unchanged (the same :attr:`Scrape.slow_key`), their
    bytes in the negotiated format are reused; everything else is rendered per scrape. The
    body is the one prometheus_client would give, families in another order. Restricted
    scrapes (``name[]``) and other methods go to prometheus_client's own app.
    """

    def __init__(self, collector: SnapshotCollector, fallback: WSGIApplication) -> None:
        self._collector = collector
        self._fallback = fallback
        self._rendered: tuple[object, str, bytes] | None = None
        #: How many times the slow families were rendered (tests).
        self.slow_renders = 0

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") != "GET" or "name[]" in parse_qs(
            environ.get("QUERY_STRING", "")
        ):
            body: Iterable[bytes] = self._fallback(environ, start_response)
            return body
        encoder, content_type = choose_encoder(environ.get("HTTP_ACCEPT", ""))
        rendered = self._rendered
        held = rendered[0] if rendered is not None and rendered[1] == content_type else None
        scrape = self._collector.collect_parts(have=held)
        head = encoder(_Static(scrape.fast))
        tail = self._slow(scrape, encoder, content_type)
        if head.endswith(_EOF) and tail.endswith(_EOF):
            head = head[: -len(_EOF)]
        output = head + tail
        headers = [("Content-Type", content_type)]
        if gzip_accepted(environ.get("HTTP_ACCEPT_ENCODING", "")):
            output = gzip.compress(output)
            headers.append(("Content-Encoding", "gzip"))
        start_response("200 OK", headers)
        return [output]

    def _slow(self, scrape: Scrape, encoder: Callable[[Any], bytes], content_type: str) -> bytes:
        rendered = self._rendered
        if scrape.slow_key is not None and rendered is not None:
            key, kind, output = rendered
            if key == scrape.slow_key and kind == content_type:
                return output
        if scrape.slow is None:  # held by a render another scrape replaced meanwhile
            scrape = self._collector.collect_parts()
        output = encoder(_Static(scrape.slow or []))
        self.slow_renders += 1
        if scrape.slow_key is not None:
            self._rendered = (scrape.slow_key, content_type, output)
        return output


def make_app(
    registry: CollectorRegistry, collector: SnapshotCollector | None = None
) -> WSGIApplication:
    """WSGI app: ``/metrics`` (and ``/``) from ``registry``, ``/healthz`` (no database).

    With ``collector`` (the registry's snapshot collector), full scrapes go through
    :class:`_MetricsApp`, which renders the carried slow families once.
    """
    metrics: WSGIApplication = make_wsgi_app(_Exposed(registry))
    if collector is not None:
        metrics = _MetricsApp(collector, metrics)

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path == "/healthz":
            start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"ok\n"]
        if path in ("/", "/metrics"):
            body: Iterable[bytes] = metrics(environ, start_response)
            return body
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
        return [b"not found: try /metrics\n"]

    return app


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """No access log on stderr."""


class ExporterServer:
    """The HTTP server of the exporter; :meth:`start` runs it in a thread, :meth:`close` stops."""

    def __init__(
        self,
        server: WSGIServer,
        registry: CollectorRegistry,
        *,
        source: SnapshotSource | None = None,
        db: Database | None = None,
    ) -> None:
        self._server = server
        self.registry = registry
        self.source = source
        self._db = db
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        """The address the server listens on."""
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        """The port (the free one picked when 0 was asked)."""
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """``http://host:port``."""
        return f"http://{self.host}:{self.port}"

    def serve_forever(self) -> None:
        """Serve until :meth:`close` (from another thread) or Ctrl-C."""
        self._server.serve_forever()

    def start(self) -> ExporterServer:
        """Serve in a daemon thread."""
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="dbops-exporter-http", daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving, then close the source and the database this server opened."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()
        if self.source is not None:
            self.source.close()
        if self._db is not None:
            self._db.close()

    def __enter__(self) -> ExporterServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def make_server(
    settings: Settings,
    *,
    host: str = "127.0.0.1",
    port: int = 9187,
    db: Database | None = None,
    source: SnapshotSource | None = None,
) -> ExporterServer:
    """An exporter server, bound but not serving yet (port 0 picks a free port).

    Args:
        settings: exporter budget, cache interval and series limits; the database when
            neither ``db`` nor ``source`` is given (then the server opens it as the monitor
            role, ``dsn_for(settings, "monitor")``, and closes it).
        host: listen address; loopback by default (put a proxy in front to expose it).
        port: listen port (9187 is postgres_exporter's; pass another to run both).
        db: an open database to snapshot (not closed by the server).
        source: a ready snapshot source (tests); wins over ``db``.
    """
    owned: Database | None = None
    if source is None:
        if db is None:
            db = owned = open_database(settings, purpose="monitor")
        source = SnapshotSource.for_database(db, settings)
    registry = CollectorRegistry(auto_describe=False)
    collector = SnapshotCollector(source, settings)
    registry.register(collector)
    server = _wsgi_server(
        host,
        port,
        make_app(registry, collector),
        server_class=_ThreadingServer,
        handler_class=_QuietHandler,
    )
    return ExporterServer(server, registry, source=source, db=owned)


def serve(settings: Settings, *, host: str = "127.0.0.1", port: int = 9187) -> None:
    """Serve ``/metrics`` and ``/healthz`` until interrupted (blocking; ``dbops exporter``)."""
    with (
        make_server(settings, host=host, port=port) as server,
        contextlib.suppress(KeyboardInterrupt),
    ):
        server.serve_forever()
