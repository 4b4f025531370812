"""Table sizes, row estimates, dead tuples, vacuum and analyze times, bloat."""

from __future__ import annotations

from dbops.exporter.families._base import Families
from dbops.monitoring.snapshot import (
    Snapshot,
)


def table_metrics(f: Families, snap: Snapshot) -> None:
    """The tables section's families into ``f``."""
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
