"""A copy of the cluster as of a moment, in a new directory, started on its own port."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dbops.config import Settings, redact_dsn, to_libpq_url
from dbops.db import EmbeddedCluster
from dbops.db.embedded import free_port
from dbops.errors import EmbeddedClusterError, PitrError
from dbops.ops.pitr._layout import (
    COMMIT_MARK_SQL,
    Progress,
    cluster_of,
    connect,
    quiet,
    repo_dir,
    require_setup,
    run,
    tail,
)
from dbops.ops.pitr.backups import info
from dbops.ops.pitr.results import BackupSet, RestoreResult, restorable_from

__all__ = [
    "restore_to",
]


def _free_port(avoid: int | None) -> int:
    while (port := free_port()) == avoid:
        pass
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
    with connect(cluster) as conn:
        conn.execute(COMMIT_MARK_SQL)
    run(settings, cluster, "check", timeout=120)


def _as_utc(moment: datetime) -> datetime:
    """A timestamp without zone is UTC, like every timestamp dbops shows."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def restore_to(
    settings: Settings,
    target_time: datetime,
    into_dir: Path,
    *,
    start: bool = True,
    progress: Progress = quiet,
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
    cluster = cluster_of(settings)
    require_setup(settings, cluster)
    target = _as_utc(target_time)
    now = datetime.now(UTC)
    if target > now:
        raise PitrError(
            f"target time {target.isoformat()} is in the future (now is {now.isoformat()})"
        )
    home = into_dir.absolute()
    live = {cluster.home, cluster.datadir.parent, cluster.datadir, repo_dir(settings, cluster)}
    if any(_inside(home, path) for path in (cluster.datadir, repo_dir(settings, cluster))) or (
        home in live
    ):
        raise PitrError(f"{home} belongs to the live cluster: restore into a new directory")
    if not _is_empty(home):
        raise PitrError(f"{home} is not empty: restore into a new or empty directory")
    copy = EmbeddedCluster(
        home, database=settings.embedded_database, pg_version=cluster.data_major()
    )
    if not _is_empty(copy.datadir.parent):
        raise PitrError(
            f"{copy.datadir.parent} (where {home} keeps its data) is not empty: "
            "remove it or pick another directory"
        )
    known = info(settings).backups
    if not known:
        raise PitrError("no base backup yet: take one with `dbops backup pitr-base`")
    earliest = min(restorable_from(b) for b in known)
    if target < earliest:
        raise PitrError(
            f"target time {target.isoformat()} is before the oldest base backup, which "
            f"finished at {(earliest - timedelta(seconds=1)).isoformat()}: pick "
            f"{earliest.isoformat()} or later"
        )
    chosen = max((b for b in known if restorable_from(b) <= target), key=lambda b: b.finished_at)
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
    run(
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
    detail = tail(fatal[-1], 1) if fatal else tail(text)
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
