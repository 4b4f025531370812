"""What create, verify and restore share: paths, the client programs, checksums, row counts.

The password of the database never reaches a command line: pg_dump and pg_restore get a
conninfo without it in ``--dbname`` and the password in ``PGPASSWORD``.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from dbops.config import Settings, redact_dsn
from dbops.core.manifest import (
    MANIFEST_NAME,
    BackupFile,
    Manifest,
    TableRows,
    default_backup_dir,
    read_manifests,
)
from dbops.db.dsn import Dsn
from dbops.errors import BackupCorrupt, BackupError, BackupNotFound, EmbeddedClusterError

__all__ = [
    "Progress",
    "Step",
    "backup_root",
    "check_files",
    "check_private",
    "client_env",
    "count_rows",
    "exposed_paths",
    "file_checksums",
    "find_backup",
    "make_private",
    "pg_tool",
    "pipe_tools",
    "run_tool",
]

#: Every ordinary table a logical dump holds data of: no catalog, no temporary table, no table
#: that belongs to an extension (its rows come back with ``CREATE EXTENSION``).
TABLES_SQL = """
SELECT n.nspname AS schema, c.relname AS table
FROM pg_class AS c
JOIN pg_namespace AS n ON n.oid = c.relnamespace
WHERE c.relkind = 'r'
  AND c.relpersistence <> 't'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_%'
  AND NOT EXISTS (
      SELECT 1 FROM pg_depend AS d
      WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e'
  )
ORDER BY n.nspname, c.relname
"""
COUNT_SQL = sql.SQL("SELECT count(*) FROM {}.{}")
#: libpq sends this as the program's name: visible in pg_stat_activity, never a secret.
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Step:
    """One progress report of a long backup step (ops draws nothing; the caller shows it).

    ``phase`` is one of ``snapshot``, ``count``, ``dump``, ``checksum``, ``restore``,
    ``check``, ``swap``; ``done``/``total`` count tables when known.
    """

    phase: str
    message: str
    done: int | None = None
    total: int | None = None


Progress = Callable[[Step], None]


def _report(progress: Progress | None, step: Step) -> None:
    if progress is not None:
        progress(step)


def backup_root(settings: Settings) -> Path:
    """The backup directory of ``settings`` (``backup_dir``, else ``<home>/backups``)."""
    return default_backup_dir(settings.backup.dir, settings.home)


def find_backup(settings: Settings, backup_id: str | None) -> tuple[Path, Manifest]:
    """The directory and manifest of backup ``backup_id`` (``None``: the newest).

    Raises:
        BackupNotFound: no such backup, or no backup at all.
    """
    root = backup_root(settings)
    manifests = read_manifests(root)
    if backup_id is None:
        if not manifests:
            raise BackupNotFound(f"no backups in {root} (create one with `dbops backup create`)")
        return root / manifests[0].id, manifests[0]
    for manifest in manifests:
        if manifest.id == backup_id:
            return root / manifest.id, manifest
    if (root / backup_id / MANIFEST_NAME).exists() and "/" not in backup_id:
        raise BackupCorrupt(f"backup {backup_id}: its manifest cannot be read", MANIFEST_NAME)
    raise BackupNotFound(f"no backup {backup_id!r} in {root} (see `dbops backup list`)")


# ------------------------------------------------------------------------------ programs
def pg_tool(name: str, major: int | None = None) -> str:
    """Absolute path of ``pg_dump``/``pg_restore``/``psql`` of PostgreSQL ``major``.

    ``major`` is the server's (a dump) or the dump's (a restore): an older ``pg_dump`` refuses
    a newer server, an older ``pg_restore`` a newer dump. ``None``: the binaries
    :func:`~dbops.db.embedded.find_binaries` finds first.

    Raises:
        BackupError: no PostgreSQL binaries, or this one is missing from their directory.
    """
    from dbops.db.embedded import find_binaries

    try:
        binaries = find_binaries(major)
    except EmbeddedClusterError as exc:
        raise BackupError(f"{name} not found: {exc.message}") from exc
    path = binaries.bindir / name
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise BackupError(
            f"{name} not found in {binaries.bindir}: install the PostgreSQL client programs "
            "(Debian/Ubuntu: `apt-get install postgresql-client`) or set DBOPS_PG_BINDIR"
        )
    return str(path)


def tool_version(tool: str) -> str:
    """``pg_dump (PostgreSQL) 15.8 (Debian 15.8-1)`` -> ``15.8``."""
    out = subprocess.run([tool, "--version"], capture_output=True, text=True, check=False)
    _, _, rest = out.stdout.partition(") ")
    return rest.split()[0] if rest.split() else out.stdout.strip()


def client_env(dsn: Dsn) -> tuple[str, dict[str, str]]:
    """A conninfo without the password (for ``--dbname``) and the environment with it.

    The password goes into ``PGPASSWORD`` of the child only, so it never shows in ``ps``, in a
    log line or in an error message.
    """
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = {k: v for k, v in conninfo_to_dict(dsn.libpq).items() if v is not None}
    password = params.pop("password", None)
    env = {k: v for k, v in os.environ.items() if k != "PGPASSWORD"}
    if password is not None:
        env["PGPASSWORD"] = str(password)
    return make_conninfo("", **params), env


_ERROR = re.compile(r"\b(?:error|FATAL):\s*(.*)")
_VERBOSE_TABLE = re.compile(r'(?:dumping contents of table|processing data for table) "?([^"]+)"?')


def run_tool(
    argv: Sequence[str],
    env: dict[str, str],
    *,
    phase: str,
    total: int | None = None,
    progress: Progress | None = None,
) -> None:
    """Run pg_dump/pg_restore ``--verbose``; report each table; one-line error on failure.

    Raises:
        BackupError: the program exited non-zero; the message is its first ``error:`` line.
    """
    name = Path(argv[0]).name
    tail: deque[str] = deque(maxlen=50)
    first_error: str | None = None
    done = 0
    with subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        env=env,
    ) as proc:
        assert proc.stderr is not None
        for line in proc.stderr:
            line = line.rstrip("\n")
            tail.append(line)
            error = _ERROR.search(line)
            if error and first_error is None:
                first_error = error.group(1).strip()
            table = _VERBOSE_TABLE.search(line)
            if table:
                done += 1
                _report(progress, Step(phase, f"{phase}: {table.group(1)}", done, total))
        code = proc.wait()
    if code != 0:
        detail = first_error or next((t for t in reversed(tail) if t.strip()), "")
        raise BackupError(redact_dsn(f"{name} failed (exit code {code}): {detail}".strip()))


def pipe_tools(
    producer: Sequence[str],
    consumer: Sequence[str],
    env: dict[str, str],
    *,
    trailer: bytes,
    phase: str,
    total: int | None = None,
    progress: Progress | None = None,
    known_error: re.Pattern[str] | None = None,
) -> None:
    """Run ``producer | consumer``, then send ``trailer`` to the consumer; one-line errors.

    The producer (pg_restore ``--file=-``) reports tables on stderr as in :func:`run_tool`;
    the consumer (psql) stops at its first error. A consumer error matching ``known_error``
    becomes that match's first group (a message of dbops' own SQL), else its first
    ``ERROR:`` line.

    Raises:
        BackupError: either program exited non-zero.
    """
    producer_lines: deque[str] = deque(maxlen=50)
    consumer_lines: deque[str] = deque(maxlen=50)
    counted = [0]

    def read_producer(stream: Any) -> None:
        for raw in stream:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            producer_lines.append(line)
            table = _VERBOSE_TABLE.search(line)
            if table:
                counted[0] += 1
                _report(progress, Step(phase, f"{phase}: {table.group(1)}", counted[0], total))

    def read_consumer(stream: Any) -> None:
        for raw in stream:
            consumer_lines.append(raw.decode("utf-8", "replace").rstrip("\n"))

    with (
        subprocess.Popen(
            list(producer),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        ) as first,
        subprocess.Popen(
            list(consumer),
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
        ) as second,
    ):
        assert first.stdout is not None
        assert first.stderr is not None
        assert second.stdin is not None
        assert second.stderr is not None
        readers = [
            threading.Thread(target=read_producer, args=(first.stderr,), daemon=True),
            threading.Thread(target=read_consumer, args=(second.stderr,), daemon=True),
        ]
        for reader in readers:
            reader.start()
        try:
            shutil.copyfileobj(first.stdout, second.stdin, _CHUNK)
            if first.wait() == 0:  # never the trailer (the check) after a partial script
                second.stdin.write(trailer)
            second.stdin.close()
        except BrokenPipeError:  # the consumer stopped at an error: it says which
            first.kill()
        second_code = second.wait()
        first_code = first.wait()
        for reader in readers:
            reader.join()
    if second_code != 0:
        text = "\n".join(consumer_lines)
        known = known_error.search(text) if known_error is not None else None
        if known is not None:
            raise BackupError(known.group(1).strip())
        error = next((m.group(1) for m in map(_PSQL_ERROR.search, consumer_lines) if m), None)
        detail = error or next((t for t in reversed(consumer_lines) if t.strip()), "")
        name = Path(consumer[0]).name
        raise BackupError(redact_dsn(f"{name} failed (exit code {second_code}): {detail}"))
    if first_code != 0:
        error = next((m.group(1) for m in map(_ERROR.search, producer_lines) if m), None)
        detail = error or next((t for t in reversed(producer_lines) if t.strip()), "")
        name = Path(producer[0]).name
        raise BackupError(redact_dsn(f"{name} failed (exit code {first_code}): {detail}"))


_PSQL_ERROR = re.compile(r"\bERROR:\s*(.*)")


# ------------------------------------------------------------------------- private files
#: Modes of everything under a backup directory: only its owner may read a dump (it holds
#: password hashes and e-mails) or a manifest.
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def make_private(root: Path) -> int:
    """Take every group/other permission off ``root`` and everything under it.

    Directories become 0700, files 0600; symlinks are left alone (never followed). Returns how
    many paths changed (existing backups of an earlier version are tightened this way).
    """
    changed = 0
    for path in [root, *root.rglob("*")]:
        if path.is_symlink():
            continue
        if path.stat().st_mode & 0o077:
            path.chmod(PRIVATE_DIR_MODE if path.is_dir() else PRIVATE_FILE_MODE)
            changed += 1
    return changed


def exposed_paths(root: Path) -> list[str]:
    """Paths under ``root`` (itself included) that a group or other user may access."""
    return [
        str(path.relative_to(root)) or "."
        for path in [root, *sorted(root.rglob("*"))]
        if not path.is_symlink() and path.stat().st_mode & 0o077
    ]


def check_private(backup: Path, manifest: Manifest) -> None:
    """The backup's folder and files are private to their owner.

    Raises:
        BackupCorrupt: names the first path readable (or writable) by others.
    """
    exposed = exposed_paths(backup)
    if exposed:
        mode = (backup / exposed[0]).stat().st_mode & 0o777
        raise BackupCorrupt(
            f"backup {manifest.id}: {exposed[0]} is open to other users (mode {mode:04o}; "
            f"{len(exposed)} paths): run `chmod -R go-rwx {backup}` (a dump holds password "
            "hashes and e-mails)",
            exposed[0],
        )


# ----------------------------------------------------------------------------- checksums
def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _walk(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.name not in (MANIFEST_NAME, f".{MANIFEST_NAME}.tmp"):
            yield path


def file_checksums(backup: Path) -> tuple[BackupFile, ...]:
    """Every file of the backup directory (the manifest excluded) with size and sha256."""
    return tuple(
        BackupFile(str(p.relative_to(backup)), p.stat().st_size, _sha256(p)) for p in _walk(backup)
    )


def check_files(backup: Path, manifest: Manifest, progress: Progress | None = None) -> None:
    """Every file of the manifest exists with its size and sha256, and no file was added.

    Raises:
        BackupCorrupt: names the first file that is missing, differs or is unexpected.
    """
    listed = {f.path for f in manifest.files}
    for n, entry in enumerate(manifest.files, 1):
        path = backup / entry.path
        _report(progress, Step("checksum", f"checksum: {entry.path}", n, len(manifest.files)))
        if not path.is_file():
            raise BackupCorrupt(f"backup {manifest.id}: file {entry.path} is missing", entry.path)
        size = path.stat().st_size
        if size != entry.size_bytes:
            raise BackupCorrupt(
                f"backup {manifest.id}: file {entry.path} has {size:,} bytes, the manifest "
                f"says {entry.size_bytes:,} (truncated or changed)",
                entry.path,
            )
        if _sha256(path) != entry.sha256:
            raise BackupCorrupt(
                f"backup {manifest.id}: file {entry.path} does not match its sha256 in the "
                "manifest (corrupted or changed)",
                entry.path,
            )
    for path in _walk(backup):
        rel = str(path.relative_to(backup))
        if rel not in listed:
            raise BackupCorrupt(f"backup {manifest.id}: file {rel} is not in the manifest", rel)


# ---------------------------------------------------------------------------- row counts
def count_rows(
    conn: psycopg.Connection[Any], progress: Progress | None = None, *, phase: str = "count"
) -> tuple[TableRows, ...]:
    """Exact ``count(*)`` of every table :data:`TABLES_SQL` lists, in the caller's transaction."""
    tables = conn.execute(TABLES_SQL).fetchall()
    out = []
    for n, (schema, table) in enumerate(tables, 1):
        _report(progress, Step(phase, f"{phase}: {schema}.{table}", n, len(tables)))
        row = conn.execute(COUNT_SQL.format(sql.Identifier(schema), sql.Identifier(table)))
        out.append(TableRows(str(schema), str(table), int(row.fetchone()[0])))  # type: ignore[index]
    return tuple(out)
