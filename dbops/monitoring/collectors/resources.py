"""Resources: WAL on disk, and for a server on this host its volume, CPU, memory and log errors."""

from __future__ import annotations

import os
import re
import shutil
import threading
from collections import Counter, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import psycopg

from dbops.config import MonitorSettings
from dbops.monitoring._fetch import fetch_one
from dbops.monitoring.collectors._section import Part, Section, only
from dbops.monitoring.snapshot import CountBy, ResourceStat

__all__ = [
    "MAX_LOG_READ_BYTES",
    "MAX_RECENT_LOGINS",
    "SECTION",
    "LogCounts",
    "collect_resources",
    "count_log_errors",
    "count_log_lines",
    "default_log_files",
    "read_log",
    "server_processes",
    "wal_bytes",
]

#: Size of the WAL directory (superuser or pg_monitor).
WAL_SQL = """
SELECT coalesce(sum(size), 0)::bigint AS wal_bytes
FROM pg_ls_waldir()
"""

#: Most bytes read from one log file per collection; older bytes are skipped.
MAX_LOG_READ_BYTES = 1 << 20

#: An error line under the embedded cluster's ``log_line_prefix = '%m [%p] %e %q%u@%d %h '``,
#: or its older ``'%m [%p] %e '``: time, pid, SQLSTATE, then for a client session its user,
#: database and client host. The SQLSTATE is optional so the default ``'%m [%p] '`` still counts
#: (as class ``other``); a user or database name with a space in it is not recognised.
_ERROR_LINE = re.compile(
    rb"^(?P<time>[^\[]*)\[\d+\] (?:(?P<sqlstate>[0-9A-Z]{5}) )?(?:[^ @]*@[^ ]* [^ ]* )?"
    rb"(?:ERROR|FATAL|PANIC):  "
)
#: ``%m`` in UTC (``log_timezone = 'UTC'``, as the embedded cluster sets it).
_LOG_TIME = re.compile(rb"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?) (?:UTC|GMT) $")
#: Most failed-login times kept per log file for the recent-window count.
MAX_RECENT_LOGINS = 10_000


@dataclass(frozen=True)
class _WalRow:
    wal_bytes: int


@dataclass
class _Tail:
    """How far one log file was read, and what was counted in it so far."""

    inode: int
    offset: int
    counts: Counter[str] = field(default_factory=Counter)
    access: Counter[str] = field(default_factory=Counter)
    logins: deque[datetime] = field(default_factory=lambda: deque(maxlen=MAX_RECENT_LOGINS))
    last_login_untimed: bool = False


@dataclass(frozen=True)
class LogCounts:
    """What one server log file held, since this process first read it.

    ``errors``: ERROR/FATAL/PANIC lines by SQLSTATE class. ``access``: failed logins
    (``login_failed``: class 28, ``28P01`` wrong password, ``28000`` no ``pg_hba.conf`` entry or
    a rejected one, unknown role), ``rls_denied`` (42501 about row-level security) and
    ``privilege_denied`` (any other 42501). ``login_times``: when the failed logins happened
    (UTC), the last :data:`MAX_RECENT_LOGINS`; ``last_login_untimed`` says the time of the
    latest failed login could not be read (a ``log_timezone`` other than UTC), so the recent
    ones are unknown.
    """

    errors: Counter[str]
    access: Counter[str]
    login_times: tuple[datetime, ...]
    last_login_untimed: bool


_TAILS: dict[Path, _Tail] = {}
_TAILS_LOCK = threading.Lock()


def wal_bytes(conn: psycopg.Connection[Any], *, settings: MonitorSettings) -> int | None:
    """Bytes in ``pg_wal``, or ``None`` when the role may not list it."""
    try:
        row = fetch_one(conn, WAL_SQL, _WalRow, timeout_ms=settings.collector_timeout_ms)
    except psycopg.errors.InsufficientPrivilege:
        return None
    return row.wal_bytes if row else None


def _postmaster_pid(data_dir: Path) -> int | None:
    try:
        return int((data_dir / "postmaster.pid").read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None


def server_processes(data_dir: Path) -> tuple[float, int, int] | None:
    """CPU seconds, resident bytes and process count of the postmaster and its children.

    CPU includes the time of children that already exited (the postmaster reaped them), so it
    grows like a counter while the server runs. ``None`` when the server is not running here.
    """
    pid = _postmaster_pid(data_dir)
    if pid is None:
        return None
    try:
        postmaster = psutil.Process(pid)
        times = postmaster.cpu_times()
        cpu = times.user + times.system + times.children_user + times.children_system
        rss = postmaster.memory_info().rss
        children = postmaster.children(recursive=True)
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None
    count = 1
    for child in children:
        try:
            times = child.cpu_times()
            cpu += times.user + times.system
            rss += child.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue  # exited between listing and reading
        count += 1
    return cpu, rss, count


def default_log_files(data_dir: Path) -> list[Path]:
    """The server logs of a cluster in ``data_dir``.

    The embedded layout's ``../log/*.log``, and ``log/*.log`` inside the data directory
    (``logging_collector``'s default).
    """
    files: list[Path] = []
    for folder in (data_dir.parent / "log", data_dir / "log"):
        if folder.is_dir():
            files.extend(sorted(folder.glob("*.log")))
    return files


def read_log(path: Path) -> LogCounts | None:
    """Count what was added to ``path`` since the last call; the file's running totals.

    The first read starts at most :data:`MAX_LOG_READ_BYTES` before the end; a rotated or
    truncated file is read again from its start (the totals go on). ``None`` when the file
    cannot be read.
    """
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            inode = os.fstat(fh.fileno()).st_ino
            with _TAILS_LOCK:
                tail = _TAILS.get(path)
                if tail is None:
                    tail = _TAILS[path] = _Tail(inode=inode, offset=0)
                elif tail.inode != inode or size < tail.offset:
                    tail.inode, tail.offset = inode, 0  # rotated or truncated: start over
                start = max(tail.offset, size - MAX_LOG_READ_BYTES, 0)
                fh.seek(start)
                chunk = fh.read(size - start)
                cut = 0
                if start > tail.offset:  # mid-line (a first read starts at 0): skip to the next
                    cut = chunk.find(b"\n") + 1
                body = chunk[cut:]
                end = body.rfind(b"\n") + 1  # a line still being written waits for next time
                _count_lines(tail, body[:end].splitlines())
                tail.offset = start + cut + end
                return _counts_of(tail)
    except OSError:
        return None


def _count_lines(tail: _Tail, lines: Iterable[bytes]) -> None:
    for line in lines:
        match = _ERROR_LINE.match(line)
        if not match:
            continue
        code = match.group("sqlstate")
        tail.counts[code[:2].decode() if code else "other"] += 1
        kind = _access_kind(code, line)
        if kind is None:
            continue
        tail.access[kind] += 1
        if kind == "login_failed":
            at = _log_time(match.group("time"))
            tail.last_login_untimed = at is None
            if at is not None:
                tail.logins.append(at)


def _access_kind(code: bytes | None, line: bytes) -> str | None:
    if code is None:
        return None
    if code.startswith(b"28"):
        return "login_failed"
    if code == b"42501":
        return "rls_denied" if b"row-level security" in line else "privilege_denied"
    return None


def _log_time(text: bytes) -> datetime | None:
    match = _LOG_TIME.match(text)
    if match is None:
        return None
    try:
        return datetime.fromisoformat(match.group(1).decode()).replace(tzinfo=UTC)
    except ValueError:
        return None


def count_log_errors(lines: Iterable[bytes]) -> Counter[str]:
    """ERROR/FATAL/PANIC lines by SQLSTATE class (``"other"`` when the line has no SQLSTATE)."""
    return count_log_lines(lines).errors


def count_log_lines(lines: Iterable[bytes]) -> LogCounts:
    """Errors by SQLSTATE class and access events of ``lines`` (see :class:`LogCounts`)."""
    tail = _Tail(inode=0, offset=0)
    _count_lines(tail, lines)
    return _counts_of(tail)


def _counts_of(tail: _Tail) -> LogCounts:
    return LogCounts(
        errors=Counter(tail.counts),
        access=Counter(tail.access),
        login_times=tuple(tail.logins),
        last_login_untimed=tail.last_login_untimed,
    )


def _log_errors(files: Sequence[Path]) -> tuple[CountBy, ...] | None:
    total: Counter[str] = Counter()
    read_any = False
    for path in files:
        counts = read_log(path)
        if counts is not None:
            read_any = True
            total.update(counts.errors)
    if not read_any:
        return None
    return tuple(CountBy(key=k, count=v) for k, v in sorted(total.items()))


def collect_resources(
    conn: psycopg.Connection[Any],
    *,
    settings: MonitorSettings,
    data_dir: Path | None = None,
    log_files: Sequence[Path] | None = None,
) -> ResourceStat:
    """WAL size, and with ``data_dir`` (a server on this host) volume, CPU, memory, log errors.

    Args:
        conn: connection to the server.
        settings: gives the statement timeout.
        data_dir: the data directory when the server runs on this host (the embedded
            cluster); without it every host part is ``None``.
        log_files: server log files to count errors in (default: :func:`default_log_files`).
    """
    wal = wal_bytes(conn, settings=settings)
    if data_dir is None or not data_dir.is_dir():
        return ResourceStat(wal_bytes=wal)
    usage = shutil.disk_usage(data_dir)
    procs = server_processes(data_dir)
    files = default_log_files(data_dir) if log_files is None else list(log_files)
    return ResourceStat(
        wal_bytes=wal,
        volume_free_bytes=usage.free,
        volume_total_bytes=usage.total,
        cpu_seconds=procs[0] if procs else None,
        memory_rss_bytes=procs[1] if procs else None,
        processes=procs[2] if procs else None,
        log_errors=_log_errors(files),
    )


#: The snapshot's ``resources``: WAL, and the host's volume, CPU, memory, log when local.
SECTION = Section(
    "resources",
    (Part("resources", collect_resources, needs=lambda ctx: {"data_dir": ctx.data_dir}),),
    only("resources"),
)
