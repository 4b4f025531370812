"""What the query history stores and reads back (:mod:`dbops.monitoring.history`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from dbops.monitoring.snapshot._base import _redact_fields

__all__ = [
    "CaptureResult",
    "DatabasePoint",
    "ProcessPoint",
    "PruneResult",
    "StatementPoint",
    "StatementTotal",
    "TableGrowth",
]


@dataclass(frozen=True)
class CaptureResult:
    """What one :func:`dbops.monitoring.history.capture` stored.

    ``baseline`` is true for the first capture (it records counters, no samples).
    ``restarted`` counts entries whose counters went down (reset or deallocated and back) and
    that were counted from zero; ``reset_detected`` says the whole view was reset
    (``pg_stat_statements_info.stats_reset`` changed, PostgreSQL 14+).
    """

    capture_id: int
    captured_at: datetime
    baseline: bool
    interval_s: float | None
    entries: int
    samples: int
    restarted: int
    reset_detected: bool
    new_statements: int
    dealloc: int | None
    stats_reset: datetime | None
    duration_ms: float


@dataclass(frozen=True)
class PruneResult:
    """Rows :func:`dbops.monitoring.history.prune` deleted, older than ``cutoff``."""

    cutoff: datetime
    captures: int
    statement_samples: int
    database_samples: int
    table_samples: int
    statements: int
    process_samples: int = 0
    process_reports: int = 0


@dataclass(frozen=True)
class ProcessPoint:
    """An application process's pool and cache totals at one sample (its pools summed).

    Counters are since the process started; ``*_per_s`` are rates since its previous point
    (``None`` for its first point in a window).
    """

    process: str
    name: str
    pid: int
    reported_at: datetime
    size: int
    idle: int
    in_use: int
    waiting: int
    max_size: int
    requests: int
    requests_wait_ms: int
    timeouts: int
    cache_hits: int
    cache_misses: int
    calls: int
    errors: int
    calls_per_s: float | None
    requests_per_s: float | None


@dataclass(frozen=True)
class StatementPoint:
    """One capture interval of one queryid (summed over the roles that ran it)."""

    captured_at: datetime
    interval_s: float
    calls: int
    calls_per_s: float
    total_exec_time_ms: float
    mean_exec_time_ms: float
    rows: int


@dataclass(frozen=True)
class StatementTotal:
    """Sum of one queryid's deltas over a time window, with its normalized text."""

    queryid: int
    query: str | None
    calls: int
    total_exec_time_ms: float
    mean_exec_time_ms: float
    rows: int
    shared_blks_hit: int
    shared_blks_read: int
    temp_blks_written: int
    total_plan_time_ms: float
    samples: int
    first_sample: datetime
    last_sample: datetime

    def __post_init__(self) -> None:
        _redact_fields(self, "query")


@dataclass(frozen=True)
class DatabasePoint:
    """Database size and cumulative counters at one capture.

    ``*_per_s`` are rates since the previous point (``None`` for the first point of a window,
    or when a counter went down after a stats reset).
    """

    captured_at: datetime
    size_bytes: int
    numbackends: int
    xact_commit: int
    xact_rollback: int
    temp_bytes: int
    deadlocks: int
    blks_hit: int
    blks_read: int
    commits_per_s: float | None
    rollbacks_per_s: float | None


@dataclass(frozen=True)
class TableGrowth:
    """Size and rows of one table at the first and last capture of a window."""

    schema: str
    table: str
    first_captured_at: datetime
    last_captured_at: datetime
    first_bytes: int
    last_bytes: int
    growth_bytes: int
    first_live_rows: int | None
    last_live_rows: int | None
    last_dead_rows: int | None
