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

Layout (a new snapshot section's metrics go in one new module under ``families``):

- :mod:`~dbops.exporter.source`: the scrape budget, the cache, the background cadence;
- :mod:`~dbops.exporter.collector`: one scrape's snapshot as families, plus ``dbops_up`` and
  the scrape's own counters;
- :mod:`~dbops.exporter.families`: snapshot -> families, one module per section;
- :mod:`~dbops.exporter.in_process`: the same families served by an application process
  (:func:`instrument`);
- :mod:`~dbops.exporter.server`: the WSGI app and the HTTP server.
"""

from __future__ import annotations

from dbops.exporter.collector import SnapshotCollector
from dbops.exporter.families import slow_part_metrics, snapshot_metrics
from dbops.exporter.families.activity import MAX_CLIENT_SERIES
from dbops.exporter.families.app import app_statement_metrics
from dbops.exporter.families.statements import KEEP_FACTOR, exported_statements
from dbops.exporter.in_process import instrument
from dbops.exporter.server import ExporterServer, make_app, make_server, serve_exporter
from dbops.exporter.source import SCRAPE_TIMEOUT, SNAPSHOT_FAILED, Reading, Scrape, SnapshotSource

__all__ = [
    "KEEP_FACTOR",
    "MAX_CLIENT_SERIES",
    "SCRAPE_TIMEOUT",
    "SNAPSHOT_FAILED",
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
    "serve_exporter",
    "slow_part_metrics",
    "snapshot_metrics",
]
