"""Demo data: deterministic users, teams, memberships, invitations and locations, via COPY.

``seed(db, users=N, teams=M, seed=S)`` loads ``N`` generated users plus three named personas,
``M`` teams with a skewed membership distribution (most teams small, a few big, every team with
at least one OWNER), a mix of pending/accepted/expired/revoked invitations and, when the
database has ``team_locations`` (PostGIS), a location near a real city centre for a share of the
teams, in one transaction, through ``COPY ... FROM STDIN``, then runs ``ANALYZE`` so the
planner sees the new sizes.

The package is split by job: ``_vocabulary`` (names, words, weights, personas), ``_plan``
(sizes and picks) and ``_rows`` (COPY text per table) are pure and need no database;
:mod:`dbops.ops._bulk` does the COPY, index deferral and ANALYZE; this module orchestrates.
Progress is reported through a callback; nothing here draws.

**Determinism.** Every id, email, name, JSON value, token and point is a function of ``seed``
(each table draws from its own ``random.Random`` stream). Timestamps are spread over the past
three years *relative to the day the seed runs* (UTC), so a dashboard always shows recent
activity.

**Passwords.** Hashing a password with argon2id takes tens of milliseconds on purpose, far too
slow per row for a million users; every seeded user (personas included) shares one argon2id hash
of :data:`DEMO_PASSWORD`, computed once per run with ``argon2.PasswordHasher`` and a salt derived
from the seed. Sign in as any seeded user with that password.

**Which rows are seeded.** Seeded users carry ``"seed": S`` in ``users.profile`` and seeded teams
carry it in ``teams.settings`` (so ``"seed"`` is a reserved key there); memberships,
invitations and locations belong to seeded teams. The persona ``ada.admin@demo.dbops.dev`` also
stores the arguments of the run, ``profile -> 'seed_run'``.

**Audit trail.** Demo data is not audited row by row: a million users would mean a million
audit records and a much slower load. When the database has the audit trail (migration 0006)
and the seed's role owns the tables, the run disables the ``audit_capture`` triggers of the four
audited tables inside its transaction (PostgreSQL allows that to the owner only; it is undone
by the commit's ``ENABLE`` or by a rollback, and blocks other writers of those tables until the
seed commits) and records one ``BULK`` summary per table instead (rows copied, seed, rows
replaced), as actor ``system seed``. Changes made later to seeded rows are audited as usual.

**Idempotence: replace, never duplicate, ask first.** Running again with the same arguments is
a no-op (``created=False``) as long as the recorded run and the seeded row counts match. With
different arguments (or when seeded rows went missing) the previously seeded rows are deleted
and the new set is loaded, in the same transaction; rows that are not seeded (real sign-ups,
test data) are kept, except memberships in, invitations to and locations of seeded teams, which
go with their team. When that would delete more rows than it loads, :func:`seed` raises
:class:`~dbops.errors.WouldReplaceData` unless called with ``replace=True``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import psycopg
from psycopg import sql
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from dbops.db.engine import Database
from dbops.errors import WouldReplaceData
from dbops.ops._bulk import (
    DEFER_INDEXES_MIN_ROWS,
    analyze,
    copy_text,
    defer_indexes,
    rebuild_indexes,
    table_exists,
)
from dbops.ops.seed._plan import (
    DEMO_PASSWORD,
    MARKER_EMAIL,
    MAX_USERS,
    SeedPlan,
    make_plan,
    validate_arguments,
)
from dbops.ops.seed._rows import table_rows
from dbops.ops.seed._vocabulary import PERSONAS, Persona

__all__ = [
    "DEMO_PASSWORD",
    "MAX_USERS",
    "PERSONAS",
    "Persona",
    "SeedProgress",
    "SeedResult",
    "seed",
]

logger = logging.getLogger(__name__)

#: ``progress(table, rows_done, rows_total)``: called with 0 done when a table starts, then
#: after every chunk; the index rebuild reports as table ``"indexes"`` (one row per index).
SeedProgress = Callable[[str, int, int], None]

#: ``maintenance_work_mem`` for the deferred index builds.
INDEX_BUILD_MEMORY = "256MB"
#: ``statement_timeout`` / ``idle_in_transaction_session_timeout`` inside the seed transaction:
#: a million-row COPY or the cleanup of a previous big seed outlasts the 30 s session default.
SEED_TIMEOUT_MS = 15 * 60 * 1000
#: Key of the ``pg_advisory_xact_lock`` that serializes concurrent seed runs.
SEED_LOCK_KEY = 0x64626F7073656564  # "dbopseed"
#: The PostGIS table that receives team locations when migration 0002 created it.
LOCATIONS_TABLE = "team_locations"


@dataclass(frozen=True)
class SeedResult:
    """What a :func:`seed` run left in the database."""

    users: int  # users now present from the seed (incl. personas)
    teams: int
    memberships: int
    invitations: int
    locations: int  # 0 when the database has no team_locations table (no PostGIS)
    created: bool  # False when the same seed was already present (idempotent no-op)
    replaced_rows: int  # rows of an earlier seed that this run deleted
    seconds: float


# ---------------------------------------------------------------------------------------- SQL
SET_TIMEOUTS = """
SELECT set_config('statement_timeout', %(timeout)s, true),
       set_config('idle_in_transaction_session_timeout', %(timeout)s, true),
       set_config('maintenance_work_mem', %(memory)s, true)
"""
TAKE_SEED_LOCK = "SELECT pg_advisory_xact_lock(%(key)s)"
#: Whether this run may load without per-row audit: the trail exists and we own the tables.
AUDIT_BYPASS_ALLOWED = """
SELECT to_regprocedure('audit.bulk_load(regclass, jsonb)') IS NOT NULL
       AND pg_has_role(session_user, c.relowner, 'MEMBER') AS allowed
FROM pg_class AS c
WHERE c.oid = 'users'::regclass
"""
#: The actor of the summary records.
SEED_ACTOR = """
SELECT set_config('app.actor_kind', 'system', true),
       set_config('app.actor_id', '', true),
       set_config('app.actor_name', 'seed', true)
"""
#: The tables the audit triggers of migration 0006 watch.
AUDITED_TABLES = ("users", "teams", "team_members", "invitations")
CAPTURE_TRIGGER = "ALTER TABLE {} {} TRIGGER audit_capture"
RECORD_BULK_LOAD = "SELECT audit.bulk_load(%(table)s::regclass, %(summary)s)"
MARKER_MATCHES = """
SELECT profile -> 'seed_run' = %(marker)s AS matches
FROM users
WHERE email = lower(%(email)s) AND deleted_at IS NULL
"""
SEEDED_STATE = """
SELECT (SELECT count(*) FROM users WHERE profile ? 'seed') AS seeded_users,
       (SELECT count(*) FROM teams WHERE settings ? 'seed') AS seeded_teams
"""
#: Rows that removing the seeded users and teams deletes (the deletes below, in one count).
SEEDED_ROWS = """
SELECT (SELECT count(*) FROM users WHERE profile ? 'seed')
     + (SELECT count(*) FROM teams WHERE settings ? 'seed')
     + (SELECT count(*) FROM team_members
        WHERE team_id IN (SELECT id FROM teams WHERE settings ? 'seed')
           OR user_id IN (SELECT id FROM users WHERE profile ? 'seed'))
     + (SELECT count(*) FROM invitations
        WHERE team_id IN (SELECT id FROM teams WHERE settings ? 'seed')) AS rows
"""
SEEDED_LOCATIONS = """
SELECT count(*) AS rows FROM team_locations
WHERE team_id IN (SELECT id FROM teams WHERE settings ? 'seed')
"""
DELETE_SEEDED_INVITATIONS = """
DELETE FROM invitations
WHERE team_id IN (SELECT id FROM teams WHERE settings ? 'seed')
"""
DELETE_SEEDED_MEMBERSHIPS = """
DELETE FROM team_members
WHERE team_id IN (SELECT id FROM teams WHERE settings ? 'seed')
   OR user_id IN (SELECT id FROM users WHERE profile ? 'seed')
"""
#: Locations of seeded teams go with them (ON DELETE CASCADE).
DELETE_SEEDED_TEAMS = "DELETE FROM teams WHERE settings ? 'seed'"
DELETE_SEEDED_USERS = "DELETE FROM users WHERE profile ? 'seed'"


@dataclass(frozen=True)
class _SeededState:
    seeded_users: int
    seeded_teams: int


@dataclass(frozen=True)
class _Matches:
    matches: bool | None


@dataclass(frozen=True)
class _Count:
    rows: int


@dataclass(frozen=True)
class _Allowed:
    allowed: bool


def _bypass_audit(conn: psycopg.Connection[Any]) -> bool:
    """Disable per-row audit capture in this transaction when allowed; whether it is off."""
    found = conn.cursor(row_factory=class_row(_Allowed)).execute(AUDIT_BYPASS_ALLOWED).fetchone()
    if found is None or not found.allowed:
        return False
    conn.execute(SEED_ACTOR)
    _switch_capture(conn, on=False)
    return True


def _switch_capture(conn: psycopg.Connection[Any], *, on: bool) -> None:
    verb = sql.SQL("ENABLE" if on else "DISABLE")
    for table in AUDITED_TABLES:
        conn.execute(sql.SQL(CAPTURE_TRIGGER).format(sql.Identifier(table), verb))


def _seeded_rows(conn: psycopg.Connection[Any], *, locations: bool) -> int:
    """Rows that deleting the earlier seed would remove."""
    count = conn.cursor(row_factory=class_row(_Count))
    total = count.execute(SEEDED_ROWS).fetchone()
    rows = total.rows if total is not None else 0
    if locations:
        located = count.execute(SEEDED_LOCATIONS).fetchone()
        rows += located.rows if located is not None else 0
    return rows


def _remove_previous(conn: psycopg.Connection[Any]) -> None:
    """Delete the rows of an earlier seed run.

    DELETE rather than TRUNCATE: other tables (added by later migrations) may reference users
    and teams, and their own ON DELETE rules must apply to seeded rows.
    """
    started = time.perf_counter()
    for statement in (
        DELETE_SEEDED_INVITATIONS,
        DELETE_SEEDED_MEMBERSHIPS,
        DELETE_SEEDED_TEAMS,
        DELETE_SEEDED_USERS,
    ):
        conn.execute(statement)
    logger.info("seed: removed the previous seed in %.2f s", time.perf_counter() - started)


def _result(
    plan: SeedPlan, *, locations: bool, created: bool, replaced_rows: int, started: float
) -> SeedResult:
    return SeedResult(
        users=plan.all_users,
        teams=plan.teams,
        memberships=plan.memberships,
        invitations=plan.invitations,
        locations=plan.locations if locations else 0,
        created=created,
        replaced_rows=replaced_rows,
        seconds=time.perf_counter() - started,
    )


def seed(
    db: Database,
    *,
    users: int = 10_000,
    teams: int = 1_000,
    seed: int = 42,
    replace: bool = False,
    progress: SeedProgress | None = None,
    audit: Literal["summary", "per-row"] = "summary",
) -> SeedResult:
    """Load deterministic demo data, or do nothing when the same seed is already loaded.

    Args:
        db: the database to fill (migrated to head).
        users: generated users, on top of the three :data:`PERSONAS`.
        teams: generated teams; at most ``users`` (each needs an owner) unless 0.
        seed: the random seed; the same value always produces the same rows.
        replace: replace an earlier seed even when it holds more rows than this one loads.
        progress: called as ``progress(table, rows_done, rows_total)`` (see
            :data:`SeedProgress`).

        audit: ``summary`` turns per-row audit capture off inside the seed's own transaction,
            when the role may, and writes one summary record per table; ``per-row`` lets the
            triggers record every row (slow: docs/benchmarks.md).

    Returns:
        The seeded row counts, whether anything was written and how many rows were replaced.

    Raises:
        InvalidInput: an argument is out of range (checked before any database work).
        WouldReplaceData: an earlier seed holds more rows than this one would load, and
            ``replace`` is False (checked before anything is deleted).
        Conflict: a generated email or slug is taken by a row that is not seeded.

    Everything happens in one transaction: on any error nothing of this run is left behind
    and an earlier seed stays as it was.
    """
    validate_arguments(users, teams, seed)
    started = time.perf_counter()
    plan = make_plan(users, teams, seed, now=datetime.now(UTC).replace(microsecond=0))
    with db.connection() as conn, conn.transaction():
        conn.execute(SET_TIMEOUTS, {"timeout": str(SEED_TIMEOUT_MS), "memory": INDEX_BUILD_MEMORY})
        conn.execute(TAKE_SEED_LOCK, {"key": SEED_LOCK_KEY})
        locations = table_exists(conn, LOCATIONS_TABLE)
        marker = Jsonb(plan.marker(locations=locations))
        found = (
            conn.cursor(row_factory=class_row(_Matches))
            .execute(MARKER_MATCHES, {"marker": marker, "email": MARKER_EMAIL})
            .fetchone()
        )
        state = conn.cursor(row_factory=class_row(_SeededState)).execute(SEEDED_STATE).fetchone()
        assert state is not None
        if (
            found is not None
            and found.matches is True
            and state.seeded_users == plan.all_users
            and state.seeded_teams == teams
        ):
            return _result(
                plan, locations=locations, created=False, replaced_rows=0, started=started
            )
        loads = plan.table_rows(locations=locations)
        replaced = 0
        if state.seeded_users or state.seeded_teams:
            replaced = _seeded_rows(conn, locations=locations)
            new_rows = sum(loads.values())
            if replaced > new_rows and not replace:
                raise WouldReplaceData(existing_rows=replaced, new_rows=new_rows)
        bulk = _bypass_audit(conn) if audit == "summary" else False
        if state.seeded_users or state.seeded_teams:
            _remove_previous(conn)
        deferred = defer_indexes(conn, loads, min_rows=DEFER_INDEXES_MIN_ROWS)
        if deferred:
            logger.info("seed: deferred %d indexes until after the load", len(deferred))
        for rows in table_rows(plan, locations=locations):
            stats = copy_text(
                conn, rows.table, rows.columns, rows.chunks, total=rows.total, progress=progress
            )
            logger.info(
                "seed: copied %d %s rows in %.2f s",
                stats.rows,
                stats.table,
                stats.seconds,
                extra={"table": stats.table, "rows": stats.rows, "seconds": stats.seconds},
            )
        if deferred:
            rebuild_started = time.perf_counter()
            rebuild_indexes(conn, deferred, progress=progress)
            logger.info(
                "seed: rebuilt %d indexes in %.2f s",
                len(deferred),
                time.perf_counter() - rebuild_started,
            )
        if bulk:
            _switch_capture(conn, on=True)
            for table in AUDITED_TABLES:
                summary = {"rows": loads.get(table, 0), "seed": seed, "replaced_rows": replaced}
                conn.execute(RECORD_BULK_LOAD, {"table": table, "summary": Jsonb(summary)})
        analyze_started = time.perf_counter()
        analyze(conn, list(loads))
        logger.info("seed: analyzed in %.2f s", time.perf_counter() - analyze_started)
    return _result(plan, locations=locations, created=True, replaced_rows=replaced, started=started)
