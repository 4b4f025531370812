"""`dbops status`: server, size, schema revision, row counts and pool settings in one report.

Read-only, and through the pool only. The migration history (head and the list of revisions)
is the caller's input (the CLI reads it with :mod:`dbops.ops.migrate`), so that a report can
be built for any list of revisions without the migration scripts.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass

from psycopg.rows import class_row

from dbops.config import PoolSettings
from dbops.db import Database

__all__ = [
    "ConnectionSecurity",
    "InvitationCount",
    "RowCounts",
    "ServerSummary",
    "StatusReport",
    "collect_status",
    "current_revision",
]

#: True when alembic's version table exists (the database was ever migrated).
VERSION_TABLE_PRESENT_SQL = """
SELECT to_regclass('alembic_version') IS NOT NULL AS present
"""

#: The applied revision(s): one row on a linear history.
CURRENT_REVISION_SQL = """
SELECT version_num FROM alembic_version ORDER BY version_num
"""

#: Server version, database name and size: one round trip.
SERVER_INFO_SQL = """
SELECT current_setting('server_version') AS server_version,
       current_setting('server_version_num')::int AS version_num,
       current_database() AS database,
       pg_database_size(current_database()) AS size_bytes,
       pg_size_pretty(pg_database_size(current_database())) AS size_pretty
"""

#: TLS of this session's own connection, and whether it came over the unix socket.
CONNECTION_SECURITY_SQL = """
SELECT s.ssl, s.version, s.cipher, s.bits, inet_server_addr() IS NULL AS unix_socket
FROM pg_stat_ssl AS s
WHERE s.pid = pg_backend_pid()
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
class ServerSummary:
    """Version of the server, and name and size of the current database."""

    server_version: str
    version_num: int
    database: str
    size_bytes: int
    size_pretty: str

    @property
    def supported(self) -> bool:
        """A version dbops supports (the ``server_version`` check's rule)."""
        from dbops.db.builds import supports

        return supports(self.version_num)


@dataclass(frozen=True)
class ConnectionSecurity:
    """Whether the connection `dbops status` reads over is encrypted (``pg_stat_ssl``).

    ``version``, ``cipher`` and ``bits`` are ``None`` without TLS. A unix socket connection
    never uses TLS (it does not leave the machine).
    """

    ssl: bool
    version: str | None
    cipher: str | None
    bits: int | None
    unix_socket: bool


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
class StatusReport:
    """Everything `dbops status` prints.

    ``counts`` is ``None`` when the domain tables do not exist yet (database not migrated).
    ``url`` is the libpq form (``postgresql://``, usable with psql) with its password redacted.
    """

    url: str
    embedded: bool
    server: ServerSummary
    current_revision: str | None
    head_revision: str
    pending: tuple[str, ...]
    counts: RowCounts | None
    pool: PoolSettings
    tls: ConnectionSecurity

    @property
    def up_to_date(self) -> bool:
        """True when the schema is at the code's head revision."""
        return not self.pending and self.current_revision == self.head_revision

    def to_json(self) -> str:
        """The report as a JSON document (``up_to_date`` included)."""
        data = dataclasses.asdict(self)
        data["up_to_date"] = self.up_to_date
        return json.dumps(data, indent=2)


def _server_summary(db: Database) -> ServerSummary:
    with db.read() as conn, conn.cursor(row_factory=class_row(ServerSummary)) as cur:
        row = cur.execute(SERVER_INFO_SQL).fetchone()
    assert row is not None
    return row


def _connection_security(db: Database) -> ConnectionSecurity:
    with db.read() as conn, conn.cursor(row_factory=class_row(ConnectionSecurity)) as cur:
        row = cur.execute(CONNECTION_SECURITY_SQL).fetchone()
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


def current_revision(db: Database) -> str | None:
    """The revision the database is at (alembic's version table); ``None`` if never migrated.

    Read over a pooled connection, with the pool's timeouts, instead of a separate engine.
    """
    with db.connection() as conn:
        present = conn.execute(VERSION_TABLE_PRESENT_SQL).fetchone()
        if present is None or not present[0]:
            return None
        rows = conn.execute(CURRENT_REVISION_SQL).fetchall()
    return ", ".join(str(row[0]) for row in rows) or None


def _pending(current: str | None, revisions: Sequence[str]) -> tuple[str, ...]:
    """Revisions after ``current`` (all for ``None``; none when ``current`` is unknown)."""
    if current is None:
        return tuple(revisions)
    if current not in revisions:
        return ()
    return tuple(revisions[revisions.index(current) + 1 :])


def collect_status(db: Database, *, head_revision: str, revisions: Sequence[str]) -> StatusReport:
    """Collect the status of the database behind ``db``.

    Args:
        db: the database.
        head_revision: the newest revision of the code (``dbops.ops.migrate.head_revision()``).
        revisions: every revision of the code, oldest first: what follows the database's
            revision is pending.

    Works on an empty or partly migrated database too: the revision fields then show what is
    pending and ``counts`` is ``None``; a revision the code does not know has nothing pending
    (and is not up to date). Every query runs under the connection's ``statement_timeout``
    (from Settings).
    """
    current = current_revision(db)
    return StatusReport(
        url=db.dsn.redacted,
        embedded=db.settings.embedded,
        server=_server_summary(db),
        current_revision=current,
        head_revision=head_revision,
        pending=_pending(current, revisions),
        counts=_row_counts(db),
        pool=db.settings.pool,
        tls=_connection_security(db),
    )
