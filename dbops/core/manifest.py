"""Backup manifests: what one backup holds, as frozen dataclasses and JSON (standard library only).

A backup is a directory ``<backup_dir>/<id>/`` holding the pg_dump output and
``manifest.json``. The manifest records when and from what the backup was taken (server
version, migration revision), every file with its size and sha256, the exact row count of every
table (counted in the snapshot pg_dump dumped), and every restore drill run on it. Monitoring
reads manifests without a database (:func:`read_manifests`), so this module imports nothing
outside the standard library.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

__all__ = [
    "DRILL_FAILED",
    "DRILL_LABELS",
    "DRILL_PASSED",
    "MANIFEST_NAME",
    "MANIFEST_VERSION",
    "NEVER_DRILLED",
    "BackupFile",
    "BrokenManifest",
    "Drill",
    "Manifest",
    "TableRows",
    "default_backup_dir",
    "drill_label",
    "read_manifest",
    "read_manifests",
    "write_manifest",
]

#: Bumped when a field changes meaning or is removed (adding an optional field keeps it).
MANIFEST_VERSION = 1
#: File name of the manifest inside a backup's directory.
MANIFEST_NAME = "manifest.json"

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackupFile:
    """One file of a backup, relative to the backup's directory."""

    path: str
    size_bytes: int
    sha256: str


@dataclass(frozen=True)
class TableRows:
    """Exact row count of one table, counted in the snapshot that was dumped."""

    schema: str
    table: str
    rows: int


@dataclass(frozen=True)
class Drill:
    """One restore drill (``dbops backup verify``): when, whether it passed, how long, why."""

    at: datetime
    ok: bool
    duration_s: float
    message: str

    @property
    def label(self) -> str:
        """The outcome as every consumer writes it (:data:`DRILL_LABELS`)."""
        return DRILL_PASSED if self.ok else DRILL_FAILED


#: How a drill's outcome reads in the CLI, the scheduler's log and the dashboard.
DRILL_PASSED = "passed"
DRILL_FAILED = "FAILED"
NEVER_DRILLED = "never verified"
DRILL_LABELS = (DRILL_PASSED, DRILL_FAILED)


def drill_label(drill: Drill | None) -> str:
    """A backup's last drill as a word: passed, FAILED, or never verified."""
    return NEVER_DRILLED if drill is None else drill.label


@dataclass(frozen=True)
class Manifest:
    """Everything known about one backup (times are UTC-aware).

    ``format`` is pg_dump's (``custom``: one file; ``directory``: one file per table);
    ``revision`` is the alembic revision of the dumped database (``None``: never migrated).
    """

    id: str
    created_at: datetime
    database: str
    server_version: str
    revision: str | None
    format: str
    jobs: int
    duration_s: float
    files: tuple[BackupFile, ...]
    tables: tuple[TableRows, ...]
    pg_dump_version: str = ""
    drills: tuple[Drill, ...] = ()
    version: int = MANIFEST_VERSION
    #: ``SEQ:HASH`` of the audit trail's last record in the dumped snapshot (``None``: no
    #: audit trail): an anchor for ``dbops audit verify --anchor`` kept outside the database.
    audit_anchor: str | None = None

    @property
    def size_bytes(self) -> int:
        """Bytes of every file of the backup (the manifest itself excluded)."""
        return sum(f.size_bytes for f in self.files)

    @property
    def dump_path(self) -> str:
        """What pg_restore reads, relative to the backup's directory: a file or a directory."""
        return "dump" if self.format == "directory" else "dump.pgdump"

    @property
    def last_drill(self) -> Drill | None:
        """The most recent drill, passed or not."""
        return max(self.drills, key=lambda d: d.at, default=None)

    @property
    def verified_at(self) -> datetime | None:
        """When the most recent passing drill ran (``None``: never verified)."""
        return max((d.at for d in self.drills if d.ok), default=None)

    def rows(self, schema: str, table: str) -> int | None:
        """The recorded row count of ``schema.table`` (``None``: not in the backup)."""
        return next((t.rows for t in self.tables if t.schema == schema and t.table == table), None)

    def with_drill(self, drill: Drill) -> Manifest:
        """A copy with ``drill`` appended."""
        return replace(self, drills=(*self.drills, drill))

    def to_json(self) -> str:
        """The manifest as indented JSON (:meth:`from_json` gives back an equal manifest)."""
        return json.dumps(asdict(self), indent=2, default=_iso, allow_nan=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        """Read a manifest written by :meth:`to_json`.

        Raises:
            ValueError: not JSON, a field is missing or has the wrong type, or a newer
                ``version`` than this code reads.
        """
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        version = data.get("version", MANIFEST_VERSION)
        if not isinstance(version, int) or version > MANIFEST_VERSION:
            raise ValueError(f"manifest version {version!r} is newer than this dbops reads")
        try:
            return cls(
                id=_str(data["id"]),
                created_at=_time(data["created_at"]),
                database=_str(data["database"]),
                server_version=_str(data["server_version"]),
                revision=None if data["revision"] is None else _str(data["revision"]),
                format=_str(data["format"]),
                jobs=int(data["jobs"]),
                duration_s=float(data["duration_s"]),
                files=tuple(
                    BackupFile(_str(f["path"]), int(f["size_bytes"]), _str(f["sha256"]))
                    for f in data["files"]
                ),
                tables=tuple(
                    TableRows(_str(t["schema"]), _str(t["table"]), int(t["rows"]))
                    for t in data["tables"]
                ),
                pg_dump_version=_str(data.get("pg_dump_version", "")),
                drills=tuple(
                    Drill(_time(d["at"]), bool(d["ok"]), float(d["duration_s"]), _str(d["message"]))
                    for d in data.get("drills", ())
                ),
                version=version,
                audit_anchor=None
                if data.get("audit_anchor") is None
                else _str(data["audit_anchor"]),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"missing or malformed field {exc}") from None


@dataclass(frozen=True)
class BrokenManifest:
    """A backup directory whose manifest cannot be read; it is skipped, never deleted."""

    path: Path
    reason: str = field(default="")


def _iso(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot encode {type(value).__name__}")


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _time(value: Any) -> datetime:
    at = datetime.fromisoformat(_str(value))
    if at.tzinfo is None:
        raise ValueError("timestamp without a time zone")
    return at


def default_backup_dir(backup_dir: Path | None, home: Path) -> Path:
    """Where backups live: the ``backup_dir`` setting, else ``backups/`` under ``home``."""
    return (backup_dir or home / "backups").absolute()


def read_manifest(backup: Path) -> Manifest:
    """The manifest of the backup directory ``backup``.

    Raises:
        OSError: the file cannot be read.
        ValueError: it is not a manifest this code can read.
    """
    return Manifest.from_json((backup / MANIFEST_NAME).read_text(encoding="utf-8"))


def write_manifest(backup: Path, manifest: Manifest) -> None:
    """Write ``manifest`` into ``backup`` atomically: a temporary file, fsync, then rename.

    A reader sees the old manifest or the new one, never half of one, even if the process dies
    while writing.
    """
    target = backup / MANIFEST_NAME
    tmp = backup / f".{MANIFEST_NAME}.tmp"
    text = manifest.to_json()  # a manifest that is no JSON fails here, before any file exists
    # Created 0600: only the backup's owner reads what it lists (tables, row counts).
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with open(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk, say: no stray temporary file
        raise
    dir_fd = os.open(backup, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read_manifests(
    backup_dir: Path, *, on_broken: Callable[[BrokenManifest], None] | None = None
) -> list[Manifest]:
    """Every readable manifest under ``backup_dir``, newest first.

    Directories starting with a dot (a backup being written or deleted) are ignored. A
    directory whose manifest is missing or unreadable is skipped and reported to ``on_broken``
    (default: a warning in the log), so one bad file never hides the other backups.
    """
    if not backup_dir.is_dir():
        return []
    found: list[Manifest] = []
    for entry in sorted(backup_dir.iterdir()):
        if entry.name.startswith(".") or not entry.is_dir():
            continue
        try:
            manifest = read_manifest(entry)
        except (OSError, ValueError) as exc:
            broken = BrokenManifest(entry, f"{type(exc).__name__}: {exc}")
            if on_broken is not None:
                on_broken(broken)
            else:
                _log.warning("skipping backup %s: %s", entry, broken.reason)
            continue
        if manifest.id != entry.name:
            broken = BrokenManifest(entry, f"manifest id {manifest.id!r} differs from its folder")
            if on_broken is not None:
                on_broken(broken)
            else:
                _log.warning("skipping backup %s: %s", entry, broken.reason)
            continue
        found.append(manifest)
    found.sort(key=lambda m: (m.created_at, m.id), reverse=True)
    return found
