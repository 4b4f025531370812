"""Health checks: ``evaluate(snapshot, settings)`` -> findings, pure (no I/O, no clock).

Each check reads one part of a :class:`Snapshot` and the thresholds in
:class:`dbops.config.Settings`, and returns findings with a severity, a message and a fix hint.
A check whose input is unknown (``None``: collector failed) returns no finding at all; the
``collector_errors`` check reports the gap instead. A check that finds nothing wrong returns
one ``ok`` finding, so every known check appears once at least. docs/checks.md lists them all
(a test keeps it in step with :data:`CHECKS`).

One module per topic (``database``, ``schema``, ``application``, ``backups``, ``security``),
each with its rules and its ``CHECKS``; a new check goes in its topic's module.
"""

from __future__ import annotations

from dbops.config import Settings
from dbops.monitoring.checks import application, backups, database, schema, security
from dbops.monitoring.checks._base import Check, Finding, Severity
from dbops.monitoring.snapshot import Snapshot

__all__ = [
    "CHECKS",
    "Check",
    "Finding",
    "Severity",
    "evaluate",
    "problems",
    "worst",
    "worst_first",
]

#: Every check, in the order they run and are listed (docs/checks.md).
CHECKS: tuple[Check, ...] = (
    *database.CHECKS,
    *schema.CHECKS,
    *application.CHECKS,
    *backups.CHECKS,
    *security.CHECKS,
)


def evaluate(snapshot: Snapshot, settings: Settings) -> list[Finding]:
    """Run every check over ``snapshot``; pure: same input, same findings."""
    findings: list[Finding] = []
    for check in CHECKS:
        found = check.rule(snapshot, settings)
        if found is None:
            continue
        findings.extend(found or [Finding(check.id, Severity.OK, check.ok_message)])
    return findings


def problems(findings: list[Finding], check: str | None = None) -> list[Finding]:
    """The findings that are not a check's "all fine" row (of ``check`` only, when given)."""
    return [
        f for f in findings if f.severity is not Severity.OK and (check is None or f.check == check)
    ]


def worst(findings: list[Finding]) -> Severity:
    """The highest severity among ``findings`` (``ok`` for none)."""
    return max((f.severity for f in findings), key=lambda s: s.rank, default=Severity.OK)


def worst_first(findings: list[Finding]) -> list[Finding]:
    """``findings`` critical first, then warnings, then ok; the checks' order within each."""
    return sorted(findings, key=lambda f: -f.severity.rank)
