"""pg_stat_statements: the top statements and the view's own state."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from dbops.monitoring.snapshot._base import _redact_fields

__all__ = [
    "QueryStat",
    "StatementsStat",
]


@dataclass(frozen=True)
class QueryStat:
    """One ``pg_stat_statements`` entry (times in milliseconds, as the extension reports)."""

    queryid: int | None
    query: str | None
    user: str | None
    database: str | None
    calls: int
    total_exec_time_ms: float
    mean_exec_time_ms: float
    max_exec_time_ms: float
    stddev_exec_time_ms: float
    rows: int
    shared_blks_hit: int
    shared_blks_read: int
    temp_blks_read: int
    temp_blks_written: int
    total_plan_time_ms: float | None
    blk_read_time_ms: float | None
    blk_write_time_ms: float | None

    def __post_init__(self) -> None:
        _redact_fields(self, "query")


@dataclass(frozen=True)
class StatementsStat:
    """The top statements by total time, and the state of the statistics table itself."""

    top: tuple[QueryStat, ...]
    entries: int
    max_entries: int | None
    total_exec_time_ms: float
    total_calls: int
    dealloc: int | None
    stats_reset: datetime | None
    extension_version: str
    #: Entries (all databases) whose text holds a secret-looking literal (``dbops.redact``),
    #: before redaction: what any ``pg_read_all_stats`` reader could read. ``None``: unknown.
    secret_texts: int | None = None
