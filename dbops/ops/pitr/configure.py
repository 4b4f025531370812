"""``setup``: WAL archiving on (``ALTER SYSTEM``), the configuration written, the stanza created."""

from __future__ import annotations

from dbops.config import Settings
from dbops.errors import PitrError
from dbops.ops.pitr._layout import (
    STANZA,
    Progress,
    alter_system,
    archive_command,
    cluster_of,
    config_path,
    pending_restart,
    pgbackrest,
    quiet,
    repo_dir,
    restart,
    run,
    server_settings,
    stanza_exists,
    write_config,
)
from dbops.ops.pitr.results import SetupResult

__all__ = [
    "setup",
]


# --------------------------------------------------------------------------- commands
def setup(settings: Settings, *, progress: Progress = quiet) -> SetupResult:
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
    cluster = cluster_of(settings)
    pgbackrest()
    cluster.ensure_running()
    config_written = write_config(settings, cluster)
    if config_written:
        progress(f"wrote {config_path(settings)}")
    stanza_created = False
    if not stanza_exists(settings, cluster):
        progress(f"creating stanza {STANZA!r} in {repo_dir(settings, cluster)}")
        run(settings, cluster, "stanza-create")
        stanza_created = True

    current = server_settings(cluster)
    wanted = {
        # The command before the mode: archiving never starts with a stale command.
        "archive_command": archive_command(cluster),
        "wal_level": "replica",
        "archive_mode": "on",
    }
    changed: list[str] = []
    for name, value in wanted.items():
        if name == "wal_level" and current[name][0] != "minimal":
            continue  # replica or logical: both archive
        if current[name][0] != value:
            alter_system(cluster, name, value)
            changed.append(name)
    restarted = False
    turned_on = current["archive_mode"][0] != "on"
    if pending_restart(cluster):
        progress("restarting the embedded cluster: archive_mode/wal_level changed")
        restart(settings, cluster)
        restarted = True
    try:
        run(settings, cluster, "check", timeout=120)
    except PitrError as exc:
        if not turned_on:
            raise
        progress("archiving does not work: turning archive_mode off again (restart)")
        alter_system(cluster, "archive_mode", "off")
        restart(settings, cluster)
        raise PitrError(f"{exc.message} (archive_mode is off again)") from exc
    return SetupResult(
        config=config_path(settings),
        repo=repo_dir(settings, cluster),
        config_written=config_written,
        settings_changed=tuple(changed),
        restarted=restarted,
        stanza_created=stanza_created,
    )
