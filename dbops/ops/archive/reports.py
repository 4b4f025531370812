"""What an archive run, a restore and ``status`` report."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, fields
from datetime import datetime


@dataclass(frozen=True)
class TableCounts:
    """Rows per archived table (moved, would move, or held in the archive)."""

    users: int = 0
    teams: int = 0
    team_members: int = 0
    invitations: int = 0
    invitation_senders: int = 0
    team_locations: int = 0

    @property
    def total(self) -> int:
        """Every row counted."""
        return sum(getattr(self, f.name) for f in fields(self))

    def __add__(self, other: TableCounts) -> TableCounts:
        return TableCounts(
            **{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)}
        )


@dataclass(frozen=True)
class SkippedUser:
    """A soft-deleted user left live, and why."""

    user_id: uuid.UUID
    email: str
    team_slugs: list[str]

    @property
    def reason(self) -> str:
        """One line for the report."""
        return "last owner of live team(s) " + ", ".join(self.team_slugs)


@dataclass(frozen=True)
class ArchiveProgress:
    """Where a run is, handed to ``progress`` after every committed batch."""

    phase: str  # "teams" or "users"
    batches: int
    moved: TableCounts
    skipped: int


@dataclass(frozen=True)
class ArchiveReport:
    """What :func:`run` moved (``applied``) or would move (dry run)."""

    applied: bool
    run_id: uuid.UUID | None
    cutoff: datetime
    moved: TableCounts
    batches: int
    skipped: tuple[SkippedUser, ...]
    seconds: float

    @property
    def rows_per_s(self) -> float:
        """Rows moved per second of the run (0 for a dry run or an empty one)."""
        if not self.applied or self.seconds <= 0:
            return 0.0
        return self.moved.total / self.seconds


@dataclass(frozen=True)
class RestoreReport:
    """What :func:`restore` brought back into the live tables."""

    kind: str  # "user" or "team"
    id: uuid.UUID
    name: str  # the e-mail or the slug
    restored: TableCounts
    left_in_archive: int  # memberships whose other side is still archived


@dataclass(frozen=True)
class ArchiveStatus:
    """What the archive holds, and what is soft-deleted but still live."""

    archived: TableCounts
    soft_deleted_users: int
    soft_deleted_teams: int
    last_archived_at: datetime | None
