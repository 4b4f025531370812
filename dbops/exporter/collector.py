"""The Prometheus collector: one scrape's snapshot from :class:`SnapshotSource`, as families."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from dbops.config import Settings
from dbops.exporter.families import slow_part_metrics, snapshot_metrics
from dbops.exporter.families._base import gauge
from dbops.exporter.families.statements import exported_statements
from dbops.exporter.source import SCRAPE_TIMEOUT, SNAPSHOT_FAILED, Reading, Scrape, SnapshotSource


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
                gauge("dbops_snapshot_age_seconds", "Age of the snapshot served.", reading.age_s)
            )
        families.append(
            gauge(
                "dbops_scrape_duration_seconds",
                "Time this scrape took to get a snapshot and build the metrics.",
                time.perf_counter() - started,
            )
        )
        return Scrape(families, slow, slow_key)
