"""Role passwords without leaks: verifiers computed on the client, quiet sessions, purges.

Only a SCRAM-SHA-256 verifier computed on the client (libpq's ``PQencryptPasswordConn``) is
sent, never the password; the statements are kept out of pg_stat_statements and the statement
log where the session may (a superuser); statistics entries that hold a password literal (from
earlier versions, or anyone's ``ALTER ROLE ... PASSWORD``) are removed
(:func:`purge_secret_statements`).
"""

from __future__ import annotations

import secrets
from typing import Any

import psycopg
from psycopg import sql

from dbops.config import Settings
from dbops.db.roles import (
    ROLE_NAMES,
    RoleName,
)
from dbops.redact import SECRET_PATTERN_SQL, redact_sql

#: Whether a relation (``schema.name``) exists: a database not migrated that far has none.
RELATION_EXISTS_SQL = "SELECT to_regclass(%(name)s) IS NOT NULL"


def role_passwords(settings: Settings) -> tuple[dict[RoleName, str], tuple[RoleName, ...]]:
    """Each role's password, and which roles got a generated one.

    From settings (``DBOPS_<ROLE>_PASSWORD`` or its ``_FILE``); unset ones are random (32
    bytes) and never shown.
    """
    passwords: dict[RoleName, str] = {}
    generated: list[RoleName] = []
    for role in ROLE_NAMES:
        value = getattr(settings, f"{role}_password")
        if value is None:
            passwords[role] = secrets.token_urlsafe(32)
            generated.append(role)
        else:
            passwords[role] = value.get_secret_value()
    return passwords, tuple(generated)


def password_verifier(conn: psycopg.Connection[Any], role: str, password: str) -> str:
    """The SCRAM-SHA-256 verifier of ``password`` for ``role``, computed here (libpq).

    What ``CREATE/ALTER ROLE ... PASSWORD`` is given instead of the password: the server
    stores it as is, and the statement text (statistics, logs) never holds the password.
    """
    verifier = conn.pgconn.encrypt_password(password.encode(), role.encode(), b"scram-sha-256")
    return verifier.decode("ascii")


#: Keeps this transaction's role statements out of pg_stat_statements and the statement log
#: (both superuser-only settings): the verifiers then leave no trace either. Transaction-local:
#: the connection goes back to a pool, which must not stay untracked.
QUIET_SESSION_SQL = """
SELECT set_config('pg_stat_statements.track', 'none', true),
       set_config('log_statement', 'none', true)
"""


IS_SUPERUSER_SQL = "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"


def quiet_session(conn: psycopg.Connection[Any]) -> None:
    """Keep this session's statements out of pg_stat_statements and the log, where it may.

    Only a superuser may turn tracking and logging off for its own session; elsewhere only the
    verifier keeps the password out (:func:`password_verifier`).
    """
    row = conn.execute(IS_SUPERUSER_SQL).fetchone()
    if row and row[0]:
        conn.execute(QUIET_SESSION_SQL)


CREATE_EXTENSION_SQL = sql.SQL("CREATE EXTENSION IF NOT EXISTS {name}")
PGSS_INSTALLED_SQL = "SELECT count(*) FROM pg_extension WHERE extname = 'pg_stat_statements'"


#: The server collects statement statistics (the library is preloaded) and has the extension.
PGSS_LOADED_SQL = """
SELECT 'pg_stat_statements' = ANY(string_to_array(
         replace(current_setting('shared_preload_libraries'), ' ', ''), ','))
       AND EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_stat_statements')
"""


#: Statistics entries (any database) whose text holds a secret-looking literal.
SECRET_ENTRIES_SQL = f"""
SELECT s.userid, s.dbid, s.queryid
FROM pg_stat_statements(true) AS s
WHERE s.query ~* '{SECRET_PATTERN_SQL}' AND s.queryid IS NOT NULL AND s.queryid <> 0
"""


RESET_ENTRY_SQL = "SELECT 1 FROM pg_stat_statements_reset(%s::oid, %s::oid, %s::bigint)"


#: Stored history texts from before they were redacted on the way in.
REDACT_HISTORY_SQL = f"""
UPDATE dbops_monitor.statements SET query = {redact_sql("query")}
WHERE query ~* '{SECRET_PATTERN_SQL}'
"""


def purge_secret_statements(conn: psycopg.Connection[Any]) -> int:
    """Remove the statistics entries that hold a password (or other secret) literal.

    pg_stat_statements keeps utility statements with their literals, readable by every
    ``pg_read_all_stats`` member; each such entry is reset on its own (the others keep their
    counters), and the history's stored texts are redacted. Creates the extension in this
    database when the server preloads it (the entries of every database are seen through
    it). Needs the right to call ``pg_stat_statements_reset`` (a superuser, or a grant).
    Returns the entries removed.
    """
    loaded = conn.execute(PGSS_LOADED_SQL).fetchone()
    if loaded and loaded[0]:  # the view is needed to see the entries, from any database
        conn.execute(CREATE_EXTENSION_SQL.format(name=sql.Identifier("pg_stat_statements")))
    row = conn.execute(PGSS_INSTALLED_SQL).fetchone()
    removed = 0
    if row and row[0]:
        entries = conn.execute(SECRET_ENTRIES_SQL).fetchall()
        for userid, dbid, queryid in entries:
            conn.execute(RESET_ENTRY_SQL, (userid, dbid, queryid))
        removed = len(entries)
    row = conn.execute(RELATION_EXISTS_SQL, {"name": "dbops_monitor.statements"}).fetchone()
    if row and row[0]:
        conn.execute(REDACT_HISTORY_SQL)
    return removed
