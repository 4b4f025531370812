"""``create_backup``: pg_dump of one database into a new backup directory, with its manifest.

The row counts and the dump see the same data: a REPEATABLE READ transaction exports its
snapshot (``pg_export_snapshot()``), counts every table in it, and stays open while
``pg_dump --snapshot`` dumps from that very snapshot. The backup is written into a hidden
directory and renamed into place once its manifest is complete, so a failed or interrupted
backup never shows up in ``dbops backup list``.
"""

from __future__ import annotations

import secrets
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import psycopg

from dbops.config import Settings
from dbops.core.manifest import Manifest, write_manifest
from dbops.db.builds import major_of
from dbops.db.dsn import Dsn
from dbops.errors import BackupError, translate_db_errors
from dbops.ops.audit import read_head
from dbops.ops.backup._common import (
    PRIVATE_DIR_MODE,
    Progress,
    Step,
    _report,
    backup_root,
    client_env,
    count_rows,
    file_checksums,
    make_private,
    pg_tool,
    run_tool,
    tool_version,
)

__all__ = ["create_backup", "new_backup_id"]

Format = Literal["custom", "directory"]

#: The snapshot the dump and the counts share. Timeouts off for this transaction only: the
#: counts may take long on a big table, and the transaction idles while pg_dump works.
SNAPSHOT_SETUP = (
    "SET LOCAL statement_timeout = 0",
    "SET LOCAL idle_in_transaction_session_timeout = 0",
)
EXPORT_SNAPSHOT_SQL = (
    "SELECT pg_export_snapshot() AS snapshot, current_database()::text AS database, "
    "current_setting('server_version') AS server_version"
)


def new_backup_id(now: datetime) -> str:
    """``20261126T015000Z-3fa2c1``: sortable by time, unique by its random suffix."""
    return f"{now.astimezone(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def create_backup(
    settings: Settings,
    dsn: Dsn,
    *,
    backup_format: Format | None = None,
    jobs: int | None = None,
    backup_dir: Path | None = None,
    progress: Progress | None = None,
) -> Manifest:
    """Dump the database behind ``dsn`` into a new backup and return its manifest.

    Args:
        settings: connection settings, and the defaults of the arguments below.
        dsn: the database to back up.
        backup_format: ``custom`` (one file) or ``directory`` (parallel); default
            ``settings.backup.format``.
        jobs: pg_dump workers for the directory format; default ``settings.backup.jobs``.
        backup_dir: where backups live; default :func:`backup_root` of ``settings``.
        progress: called with a :class:`Step` as the counts and the dump advance.

    Raises:
        BackupError: pg_dump is missing or failed, or the backup cannot be written.
        DatabaseUnavailable: the database cannot be reached.
    """
    from dbops.db.engine import connection_kwargs
    from dbops.ops.migrate import current_revision

    fmt: Format = backup_format or settings.backup.format
    workers = jobs or settings.backup.jobs
    if fmt not in ("custom", "directory"):
        raise BackupError(f"unknown backup format {fmt!r} (expected custom or directory)")
    pg_dump = pg_tool("pg_dump")  # none at all: fail before any folder is made
    root = backup_dir.absolute() if backup_dir is not None else backup_root(settings)
    started_at = datetime.now(UTC)
    started = time.perf_counter()
    backup_id = new_backup_id(started_at)
    partial = root / f".partial-{backup_id}"
    try:
        root.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR_MODE)
        make_private(root)  # this backup's folder, and any an earlier version left open
        partial.mkdir(exist_ok=False, mode=PRIVATE_DIR_MODE)
    except OSError as exc:
        raise BackupError(f"cannot create the backup directory {partial}: {exc}") from exc
    try:
        with (
            translate_db_errors(),
            psycopg.connect(dsn.libpq, **connection_kwargs(settings)) as conn,
        ):
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            with conn.transaction():
                for statement in SNAPSHOT_SETUP:
                    conn.execute(statement)
                row = conn.execute(EXPORT_SNAPSHOT_SQL).fetchone()
                assert row is not None
                snapshot, database, server_version = (str(v) for v in row)
                pg_dump = pg_tool("pg_dump", major_of(server_version))
                _report(progress, Step("snapshot", f"snapshot {snapshot} of {database}"))
                revision = current_revision(conn)
                anchor = _audit_anchor(conn)
                tables = count_rows(conn, progress)
                dump = partial / ("dump" if fmt == "directory" else "dump.pgdump")
                _dump(pg_dump, dsn, snapshot, fmt, workers, dump, len(tables), progress)
        _report(progress, Step("checksum", "checksum: computing sha256 of the dump"))
        manifest = Manifest(
            id=backup_id,
            created_at=started_at,
            database=database,
            server_version=server_version,
            revision=revision,
            format=fmt,
            jobs=workers if fmt == "directory" else 1,
            duration_s=round(time.perf_counter() - started, 3),
            files=file_checksums(partial),
            tables=tables,
            pg_dump_version=tool_version(pg_dump),
            audit_anchor=anchor,
        )
        write_manifest(partial, manifest)
        make_private(partial)  # pg_dump's files follow the umask
        partial.rename(root / backup_id)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return manifest


def _audit_anchor(conn: psycopg.Connection[Any]) -> str | None:
    """``SEQ:HASH`` of the last audit record in this snapshot (None: no trail, or no records)."""
    head = read_head(conn)
    return str(head) if head is not None and head.record_id > 0 else None


def _dump(
    pg_dump: str,
    dsn: Dsn,
    snapshot: str,
    fmt: Format,
    jobs: int,
    target: Path,
    tables: int,
    progress: Progress | None,
) -> None:
    conninfo, env = client_env(dsn)
    argv = [
        pg_dump,
        "--verbose",
        f"--dbname={conninfo}",
        f"--snapshot={snapshot}",
        f"--format={fmt}",
        f"--file={target}",
    ]
    if fmt == "directory":
        argv.append(f"--jobs={jobs}")
    run_tool(argv, env, phase="dump", total=tables, progress=progress)
