"""Read-only monitoring: collectors, one frozen Snapshot, pure health checks, and `dbops status`."""

from __future__ import annotations

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
