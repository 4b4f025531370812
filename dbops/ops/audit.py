"""The audit trail of migration 0006: verify its hash chain, read a row's versions and past state.

Records are written by triggers (``audit.capture`` per change, ``audit.seal`` at commit), never
by this module, which only reads ``audit.record``. docs/decisions/0006-audit-chain.md explains
the chain: ``hash = sha256(prev_hash || canonical text)``, ids contiguous from 1, and
``audit.head`` holding the last id and hash.

:func:`verify` recomputes every hash with its own copy of the canonical expression (not the
database's ``audit.canonical_text``), so replacing that function does not hide an edit.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import psycopg
from psycopg.rows import class_row

from dbops.core.audit_head import HEAD_SQL, Anchor, HeadRow, read_head
from dbops.db import Database
from dbops.errors import AuditUnavailable, InvalidInput, NotFound

__all__ = [
    "GENESIS_HASH",
    "Anchor",
    "AuditProblem",
    "AuditVerifyReport",
    "Kind",
    "Version",
    "as_of",
    "history",
    "read_head",
    "verify",
]

#: What a subject is looked up by: a team by its slug, a user by their email.
Kind = Literal["team", "user"]
#: The prev_hash of record 1.
GENESIS_HASH = bytes(32)
#: Fields whose change alone says nothing (moved by the ``set_updated_at`` trigger).
NOISE_FIELDS = frozenset({"updated_at"})
#: Records fetched per round trip while walking the chain.
VERIFY_BATCH = 5_000
#: ``statement_timeout`` of the walk and of the history reads (a big trail takes a while).
VERIFY_TIMEOUT_MS = 30 * 60 * 1000
READ_TIMEOUT_MS = 30_000

_TABLES: dict[str, str] = {"team": "teams", "user": "users"}

# ---------------------------------------------------------------------------------------- SQL
SET_TIMEOUT_SQL = "SELECT set_config('statement_timeout', %(timeout)s, true)"
#: One snapshot for the head and every record.
REPEATABLE_READ_SQL = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"
AUDIT_INSTALLED_SQL = "SELECT to_regclass('audit.record') IS NOT NULL AS installed"
#: The canonical text of a record: the same expression as ``audit.canonical_text`` (0006).
CHAIN_SQL = """
SELECT id, at, table_name, row_key, prev_hash, hash,
       jsonb_build_array(
           id, to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), txid::text,
           actor_kind, actor_id, actor_name, db_role, table_name, op, row_key, old_row, new_row
       )::text AS canonical
FROM audit.record
ORDER BY id
"""
LIVE_TEAM_SQL = """
SELECT id::text AS row_key FROM teams WHERE slug = %(key)s
ORDER BY deleted_at IS NULL DESC, updated_at DESC LIMIT 1
"""
LIVE_USER_SQL = """
SELECT id::text AS row_key FROM users WHERE email = lower(%(key)s)
ORDER BY deleted_at IS NULL DESC, updated_at DESC LIMIT 1
"""
#: A row no longer in its table (hard-deleted): the newest record that carried the key.
RECORDED_TEAM_SQL = """
SELECT row_key FROM audit.record
WHERE table_name = 'teams' AND row_key <> '*'
  AND (new_row ->> 'slug' = %(key)s OR old_row ->> 'slug' = %(key)s)
ORDER BY id DESC LIMIT 1
"""
RECORDED_USER_SQL = """
SELECT row_key FROM audit.record
WHERE table_name = 'users' AND row_key <> '*'
  AND (lower(new_row ->> 'email') = lower(%(key)s) OR lower(old_row ->> 'email') = lower(%(key)s))
ORDER BY id DESC LIMIT 1
"""
ROW_RECORDS_SQL = """
SELECT id, at, actor_kind, actor_id, actor_name, op, old_row, new_row
FROM audit.record
WHERE table_name = %(table)s AND row_key = %(key)s
ORDER BY id
"""
#: The first TRUNCATE of the table after a record (it removed the row too).
TRUNCATED_AFTER_SQL = """
SELECT id, at, actor_kind, actor_id, actor_name, op, old_row, new_row
FROM audit.record
WHERE table_name = %(table)s AND row_key = '*' AND op = 'TRUNCATE' AND id > %(after)s
ORDER BY id
LIMIT 1
"""


# ---------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class AuditProblem:
    """The first place where the chain does not hold.

    ``kind`` is ``edited`` (a record's content no longer matches its hash), ``deleted`` (a
    record is missing: a gap in the ids, or the head names records that are gone) or
    ``relinked`` (a record's prev_hash is not the hash of the record before it: the previous
    record was rewritten with a recomputed hash).
    """

    kind: Literal["edited", "deleted", "relinked"]
    record_id: int
    table_name: str | None
    row_key: str | None
    at: datetime | None
    message: str


@dataclass(frozen=True)
class AuditVerifyReport:
    """What :func:`verify` found: records walked, the chain's last id and hash, any problem."""

    records: int
    last_id: int
    last_hash: str
    problem: AuditProblem | None

    @property
    def ok(self) -> bool:
        """True when every record is present and unchanged."""
        return self.problem is None

    @property
    def anchor(self) -> str:
        """``SEQ:HASH`` of the last record: keep it, and give it to the next verify."""
        return f"{self.last_id}:{self.last_hash}"


@dataclass(frozen=True)
class Version:
    """One recorded change of a row: when, by whom, what, and the row after it.

    ``row`` is the row after the change (secret columns left out), None once deleted;
    ``changed`` names the fields that differ from the previous version (all of them for an
    INSERT or DELETE; ``updated_at`` alone is not counted as a change).
    """

    record_id: int
    at: datetime
    op: str
    actor_kind: str
    actor_id: str | None
    actor_name: str | None
    changed: tuple[str, ...]
    row: dict[str, Any] | None
    before: dict[str, Any] | None

    @property
    def actor(self) -> str:
        """The actor for humans: ``user <id>``, ``system <name>`` or ``none`` (plain SQL).

        A system step a service took for a user (creating a team, accepting an invitation:
        ``dbops.services._base.elevate``) reads ``user <id> via <step>``.
        """
        if self.actor_kind == "user":
            return f"user {self.actor_id}"
        if self.actor_kind == "system" and self.actor_id:
            return f"user {self.actor_id} via {self.actor_name or '?'}"
        if self.actor_kind == "system":
            return f"system {self.actor_name or '?'}"
        return "none"


@dataclass(frozen=True)
class _ChainRow:
    id: int
    at: datetime
    table_name: str
    row_key: str
    prev_hash: bytes
    hash: bytes
    canonical: str


@dataclass(frozen=True)
class _Installed:
    installed: bool


@dataclass(frozen=True)
class _Key:
    row_key: str


@dataclass(frozen=True)
class _Record:
    id: int
    at: datetime
    actor_kind: str
    actor_id: str | None
    actor_name: str | None
    op: str
    old_row: dict[str, Any] | None
    new_row: dict[str, Any] | None


# -------------------------------------------------------------------------------- functions
def _require_audit(conn: psycopg.Connection[Any]) -> None:
    found = conn.cursor(row_factory=class_row(_Installed)).execute(AUDIT_INSTALLED_SQL).fetchone()
    if found is None or not found.installed:
        raise AuditUnavailable(
            "the audit trail is not installed in this database (migration 0006): "
            "run `dbops migrate`"
        )


def _begin(conn: psycopg.Connection[Any], timeout_ms: int) -> None:
    conn.execute(REPEATABLE_READ_SQL)
    conn.execute(SET_TIMEOUT_SQL, {"timeout": str(timeout_ms)})
    _require_audit(conn)


def _chain(conn: psycopg.Connection[Any]) -> Iterator[_ChainRow]:
    """Every record in id order, through a server-side cursor (constant memory)."""
    with conn.cursor("audit_chain", row_factory=class_row(_ChainRow)) as cur:
        cur.itersize = VERIFY_BATCH
        cur.execute(CHAIN_SQL)
        yield from cur


def _record_hash(prev_hash: bytes, canonical: str) -> bytes:
    return hashlib.sha256(prev_hash + canonical.encode("utf-8")).digest()


def _where(row: _ChainRow) -> str:
    return f"{row.table_name} {row.row_key}, sealed {row.at.astimezone(UTC).isoformat()}"


def _problem(
    kind: Literal["edited", "deleted", "relinked"], row: _ChainRow, message: str
) -> AuditProblem:
    return AuditProblem(kind, row.id, row.table_name, row.row_key, row.at, message)


def verify(db: Database, anchor: Anchor | None = None) -> AuditVerifyReport:
    """Walk the chain in id order, recompute every hash, and report the first break.

    Checked, on one snapshot: ids run 1, 2, 3, ... without a gap (a gap is a deleted record);
    each record's hash is ``sha256(prev_hash || canonical text)`` of its current content (else
    it was edited); each prev_hash is the previous record's hash (else the previous record was
    rewritten with a recomputed hash); the head (``audit.head``) names the last record (else
    records at the end were deleted). With an ``anchor`` (a record known from outside), the
    chain must still reach it with the same hash: that catches the newest records deleted
    together with a rewound head, which the chain alone cannot show (decision 0006).

    Raises:
        AuditUnavailable: the database has no audit trail (migration 0006 not applied).
    """
    with db.connection() as conn:
        _begin(conn, VERIFY_TIMEOUT_MS)
        head = conn.cursor(row_factory=class_row(HeadRow)).execute(HEAD_SQL).fetchone()
        prev_hash, prev_id, count = GENESIS_HASH, 0, 0
        problem: AuditProblem | None = None
        for row in _chain(conn):
            if row.id != prev_id + 1:
                missing = _span(prev_id + 1, row.id - 1)
                problem = _problem(
                    "deleted", row, f"{missing} deleted: the chain jumps to record {row.id}"
                )
                break
            if _record_hash(row.prev_hash, row.canonical) != row.hash:
                problem = _problem(
                    "edited", row, f"record {row.id} edited ({_where(row)}): hash mismatch"
                )
                break
            if row.prev_hash != prev_hash:
                problem = _problem(
                    "relinked",
                    row,
                    f"record {row.id} ({_where(row)}): prev_hash is not the hash of record "
                    f"{prev_id}, which was rewritten",
                )
                break
            if anchor is not None and row.id == anchor.record_id and row.hash != anchor.hash:
                problem = _problem(
                    "relinked",
                    row,
                    f"record {row.id} ({_where(row)}) is not the record the anchor names: the "
                    "chain was rewritten from there or earlier",
                )
                break
            prev_hash, prev_id, count = row.hash, row.id, count + 1
        if problem is None and anchor is not None and prev_id < anchor.record_id:
            problem = AuditProblem(
                "deleted",
                prev_id + 1,
                None,
                None,
                None,
                f"{_span(prev_id + 1, anchor.record_id)} deleted: the anchor names record "
                f"{anchor.record_id}, the chain (and its head) now ends at record {prev_id}",
            )
        if problem is None and head is not None and head.last_id != prev_id:
            problem = AuditProblem(
                "deleted",
                head.last_id,
                None,
                None,
                None,
                f"{_span(prev_id + 1, head.last_id)} deleted: the head says the chain ends "
                f"at record {head.last_id}, the last one present is {prev_id}",
            )
        elif problem is None and head is not None and head.last_hash != prev_hash:
            problem = AuditProblem(
                "relinked",
                prev_id,
                None,
                None,
                None,
                f"the head's hash does not match record {prev_id}: the chain was rewritten",
            )
    return AuditVerifyReport(count, prev_id, prev_hash.hex(), problem)


def _span(first: int, last: int) -> str:
    return f"record {first}" if first == last else f"records {first}-{last}"


def _table_of(kind: str) -> str:
    table = _TABLES.get(kind)
    if table is None:
        raise InvalidInput(f"kind: must be one of {', '.join(_TABLES)}, not {kind!r}", "kind")
    return table


def _row_key(conn: psycopg.Connection[Any], kind: str, key: str) -> str:
    """The audit row key (the id) of the team with slug / user with email ``key``."""
    live, recorded = (
        (LIVE_TEAM_SQL, RECORDED_TEAM_SQL) if kind == "team" else (LIVE_USER_SQL, RECORDED_USER_SQL)
    )
    cur = conn.cursor(row_factory=class_row(_Key))
    for query in (live, recorded):
        found = cur.execute(query, {"key": key.strip()}).fetchone()
        if found is not None:
            return found.row_key
    raise NotFound(f"no {kind} {key!r} in the table or the audit trail")


def _changed(before: dict[str, Any] | None, after: dict[str, Any] | None) -> tuple[str, ...]:
    fields = sorted(set(before or {}) | set(after or {}))
    if before is None or after is None:
        return tuple(fields)
    return tuple(f for f in fields if f not in NOISE_FIELDS and before.get(f) != after.get(f))


def _version(record: _Record, before: dict[str, Any] | None) -> Version:
    after = None if record.op in ("DELETE", "TRUNCATE") else record.new_row
    old = record.old_row if record.op != "TRUNCATE" else before
    return Version(
        record_id=record.id,
        at=record.at,
        op=record.op,
        actor_kind=record.actor_kind,
        actor_id=record.actor_id,
        actor_name=record.actor_name,
        changed=_changed(old, after),
        row=after,
        before=old,
    )


def _versions(conn: psycopg.Connection[Any], table: str, row_key: str) -> list[Version]:
    cur = conn.cursor(row_factory=class_row(_Record))
    records = cur.execute(ROW_RECORDS_SQL, {"table": table, "key": row_key}).fetchall()
    versions: list[Version] = []
    state: dict[str, Any] | None = None
    for record in records:
        version = _version(record, state)
        versions.append(version)
        state = version.row
    if records and state is not None:
        truncated = cur.execute(TRUNCATED_AFTER_SQL, {"table": table, "after": records[-1].id})
        last = truncated.fetchone()
        if last is not None:
            versions.append(_version(last, state))
    return versions


def history(db: Database, kind: Kind, key: str) -> list[Version]:
    """The recorded versions of a team (by slug) or user (by email), oldest first.

    A row loaded in bulk (the seed) has no version until its first change; a TRUNCATE of the
    table after the row's last change ends its history.

    Raises:
        InvalidInput: ``kind`` is neither ``team`` nor ``user``.
        NotFound: no such slug/email in the table or the audit trail.
        AuditUnavailable: the database has no audit trail.
    """
    table = _table_of(kind)
    with db.connection() as conn:
        _begin(conn, READ_TIMEOUT_MS)
        return _versions(conn, table, _row_key(conn, kind, key))


def _state_at(versions: Sequence[Version], at: datetime) -> dict[str, Any] | None:
    """The row as of ``at`` from its versions (see :func:`as_of`)."""
    earlier = [v for v in versions if v.at <= at]
    if earlier:
        return earlier[-1].row
    first = next(iter(versions), None)
    if first is None or first.before is None:
        return None  # created after ``at`` (or never recorded)
    created = first.before.get("created_at")
    if isinstance(created, str) and datetime.fromisoformat(created) > at:
        return None
    return first.before  # loaded in bulk before ``at``, changed only later


def as_of(db: Database, kind: Kind, key: str, at: datetime) -> dict[str, Any] | None:
    """The team (by slug) or user (by email) as it was at ``at``; None if it did not exist.

    The answer comes from the audit records: the row after the last change sealed at or
    before ``at``. For a row loaded in bulk and changed only later, the state before its
    first recorded change (if it was created before ``at``). A naive ``at`` is taken as UTC.

    Raises:
        InvalidInput: ``kind`` is neither ``team`` nor ``user``.
        NotFound: no such slug/email in the table or the audit trail.
        AuditUnavailable: the database has no audit trail.
    """
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return _state_at(history(db, kind, key), at)
