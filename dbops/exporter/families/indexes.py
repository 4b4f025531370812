"""Index usage and findings (unused, duplicate, invalid, bloat)."""

from __future__ import annotations

from dbops.exporter.families._base import Families
from dbops.monitoring.snapshot import (
    Snapshot,
)


def index_metrics(f: Families, snap: Snapshot) -> None:
    """The indexes section's families into ``f``."""
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
