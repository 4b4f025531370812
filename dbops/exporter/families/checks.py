"""The health checks: one series per check with its severity, and the worst."""

from __future__ import annotations

import collections

from dbops.config import Settings
from dbops.exporter.families._base import Families
from dbops.monitoring.checks import CHECKS, Severity, evaluate
from dbops.monitoring.checks import worst as worst_of
from dbops.monitoring.snapshot import (
    Snapshot,
)


def check_metrics(f: Families, snap: Snapshot, settings: Settings) -> None:
    """One series per health check (and the worst severity) into ``f``."""
    findings = evaluate(snap, settings)
    counts = collections.Counter((finding.check, finding.severity) for finding in findings)
    worst = {
        check: worst_of([x for x in findings if x.check == check])
        for check in {x.check for x in findings}
    }
    # A check whose input is unknown has no findings and no series (collector errors say why).
    for check in CHECKS:
        if check.id not in worst:
            continue
        for severity in Severity:
            f.gauge(
                "dbops_check_status",
                "1 for the worst severity of the check's findings, 0 for the others.",
                float(worst[check.id] is severity),
                check=check.id,
                severity=severity.value,
            )
            f.gauge(
                "dbops_check_findings",
                "Findings of the check by severity.",
                counts[(check.id, severity)],
                check=check.id,
                severity=severity.value,
            )
