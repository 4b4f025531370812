"""The pgBackRest side of the embedded cluster: paths, configuration, runner, archiving settings."""

from __future__ import annotations

import os
import pwd
import shlex
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dbops.config import Settings, redact_dsn
from dbops.db import EmbeddedCluster
from dbops.errors import PitrError

__all__ = [
    "STANZA",
    "Progress",
    "config_path",
]


#: The pgBackRest stanza of the embedded cluster.
STANZA = "dbops"

_SERVICE_USER = "postgres"

#: Lines of pgBackRest output or log quoted in an error message.
TAIL_LINES = 4

_EXTERNAL = (
    "point-in-time recovery works with the embedded cluster only: DATABASE_URL is set "
    "(use your server's own backup tooling, or unset DATABASE_URL)"
)

_NOT_SET_UP = "point-in-time recovery is not set up: run `dbops backup pitr-setup` first"

Progress = Callable[[str], None]


def quiet(_message: str) -> None:
    """The default progress callback: say nothing."""


# --------------------------------------------------------------------------- layout
def cluster_of(settings: Settings) -> EmbeddedCluster:
    if not settings.embedded:
        raise PitrError(_EXTERNAL)
    from dbops.db.purpose import project_cluster

    return project_cluster(settings)  # with its server options: a restart keeps them


def _pitr_dir(cluster: EmbeddedCluster) -> Path:
    """``pgbackrest/`` beside ``pgdata/``: reachable by the server user wherever that is."""
    return cluster.datadir.parent / "pgbackrest"


def config_path(settings: Settings) -> Path:
    """The pgBackRest configuration file dbops writes for the embedded cluster."""
    return _pitr_dir(cluster_of(settings)) / "pgbackrest.conf"


def repo_dir(settings: Settings, cluster: EmbeddedCluster) -> Path:
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


def make_dir(path: Path) -> None:
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


def pgbackrest() -> str:
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
        f"repo1-path={repo_dir(settings, cluster)}",
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


def write_config(settings: Settings, cluster: EmbeddedCluster) -> bool:
    """Write the configuration and its directories; True when the file changed.

    The port is in it, and the embedded cluster may move to another port when its own is
    taken at start, so every command rewrites it (a no-op when nothing changed).
    """
    base = _pitr_dir(cluster)
    for path in (base, base / "log", base / "lock", base / "spool", repo_dir(settings, cluster)):
        make_dir(path)
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


def tail(text: str, lines: int = TAIL_LINES) -> str:
    found = [line.strip() for line in text.splitlines() if line.strip()]
    return redact_dsn(" | ".join(found[-lines:]))


def log_tail(path: Path) -> str:
    try:
        return tail(path.read_text(errors="replace"))
    except OSError:
        return ""


def run(
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
    argv = [pgbackrest(), f"--config={conf}", f"--stanza={STANZA}", *options, command]
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
        detail = tail(result.stderr + "\n" + result.stdout) or log_tail(logfile)
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
COMMIT_MARK_SQL = "SELECT pg_current_xact_id()"


def connect(cluster: EmbeddedCluster) -> Any:
    import psycopg

    return psycopg.connect(cluster.libpq_url("postgres"), autocommit=True)


def server_settings(cluster: EmbeddedCluster) -> dict[str, tuple[str, bool]]:
    with connect(cluster) as conn:
        rows = conn.execute(_SETTINGS_SQL).fetchall()
    return {str(name): (str(value), bool(pending)) for name, value, pending in rows}


def alter_system(cluster: EmbeddedCluster, name: str, value: str) -> None:
    from psycopg import sql

    statement = sql.SQL("ALTER SYSTEM SET {} = {}").format(sql.Identifier(name), sql.Literal(value))
    with connect(cluster) as conn:
        conn.execute(statement)
        conn.execute("SELECT pg_reload_conf()")


def pending_restart(cluster: EmbeddedCluster) -> bool:
    with connect(cluster) as conn:
        row = conn.execute(_PENDING_RESTART_SQL).fetchone()
    return bool(row and row[0])


def restart(settings: Settings, cluster: EmbeddedCluster) -> None:
    """Restart the embedded cluster; its port may change, so the config is rewritten."""
    cluster.stop()
    cluster.ensure_running()
    write_config(settings, cluster)


def archive_command(cluster: EmbeddedCluster) -> str:
    conf = _pitr_dir(cluster) / "pgbackrest.conf"
    return (
        f"{shlex.quote(pgbackrest())} --config={shlex.quote(str(conf))} "
        f"--stanza={STANZA} archive-push %p"
    )


def stanza_exists(settings: Settings, cluster: EmbeddedCluster) -> bool:
    return (repo_dir(settings, cluster) / "backup" / STANZA / "backup.info").exists()


def require_setup(settings: Settings, cluster: EmbeddedCluster) -> None:
    if not cluster.initialized() or not stanza_exists(settings, cluster):
        raise PitrError(_NOT_SET_UP)
    pgbackrest()
    write_config(settings, cluster)


def require_running(cluster: EmbeddedCluster) -> None:
    if not cluster.running():
        raise PitrError(
            "the embedded cluster is stopped: start it with `dbops db start`, then retry"
        )
