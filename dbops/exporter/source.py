"""Where a scrape's snapshot comes from: the scrape budget, the cache, the background parts.

:class:`SnapshotSource` asks :func:`dbops.monitoring.collect_snapshot` (through
:class:`dbops.monitoring.cadence.Cadence`) for a snapshot in a worker thread and waits at most
``exporter_scrape_budget_s``; past it the scrape answers ``dbops_up 0`` with the previous
snapshot marked stale. A snapshot younger than ``exporter_min_interval_s`` is served again.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import datetime

from prometheus_client.core import (
    Metric,
)

from dbops.config import Settings
from dbops.db import Database
from dbops.monitoring.cadence import Cadence
from dbops.monitoring.collect import COLLECTORS
from dbops.monitoring.snapshot import (
    Snapshot,
)

#: Error counter key for a scrape that got no fresh snapshot within the budget.
SCRAPE_TIMEOUT = "scrape_timeout"


#: Error counter key for a collection that raised as a whole (database unreachable).
SNAPSHOT_FAILED = "snapshot"


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
            Cadence(db, settings, interval_s=settings.exporter.slow_interval_s),
            budget_s=settings.exporter.scrape_budget_s,
            min_interval_s=settings.exporter.min_interval_s,
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
