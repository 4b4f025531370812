"""Archiving: move old soft-deleted users and teams into schema ``archive``, and back.

:func:`run` moves, in batches of one transaction each, every team and user soft-deleted before
a cutoff (``deleted_at < now() - older_than``) out of the live tables into ``archive.*``
(migration 0005); :func:`restore` moves one user or team back; :func:`status` counts.

The candidates are read once per phase (a cursor held across the batches); a batch locks its
share ``FOR UPDATE SKIP LOCKED`` (rows another transaction holds wait for the next run),
copies them with ``INSERT ... SELECT ... ON CONFLICT DO NOTHING``, deletes them from the live
tables, checks that every table lost exactly as many rows as its archive gained, and commits.
A crash at any point therefore leaves each row live or archived, never both and never
neither; running again picks up what is left, and a second run finds nothing.

The rules (docs/schema.md, "Archive"):

* A team goes with all its memberships, invitations and its location (teams go first).
* A user goes with every membership still pointing at it. A user who is an OWNER of a live team
  with no other live owner is **skipped** and reported: archiving it would leave that team no
  owner to bring back. Live invitations the user sent lose ``invited_by`` (its foreign key sets
  NULL); the link is kept in ``archive.invitation_senders`` and put back by a restore.
* A restore brings rows back exactly as they were (still soft-deleted: undo the soft delete
  with the services), memberships only where the other side is present again, and refuses when
  a live row now holds the e-mail or slug, or when a team would come back without an owner.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import class_row, scalar_row

from dbops.core.ownership import SOLE_OWNERS_SQL, sole_owner_condition
from dbops.db.engine import Database
from dbops.errors import ArchiveError, InvalidInput, NotFound

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "ArchiveProgress",
    "ArchiveReport",
    "ArchiveStatus",
    "RestoreReport",
    "SkippedUser",
    "TableCounts",
    "restore",
    "run",
    "status",
]

#: Rows of the main table (teams or users) per batch transaction.
DEFAULT_BATCH_SIZE = 1_000
#: Per batch: a statement longer than this is cancelled (the batch rolls back).
STATEMENT_TIMEOUT_MS = 60_000
#: Per batch: waiting longer than this for a row lock (a busy team) stops the run.
LOCK_TIMEOUT_MS = 5_000


SET_LIMITS = """
SELECT set_config('statement_timeout', %(statement_ms)s, true),
       set_config('lock_timeout', %(lock_ms)s, true)
"""
LOCATIONS_TABLE = "SELECT to_regclass('public.team_locations') IS NOT NULL"
CUTOFF = "SELECT now() - %(older_than)s::interval"

# -- teams ------------------------------------------------------------------------------------

#: The candidates of a run, read once through a held cursor (one scan, not one per batch).
CANDIDATE_TEAMS = "SELECT id FROM teams WHERE deleted_at < %(cutoff)s ORDER BY id"
#: A batch takes the candidates nobody holds, checking the cutoff again under the lock.
PICK_TEAMS = """
SELECT id FROM teams
WHERE id = ANY(%(ids)s::uuid[]) AND deleted_at < %(cutoff)s
ORDER BY id
FOR UPDATE SKIP LOCKED
"""
ARCHIVE_TEAMS = """
INSERT INTO archive.teams
    (id, name, slug, settings, created_at, updated_at, deleted_at, archived_at, run_id)
SELECT id, name, slug, settings, created_at, updated_at, deleted_at, now(), %(run_id)s
FROM teams WHERE id = ANY(%(ids)s::uuid[])
ON CONFLICT (id) DO NOTHING
"""
ARCHIVE_MEMBERS_OF_TEAMS = """
INSERT INTO archive.team_members
    (team_id, user_id, role, created_at, updated_at, archived_at, run_id)
SELECT team_id, user_id, role, created_at, updated_at, now(), %(run_id)s
FROM team_members WHERE team_id = ANY(%(ids)s::uuid[])
ON CONFLICT (team_id, user_id) DO NOTHING
"""
ARCHIVE_INVITATIONS_OF_TEAMS = """
INSERT INTO archive.invitations
    (id, team_id, email, role, invited_by, token_hash, status, expires_at, accepted_at,
     created_at, updated_at, archived_at, run_id)
SELECT id, team_id, email, role, invited_by, token_hash, status, expires_at, accepted_at,
       created_at, updated_at, now(), %(run_id)s
FROM invitations WHERE team_id = ANY(%(ids)s::uuid[])
ON CONFLICT (id) DO NOTHING
"""
ARCHIVE_LOCATIONS_OF_TEAMS = """
INSERT INTO archive.team_locations (team_id, location, created_at, updated_at, archived_at, run_id)
SELECT team_id, location::text, created_at, updated_at, now(), %(run_id)s
FROM team_locations WHERE team_id = ANY(%(ids)s::uuid[])
ON CONFLICT (team_id) DO NOTHING
"""
DELETE_LOCATIONS_OF_TEAMS = "DELETE FROM team_locations WHERE team_id = ANY(%(ids)s::uuid[])"
DELETE_INVITATIONS_OF_TEAMS = "DELETE FROM invitations WHERE team_id = ANY(%(ids)s::uuid[])"
DELETE_MEMBERS_OF_TEAMS = "DELETE FROM team_members WHERE team_id = ANY(%(ids)s::uuid[])"
DELETE_TEAMS = "DELETE FROM teams WHERE id = ANY(%(ids)s::uuid[])"

# -- users ------------------------------------------------------------------------------------

CANDIDATE_USERS = "SELECT id FROM users WHERE deleted_at < %(cutoff)s ORDER BY id"
PICK_USERS = """
SELECT id FROM users
WHERE id = ANY(%(ids)s::uuid[]) AND deleted_at < %(cutoff)s
ORDER BY id
FOR UPDATE SKIP LOCKED
"""
#: The team lock every membership write takes first (services/_ownership.py), in id order, on
#: the live teams the picked users own: no demotion can slip in between check and delete.
LOCK_TEAMS_OWNED_BY = """
SELECT t.id FROM teams AS t
WHERE t.deleted_at IS NULL
  AND t.id IN (
    SELECT m.team_id FROM team_members AS m
    WHERE m.user_id = ANY(%(ids)s::uuid[]) AND m.role = 'OWNER'
  )
ORDER BY t.id
FOR UPDATE OF t
"""
#: Picked users holding an OWNER row of a live team that has no other live owner: the
#: services' own last-owner statement, so deleting and archiving refuse the same users.
SOLE_OWNERS = SOLE_OWNERS_SQL
ARCHIVE_USERS = """
INSERT INTO archive.users
    (id, email, password_hash, display_name, role, profile, tags, created_at, updated_at,
     deleted_at, phone_ciphertext, phone_key_version, phone_blind_index, archived_at, run_id)
SELECT id, email, password_hash, display_name, role, profile, tags, created_at, updated_at,
       deleted_at, phone_ciphertext, phone_key_version, phone_blind_index, now(), %(run_id)s
FROM users WHERE id = ANY(%(ids)s::uuid[])
ON CONFLICT (id) DO NOTHING
"""
ARCHIVE_MEMBERS_OF_USERS = """
INSERT INTO archive.team_members
    (team_id, user_id, role, created_at, updated_at, archived_at, run_id)
SELECT team_id, user_id, role, created_at, updated_at, now(), %(run_id)s
FROM team_members WHERE user_id = ANY(%(ids)s::uuid[])
ON CONFLICT (team_id, user_id) DO NOTHING
"""
ARCHIVE_SENDERS_OF_USERS = """
INSERT INTO archive.invitation_senders (invitation_id, invited_by, archived_at, run_id)
SELECT id, invited_by, now(), %(run_id)s
FROM invitations WHERE invited_by = ANY(%(ids)s::uuid[])
ON CONFLICT (invitation_id) DO NOTHING
"""
DELETE_MEMBERS_OF_USERS = "DELETE FROM team_members WHERE user_id = ANY(%(ids)s::uuid[])"
#: The foreign key sets ``invitations.invited_by`` to NULL (the link is in the archive).
DELETE_USERS = "DELETE FROM users WHERE id = ANY(%(ids)s::uuid[])"

# -- dry run and status -----------------------------------------------------------------------

DRY_RUN_COUNTS = f"""
WITH t AS (
    SELECT id FROM teams WHERE deleted_at < %(cutoff)s
), u AS (
    SELECT id FROM users WHERE deleted_at < %(cutoff)s
), skipped AS (
    SELECT DISTINCT m.user_id AS id
    FROM team_members AS m
    JOIN teams AS lt ON lt.id = m.team_id
    WHERE m.user_id IN (SELECT id FROM u)
      AND {sole_owner_condition("lt")}
), mu AS (
    SELECT id FROM u WHERE id NOT IN (SELECT id FROM skipped)
)
SELECT
    (SELECT count(*) FROM mu) AS users,
    (SELECT count(*) FROM t) AS teams,
    (SELECT count(*) FROM team_members AS m
     WHERE m.team_id IN (SELECT id FROM t) OR m.user_id IN (SELECT id FROM mu)) AS team_members,
    (SELECT count(*) FROM invitations AS i WHERE i.team_id IN (SELECT id FROM t)) AS invitations,
    (SELECT count(*) FROM invitations AS i
     WHERE i.invited_by IN (SELECT id FROM mu)
       AND i.team_id NOT IN (SELECT id FROM t)) AS invitation_senders,
    0::bigint AS team_locations
"""
DRY_RUN_LOCATIONS = """
SELECT count(*) FROM team_locations
WHERE team_id IN (SELECT id FROM teams WHERE deleted_at < %(cutoff)s)
"""
STATUS_COUNTS = """
SELECT
    (SELECT count(*) FROM archive.users) AS users,
    (SELECT count(*) FROM archive.teams) AS teams,
    (SELECT count(*) FROM archive.team_members) AS team_members,
    (SELECT count(*) FROM archive.invitations) AS invitations,
    (SELECT count(*) FROM archive.invitation_senders) AS invitation_senders,
    (SELECT count(*) FROM archive.team_locations) AS team_locations
"""
STATUS_SUMMARY = """
SELECT
    (SELECT count(*) FROM users WHERE deleted_at IS NOT NULL) AS soft_deleted_users,
    (SELECT count(*) FROM teams WHERE deleted_at IS NOT NULL) AS soft_deleted_teams,
    (SELECT max(archived_at) FROM (
        SELECT max(archived_at) AS archived_at FROM archive.users
        UNION ALL SELECT max(archived_at) FROM archive.teams
    ) AS a) AS last_archived_at
"""

# -- restore ----------------------------------------------------------------------------------

FIND_ARCHIVED_USERS_BY_EMAIL = """
SELECT id FROM archive.users WHERE lower(email) = lower(%(email)s) ORDER BY archived_at, id
"""
LOCK_ARCHIVED_USER = """
SELECT id, email FROM archive.users WHERE id = %(id)s FOR UPDATE
"""
LIVE_USER_WITH_EMAIL = """
SELECT EXISTS (
    SELECT 1 FROM users WHERE email = lower(%(email)s) AND deleted_at IS NULL
)
"""
#: The team lock (services/_ownership.py), in id order, of the teams memberships return to.
LOCK_TEAMS_OF_ARCHIVED_USER = """
SELECT t.id FROM teams AS t
WHERE t.id IN (SELECT a.team_id FROM archive.team_members AS a WHERE a.user_id = %(id)s)
ORDER BY t.id
FOR UPDATE OF t
"""
RESTORE_USER = """
INSERT INTO users
    (id, email, password_hash, display_name, role, profile, tags, created_at, updated_at,
     deleted_at, phone_ciphertext, phone_key_version, phone_blind_index)
SELECT id, email, password_hash, display_name, role, profile, tags, created_at, updated_at,
       deleted_at, phone_ciphertext, phone_key_version, phone_blind_index
FROM archive.users WHERE id = %(id)s
"""
RESTORE_MEMBERS_OF_USER = """
WITH moved AS (
    DELETE FROM archive.team_members AS a
    WHERE a.user_id = %(id)s AND EXISTS (SELECT 1 FROM teams AS t WHERE t.id = a.team_id)
    RETURNING a.team_id, a.user_id, a.role, a.created_at, a.updated_at
)
INSERT INTO team_members (team_id, user_id, role, created_at, updated_at)
SELECT team_id, user_id, role, created_at, updated_at FROM moved
"""
#: Sender links of live invitations: dropped from the archive, put back where still NULL.
RESTORE_SENDERS_OF_USER = """
WITH links AS (
    DELETE FROM archive.invitation_senders AS s
    WHERE s.invited_by = %(id)s
      AND EXISTS (SELECT 1 FROM invitations AS i WHERE i.id = s.invitation_id)
    RETURNING s.invitation_id
)
UPDATE invitations AS i SET invited_by = %(id)s
FROM links
WHERE i.id = links.invitation_id AND i.invited_by IS NULL
"""
ARCHIVED_MEMBERS_OF_USER = "SELECT count(*) FROM archive.team_members WHERE user_id = %(id)s"
DELETE_ARCHIVED_USER = "DELETE FROM archive.users WHERE id = %(id)s"

FIND_ARCHIVED_TEAMS_BY_SLUG = """
SELECT id FROM archive.teams WHERE slug = %(slug)s ORDER BY archived_at, id
"""
LOCK_ARCHIVED_TEAM = "SELECT id, slug FROM archive.teams WHERE id = %(id)s FOR UPDATE"
LIVE_TEAM_WITH_SLUG = """
SELECT EXISTS (SELECT 1 FROM teams WHERE slug = %(slug)s AND deleted_at IS NULL)
"""
#: Owners of the archived team that can come back (their user row is in ``users``).
RETURNING_OWNERS = """
SELECT count(*) FROM archive.team_members AS a
WHERE a.team_id = %(id)s AND a.role = 'OWNER'
  AND EXISTS (SELECT 1 FROM users AS u WHERE u.id = a.user_id)
"""
ARCHIVED_OWNER_IDS = """
SELECT a.user_id FROM archive.team_members AS a
WHERE a.team_id = %(id)s AND a.role = 'OWNER'
ORDER BY a.user_id
"""
RESTORE_TEAM = """
INSERT INTO teams (id, name, slug, settings, created_at, updated_at, deleted_at)
SELECT id, name, slug, settings, created_at, updated_at, deleted_at
FROM archive.teams WHERE id = %(id)s
"""
RESTORE_MEMBERS_OF_TEAM = """
WITH moved AS (
    DELETE FROM archive.team_members AS a
    WHERE a.team_id = %(id)s AND EXISTS (SELECT 1 FROM users AS u WHERE u.id = a.user_id)
    RETURNING a.team_id, a.user_id, a.role, a.created_at, a.updated_at
)
INSERT INTO team_members (team_id, user_id, role, created_at, updated_at)
SELECT team_id, user_id, role, created_at, updated_at FROM moved
"""
#: Invitations whose sender is not in ``users`` any more keep the link in the archive instead.
KEEP_SENDERS_OF_TEAM = """
INSERT INTO archive.invitation_senders (invitation_id, invited_by, archived_at, run_id)
SELECT a.id, a.invited_by, a.archived_at, a.run_id
FROM archive.invitations AS a
WHERE a.team_id = %(id)s
  AND a.invited_by IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM users AS u WHERE u.id = a.invited_by)
ON CONFLICT (invitation_id) DO NOTHING
"""
RESTORE_INVITATIONS_OF_TEAM = """
WITH moved AS (
    DELETE FROM archive.invitations AS a WHERE a.team_id = %(id)s
    RETURNING a.*
)
INSERT INTO invitations
    (id, team_id, email, role, invited_by, token_hash, status, expires_at, accepted_at,
     created_at, updated_at)
SELECT m.id, m.team_id, m.email, m.role,
       CASE WHEN EXISTS (SELECT 1 FROM users AS u WHERE u.id = m.invited_by)
            THEN m.invited_by END,
       m.token_hash, m.status, m.expires_at, m.accepted_at, m.created_at, m.updated_at
FROM moved AS m
"""
ARCHIVED_LOCATIONS_OF_TEAM = "SELECT count(*) FROM archive.team_locations WHERE team_id = %(id)s"
RESTORE_LOCATION_OF_TEAM = """
WITH moved AS (
    DELETE FROM archive.team_locations AS a WHERE a.team_id = %(id)s
    RETURNING a.team_id, a.location, a.created_at, a.updated_at
)
INSERT INTO team_locations (team_id, location, created_at, updated_at)
SELECT team_id, location::geography, created_at, updated_at FROM moved
"""
ARCHIVED_MEMBERS_OF_TEAM = "SELECT count(*) FROM archive.team_members WHERE team_id = %(id)s"
DELETE_ARCHIVED_TEAM = "DELETE FROM archive.teams WHERE id = %(id)s"


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


_SKIPPED_ROW = class_row(SkippedUser)
_COUNTS_ROW = class_row(TableCounts)


def _limits(conn: psycopg.Connection[Any], *, lock_timeout_ms: int) -> None:
    conn.execute(
        SET_LIMITS, {"statement_ms": str(STATEMENT_TIMEOUT_MS), "lock_ms": str(lock_timeout_ms)}
    )


def _move(
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
        _limits(conn, lock_timeout_ms=lock_timeout_ms)
        params = {"cutoff": state.cutoff, "ids": candidates}
        picked = [row[0] for row in conn.execute(PICK_TEAMS, params).fetchall()]
        if not picked:
            return
        move = {"ids": picked, "run_id": state.run_id}
        locations = 0
        if state.locations:
            locations = _move(
                conn, "team_locations", ARCHIVE_LOCATIONS_OF_TEAMS, DELETE_LOCATIONS_OF_TEAMS, move
            )
        counts = TableCounts(
            invitations=_move(
                conn, "invitations", ARCHIVE_INVITATIONS_OF_TEAMS, DELETE_INVITATIONS_OF_TEAMS, move
            ),
            team_members=_move(
                conn, "team_members", ARCHIVE_MEMBERS_OF_TEAMS, DELETE_MEMBERS_OF_TEAMS, move
            ),
            team_locations=locations,
            teams=_move(conn, "teams", ARCHIVE_TEAMS, DELETE_TEAMS, move),
        )
    state.committed("teams", counts)


def _users_batch(
    db: Database, state: _ArchiveRun, candidates: list[uuid.UUID], lock_timeout_ms: int
) -> None:
    """Move the users of ``candidates`` still old enough and free, except last owners."""
    with db.connection() as conn:
        _limits(conn, lock_timeout_ms=lock_timeout_ms)
        params = {"cutoff": state.cutoff, "ids": candidates}
        picked = [row[0] for row in conn.execute(PICK_USERS, params).fetchall()]
        if not picked:
            return
        conn.execute(LOCK_TEAMS_OWNED_BY, {"ids": picked})
        with conn.cursor(row_factory=_SKIPPED_ROW) as cur:
            skipped = cur.execute(SOLE_OWNERS, {"ids": picked}).fetchall()
        skipped_ids = {s.user_id for s in skipped}
        ids = [i for i in picked if i not in skipped_ids]
        counts = TableCounts()
        if ids:
            move = {"ids": ids, "run_id": state.run_id}
            senders = conn.execute(ARCHIVE_SENDERS_OF_USERS, move).rowcount
            counts = TableCounts(
                team_members=_move(
                    conn, "team_members", ARCHIVE_MEMBERS_OF_USERS, DELETE_MEMBERS_OF_USERS, move
                ),
                invitation_senders=senders,
                users=_move(conn, "users", ARCHIVE_USERS, DELETE_USERS, move),
            )
    state.skipped.extend(skipped)
    state.committed("users", counts)


def _dry_run(
    db: Database, cutoff: datetime, locations: bool
) -> tuple[TableCounts, list[SkippedUser]]:
    params = {"cutoff": cutoff}
    with db.connection() as conn:
        _limits(conn, lock_timeout_ms=LOCK_TIMEOUT_MS)
        conn.execute("SET TRANSACTION READ ONLY")
        with conn.cursor(row_factory=_COUNTS_ROW) as cur:
            counts = cur.execute(DRY_RUN_COUNTS, params).fetchone()
        assert counts is not None
        if locations:
            located = conn.execute(DRY_RUN_LOCATIONS, params).fetchone()
            assert located is not None  # count(*) always returns a row
            counts = counts + TableCounts(team_locations=int(located[0]))
        # The users a run would skip: the same last-owner rule the run applies.
        ids = [r[0] for r in conn.execute(CANDIDATE_USERS, params)]
        with conn.cursor(row_factory=_SKIPPED_ROW) as cur:
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
        _limits(conn, lock_timeout_ms=LOCK_TIMEOUT_MS)
        with conn.cursor(row_factory=_COUNTS_ROW) as cur:
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


def _one_id(
    conn: psycopg.Connection[Any], query: str, params: dict[str, Any], what: str
) -> uuid.UUID:
    with conn.cursor(row_factory=scalar_row) as cur:
        found: list[uuid.UUID] = cur.execute(query, params).fetchall()
    if not found:
        raise NotFound(f"no archived {what}")
    if len(found) > 1:
        listed = ", ".join(str(i) for i in found)
        raise ArchiveError(f"several archived {what}s match ({listed}): restore one by its id")
    return found[0]


def _restore_user(conn: psycopg.Connection[Any], user_id: uuid.UUID) -> RestoreReport:
    params = {"id": user_id}
    row = conn.execute(LOCK_ARCHIVED_USER, params).fetchone()
    if row is None:
        raise NotFound("no archived user with this id")
    email: str = row[1]
    taken = conn.execute(LIVE_USER_WITH_EMAIL, {"email": email}).fetchone()
    if taken is not None and taken[0]:
        raise ArchiveError(f"cannot restore user {user_id}: a live user now has the e-mail {email}")
    conn.execute(LOCK_TEAMS_OF_ARCHIVED_USER, params)
    users = conn.execute(RESTORE_USER, params).rowcount
    members = conn.execute(RESTORE_MEMBERS_OF_USER, params).rowcount
    senders = conn.execute(RESTORE_SENDERS_OF_USER, params).rowcount
    left = conn.execute(ARCHIVED_MEMBERS_OF_USER, params).fetchone()
    assert left is not None  # count(*) always returns a row
    conn.execute(DELETE_ARCHIVED_USER, params)
    return RestoreReport(
        kind="user",
        id=user_id,
        name=email,
        restored=TableCounts(users=users, team_members=members, invitation_senders=senders),
        left_in_archive=int(left[0]),
    )


def _restore_team(
    conn: psycopg.Connection[Any], team_id: uuid.UUID, locations: bool
) -> RestoreReport:
    params = {"id": team_id}
    row = conn.execute(LOCK_ARCHIVED_TEAM, params).fetchone()
    if row is None:
        raise NotFound("no archived team with this id")
    slug: str = row[1]
    taken = conn.execute(LIVE_TEAM_WITH_SLUG, {"slug": slug}).fetchone()
    if taken is not None and taken[0]:
        raise ArchiveError(f"cannot restore team {slug}: a live team now has this slug")
    owners = conn.execute(RETURNING_OWNERS, params).fetchone()
    if not owners or not owners[0]:
        with conn.cursor(row_factory=scalar_row) as cur:
            archived_owners = cur.execute(ARCHIVED_OWNER_IDS, params).fetchall()
        hint = (
            "restore its owner first (user " + ", ".join(str(o) for o in archived_owners) + ")"
            if archived_owners
            else "it had no owner when archived"
        )
        raise ArchiveError(
            f"cannot restore team {slug}: it would come back without an owner; {hint}"
        )
    has_location = conn.execute(ARCHIVED_LOCATIONS_OF_TEAM, params).fetchone()
    if has_location and has_location[0] and not locations:
        raise ArchiveError(
            f"cannot restore team {slug}: its location needs table team_locations (PostGIS)"
        )
    teams = conn.execute(RESTORE_TEAM, params).rowcount
    members = conn.execute(RESTORE_MEMBERS_OF_TEAM, params).rowcount
    conn.execute(KEEP_SENDERS_OF_TEAM, params)
    invitations = conn.execute(RESTORE_INVITATIONS_OF_TEAM, params).rowcount
    located = conn.execute(RESTORE_LOCATION_OF_TEAM, params).rowcount if locations else 0
    left = conn.execute(ARCHIVED_MEMBERS_OF_TEAM, params).fetchone()
    assert left is not None  # count(*) always returns a row
    conn.execute(DELETE_ARCHIVED_TEAM, params)
    return RestoreReport(
        kind="team",
        id=team_id,
        name=slug,
        restored=TableCounts(
            teams=teams, team_members=members, invitations=invitations, team_locations=located
        ),
        left_in_archive=int(left[0]),
    )


def restore(
    db: Database,
    *,
    user_email: str | None = None,
    user_id: uuid.UUID | None = None,
    team_slug: str | None = None,
    team_id: uuid.UUID | None = None,
) -> RestoreReport:
    """Move one archived user or team back into the live tables, in one transaction.

    Give exactly one of the four. The rows come back as they were archived (soft-deleted
    still); memberships come back where the other side (team or user) is in the live tables,
    the rest stay archived until it is. A user's sender links are put back on live invitations.

    Raises:
        InvalidInput: not exactly one of the arguments.
        NotFound: nothing archived matches.
        ArchiveError: the e-mail or slug is taken by a live row; several archived rows match
            the e-mail or slug (restore by id); the team would come back without an owner.
    """
    given = [v for v in (user_email, user_id, team_slug, team_id) if v is not None]
    if len(given) != 1:
        raise InvalidInput("give exactly one of user_email, user_id, team_slug, team_id")
    with db.connection() as conn:
        _limits(conn, lock_timeout_ms=LOCK_TIMEOUT_MS)
        if user_email is not None or user_id is not None:
            if user_id is None:
                user_id = _one_id(conn, FIND_ARCHIVED_USERS_BY_EMAIL, {"email": user_email}, "user")
            return _restore_user(conn, user_id)
        if team_id is None:
            team_id = _one_id(conn, FIND_ARCHIVED_TEAMS_BY_SLUG, {"slug": team_slug}, "team")
        locations_row = conn.execute(LOCATIONS_TABLE).fetchone()
        return _restore_team(conn, team_id, bool(locations_row and locations_row[0]))
