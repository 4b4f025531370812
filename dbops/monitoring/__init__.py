"""Read-only monitoring: collectors, one frozen Snapshot, pure health checks, and `dbops status`.

Names are imported on first use (:mod:`dbops._lazy`): `dbops status` needs none of the
collectors, and importing them all slowed every monitoring command down (bench/bench_cli.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dbops._lazy import lazy_exports

if TYPE_CHECKING:
    from dbops.monitoring.checks import CHECKS, Finding, Severity, evaluate
    from dbops.monitoring.collect import collect_snapshot
    from dbops.monitoring.explain import ExplainResult, explain
    from dbops.monitoring.snapshot import SectionError, Snapshot

__all__ = [
    "CHECKS",
    "ExplainResult",
    "Finding",
    "SectionError",
    "Severity",
    "Snapshot",
    "collect_snapshot",
    "evaluate",
    "explain",
]

#: Public name -> module that defines it.
_WHERE = {
    "CHECKS": "dbops.monitoring.checks",
    "Finding": "dbops.monitoring.checks",
    "Severity": "dbops.monitoring.checks",
    "evaluate": "dbops.monitoring.checks",
    "collect_snapshot": "dbops.monitoring.collect",
    "ExplainResult": "dbops.monitoring.explain",
    "explain": "dbops.monitoring.explain",
    "SectionError": "dbops.monitoring.snapshot",
    "Snapshot": "dbops.monitoring.snapshot",
}

__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
