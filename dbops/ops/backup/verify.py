"""``verify_backup``: the proof that a backup restores, recorded in its manifest as a drill.

A drill checks the files against their sha256, restores the backup into a private scratch
cluster (dbops' own :class:`~dbops.db.EmbeddedCluster` in a temporary directory, fsync off),
or into a scratch database on a server you name, and checks there: the migration revision,
the exact row count of every table, and (given a check: the restore drill workflow,
:mod:`dbops.workflows.drill`, passes the services' hot reads) that the application answers on
a real user and team of the restored data. The result (time, pass/fail, duration, message) is
appended to the manifest, written atomically.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from psycopg import sql

from dbops.config import Settings
from dbops.core.manifest import Drill, Manifest, read_manifest, write_manifest
from dbops.db.builds import major_of
from dbops.db.dsn import Dsn
from dbops.errors import (
    BackupCorrupt,
    BackupError,
    BackupVerifyFailed,
    DbopsError,
    translate_db_errors,
)
from dbops.ops.backup._common import (
    Progress,
    Step,
    _report,
    check_files,
    check_private,
    find_backup,
)
from dbops.ops.backup.restore import compare_rows, pg_restore_into, with_database

__all__ = ["DataCheck", "verify_backup"]

#: A check of the restored data beyond counts: ``check(settings, target)`` returns a one-line
#: summary or raises a :class:`DbopsError` (the services' hot reads:
#: :func:`dbops.workflows.drill.hot_reads`, which ops cannot import).
DataCheck = Callable[[Settings, Dsn], str]

HAS_DOMAIN_SQL = "SELECT to_regclass('public.team_members') IS NOT NULL AS has_domain"
CREATE_DATABASE = sql.SQL("CREATE DATABASE {}")
DROP_DATABASE = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")


def verify_backup(
    settings: Settings,
    backup_id: str | None = None,
    *,
    scratch: Dsn | None = None,
    jobs: int | None = None,
    progress: Progress | None = None,
    reads: DataCheck | None = None,
) -> Drill:
    """Run a restore drill on backup ``backup_id`` (``None``: the newest) and record it.

    Args:
        settings: the backup directory and ``backup_jobs``.
        backup_id: the backup to prove.
        scratch: a server to restore on, in a new database dropped afterwards (any database
            of the server will do as the URL's); ``None``: a private throwaway cluster.
        jobs: pg_restore workers; default ``backup_jobs``.
        progress: called with a :class:`Step` as the drill advances.
        reads: run on the restored data after the counts (the application's hot reads:
            :func:`dbops.workflows.drill.restore_drill` passes them); ``None``: counts only.

    Returns:
        The passing drill, as recorded in the manifest.

    Raises:
        BackupNotFound: no such backup.
        BackupCorrupt: a file is missing or differs from its checksum (drill recorded).
        BackupVerifyFailed: the restore failed or the restored data differs (drill recorded).
    """
    backup, manifest = find_backup(settings, backup_id)
    at = datetime.now(UTC)
    started = time.perf_counter()
    try:
        check_files(backup, manifest, progress)
        check_private(backup, manifest)
        major = major_of(manifest.server_version)
        with _scratch_database(settings, scratch, progress, major) as target:
            pg_restore_into(
                target,
                backup,
                manifest,
                jobs=jobs or settings.backup.jobs,
                owners=False,
                progress=progress,
            )
            message = _check(settings, target, manifest, progress, reads)
    except DbopsError as exc:
        drill = Drill(at, False, round(time.perf_counter() - started, 3), exc.message)
        _record(backup, drill)
        if isinstance(exc, BackupCorrupt):
            raise  # keeps its type and the file it names
        raise BackupVerifyFailed(f"backup {manifest.id} failed its drill: {exc.message}") from exc
    drill = Drill(at, True, round(time.perf_counter() - started, 3), message)
    _record(backup, drill)
    return drill


def _record(backup: Path, drill: Drill) -> None:
    """Append ``drill`` to the manifest as it is on disk now (atomic rewrite)."""
    write_manifest(backup, read_manifest(backup).with_drill(drill))


@contextmanager
def _scratch_database(
    settings: Settings, server: Dsn | None, progress: Progress | None, major: int | None
) -> Iterator[Dsn]:
    """A database to restore into: on ``server``, else a private cluster of ``major``.

    The private cluster runs the dumped server's major version (a dump of PostgreSQL 17 does
    not restore into 15).
    """
    from dbops.db.embedded import EmbeddedCluster
    from dbops.db.engine import connection_kwargs

    name = f"dbops_verify_{secrets.token_hex(4)}"
    if server is not None:
        admin = with_database(server, "postgres")
        kwargs = connection_kwargs(settings)
        _report(progress, Step("restore", f"restore: scratch database {name}"))
        with translate_db_errors(), psycopg.connect(admin.libpq, autocommit=True, **kwargs) as c:
            c.execute(CREATE_DATABASE.format(sql.Identifier(name)))
        try:
            yield with_database(server, name)
        finally:
            with psycopg.connect(admin.libpq, autocommit=True, **kwargs) as c:
                c.execute(DROP_DATABASE.format(sql.Identifier(name)))
        return
    home = Path(tempfile.mkdtemp(prefix="dbops-verify-"))
    cluster = EmbeddedCluster(home / "cluster", database=name, durable=False, pg_version=major)
    try:
        _report(progress, Step("restore", "restore: starting a private scratch cluster"))
        url = cluster.ensure_running()
        yield Dsn.parse(url, source="the scratch cluster's URL")
    finally:
        cluster.destroy()
        shutil.rmtree(home, ignore_errors=True)


def _check(
    settings: Settings,
    target: Dsn,
    manifest: Manifest,
    progress: Progress | None,
    reads: DataCheck | None,
) -> str:
    """Revision, row counts and ``reads`` on the restored data; a one-line summary."""
    from dbops.db.engine import connection_kwargs
    from dbops.ops.migrate import current_revision

    _report(progress, Step("check", "check: revision and row counts"))
    with translate_db_errors(), psycopg.connect(target.libpq, **connection_kwargs(settings)) as c:
        revision = current_revision(c)
        c.rollback()
        if revision != manifest.revision:
            raise BackupError(
                f"restored revision is {revision or 'none'}, the manifest says "
                f"{manifest.revision or 'none'}"
            )
        problem = compare_rows(c, manifest, progress)
        if problem is not None:
            raise BackupError(f"restored rows differ: {problem}")
        has_domain = bool(c.execute(HAS_DOMAIN_SQL).fetchone()[0])  # type: ignore[index]
    rows = sum(t.rows for t in manifest.tables)
    summary = f"{len(manifest.tables)} tables, {rows:,} rows, revision {revision or 'none'}"
    if reads is None:
        return summary
    if not has_domain:
        return f"{summary}; no dbops tables: hot reads skipped"
    _report(progress, Step("check", "check: hot reads through the services"))
    return f"{summary}; {reads(settings, target)}"
