"""`dbops status`: server, size, schema revision, row counts and pool settings in one report."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

from psycopg.rows import class_row

from dbops.config import redact_dsn, to_libpq_url
from dbops.db import Database
from dbops.ops import migrate

__all__ = [
    "InvitationCount",
    "PoolSettings",
    "RowCounts",
    "ServerInfo",
    "StatusReport",
    "collect_status",
]

#: Server version, database name and size: one round trip.
SERVER_INFO_SQL = """
SELECT current_setting('server_version') AS server_version,
       current_database() AS database,
       pg_database_size(current_database()) AS size_bytes,
       pg_size_pretty(pg_database_size(current_database())) AS size_pretty
"""

#: True when every domain table exists (the schema is migrated far enough to count rows).
TABLES_PRESENT_SQL = """
SELECT to_regclass('users') IS NOT NULL
       AND to_regclass('teams') IS NOT NULL
       AND to_regclass('team_members') IS NOT NULL
       AND to_regclass('invitations') IS NOT NULL AS present
"""

#: Exact row counts of the domain tables; soft-deleted users and teams are counted apart.
ROW_COUNTS_SQL = """
SELECT (SELECT count(*) FROM users WHERE deleted_at IS NULL) AS live_users,
       (SELECT count(*) FROM users WHERE deleted_at IS NOT NULL) AS deleted_users,
       (SELECT count(*) FROM teams WHERE deleted_at IS NULL) AS live_teams,
       (SELECT count(*) FROM teams WHERE deleted_at IS NOT NULL) AS deleted_teams,
       (SELECT count(*) FROM team_members) AS memberships,
       (SELECT count(*) FROM invitations) AS invitations
"""

#: Invitations per status, every status listed (zero when none).
INVITATIONS_BY_STATUS_SQL = """
SELECT s.status::text AS status, count(i.id) AS count
FROM unnest(enum_range(NULL::invitation_status)) AS s (status)
LEFT JOIN invitations AS i ON i.status = s.status
GROUP BY s.status
ORDER BY s.status
"""


@dataclass(frozen=True)
class ServerInfo:
    """Version of the server, and name and size of the current database."""

    server_version: str
    database: str
    size_bytes: int
    size_pretty: str


@dataclass(frozen=True)
class InvitationCount:
    """Number of invitations in one status."""

    status: str
    count: int


@dataclass(frozen=True)
class RowCounts:
    """Row counts of the domain tables."""

    live_users: int
    deleted_users: int
    live_teams: int
    deleted_teams: int
    memberships: int
    invitations: int
    invitations_by_status: tuple[InvitationCount, ...] = ()


@dataclass(frozen=True)
class PoolSettings:
    """The connection settings this process uses (from :class:`dbops.config.Settings`)."""

    min_size: int
    max_size: int
    max_idle_s: float
    timeout_s: float
    max_lifetime_s: float
    pre_ping: bool
    pre_ping_bypass_s: float
    prepared_statements: bool
    prepare_threshold: int
    statement_timeout_ms: int
    lock_timeout_ms: int
    idle_in_transaction_timeout_ms: int


@dataclass(frozen=True)
class StatusReport:
    """Everything `dbops status` prints.

    ``counts`` is ``None`` when the domain tables do not exist yet (database not migrated).
    ``url`` is the libpq form (``postgresql://``, usable with psql) with its password redacted.
    """

    url: str
    embedded: bool
    server: ServerInfo
    current_revision: str | None
    head_revision: str
    pending: tuple[str, ...]
    counts: RowCounts | None
    pool: PoolSettings

    @property
    def up_to_date(self) -> bool:
        """True when the schema is at the code's head revision."""
        return not self.pending and self.current_revision == self.head_revision

    def to_json(self) -> str:
        """The report as a JSON document (``up_to_date`` included)."""
        data = dataclasses.asdict(self)
        data["up_to_date"] = self.up_to_date
        return json.dumps(data, indent=2)


def _server_info(db: Database) -> ServerInfo:
    with db.read() as conn, conn.cursor(row_factory=class_row(ServerInfo)) as cur:
        row = cur.execute(SERVER_INFO_SQL).fetchone()
    assert row is not None
    return row


def _row_counts(db: Database) -> RowCounts | None:
    # One transaction: the counts describe one snapshot of the data.
    with db.connection() as conn:
        present = conn.execute(TABLES_PRESENT_SQL).fetchone()
        if present is None or not present[0]:
            return None
        with conn.cursor(row_factory=class_row(RowCounts)) as cur:
            counts = cur.execute(ROW_COUNTS_SQL).fetchone()
        with conn.cursor(row_factory=class_row(InvitationCount)) as cur:
            by_status = tuple(cur.execute(INVITATIONS_BY_STATUS_SQL).fetchall())
    assert counts is not None
    return dataclasses.replace(counts, invitations_by_status=by_status)


def _pool_settings(db: Database) -> PoolSettings:
    s = db.settings
    return PoolSettings(
        min_size=s.pool_min_size,
        max_size=s.pool_max_size,
        max_idle_s=s.pool_max_idle_s,
        timeout_s=s.pool_timeout_s,
        max_lifetime_s=s.pool_max_lifetime_s,
        pre_ping=s.pool_pre_ping,
        pre_ping_bypass_s=s.pool_pre_ping_bypass_s,
        prepared_statements=s.prepared_statements,
        prepare_threshold=s.prepare_threshold,
        statement_timeout_ms=s.statement_timeout_ms,
        lock_timeout_ms=s.lock_timeout_ms,
        idle_in_transaction_timeout_ms=s.idle_in_transaction_timeout_ms,
    )


def collect_status(db: Database) -> StatusReport:
    """Collect the status of the database behind ``db``.

    Works on an empty or partly migrated database too: the revision fields then show what is
    pending and ``counts`` is ``None``. Every query runs under the connection's
    ``statement_timeout`` (from Settings).
    """
    return StatusReport(
        url=redact_dsn(to_libpq_url(db.url)),
        embedded=db.settings.embedded,
        server=_server_info(db),
        current_revision=migrate.current_revision(db.url),
        head_revision=migrate.head_revision(),
        pending=tuple(migrate.pending(db.url)),
        counts=_row_counts(db),
        pool=_pool_settings(db),
    )
