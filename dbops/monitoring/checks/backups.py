"""Checks of the backups: one exists, it is recent, a restore drill proved it."""

from __future__ import annotations

from dbops.config import Settings
from dbops.monitoring.checks._base import (
    Check,
    Finding,
    Severity,
)
from dbops.monitoring.snapshot import Snapshot

__all__ = ["CHECKS"]


_BACKUP_HINT = "run `dbops backup create` (and schedule it, e.g. cron)"


_VERIFY_HINT = "run `dbops backup verify` (a restore drill; schedule it after each backup)"


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds < 172_800 else f"{seconds / 86400:.1f} days"


def _backup_missing(snap: Snapshot, s: Settings) -> list[Finding] | None:
    b = snap.backups
    if b is None:
        return None
    if b.count:
        return []
    broken = f" ({b.broken} with an unreadable manifest)" if b.broken else ""
    return [
        Finding(
            "backup_missing",
            Severity.WARNING,
            f"no backup in {b.directory}{broken}",
            _BACKUP_HINT,
            b.directory,
        )
    ]


def _backup_stale(snap: Snapshot, s: Settings) -> list[Finding] | None:
    b = snap.backups
    if b is None or b.newest_age_s is None:
        return None
    if b.newest_age_s <= s.backup_max_age_s:
        return []
    return [
        Finding(
            "backup_stale",
            Severity.WARNING,
            f"the newest backup ({b.newest_id}) is {_hours(b.newest_age_s)} old",
            _BACKUP_HINT,
            b.newest_id,
        )
    ]


def _backup_unverified(snap: Snapshot, s: Settings) -> list[Finding] | None:
    b = snap.backups
    if b is None or not b.count:
        return None
    out = []
    if b.verified_age_s is None:
        out.append(
            Finding(
                "backup_unverified",
                Severity.WARNING,
                f"none of the {b.count} backups has passed a restore drill",
                _VERIFY_HINT,
            )
        )
    elif b.verified_age_s > s.backup_verified_max_age_s:
        out.append(
            Finding(
                "backup_unverified",
                Severity.WARNING,
                f"the newest verified backup ({b.verified_id}) is {_hours(b.verified_age_s)} old",
                _VERIFY_HINT,
                b.verified_id,
            )
        )
    if b.last_drill_ok is False:
        out.append(
            Finding(
                "backup_unverified",
                Severity.WARNING,
                f"the last restore drill failed: {b.last_drill_message}",
                "`dbops backup show <id>` for the drill; fix the cause, then "
                "`dbops backup create` and `dbops backup verify`",
                "last drill",
            )
        )
    return out


#: This topic's checks, in the order they run and are listed.
CHECKS: tuple[Check, ...] = (
    Check("backup_missing", "Backups", (), _backup_missing, "the backup directory has backups"),
    Check(
        "backup_stale",
        "Backup age",
        ("backup_max_age_s",),
        _backup_stale,
        "the newest backup is recent",
    ),
    Check(
        "backup_unverified",
        "Verified backup",
        ("backup_verified_max_age_s",),
        _backup_unverified,
        "a recent backup passed its restore drill, and the last drill passed",
    ),
)
