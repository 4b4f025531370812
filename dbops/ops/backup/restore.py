"""``restore_backup``: a backup into a target database, all or nothing.

An empty target gets a single-transaction ``pg_restore``: a failure rolls the whole restore
back. A missing target is created and restored in parallel (``backup_jobs``), and dropped
again if anything fails. A target holding data is refused unless ``force``; then the backup is
restored into a new database beside it, checked, and swapped in by renaming the two in one
transaction, the old one kept as ``<name>_pre_<id>``. Either way a failure leaves the target
as it was.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from dbops.config import Settings
from dbops.core.manifest import Manifest
from dbops.db.builds import major_of
from dbops.db.dsn import Dsn
from dbops.db.roles import ALL_ROLES
from dbops.errors import BackupError, RestoreRefused, translate_db_errors
from dbops.ops.backup._common import (
    TABLES_SQL,
    Progress,
    Step,
    _report,
    check_files,
    client_env,
    count_rows,
    find_backup,
    pg_tool,
    pipe_tools,
    run_tool,
)

__all__ = [
    "RestoreResult",
    "compare_rows",
    "pg_restore_into",
    "relation_count",
    "restore_backup",
    "with_database",
]

#: Relations a dump could collide with: anything outside the catalogs that no extension owns.
RELATIONS_SQL = """
SELECT count(*) AS relations
FROM pg_class AS c
JOIN pg_namespace AS n ON n.oid = c.relnamespace
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_%'
  AND NOT EXISTS (
      SELECT 1 FROM pg_depend AS d
      WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e'
  )
"""
DATABASE_EXISTS_SQL = "SELECT 1 FROM pg_database WHERE datname = %(name)s"
TERMINATE_SQL = """
SELECT count(pg_terminate_backend(pid)) AS ended
FROM pg_stat_activity
WHERE datname = %(name)s AND pid <> pg_backend_pid()
"""
CREATE_DATABASE = sql.SQL("CREATE DATABASE {}")
DROP_DATABASE = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
RENAME_DATABASE = sql.SQL("ALTER DATABASE {} RENAME TO {}")
#: PostgreSQL's identifier limit (NAMEDATALEN - 1).
_MAX_NAME = 63


@dataclass(frozen=True)
class RestoreResult:
    """What :func:`restore_backup` did.

    ``kept_as`` names the database the old target was renamed to (``force`` on a target with
    data), else ``None``.
    """

    backup_id: str
    database: str
    method: str
    kept_as: str | None
    duration_s: float
    tables: int
    rows: int


def with_database(dsn: Dsn, database: str) -> Dsn:
    """The same server, credentials and options as ``dsn``, another database."""
    from urllib.parse import quote, urlsplit, urlunsplit

    parts = urlsplit(dsn.libpq)
    url = urlunsplit(parts._replace(path="/" + quote(database, safe="")))
    return Dsn.parse(url, source="the target URL")


def _dbname(dsn: Dsn) -> str:
    from psycopg.conninfo import conninfo_to_dict

    name = conninfo_to_dict(dsn.libpq).get("dbname")
    if not name:
        raise BackupError(f"the target URL names no database: {dsn.redacted}")
    return str(name)


def relation_count(conn: psycopg.Connection[Any]) -> int:
    """Tables, views, sequences, indexes of the connected database that no extension owns."""
    row = conn.execute(RELATIONS_SQL).fetchone()
    return int(row[0]) if row else 0


#: Roles a dump of a dbops database may name (policies, owners, grants).
_DBOPS_ROLES = ALL_ROLES

MISSING_ROLES_SQL = """
SELECT name FROM unnest(%(names)s::text[]) AS name
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = name)
"""


def _ensure_role_names(target: Dsn) -> None:
    with translate_db_errors(), psycopg.connect(target.libpq, autocommit=True) as conn:
        missing = [r[0] for r in conn.execute(MISSING_ROLES_SQL, {"names": list(_DBOPS_ROLES)})]
        for name in missing:
            conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(name)))


def pg_restore_into(
    target: Dsn,
    backup: Path,
    manifest: Manifest,
    *,
    jobs: int,
    owners: bool,
    progress: Progress | None,
) -> None:
    """Run pg_restore of ``backup`` into ``target`` (``--exit-on-error``).

    dbops' roles are named by the dump's row-level security policies (migration 0008), and
    roles belong to the cluster, not the dump: missing ones are created first, without LOGIN
    (`dbops roles setup` on the restored cluster gives them logins and passwords).
    """
    _ensure_role_names(target)
    conninfo, env = client_env(target)
    major = major_of(manifest.server_version)
    argv = [pg_tool("pg_restore", major), "--verbose", "--exit-on-error", f"--dbname={conninfo}"]
    if jobs > 1:
        argv.append(f"--jobs={jobs}")
    if not owners:
        argv += ["--no-owner", "--no-privileges"]
    argv.append(str(backup / manifest.dump_path))
    run_tool(argv, env, phase="restore", total=len(manifest.tables), progress=progress)


#: The row check of a restore into an existing empty database, run by psql in the restore's
#: own transaction, after the data: a mismatch raises, and the whole restore rolls back.
#: ``{expected}`` is a JSON array of ``[schema, table, rows]`` (from the manifest), ``{tables}``
#: the query of every table a dump holds data of (:data:`TABLES_SQL`): the same problems, in
#: the same words, as :func:`compare_rows`.
ROW_CHECK_SQL = """
DO $dbops_row_check$
DECLARE
  expected jsonb := $dbops_json${expected}$dbops_json$;
  item jsonb;
  found record;
  n bigint;
  problems text[] := '{{}}';
BEGIN
  FOR item IN SELECT value FROM pg_catalog.jsonb_array_elements(expected) ORDER BY 1 LOOP
    IF pg_catalog.to_regclass(pg_catalog.format('%I.%I', item->>0, item->>1)) IS NULL THEN
      problems := problems || pg_catalog.format('table %s.%s is missing', item->>0, item->>1);
    ELSE
      EXECUTE pg_catalog.format('SELECT count(*) FROM %I.%I', item->>0, item->>1) INTO n;
      IF n <> (item->>2)::bigint THEN
        problems := problems || pg_catalog.format(
          '%s.%s has %s rows, the manifest %s', item->>0, item->>1,
          pg_catalog.to_char(n, 'FM999,999,999,999,999,999'),
          pg_catalog.to_char((item->>2)::bigint, 'FM999,999,999,999,999,999'));
      END IF;
    END IF;
  END LOOP;
  FOR found IN {tables} LOOP
    IF NOT EXISTS (
        SELECT 1 FROM pg_catalog.jsonb_array_elements(expected) AS e
        WHERE e.value->>0 = found.schema AND e.value->>1 = found."table") THEN
      problems := problems || pg_catalog.format(
        'table %s.%s is not in the manifest', found.schema, found."table");
    END IF;
  END LOOP;
  IF pg_catalog.cardinality(problems) > 0 THEN
    RAISE EXCEPTION 'dbops: restored rows differ from backup {backup_id}: %', pg_catalog.concat(
      pg_catalog.array_to_string(problems[1:3], '; '),
      CASE WHEN pg_catalog.cardinality(problems) > 3
           THEN pg_catalog.format(' (and %s more)', pg_catalog.cardinality(problems) - 3)
           ELSE '' END);
  END IF;
END
$dbops_row_check$;
"""
_ROWS_DIFFER = re.compile(r"dbops: (restored rows differ from backup .*)")


def row_check_sql(manifest: Manifest) -> str:
    """:data:`ROW_CHECK_SQL` for ``manifest`` (names and counts as JSON, never spliced as SQL)."""
    expected = json.dumps([[t.schema, t.table, t.rows] for t in manifest.tables])
    if "$dbops_json$" in expected:  # a table name that would end the dollar quote
        raise BackupError(f"backup {manifest.id}: a table name holds $dbops_json$")
    return ROW_CHECK_SQL.format(expected=expected, tables=TABLES_SQL, backup_id=manifest.id)


def restore_checked(
    target: Dsn, backup: Path, manifest: Manifest, *, owners: bool, progress: Progress | None
) -> None:
    """Restore into ``target`` and check its rows in one transaction: all or nothing.

    ``pg_restore --single-transaction`` commits before any row check could run, so a dump whose
    rows differ from its manifest would stay restored. Instead pg_restore writes the SQL
    script and psql runs it (``--single-transaction``, ``ON_ERROR_STOP``) followed by
    :data:`ROW_CHECK_SQL`: any error, the row check's included, rolls everything back.

    Raises:
        BackupError: pg_restore or psql failed, or the rows differ (nothing was restored).
    """
    _ensure_role_names(target)
    conninfo, env = client_env(target)
    major = major_of(manifest.server_version)
    script = [pg_tool("pg_restore", major), "--verbose", "--exit-on-error", "--file=-"]
    if not owners:
        script += ["--no-owner", "--no-privileges"]
    script.append(str(backup / manifest.dump_path))
    psql = [
        pg_tool("psql", major),
        "--no-psqlrc",
        "--quiet",
        "--single-transaction",
        "--set=ON_ERROR_STOP=1",
        f"--dbname={conninfo}",
        "--file=-",
    ]
    check = row_check_sql(manifest).encode()
    pipe_tools(
        script,
        psql,
        env,
        trailer=check,
        phase="restore",
        total=len(manifest.tables),
        progress=progress,
        known_error=_ROWS_DIFFER,
    )


def compare_rows(
    conn: psycopg.Connection[Any], manifest: Manifest, progress: Progress | None = None
) -> str | None:
    """``None`` when every table has the manifest's row count, else what differs (one line)."""
    with conn.transaction():
        conn.execute("SET LOCAL statement_timeout = 0")
        got = {(t.schema, t.table): t.rows for t in count_rows(conn, progress, phase="check")}
    want = {(t.schema, t.table): t.rows for t in manifest.tables}
    problems = []
    for key in sorted(want.keys() - got.keys()):
        problems.append(f"table {'.'.join(key)} is missing")
    for key in sorted(got.keys() - want.keys()):
        problems.append(f"table {'.'.join(key)} is not in the manifest")
    for key in sorted(want.keys() & got.keys()):
        if want[key] != got[key]:
            problems.append(f"{'.'.join(key)} has {got[key]:,} rows, the manifest {want[key]:,}")
    if not problems:
        return None
    more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
    return "; ".join(problems[:3]) + more


def restore_backup(
    settings: Settings,
    backup_id: str,
    target: Dsn,
    *,
    force: bool = False,
    owners: bool = True,
    jobs: int | None = None,
    progress: Progress | None = None,
) -> RestoreResult:
    """Restore backup ``backup_id`` into the database of ``target``.

    Args:
        settings: the backup directory, connection settings, ``backup_jobs``.
        backup_id: the backup to restore (``dbops backup list``).
        target: the database to restore into; its server must allow ``CREATE DATABASE`` for a
            missing target or ``force``.
        force: restore over a target that holds data: restore beside it, then swap by rename,
            keeping the old database as ``<name>_pre_<backup id>``.
        owners: restore object owners and privileges (they need the same roles on the target
            server); ``False``: objects belong to the restoring user, no GRANTs.
        jobs: pg_restore workers (not for an existing empty target: one transaction);
            default ``backup_jobs``.
        progress: called with a :class:`Step` per restored table.

    Raises:
        BackupNotFound: no such backup.
        BackupCorrupt: a file differs from the manifest (checked before anything is touched).
        RestoreRefused: the target holds data and ``force`` is off (nothing was changed).
        BackupError: pg_restore failed (the target is unchanged), or the rows differ.
    """
    from dbops.db.engine import connection_kwargs

    started = time.perf_counter()
    backup, manifest = find_backup(settings, backup_id)
    check_files(backup, manifest, progress)
    name = _dbname(target)
    admin = with_database(target, "postgres")
    kwargs = connection_kwargs(settings)
    with translate_db_errors(), psycopg.connect(admin.libpq, autocommit=True, **kwargs) as conn:
        exists = conn.execute(DATABASE_EXISTS_SQL, {"name": name}).fetchone() is not None
    relations = 0
    if exists:
        with translate_db_errors(), psycopg.connect(target.libpq, **kwargs) as conn:
            relations = relation_count(conn)
    if relations and not force:
        raise RestoreRefused(
            f"database {name} is not empty ({relations} relations): nothing changed; pass "
            f"--force to restore beside it and swap, keeping it as {_pre_name(name, manifest)}"
        )
    if not relations:
        result = _restore_in_one_transaction(
            settings, backup, manifest, target, name, exists, owners, jobs, progress
        )
    else:
        result = _restore_beside_and_swap(
            settings, backup, manifest, target, name, owners, jobs, progress
        )
    return RestoreResult(
        backup_id=manifest.id,
        database=name,
        method=result[0],
        kept_as=result[1],
        duration_s=round(time.perf_counter() - started, 3),
        tables=len(manifest.tables),
        rows=sum(t.rows for t in manifest.tables),
    )


def _pre_name(name: str, manifest: Manifest) -> str:
    return suffixed_name(name, f"_pre_{manifest.id.lower().replace('-', '_')}")


def suffixed_name(name: str, suffix: str) -> str:
    """``name`` + ``suffix``, ``name`` cut so the whole fits PostgreSQL's 63-byte identifiers.

    The server would silently truncate a longer name, cutting the suffix that makes it unique.
    """
    room = _MAX_NAME - len(suffix.encode())
    return name.encode()[:room].decode(errors="ignore") + suffix


def _check_rows(
    settings: Settings, dsn: Dsn, manifest: Manifest, progress: Progress | None
) -> None:
    from dbops.db.engine import connection_kwargs

    with translate_db_errors(), psycopg.connect(dsn.libpq, **connection_kwargs(settings)) as conn:
        problem = compare_rows(conn, manifest, progress)
    if problem is not None:
        raise BackupError(f"restored rows differ from backup {manifest.id}: {problem}")


def _restore_into_new(
    settings: Settings,
    target: Dsn,
    backup: Path,
    manifest: Manifest,
    owners: bool,
    jobs: int | None,
    progress: Progress | None,
) -> None:
    """Restore into a database made for it (in parallel), then check its rows.

    The caller drops the database when this raises: nothing to roll back inside it.
    """
    pg_restore_into(
        target,
        backup,
        manifest,
        jobs=jobs or settings.backup.jobs,
        owners=owners,
        progress=progress,
    )
    _check_rows(settings, target, manifest, progress)


def _restore_in_one_transaction(
    settings: Settings,
    backup: Path,
    manifest: Manifest,
    target: Dsn,
    name: str,
    exists: bool,
    owners: bool,
    jobs: int | None,
    progress: Progress | None,
) -> tuple[str, str | None]:
    """An empty target: one transaction; a missing one: created, parallel, dropped on failure."""
    from dbops.db.engine import connection_kwargs

    admin = with_database(target, "postgres")
    kwargs = connection_kwargs(settings)
    if not exists:
        with translate_db_errors(), psycopg.connect(admin.libpq, autocommit=True, **kwargs) as c:
            c.execute(CREATE_DATABASE.format(sql.Identifier(name)))
    done = False
    try:
        how = "in one transaction" if exists else "(new database)"
        _report(progress, Step("restore", f"restore: into {name} {how}"))
        if exists:  # the row check inside the restore's transaction: all or nothing
            restore_checked(target, backup, manifest, owners=owners, progress=progress)
        else:
            _restore_into_new(settings, target, backup, manifest, owners, jobs, progress)
        done = True
    finally:
        if not done and not exists:  # it did not exist before: leave none behind
            with psycopg.connect(admin.libpq, autocommit=True, **kwargs) as c:
                c.execute(DROP_DATABASE.format(sql.Identifier(name)))
    return ("single-transaction" if exists else "new database"), None


def _restore_beside_and_swap(
    settings: Settings,
    backup: Path,
    manifest: Manifest,
    target: Dsn,
    name: str,
    owners: bool,
    jobs: int | None,
    progress: Progress | None,
) -> tuple[str, str | None]:
    from dbops.db.engine import connection_kwargs

    admin = with_database(target, "postgres")
    kwargs = connection_kwargs(settings)
    side = suffixed_name(name, f"_restore_{secrets.token_hex(4)}")
    kept = _pre_name(name, manifest)
    with translate_db_errors(), psycopg.connect(admin.libpq, autocommit=True, **kwargs) as conn:
        if conn.execute(DATABASE_EXISTS_SQL, {"name": kept}).fetchone() is not None:
            raise RestoreRefused(
                f"database {kept} exists already (an earlier restore of this backup kept the "
                "old target there): drop or rename it first; nothing changed"
            )
        conn.execute(CREATE_DATABASE.format(sql.Identifier(side)))
    swapped = False
    try:
        _report(progress, Step("restore", f"restore: into {side} beside {name}"))
        _restore_into_new(
            settings, with_database(target, side), backup, manifest, owners, jobs, progress
        )
        _report(progress, Step("swap", f"swap: {name} -> {kept}, {side} -> {name}"))
        with (
            translate_db_errors(),
            psycopg.connect(admin.libpq, autocommit=True, **kwargs) as conn,
        ):
            conn.execute(TERMINATE_SQL, {"name": name})
            with conn.transaction():
                conn.execute(RENAME_DATABASE.format(sql.Identifier(name), sql.Identifier(kept)))
                conn.execute(RENAME_DATABASE.format(sql.Identifier(side), sql.Identifier(name)))
        swapped = True
    finally:
        if not swapped:
            with psycopg.connect(admin.libpq, autocommit=True, **kwargs) as conn:
                conn.execute(DROP_DATABASE.format(sql.Identifier(side)))
    return "restore beside and swap", kept
