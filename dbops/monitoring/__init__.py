"""Monitoring: collectors, one frozen Snapshot, and pure health checks over it."""

from __future__ import annotations

from dbops.monitoring.checks import CHECKS, Finding, Severity, evaluate
from dbops.monitoring.collect import collect_snapshot
from dbops.monitoring.snapshot import SectionError, Snapshot

__all__ = [
    "CHECKS",
    "Finding",
    "SectionError",
    "Severity",
    "Snapshot",
    "collect_snapshot",
    "evaluate",
]
