"""Point-in-time recovery of the embedded cluster with pgBackRest: setup, base backups, restore.

dbops owns one pgBackRest configuration per embedded cluster, in ``pgbackrest/`` next to the
cluster's data directory (``.dbops/`` or its /var/tmp relocation), with its own repository, log,
lock and spool directories. :func:`setup` turns WAL archiving on (``ALTER SYSTEM``, so that the
embedded cluster's own ``dbops.conf``, rewritten on every start, does not undo it) and creates
the stanza; :func:`base_backup` takes full or incremental backups; :func:`restore_to` restores a
*copy* of the cluster as of a moment into a new directory and starts it as a separate embedded
cluster on its own port and socket. The live cluster's data and settings are never changed by a
restore.

pgBackRest refuses to run as root: when dbops runs as root every pgBackRest command runs as the
``postgres`` system user, like the embedded server itself, and the directories it writes are
handed to that user. Only the embedded cluster is supported (with ``DATABASE_URL`` set, use the
server's own backup tooling).
"""

from __future__ import annotations

import json
import os
import pwd
import shlex
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from dbops.config import Settings, redact_dsn, to_libpq_url
from dbops.db import EmbeddedCluster
from dbops.errors import EmbeddedClusterError, PitrError

__all__ = [
    "STANZA",
    "BackupResult",
    "BackupSet",
    "PitrInfo",
    "RestoreResult",
    "SetupResult",
    "base_backup",
    "config_path",
    "info",
    "restore_to",
    "setup",
]

#: The pgBackRest stanza of the embedded cluster.
STANZA = "dbops"
_SERVICE_USER = "postgres"
#: Lines of pgBackRest output or log quoted in an error message.
_TAIL_LINES = 4
_EXTERNAL = (
    "point-in-time recovery works with the embedded cluster only: DATABASE_URL is set "
    "(use your server's own backup tooling, or unset DATABASE_URL)"
)
_NOT_SET_UP = "point-in-time recovery is not set up: run `dbops backup pitr-setup` first"

Progress = Callable[[str], None]


def _quiet(_message: str) -> None:
    """The default progress callback: say nothing."""


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
        return _restorable_from(self.backups[0]) if self.backups else None


def _restorable_from(backup: BackupSet) -> datetime:
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


# --------------------------------------------------------------------------- layout
def _cluster(settings: Settings) -> EmbeddedCluster:
    if not settings.embedded:
        raise PitrError(_EXTERNAL)
    from dbops.db.purpose import project_cluster

    return project_cluster(settings)  # with its server options: a restart keeps them


def _pitr_dir(cluster: EmbeddedCluster) -> Path:
    """``pgbackrest/`` beside ``pgdata/``: reachable by the server user wherever that is."""
    return cluster.datadir.parent / "pgbackrest"


def config_path(settings: Settings) -> Path:
    """The pgBackRest configuration file dbops writes for the embedded cluster."""
    return _pitr_dir(_cluster(settings)) / "pgbackrest.conf"


def _repo(settings: Settings, cluster: EmbeddedCluster) -> Path:
    if settings.pitr.repo_dir is not None:
        return settings.pitr.repo_dir.absolute()
    return _pitr_dir(cluster) / "repo"


def _server_user() -> tuple[int, int] | None:
    """(uid, gid) of the ``postgres`` user when dbops runs as root, else ``None``."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(_SERVICE_USER)
    except KeyError as exc:  # pragma: no cover - the embedded cluster already needs it
        raise PitrError("running as root needs the `postgres` system user") from exc
    return entry.pw_uid, entry.pw_gid


def _make_dir(path: Path) -> None:
    """Create ``path`` (mode 0700) and give it to the server user when root.

    A directory that exists already keeps its owner (``pitr_repo_dir`` may name one), but
    loses every group/other permission: the repository holds the whole database and its WAL
    (pgBackRest's own files are 0640 under it, unreachable through a 0700 directory).
    """
    if path.is_dir():
        if path.stat().st_mode & 0o077:
            path.chmod(0o700)
        return
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    owner = _server_user()
    if owner is not None:
        os.chown(path, *owner)


def _pgbackrest() -> str:
    found = shutil.which("pgbackrest")
    if found is None:
        raise PitrError(
            "pgbackrest is not installed: run scripts/bootstrap.sh "
            "(Debian/Ubuntu: apt-get install pgbackrest)"
        )
    return found


def _config_text(settings: Settings, cluster: EmbeddedCluster) -> str:
    base = _pitr_dir(cluster)
    lines = [
        "# written by dbops (dbops.ops.pitr): rewritten by every `dbops backup pitr-*` command",
        "[global]",
        f"repo1-path={_repo(settings, cluster)}",
        f"repo1-retention-full={settings.pitr.retention_full}",
        f"compress-type={settings.pitr.compress_type}",
        "start-fast=y",
        f"log-path={base / 'log'}",
        f"lock-path={base / 'lock'}",
        f"spool-path={base / 'spool'}",
        "log-level-console=warn",
        "log-level-stderr=warn",
        "log-level-file=info",
        "",
        f"[{STANZA}]",
        f"pg1-path={cluster.datadir}",
        f"pg1-socket-path={cluster.socket_dir}",
        f"pg1-port={cluster.port}",
        f"pg1-user={_SERVICE_USER}",
    ]
    return "\n".join(lines) + "\n"


def _write_config(settings: Settings, cluster: EmbeddedCluster) -> bool:
    """Write the configuration and its directories; True when the file changed.

    The port is in it, and the embedded cluster may move to another port when its own is
    taken at start, so every command rewrites it (a no-op when nothing changed).
    """
    base = _pitr_dir(cluster)
    for path in (base, base / "log", base / "lock", base / "spool", _repo(settings, cluster)):
        _make_dir(path)
    conf = base / "pgbackrest.conf"
    text = _config_text(settings, cluster)
    if conf.exists() and conf.read_text() == text:
        if conf.stat().st_mode & 0o077:  # an earlier version wrote it 0640
            conf.chmod(0o600)
        return False
    tmp = conf.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.chmod(0o600)
    owner = _server_user()
    if owner is not None:
        os.chown(tmp, *owner)
    tmp.replace(conf)
    return True


def _tail(text: str, lines: int = _TAIL_LINES) -> str:
    found = [line.strip() for line in text.splitlines() if line.strip()]
    return redact_dsn(" | ".join(found[-lines:]))


def _log_tail(path: Path) -> str:
    try:
        return _tail(path.read_text(errors="replace"))
    except OSError:
        return ""


def _run(
    settings: Settings,
    cluster: EmbeddedCluster,
    command: str,
    *options: str,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run one pgBackRest command on the stanza (as ``postgres`` when root).

    Raises:
        PitrError: it failed or timed out; the message ends with the tail of its output and
            names its log file.
    """
    conf = _pitr_dir(cluster) / "pgbackrest.conf"
    argv = [_pgbackrest(), f"--config={conf}", f"--stanza={STANZA}", *options, command]
    if _server_user() is not None:
        argv = ["runuser", "-u", _SERVICE_USER, "--", *argv]
    logfile = _pitr_dir(cluster) / "log" / f"{STANZA}-{command}.log"
    limit = timeout if timeout is not None else settings.pitr.timeout_s
    try:
        result = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=limit,
            cwd=_pitr_dir(cluster),
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise PitrError(
            f"pgbackrest {command} did not finish in {limit:.0f}s (raise DBOPS_PITR_TIMEOUT_S); "
            f"log: {logfile}"
        ) from exc
    if result.returncode != 0:
        detail = _tail(result.stderr + "\n" + result.stdout) or _log_tail(logfile)
        raise PitrError(
            f"pgbackrest {command} failed (exit {result.returncode}): {detail}; log: {logfile}"
        )
    return result


# --------------------------------------------------------------------------- server settings
_SETTINGS_SQL = """
SELECT name, setting, pending_restart
FROM pg_settings
WHERE name IN ('archive_mode', 'wal_level', 'archive_command')
"""

_PENDING_RESTART_SQL = """
SELECT count(*) AS n
FROM pg_settings
WHERE name IN ('archive_mode', 'wal_level') AND pending_restart
"""

#: A transaction that gets an xid: its commit record carries the current time, so a restore
#: to any moment up to now finds a commit past its target in the archive.
_COMMIT_MARK_SQL = "SELECT pg_current_xact_id()"


def _connect(cluster: EmbeddedCluster) -> Any:
    import psycopg

    return psycopg.connect(cluster.libpq_url("postgres"), autocommit=True)


def _server_settings(cluster: EmbeddedCluster) -> dict[str, tuple[str, bool]]:
    with _connect(cluster) as conn:
        rows = conn.execute(_SETTINGS_SQL).fetchall()
    return {str(name): (str(value), bool(pending)) for name, value, pending in rows}


def _alter_system(cluster: EmbeddedCluster, name: str, value: str) -> None:
    from psycopg import sql

    statement = sql.SQL("ALTER SYSTEM SET {} = {}").format(sql.Identifier(name), sql.Literal(value))
    with _connect(cluster) as conn:
        conn.execute(statement)
        conn.execute("SELECT pg_reload_conf()")


def _pending_restart(cluster: EmbeddedCluster) -> bool:
    with _connect(cluster) as conn:
        row = conn.execute(_PENDING_RESTART_SQL).fetchone()
    return bool(row and row[0])


def _restart(settings: Settings, cluster: EmbeddedCluster) -> None:
    """Restart the embedded cluster; its port may change, so the config is rewritten."""
    cluster.stop()
    cluster.ensure_running()
    _write_config(settings, cluster)


def _archive_command(cluster: EmbeddedCluster) -> str:
    conf = _pitr_dir(cluster) / "pgbackrest.conf"
    return (
        f"{shlex.quote(_pgbackrest())} --config={shlex.quote(str(conf))} "
        f"--stanza={STANZA} archive-push %p"
    )


def _stanza_exists(settings: Settings, cluster: EmbeddedCluster) -> bool:
    return (_repo(settings, cluster) / "backup" / STANZA / "backup.info").exists()


# --------------------------------------------------------------------------- commands
def setup(settings: Settings, *, progress: Progress = _quiet) -> SetupResult:
    """Set up WAL archiving to pgBackRest for the embedded cluster (idempotent).

    Starts the cluster if needed, writes the configuration, creates the stanza, sets
    ``archive_command``, ``archive_mode=on`` and ``wal_level=replica`` (unless ``logical``
    already) with ``ALTER SYSTEM`` (only those that differ), restarts the cluster only when
    ``archive_mode`` or ``wal_level`` changed, and runs ``pgbackrest check`` (a WAL segment
    really reaches the repository). If that check fails right after archiving was turned on,
    ``archive_mode`` is turned off again (one more restart): with a failing ``archive_command``
    the server would keep every WAL segment.

    Raises:
        PitrError: ``DATABASE_URL`` is set, pgbackrest is missing, or a pgBackRest step failed.
    """
    cluster = _cluster(settings)
    _pgbackrest()
    cluster.ensure_running()
    config_written = _write_config(settings, cluster)
    if config_written:
        progress(f"wrote {config_path(settings)}")
    stanza_created = False
    if not _stanza_exists(settings, cluster):
        progress(f"creating stanza {STANZA!r} in {_repo(settings, cluster)}")
        _run(settings, cluster, "stanza-create")
        stanza_created = True

    current = _server_settings(cluster)
    wanted = {
        # The command before the mode: archiving never starts with a stale command.
        "archive_command": _archive_command(cluster),
        "wal_level": "replica",
        "archive_mode": "on",
    }
    changed: list[str] = []
    for name, value in wanted.items():
        if name == "wal_level" and current[name][0] != "minimal":
            continue  # replica or logical: both archive
        if current[name][0] != value:
            _alter_system(cluster, name, value)
            changed.append(name)
    restarted = False
    turned_on = current["archive_mode"][0] != "on"
    if _pending_restart(cluster):
        progress("restarting the embedded cluster: archive_mode/wal_level changed")
        _restart(settings, cluster)
        restarted = True
    try:
        _run(settings, cluster, "check", timeout=120)
    except PitrError as exc:
        if not turned_on:
            raise
        progress("archiving does not work: turning archive_mode off again (restart)")
        _alter_system(cluster, "archive_mode", "off")
        _restart(settings, cluster)
        raise PitrError(f"{exc.message} (archive_mode is off again)") from exc
    return SetupResult(
        config=config_path(settings),
        repo=_repo(settings, cluster),
        config_written=config_written,
        settings_changed=tuple(changed),
        restarted=restarted,
        stanza_created=stanza_created,
    )


def _require_setup(settings: Settings, cluster: EmbeddedCluster) -> None:
    if not cluster.initialized() or not _stanza_exists(settings, cluster):
        raise PitrError(_NOT_SET_UP)
    _pgbackrest()
    _write_config(settings, cluster)


def _require_running(cluster: EmbeddedCluster) -> None:
    if not cluster.running():
        raise PitrError(
            "the embedded cluster is stopped: start it with `dbops db start`, then retry"
        )


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
        raise PitrError(f"cannot read `pgbackrest info` output: {_tail(output)}") from exc
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
    cluster = _cluster(settings)
    _require_setup(settings, cluster)
    result = _run(settings, cluster, "info", "--output=json", timeout=120)
    return _parse_info(result.stdout, _repo(settings, cluster))


def base_backup(
    settings: Settings, *, incremental: bool = False, progress: Progress = _quiet
) -> BackupResult:
    """Take a base backup of the running embedded cluster: full, or incremental.

    An incremental backup copies only files changed since the previous backup; with no full
    backup yet pgBackRest takes a full one instead (the result says which). Backups beyond
    ``pitr_retention_full`` full ones expire afterwards, with the WAL only they needed.

    Raises:
        PitrError: not set up, the cluster is stopped, or pgBackRest failed.
    """
    cluster = _cluster(settings)
    _require_setup(settings, cluster)
    _require_running(cluster)
    kind = "incr" if incremental else "full"
    progress(f"taking a {kind} base backup")
    started = time.perf_counter()
    _run(settings, cluster, "backup", f"--type={kind}")
    seconds = time.perf_counter() - started
    backups = info(settings).backups
    if not backups:  # pragma: no cover - pgBackRest reported success
        raise PitrError("pgbackrest backup succeeded but `pgbackrest info` lists no backup")
    newest = max(backups, key=lambda b: b.started_at)
    return BackupResult(backup=newest, seconds=seconds)


def _free_port(avoid: int | None) -> int:
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port != avoid:
            return port


def _is_empty(path: Path) -> bool:
    return not path.exists() or (path.is_dir() and not any(path.iterdir()))


def _inside(path: Path, parent: Path) -> bool:
    return path == parent or parent in path.parents


def _flush_wal(settings: Settings, cluster: EmbeddedCluster) -> None:
    """Archive the live cluster's WAL up to now without changing its data.

    A commit record (a transaction that only takes an xid) marks the present, then
    ``pgbackrest check`` switches to a new WAL segment and waits until the old one is in the
    repository. Without it a recent target would lie in WAL the archive does not have yet, and
    PostgreSQL stops with "recovery ended before configured recovery target was reached".
    """
    with _connect(cluster) as conn:
        conn.execute(_COMMIT_MARK_SQL)
    _run(settings, cluster, "check", timeout=120)


def _as_utc(moment: datetime) -> datetime:
    """A timestamp without zone is UTC, like every timestamp dbops shows."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def restore_to(
    settings: Settings,
    target_time: datetime,
    into_dir: Path,
    *,
    start: bool = True,
    progress: Progress = _quiet,
) -> RestoreResult:
    """Restore a copy of the embedded cluster as of ``target_time`` into ``into_dir``.

    ``into_dir`` becomes the copy's home, laid out like any embedded cluster (``pgdata/``,
    ``run/``, ``log/``, ``cluster.json``; relocated under /var/tmp as root when ``postgres``
    cannot enter it), so ``DBOPS_HOME=<into_dir> dbops db start|stop|status|url`` manage it.
    pgBackRest picks the newest base backup that ended before the target, restores it with
    ``--type=time --target-action=promote --archive-mode=off`` (the copy never archives into
    the live cluster's repository), and, with ``start``, the copy starts on a free loopback port
    with its own socket directory, replays WAL up to the target and is promoted.

    The live cluster keeps its data, settings, port and data directory. When it runs, its WAL up
    to now is archived first (see :func:`_flush_wal`: one empty commit and a WAL switch).

    Args:
        settings: dbops settings of the live embedded cluster.
        target_time: the moment to restore to (a naive value is UTC).
        into_dir: a new or empty directory for the copy.
        start: start the copy (recovery runs then); ``False`` only lays it out and restores.
        progress: called with a line per step.

    Raises:
        PitrError: ``DATABASE_URL`` is set, not set up, ``into_dir`` is not empty or lies in the
            live cluster, the target is in the future or before the oldest base backup, or
            pgBackRest or the copy's recovery failed (with the tail of its log).
    """
    cluster = _cluster(settings)
    _require_setup(settings, cluster)
    target = _as_utc(target_time)
    now = datetime.now(UTC)
    if target > now:
        raise PitrError(
            f"target time {target.isoformat()} is in the future (now is {now.isoformat()})"
        )
    home = into_dir.absolute()
    live = {cluster.home, cluster.datadir.parent, cluster.datadir, _repo(settings, cluster)}
    if any(_inside(home, path) for path in (cluster.datadir, _repo(settings, cluster))) or (
        home in live
    ):
        raise PitrError(f"{home} belongs to the live cluster: restore into a new directory")
    if not _is_empty(home):
        raise PitrError(f"{home} is not empty: restore into a new or empty directory")
    copy = EmbeddedCluster(home, database=settings.embedded_database)
    if not _is_empty(copy.datadir.parent):
        raise PitrError(
            f"{copy.datadir.parent} (where {home} keeps its data) is not empty: "
            "remove it or pick another directory"
        )
    known = info(settings).backups
    if not known:
        raise PitrError("no base backup yet: take one with `dbops backup pitr-base`")
    earliest = min(_restorable_from(b) for b in known)
    if target < earliest:
        raise PitrError(
            f"target time {target.isoformat()} is before the oldest base backup, which "
            f"finished at {(earliest - timedelta(seconds=1)).isoformat()}: pick "
            f"{earliest.isoformat()} or later"
        )
    chosen = max((b for b in known if _restorable_from(b) <= target), key=lambda b: b.finished_at)
    started = time.perf_counter()
    if cluster.running():
        progress("archiving the live cluster's latest WAL")
        _flush_wal(settings, cluster)
    port = _free_port(avoid=cluster.port)
    try:
        copy.prepare_restore(port=port, password=cluster.password)
    except EmbeddedClusterError as exc:
        raise PitrError(f"cannot lay out {home}: {exc.message}") from exc
    progress(f"restoring base backup {chosen.label} into {copy.datadir}")
    try:
        _restore(settings, cluster, copy, chosen, target)
    except PitrError as exc:
        raise PitrError(f"{exc.message}; remove {copy.home} before retrying") from exc
    if start:
        progress(f"starting the copy on port {port} and replaying WAL up to {target.isoformat()}")
        try:
            copy.start_restored(timeout=settings.pitr.timeout_s)
        except EmbeddedClusterError as exc:
            raise PitrError(_recovery_failure(copy, target, exc)) from exc
    return RestoreResult(
        home=home,
        datadir=copy.datadir,
        target_time=target,
        backup_label=chosen.label,
        started=start,
        port=copy.port or port,
        url=copy.libpq_url(),
        tcp_url=redact_dsn(to_libpq_url(copy.tcp_url())),
        seconds=time.perf_counter() - started,
    )


def _restore(
    settings: Settings,
    cluster: EmbeddedCluster,
    copy: EmbeddedCluster,
    backup: BackupSet,
    target: datetime,
) -> None:
    _run(
        settings,
        cluster,
        "restore",
        f"--pg1-path={copy.datadir}",
        f"--set={backup.label}",
        "--type=time",
        f"--target={target.isoformat(sep=' ')}",
        "--target-action=promote",
        # The copy must not archive into the live repository: a later restore of the live
        # cluster (recovery_target_timeline=latest) would follow the copy's new timeline.
        "--archive-mode=off",
    )


def _recovery_failure(copy: EmbeddedCluster, target: datetime, exc: EmbeddedClusterError) -> str:
    """The error of a copy that did not come up: the server's FATAL line and what to do."""
    try:
        text = copy.logfile.read_text(errors="replace")
    except OSError:
        text = ""
    fatal = [line for line in text.splitlines() if "FATAL:" in line or "PANIC:" in line]
    detail = _tail(fatal[-1], 1) if fatal else _tail(text)
    hint = ""
    if "before configured recovery target was reached" in text:
        hint = (
            f" The archive holds no commit after {target.isoformat()}: start the live cluster "
            "(its latest WAL is archived before a restore) or pick an earlier time."
        )
    return (
        f"the restored copy did not start: {exc.message}: {detail or 'no server log'}.{hint} "
        f"Remove {copy.home} before retrying."
    )
