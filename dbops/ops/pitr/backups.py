"""Base backups and what the repository holds (``pgbackrest info``)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dbops.config import Settings
from dbops.errors import PitrError
from dbops.ops.pitr._layout import (
    STANZA,
    Progress,
    cluster_of,
    quiet,
    repo_dir,
    require_running,
    require_setup,
    run,
    tail,
)
from dbops.ops.pitr.results import BackupResult, BackupSet, PitrInfo

__all__ = [
    "base_backup",
    "info",
]


def _epoch(value: Any) -> datetime:
    return datetime.fromtimestamp(int(value), tz=UTC)


def _backup_set(raw: dict[str, Any]) -> BackupSet:
    archive = raw.get("archive") or {}
    sizes = raw.get("info") or {}
    repository = sizes.get("repository") or {}
    return BackupSet(
        label=str(raw["label"]),
        type=str(raw["type"]),
        started_at=_epoch(raw["timestamp"]["start"]),
        finished_at=_epoch(raw["timestamp"]["stop"]),
        size_bytes=int(sizes.get("delta", sizes.get("size", 0)) or 0),
        repo_size_bytes=int(repository.get("delta", repository.get("size", 0)) or 0),
        wal_start=archive.get("start"),
        wal_stop=archive.get("stop"),
        prior=raw.get("prior"),
    )


def _parse_info(output: str, repo: Path) -> PitrInfo:
    try:
        stanzas = json.loads(output)
        stanza = next(s for s in stanzas if s.get("name") == STANZA)
    except (ValueError, StopIteration, TypeError, AttributeError) as exc:
        raise PitrError(f"cannot read `pgbackrest info` output: {tail(output)}") from exc
    backups = sorted(
        (_backup_set(raw) for raw in stanza.get("backup") or []), key=lambda b: b.started_at
    )
    archives = [a for a in stanza.get("archive") or [] if a.get("min")]
    return PitrInfo(
        stanza=STANZA,
        status=str((stanza.get("status") or {}).get("message", "unknown")),
        repo=repo,
        backups=tuple(backups),
        wal_min=str(archives[0]["min"]) if archives else None,
        wal_max=str(archives[-1]["max"]) if archives else None,
    )


def info(settings: Settings) -> PitrInfo:
    """The repository's base backups and archived WAL range (``pgbackrest info``).

    Raises:
        PitrError: not set up, or pgBackRest failed.
    """
    cluster = cluster_of(settings)
    require_setup(settings, cluster)
    result = run(settings, cluster, "info", "--output=json", timeout=120)
    return _parse_info(result.stdout, repo_dir(settings, cluster))


def base_backup(
    settings: Settings, *, incremental: bool = False, progress: Progress = quiet
) -> BackupResult:
    """Take a base backup of the running embedded cluster: full, or incremental.

    An incremental backup copies only files changed since the previous backup; with no full
    backup yet pgBackRest takes a full one instead (the result says which). Backups beyond
    ``pitr_retention_full`` full ones expire afterwards, with the WAL only they needed.

    Raises:
        PitrError: not set up, the cluster is stopped, or pgBackRest failed.
    """
    cluster = cluster_of(settings)
    require_setup(settings, cluster)
    require_running(cluster)
    kind = "incr" if incremental else "full"
    progress(f"taking a {kind} base backup")
    started = time.perf_counter()
    run(settings, cluster, "backup", f"--type={kind}")
    seconds = time.perf_counter() - started
    backups = info(settings).backups
    if not backups:  # pragma: no cover - pgBackRest reported success
        raise PitrError("pgbackrest backup succeeded but `pgbackrest info` lists no backup")
    newest = max(backups, key=lambda b: b.started_at)
    return BackupResult(backup=newest, seconds=seconds)
