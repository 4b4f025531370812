"""What setup, a base backup, ``info`` and a restore report."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

__all__ = [
    "BackupResult",
    "BackupSet",
    "PitrInfo",
    "RestoreResult",
    "SetupResult",
]


# --------------------------------------------------------------------------- results
@dataclass(frozen=True)
class SetupResult:
    """What :func:`setup` did.

    Attributes:
        config: the pgBackRest configuration file dbops owns.
        repo: the repository directory.
        config_written: the configuration file was created or changed.
        settings_changed: server settings set with ``ALTER SYSTEM`` (empty: none).
        restarted: the embedded cluster was restarted (``archive_mode``/``wal_level`` changed).
        stanza_created: the stanza did not exist before.
    """

    config: Path
    repo: Path
    config_written: bool
    settings_changed: tuple[str, ...]
    restarted: bool
    stanza_created: bool


@dataclass(frozen=True)
class BackupSet:
    """One base backup of the repository, as ``pgbackrest info`` reports it.

    Attributes:
        label: pgBackRest's label (``20261126-015054F``; incrementals end in ``I``).
        type: ``full``, ``diff`` or ``incr``.
        started_at: when the backup started (UTC, second precision).
        finished_at: when it finished; the earliest moment it can restore to.
        size_bytes: size of the database it copied.
        repo_size_bytes: what it takes in the repository (compressed, this backup only).
        wal_start: first WAL segment the backup needs.
        wal_stop: last WAL segment the backup needs.
        prior: label of the backup an incremental builds on (``None`` for a full one).
    """

    label: str
    type: str
    started_at: datetime
    finished_at: datetime
    size_bytes: int
    repo_size_bytes: int
    wal_start: str | None
    wal_stop: str | None
    prior: str | None


@dataclass(frozen=True)
class PitrInfo:
    """The repository: its backups (oldest first) and the range of archived WAL.

    Attributes:
        stanza: the stanza name.
        status: pgBackRest's status message (``ok``, ``no valid backups``, ...).
        repo: the repository directory.
        backups: base backups, oldest first.
        wal_min: oldest archived WAL segment (``None``: none archived).
        wal_max: newest archived WAL segment.
    """

    stanza: str
    status: str
    repo: Path
    backups: tuple[BackupSet, ...]
    wal_min: str | None
    wal_max: str | None

    @property
    def earliest_target(self) -> datetime | None:
        """The earliest time a restore can go back to: just after the oldest backup ended.

        pgBackRest records the end to the second (rounded down); a target in that same second
        could lie before the backup's consistent point, where recovery cannot stop.
        """
        return restorable_from(self.backups[0]) if self.backups else None


def restorable_from(backup: BackupSet) -> datetime:
    return backup.finished_at + timedelta(seconds=1)


@dataclass(frozen=True)
class BackupResult:
    """A base backup :func:`base_backup` took, and how long it took."""

    backup: BackupSet
    seconds: float


@dataclass(frozen=True)
class RestoreResult:
    """A copy of the cluster restored by :func:`restore_to`.

    Attributes:
        home: the copy's home (manage it with ``DBOPS_HOME=<home> dbops db start|stop|status``).
        datadir: its data directory (under ``home``, or its /var/tmp relocation as root).
        target_time: the moment restored to (UTC).
        backup_label: the base backup the restore started from.
        started: the copy runs now.
        port: its loopback TCP port (also the name of its unix socket).
        url: libpq URL over the copy's unix socket (no password needed there).
        tcp_url: libpq URL over loopback TCP, password redacted (the live cluster's password:
            the copy keeps its roles).
        seconds: time of the restore and, when started, of the recovery up to ``target_time``.
    """

    home: Path
    datadir: Path
    target_time: datetime
    backup_label: str
    started: bool
    port: int
    url: str
    tcp_url: str
    seconds: float
