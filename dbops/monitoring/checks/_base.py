"""What every check module shares: severities, findings, the check record, text helpers."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from dbops.config import Settings
from dbops.monitoring.snapshot import Snapshot

__all__ = ["Check", "Finding", "Rule", "Severity", "duration", "pct", "quote_ident", "quote_name"]


class Severity(enum.StrEnum):
    """How bad a finding is; the order is ok < warning < critical."""

    OK = "ok"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """0, 1, 2 for ok, warning, critical."""
        return list(Severity).index(self)


@dataclass(frozen=True)
class Finding:
    """One result of one check about one subject (``None``: the database as a whole)."""

    check: str
    severity: Severity
    message: str
    hint: str | None = None
    subject: str | None = None


Rule = Callable[[Snapshot, Settings], list[Finding] | None]


@dataclass(frozen=True)
class Check:
    """A named check, the settings it reads, and its rule."""

    id: str
    title: str
    settings: tuple[str, ...]
    rule: Rule
    ok_message: str


def quote_ident(name: str) -> str:
    """Quote an identifier for a hint the user will paste into psql."""
    return '"' + name.replace('"', '""') + '"'


def quote_name(schema: str, name: str) -> str:
    return f"{quote_ident(schema)}.{quote_ident(name)}"


def pct(ratio: float) -> str:
    return f"{ratio * 100:.1f}%"


def duration(seconds: float) -> str:
    """``90`` -> ``1.5 min``, ``7200`` -> ``2.0 h``, ``604800`` -> ``7.0 days``."""
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    if seconds < 86_400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86_400:.1f} days"
