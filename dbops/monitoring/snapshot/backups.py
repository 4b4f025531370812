"""The backups on disk, as the checks and the dashboard see them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

__all__ = [
    "BackupsStat",
]


@dataclass(frozen=True)
class BackupsStat:
    """The logical backups in the backup directory, read from their manifests (no database).

    Ages are seconds before the snapshot's ``taken_at``. The *verified* backup is the newest
    one with a passing restore drill (``dbops backup verify``); its age is how much data a
    restore proven to work would lose. ``last_drill_*`` describe the most recent drill of any
    backup, passed or failed. ``broken`` counts backup folders whose manifest cannot be read.
    """

    directory: str
    count: int
    total_bytes: int
    broken: int
    newest_id: str | None
    newest_at: datetime | None
    newest_age_s: float | None
    newest_bytes: int | None
    verified_id: str | None
    verified_at: datetime | None
    verified_age_s: float | None
    last_drill_at: datetime | None
    last_drill_ok: bool | None
    last_drill_duration_s: float | None
    last_drill_message: str | None
