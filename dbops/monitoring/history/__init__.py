"""Query history without reset: pg_stat_statements deltas in schema ``dbops_monitor``.

:func:`capture` reads ``pg_stat_statements`` and stores, per (queryid, userid, dbid), what the
counters grew by since the previous capture; it never calls ``pg_stat_statements_reset()``.
The last raw counters are kept in ``dbops_monitor.baseline``. An entry whose counters went
down (it was reset on its own, or evicted and added again) or a reset of the whole view
(``pg_stat_statements_info.stats_reset`` changed, PostgreSQL 14+) is counted from zero: its
current counters are the delta, since they all grew after the previous capture. A delta is
therefore never negative; what ran between the previous capture and the reset is lost.

Only the current database's entries are captured. One capture is one transaction under an
advisory lock (two captures at once run one after the other and do not count a call twice)
with ``statement_timeout`` and ``lock_timeout`` from ``history_capture_timeout_ms``.
The reads (:func:`statement_series`, :func:`top_statements`, :func:`database_series`,
:func:`table_growth`) return frozen dataclasses from :mod:`dbops.monitoring.snapshot`.
See docs/history.md.

One module per job: ``capturing`` (:func:`capture`), ``retention`` (:func:`prune`), ``series``
(the reads).
"""

from __future__ import annotations

from dbops.monitoring.history._common import CAPTURE_LOCK_KEY
from dbops.monitoring.history.capturing import capture
from dbops.monitoring.history.retention import prune
from dbops.monitoring.history.series import (
    ORDERS,
    database_series,
    process_series,
    statement_series,
    table_growth,
    top_statements,
)

__all__ = [
    "CAPTURE_LOCK_KEY",
    "ORDERS",
    "capture",
    "database_series",
    "process_series",
    "prune",
    "statement_series",
    "table_growth",
    "top_statements",
]
