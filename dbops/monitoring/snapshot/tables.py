"""Tables: sizes, rows, dead rows, vacuum and analyze."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

__all__ = [
    "TableStat",
]


@dataclass(frozen=True)
class TableStat:
    """One table: rows, scans, sizes, cache hits and (auto)vacuum/analyze times."""

    schema: str
    name: str
    live_rows: int
    dead_rows: int
    seq_scans: int
    seq_tuples_read: int
    index_scans: int | None
    table_bytes: int
    indexes_bytes: int
    toast_bytes: int
    total_bytes: int
    heap_blks_hit: int | None
    heap_blks_read: int | None
    modifications_since_analyze: int | None
    last_vacuum: datetime | None
    last_autovacuum: datetime | None
    last_analyze: datetime | None
    last_autoanalyze: datetime | None

    def dead_share(self) -> float:
        """Dead rows over live plus dead (0 for an empty table): maintenance plan, pages."""
        total = self.live_rows + self.dead_rows
        return self.dead_rows / total if total else 0.0
