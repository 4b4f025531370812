"""Access monitoring: refused sign-ins and denials of this process, and of the server's log.

No SQL: the application's side comes from the process-wide recorder of
:mod:`dbops.telemetry.access`, the server's side from its log (read incrementally with the
resources collector's tail, so both count every line once).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

from dbops.config import Settings
from dbops.monitoring.collectors.resources import default_log_files, read_log
from dbops.monitoring.snapshot import AccessStat, AppAccessStat, ServerAccessStat
from dbops.telemetry.access import AccessEvents, access_stats

__all__ = ["app_access", "collect_access", "server_access"]


def app_access(window_s: float, events: AccessEvents | None = None) -> AppAccessStat:
    """This process's access events (default: the process recorder); no database."""
    counts = access_stats(window_s, events)
    return AppAccessStat(
        login_failed=counts.count("login_failed"),
        forbidden=counts.count("forbidden"),
        not_found=counts.count("not_found"),
        rls_denied=counts.count("rls_denied"),
        privilege_denied=counts.count("privilege_denied"),
        login_failed_recent=counts.login_failed_recent,
    )


def server_access(
    files: Sequence[Path], *, now: datetime, window_s: float
) -> ServerAccessStat | None:
    """Refused logins and denials in the server log ``files``; ``None`` when none is readable.

    ``now`` (UTC-aware) ends the window of ``login_failed_recent``.
    """
    since = now - timedelta(seconds=window_s)
    login_failed = rls_denied = privilege_denied = recent = 0
    untimed = read_any = False
    for path in files:
        counts = read_log(path)
        if counts is None:
            continue
        read_any = True
        login_failed += counts.access["login_failed"]
        rls_denied += counts.access["rls_denied"]
        privilege_denied += counts.access["privilege_denied"]
        recent += sum(1 for at in counts.login_times if at >= since)
        untimed = untimed or counts.last_login_untimed
    if not read_any:
        return None
    return ServerAccessStat(
        login_failed=login_failed,
        rls_denied=rls_denied,
        privilege_denied=privilege_denied,
        login_failed_recent=None if untimed else recent,
    )


def collect_access(
    settings: Settings,
    *,
    now: datetime,
    app: bool = False,
    data_dir: Path | None = None,
    log_files: Sequence[Path] | None = None,
    events: AccessEvents | None = None,
) -> AccessStat:
    """The access section of a snapshot taken at ``now``.

    Args:
        settings: gives the window of the recent counts (``monitor_access_window_s``).
        now: when the snapshot is taken (UTC-aware).
        app: include this process's access events (a snapshot taken in the application).
        data_dir: the server's data directory when it runs on this host; without it (and
            without ``log_files``) the server's side is unknown.
        log_files: server logs to read (default: :func:`default_log_files` of ``data_dir``).
        events: the recorder to read (default: the process's).
    """
    window_s = settings.monitor.access_window_s
    if log_files is None and data_dir is not None and data_dir.is_dir():
        log_files = default_log_files(data_dir)
    return AccessStat(
        window_s=window_s,
        app=app_access(window_s, events) if app else None,
        server=None if log_files is None else server_access(log_files, now=now, window_s=window_s),
    )
