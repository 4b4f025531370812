"""Archiving: soft-deleted teams and users moved to the ``archive`` schema in batches."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import class_row

from dbops.db.engine import Database
from dbops.errors import ArchiveError, InvalidInput
from dbops.ops.archive._sql import (
    ARCHIVE_INVITATIONS_OF_TEAMS,
    ARCHIVE_LOCATIONS_OF_TEAMS,
    ARCHIVE_MEMBERS_OF_TEAMS,
    ARCHIVE_MEMBERS_OF_USERS,
    ARCHIVE_SENDERS_OF_USERS,
    ARCHIVE_TEAMS,
    ARCHIVE_USERS,
    CANDIDATE_TEAMS,
    CANDIDATE_USERS,
    CUTOFF,
    DELETE_INVITATIONS_OF_TEAMS,
    DELETE_LOCATIONS_OF_TEAMS,
    DELETE_MEMBERS_OF_TEAMS,
    DELETE_MEMBERS_OF_USERS,
    DELETE_TEAMS,
    DELETE_USERS,
    DRY_RUN_COUNTS,
    DRY_RUN_LOCATIONS,
    LOCATIONS_TABLE,
    LOCK_TEAMS_OWNED_BY,
    PICK_TEAMS,
    PICK_USERS,
    SET_LIMITS,
    SOLE_OWNERS,
    STATUS_COUNTS,
    STATUS_SUMMARY,
)
from dbops.ops.archive.reports import (
    ArchiveProgress,
    ArchiveReport,
    ArchiveStatus,
    SkippedUser,
    TableCounts,
)

#: Rows of the main table (teams or users) per batch transaction.
DEFAULT_BATCH_SIZE = 1_000


#: Per batch: a statement longer than this is cancelled (the batch rolls back).
STATEMENT_TIMEOUT_MS = 60_000


#: Per batch: waiting longer than this for a row lock (a busy team) stops the run.
LOCK_TIMEOUT_MS = 5_000


@dataclass
class _ArchiveRun:
    """The state of one run across its batches."""

    run_id: uuid.UUID
    cutoff: datetime
    batch_size: int
    locations: bool
    progress: Callable[[ArchiveProgress], None] | None
    moved: TableCounts = field(default_factory=TableCounts)
    batches: int = 0
    skipped: list[SkippedUser] = field(default_factory=list)

    def committed(self, phase: str, counts: TableCounts) -> None:
        self.moved = self.moved + counts
        self.batches += 1
        if self.progress is not None:
            self.progress(ArchiveProgress(phase, self.batches, self.moved, len(self.skipped)))


SKIPPED_ROW = class_row(SkippedUser)


COUNTS_ROW = class_row(TableCounts)


def set_limits(conn: psycopg.Connection[Any], *, lock_timeout_ms: int) -> None:
    """This transaction's statement and lock timeouts (each batch and each restore sets its own)."""
    conn.execute(
        SET_LIMITS, {"statement_ms": str(STATEMENT_TIMEOUT_MS), "lock_ms": str(lock_timeout_ms)}
    )


def move_rows(
    conn: psycopg.Connection[Any], table: str, copy: str, delete: str, params: dict[str, Any]
) -> int:
    """Copy then delete; ArchiveError (the batch rolls back) unless both touched as many rows."""
    copied = conn.execute(copy, params).rowcount
    deleted = conn.execute(delete, params).rowcount
    if copied != deleted:
        raise ArchiveError(
            f"{table}: {deleted} live rows but only {copied} copied (some are archived already); "
            f"nothing of this batch was moved: compare archive.{table} with the live table"
        )
    return deleted


def _candidates(
    db: Database, query: str, cutoff: datetime, batch_size: int
) -> Iterator[list[uuid.UUID]]:
    """The ids ``query`` finds, ``batch_size`` at a time, from a cursor held across commits.

    One scan for the whole phase (``WITH HOLD`` materializes the ids on the server when the
    declaring statement ends), instead of one index walk per batch: the batches then look
    rows up by primary key. Ids added after the scan wait for the next run.
    """
    with db.read() as conn, conn.cursor(name="dbops_archive_candidates", withhold=True) as cur:
        cur.execute(query, {"cutoff": cutoff})
        while rows := cur.fetchmany(batch_size):
            yield [row[0] for row in rows]


def _teams_batch(
    db: Database, state: _ArchiveRun, candidates: list[uuid.UUID], lock_timeout_ms: int
) -> None:
    """Move the teams of ``candidates`` that are still old enough and not locked elsewhere."""
    with db.connection() as conn:
        set_limits(conn, lock_timeout_ms=lock_timeout_ms)
        params = {"cutoff": state.cutoff, "ids": candidates}
        picked = [row[0] for row in conn.execute(PICK_TEAMS, params).fetchall()]
        if not picked:
            return
        move = {"ids": picked, "run_id": state.run_id}
        locations = 0
        if state.locations:
            locations = move_rows(
                conn, "team_locations", ARCHIVE_LOCATIONS_OF_TEAMS, DELETE_LOCATIONS_OF_TEAMS, move
            )
        counts = TableCounts(
            invitations=move_rows(
                conn, "invitations", ARCHIVE_INVITATIONS_OF_TEAMS, DELETE_INVITATIONS_OF_TEAMS, move
            ),
            team_members=move_rows(
                conn, "team_members", ARCHIVE_MEMBERS_OF_TEAMS, DELETE_MEMBERS_OF_TEAMS, move
            ),
            team_locations=locations,
            teams=move_rows(conn, "teams", ARCHIVE_TEAMS, DELETE_TEAMS, move),
        )
    state.committed("teams", counts)


def _users_batch(
    db: Database, state: _ArchiveRun, candidates: list[uuid.UUID], lock_timeout_ms: int
) -> None:
    """Move the users of ``candidates`` still old enough and free, except last owners."""
    with db.connection() as conn:
        set_limits(conn, lock_timeout_ms=lock_timeout_ms)
        params = {"cutoff": state.cutoff, "ids": candidates}
        picked = [row[0] for row in conn.execute(PICK_USERS, params).fetchall()]
        if not picked:
            return
        conn.execute(LOCK_TEAMS_OWNED_BY, {"ids": picked})
        with conn.cursor(row_factory=SKIPPED_ROW) as cur:
            skipped = cur.execute(SOLE_OWNERS, {"ids": picked}).fetchall()
        skipped_ids = {s.user_id for s in skipped}
        ids = [i for i in picked if i not in skipped_ids]
        counts = TableCounts()
        if ids:
            move = {"ids": ids, "run_id": state.run_id}
            senders = conn.execute(ARCHIVE_SENDERS_OF_USERS, move).rowcount
            counts = TableCounts(
                team_members=move_rows(
                    conn, "team_members", ARCHIVE_MEMBERS_OF_USERS, DELETE_MEMBERS_OF_USERS, move
                ),
                invitation_senders=senders,
                users=move_rows(conn, "users", ARCHIVE_USERS, DELETE_USERS, move),
            )
    state.skipped.extend(skipped)
    state.committed("users", counts)


def _dry_run(
    db: Database, cutoff: datetime, locations: bool
) -> tuple[TableCounts, list[SkippedUser]]:
    params = {"cutoff": cutoff}
    with db.connection() as conn:
        set_limits(conn, lock_timeout_ms=LOCK_TIMEOUT_MS)
        conn.execute("SET TRANSACTION READ ONLY")
        with conn.cursor(row_factory=COUNTS_ROW) as cur:
            counts = cur.execute(DRY_RUN_COUNTS, params).fetchone()
        assert counts is not None
        if locations:
            located = conn.execute(DRY_RUN_LOCATIONS, params).fetchone()
            assert located is not None  # count(*) always returns a row
            counts = counts + TableCounts(team_locations=int(located[0]))
        # The users a run would skip: the same last-owner rule the run applies.
        ids = [r[0] for r in conn.execute(CANDIDATE_USERS, params)]
        with conn.cursor(row_factory=SKIPPED_ROW) as cur:
            skipped = cur.execute(SOLE_OWNERS, {"ids": ids}).fetchall()
    return counts, skipped


def run(
    db: Database,
    *,
    older_than: timedelta,
    batch_size: int = DEFAULT_BATCH_SIZE,
    apply: bool = False,
    progress: Callable[[ArchiveProgress], None] | None = None,
    lock_timeout_ms: int = LOCK_TIMEOUT_MS,
) -> ArchiveReport:
    """Archive the users and teams soft-deleted more than ``older_than`` ago.

    Teams first (with their memberships, invitations and location), then users (with their
    memberships; sole owners of live teams are skipped and reported). Each batch of
    ``batch_size`` teams or users is one transaction. Without ``apply`` nothing changes: the
    report says what would move (``applied=False``). Safe to interrupt and to run again, also
    next to a concurrent run (rows another transaction holds are skipped, not waited for).

    Raises:
        InvalidInput: ``older_than`` is negative or ``batch_size`` below 1.
        ArchiveError: a table lost a different number of rows than its archive gained (the
            batch is rolled back; the batches before it stay committed).
        LockTimeout: a live team stayed locked longer than ``lock_timeout_ms``.
    """
    if older_than < timedelta(0):
        raise InvalidInput("older_than must not be negative", field="older_than")
    if batch_size < 1:
        raise InvalidInput("batch_size must be at least 1", field="batch_size")
    started = time.perf_counter()
    with db.connection() as conn:
        cutoff_row = conn.execute(CUTOFF, {"older_than": older_than}).fetchone()
        locations_row = conn.execute(LOCATIONS_TABLE).fetchone()
    assert cutoff_row is not None
    assert locations_row is not None
    cutoff: datetime = cutoff_row[0]
    locations = bool(locations_row[0])
    if not apply:
        counts, skipped = _dry_run(db, cutoff, locations)
        return ArchiveReport(
            applied=False,
            run_id=None,
            cutoff=cutoff,
            moved=counts,
            batches=0,
            skipped=tuple(skipped),
            seconds=time.perf_counter() - started,
        )
    state = _ArchiveRun(uuid.uuid4(), cutoff, batch_size, locations, progress)
    for candidates in _candidates(db, CANDIDATE_TEAMS, cutoff, batch_size):
        _teams_batch(db, state, candidates, lock_timeout_ms)
    for candidates in _candidates(db, CANDIDATE_USERS, cutoff, batch_size):
        _users_batch(db, state, candidates, lock_timeout_ms)
    return ArchiveReport(
        applied=True,
        run_id=state.run_id,
        cutoff=cutoff,
        moved=state.moved,
        batches=state.batches,
        skipped=tuple(state.skipped),
        seconds=time.perf_counter() - started,
    )


def status(db: Database) -> ArchiveStatus:
    """Rows per archive table, soft-deleted rows still live, the time of the last archiving."""
    with db.connection() as conn:
        set_limits(conn, lock_timeout_ms=LOCK_TIMEOUT_MS)
        with conn.cursor(row_factory=COUNTS_ROW) as cur:
            archived = cur.execute(STATUS_COUNTS).fetchone()
        summary = conn.execute(STATUS_SUMMARY).fetchone()
    assert archived is not None
    assert summary is not None
    return ArchiveStatus(
        archived=archived,
        soft_deleted_users=int(summary[0]),
        soft_deleted_teams=int(summary[1]),
        last_archived_at=summary[2],
    )
