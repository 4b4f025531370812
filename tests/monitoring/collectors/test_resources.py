"""The resources collector on the embedded test cluster: WAL, volume, processes, log errors."""

from __future__ import annotations

import dataclasses
import os
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from dbops.config import to_libpq_url
from dbops.db import Database, EmbeddedCluster
from dbops.exporter import snapshot_metrics
from dbops.monitoring import collect_snapshot
from dbops.monitoring.collectors import resources
from dbops.monitoring.collectors.resources import collect_resources, count_log_errors
from dbops.monitoring.snapshot import CountBy, ResourceStat
from tests.fixtures.monitoring import monitor_settings
from tests.fixtures.snapshots import healthy_snapshot


def _errors(stat_errors: tuple[CountBy, ...] | None) -> dict[str, int]:
    assert stat_errors is not None
    return {str(e.key): e.count for e in stat_errors}


def test_embedded_cluster_has_every_part(
    mon_conn: psycopg.Connection[tuple[object, ...]], mon_url: str, pg_cluster: EmbeddedCluster
) -> None:
    stat = collect_resources(
        mon_conn, settings=monitor_settings(mon_url).monitor, data_dir=pg_cluster.datadir
    )
    assert stat.wal_bytes is not None
    assert stat.wal_bytes > 0
    assert stat.volume_total_bytes is not None
    assert stat.volume_total_bytes > 0
    assert stat.volume_free_bytes is not None
    assert 0 < stat.volume_free_bytes <= stat.volume_total_bytes
    assert stat.memory_rss_bytes is not None
    assert stat.memory_rss_bytes > 0
    assert stat.cpu_seconds is not None
    assert stat.cpu_seconds > 0
    assert stat.processes is not None
    assert stat.processes >= 2
    assert stat.log_errors is not None


def _proc_cpu_seconds(data_dir: Path) -> tuple[float, int]:
    """CPU seconds and processes of the postmaster and its children, read from /proc by hand."""
    total, _system, processes = _proc_cpu(data_dir)
    return total, processes


def _proc_cpu(data_dir: Path) -> tuple[float, float, int]:
    """CPU seconds, of which system seconds of the live children, and processes, from /proc.

    utime + stime + cutime + cstime of the postmaster (fields 14-17 of /proc/PID/stat: its
    reaped children count there), utime + stime of each live child; in clock ticks.
    """
    tick = os.sysconf("SC_CLK_TCK")
    pid = int((data_dir / "postmaster.pid").read_text().splitlines()[0])

    def fields(p: int) -> list[str]:
        stat = Path(f"/proc/{p}/stat").read_text()
        return stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "

    own = fields(pid)
    ticks = sum(int(v) for v in own[11:15])
    system = 0
    children = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            theirs = fields(int(entry.name))
        except (OSError, ValueError):
            continue  # exited meanwhile
        if int(theirs[1]) == pid:
            ticks += int(theirs[11]) + int(theirs[12])
            system += int(theirs[12])
            children += 1
    return ticks / tick, system / tick, children + 1


def test_cpu_seconds_and_processes_match_proc(
    mon_conn: psycopg.Connection[tuple[object, ...]], pg_cluster: EmbeddedCluster
) -> None:
    """The collector's figures against /proc read by hand just before and just after."""
    mon_conn.execute("SELECT count(*) FROM generate_series(1, 300000)").fetchone()  # some CPU
    # System time in a live backend (writing a temporary table): the sum must add it, not
    # take it away, and the check below can tell.
    mon_conn.execute(
        "CREATE TEMP TABLE burn AS SELECT g, repeat('x', 300) AS pad "
        "FROM generate_series(1, 300000) AS g"
    )
    mon_conn.execute("DROP TABLE burn")
    before, system, _ = _proc_cpu(pg_cluster.datadir)
    got = resources.server_processes(pg_cluster.datadir)
    after, processes = _proc_cpu_seconds(pg_cluster.datadir)
    assert got is not None
    cpu, _rss, count = got
    assert system > 0.03, system  # a sign error would be off by twice this: more than the slack
    assert before - 0.02 <= cpu <= after + 0.02
    assert abs(count - processes) <= 1  # a backend may come or go between the two reads


def test_a_remote_server_has_only_wal(
    mon_conn: psycopg.Connection[tuple[object, ...]], mon_url: str
) -> None:
    stat = collect_resources(mon_conn, settings=monitor_settings(mon_url).monitor)
    assert stat.wal_bytes is not None
    assert stat.wal_bytes > 0
    assert stat.volume_free_bytes is None
    assert stat.volume_total_bytes is None
    assert stat.cpu_seconds is None
    assert stat.memory_rss_bytes is None
    assert stat.processes is None
    assert stat.log_errors is None


def test_division_by_zero_is_counted_in_class_22(
    mon_conn: psycopg.Connection[tuple[object, ...]], mon_url: str, pg_cluster: EmbeddedCluster
) -> None:
    settings = monitor_settings(mon_url).monitor
    before = _errors(
        collect_resources(mon_conn, settings=settings, data_dir=pg_cluster.datadir).log_errors
    )
    for _ in range(2):
        with pytest.raises(psycopg.errors.DivisionByZero):
            mon_conn.execute("SELECT 1/0")
    deadline = time.monotonic() + 5
    while True:  # the server writes its log asynchronously to us
        after = _errors(
            collect_resources(mon_conn, settings=settings, data_dir=pg_cluster.datadir).log_errors
        )
        if after.get("22", 0) - before.get("22", 0) >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert after.get("22", 0) - before.get("22", 0) == 2


@pytest.fixture
def no_monitor_conn(
    pg_cluster: EmbeddedCluster, mon_url: str
) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """A connection of a role with no monitoring privileges."""
    name = f"plain_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_cluster.libpq_url("postgres"), autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(name)))
    try:
        with psycopg.connect(to_libpq_url(mon_url), user=name, autocommit=True) as conn:
            yield conn
    finally:
        with psycopg.connect(pg_cluster.libpq_url("postgres"), autocommit=True) as admin:
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


def test_wal_is_unknown_without_pg_monitor(
    no_monitor_conn: psycopg.Connection[tuple[object, ...]], mon_url: str
) -> None:
    stat = collect_resources(no_monitor_conn, settings=monitor_settings(mon_url).monitor)
    assert stat.wal_bytes is None


def test_log_is_read_incrementally_and_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(resources, "MAX_LOG_READ_BYTES", 200)
    data_dir = tmp_path / "pgdata"
    data_dir.mkdir()
    log = tmp_path / "log" / "postgresql.log"
    log.parent.mkdir()
    line = b"2026-01-01 00:00:00.000 UTC [7] 22012 ERROR:  division by zero\n"
    ok = b"2026-01-01 00:00:00.000 UTC [7] 00000 LOG:  checkpoint starting: time\n"
    log.write_bytes(line * 10)  # 630 bytes: the last 200 hold 3 whole lines
    first = resources._log_errors(resources.default_log_files(data_dir))
    assert first == (CountBy(key="22", count=3),)
    with log.open("ab") as fh:
        fh.write(ok + line + line[:40])  # the half-written line waits
    assert resources._log_errors([log]) == (CountBy(key="22", count=4),)
    with log.open("ab") as fh:
        fh.write(line[40:])
    assert resources._log_errors([log]) == (CountBy(key="22", count=5),)
    assert resources._log_errors([log]) == (CountBy(key="22", count=5),)  # nothing new
    log.unlink()
    log.write_bytes(line)  # rotated: a new file is read from its start, the total keeps going
    assert resources._log_errors([log]) == (CountBy(key="22", count=6),)
    resources._TAILS.clear()


def test_count_log_errors_by_class() -> None:
    lines = [
        b"2026-01-01 00:00:00.000 UTC [7] 57P01 FATAL:  terminating connection",
        b"2026-01-01 00:00:00.000 UTC [7] 23505 ERROR:  duplicate key value",
        b"2026-01-01 00:00:00.000 UTC [7] 00000 LOG:  statement: SELECT 'ERROR:  no'",
        b"2026-01-01 00:00:00.000 UTC [7] ERROR:  no sqlstate in this prefix",
        b"2026-01-01 00:00:00.000 UTC [7] 23505 STATEMENT:  INSERT ...",
    ]
    assert dict(count_log_errors(lines)) == {"57": 1, "23": 1, "other": 1}


def test_snapshot_and_metrics(mon_db: Database, mon_url: str, pg_cluster: EmbeddedCluster) -> None:
    settings = monitor_settings(mon_url)
    snap = collect_snapshot(mon_db, settings, data_dir=pg_cluster.datadir)
    assert snap.error("resources") is None
    assert snap.resources is not None
    assert snap.resources.memory_rss_bytes
    names = {m.name for m in snapshot_metrics(snap, settings)}
    assert {
        "dbops_wal_bytes",
        "dbops_volume_free_bytes",
        "dbops_volume_total_bytes",
        "dbops_server_cpu_seconds",
        "dbops_server_memory_rss_bytes",
    } <= names
    remote = collect_snapshot(mon_db, settings)
    assert remote.resources is not None
    assert remote.resources.volume_free_bytes is None
    remote_names = {m.name for m in snapshot_metrics(remote, settings)}
    assert "dbops_wal_bytes" in remote_names
    assert "dbops_volume_free_bytes" not in remote_names
    assert "dbops_server_memory_rss_bytes" not in remote_names


def test_log_error_metric_has_one_sample_per_class() -> None:
    snap = dataclasses.replace(
        healthy_snapshot(),
        resources=ResourceStat(
            wal_bytes=1, log_errors=(CountBy(key="22", count=2), CountBy(key="57", count=1))
        ),
    )
    families = {m.name: m for m in snapshot_metrics(snap, monitor_settings("postgresql://x/y"))}
    samples = {
        s.labels["sqlstate_class"]: s.value
        for s in families["dbops_server_log_errors"].samples
        if s.name == "dbops_server_log_errors_total"
    }
    assert samples == {"22": 2, "57": 1}
    assert "dbops_server_cpu_seconds" not in families  # unknown: no sample, not zero


LINE = b"2026-01-01 00:00:00.000 UTC [7] 22012 ERROR:  division by zero\n"  # 63 bytes


@pytest.fixture
def fresh_tails() -> Iterator[None]:
    resources._TAILS.clear()
    yield
    resources._TAILS.clear()


def _read(path: Path) -> dict[str, int]:
    counts = resources.read_log(path)
    assert counts is not None
    return dict(counts.errors)


@pytest.mark.usefixtures("fresh_tails")
def test_a_small_log_is_read_whole_on_the_first_read(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_bytes(LINE * 3)
    assert _read(log) == {"22": 3}  # the first line too: nothing is cut when reading from 0


@pytest.mark.usefixtures("fresh_tails")
def test_a_first_read_of_a_big_log_starts_at_the_next_whole_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(resources, "MAX_LOG_READ_BYTES", 100)
    log = tmp_path / "a.log"
    log.write_bytes(LINE * 4)  # 252 bytes: the last 100 start 26 bytes into line 3
    assert _read(log) == {"22": 1}


@pytest.mark.usefixtures("fresh_tails")
def test_more_than_the_bound_appended_between_reads_counts_only_the_newest_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(resources, "MAX_LOG_READ_BYTES", 140)
    log = tmp_path / "a.log"
    log.write_bytes(LINE)
    assert _read(log) == {"22": 1}
    with log.open("ab") as fh:
        fh.write(LINE * 5)  # 315 new bytes; the last 140 hold two whole lines and a part
    assert _read(log) == {"22": 1 + 2}
    with log.open("ab") as fh:
        fh.write(LINE * 2)  # within the bound: both, from where the last read ended
    assert _read(log) == {"22": 3 + 2}


@pytest.mark.usefixtures("fresh_tails")
def test_a_first_read_that_starts_on_a_line_end_counts_every_line_after_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bound lands on the newline of line 1: the skip is that one byte, lines 2-4 count."""
    monkeypatch.setattr(resources, "MAX_LOG_READ_BYTES", len(LINE) * 3 + 1)
    log = tmp_path / "a.log"
    log.write_bytes(LINE * 4)  # the last 190 bytes start at the "\n" that ends line 1
    assert (LINE * 4)[len(LINE) - 1 : len(LINE)] == b"\n"
    assert _read(log) == {"22": 3}


@pytest.mark.usefixtures("fresh_tails")
def test_an_overrun_cut_inside_a_timestamp_still_skips_that_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tail of a line can look like a whole one (the time part is free text): skip it."""
    assert len(LINE) == 63
    monkeypatch.setattr(resources, "MAX_LOG_READ_BYTES", 184)
    log = tmp_path / "a.log"
    log.write_bytes(LINE)
    assert _read(log) == {"22": 1}
    with log.open("ab") as fh:
        fh.write(LINE * 5)  # 378 bytes: the last 184 start 5 bytes into the fourth line
    assert LINE[5:].startswith(b"01-01 00:00:00.000 UTC [7] 22012 ERROR:")  # would match
    assert _read(log) == {"22": 1 + 2}


@pytest.mark.usefixtures("fresh_tails")
def test_a_truncated_log_is_read_again_from_its_start(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_bytes(LINE * 3)
    assert _read(log) == {"22": 3}
    with log.open("r+b") as fh:  # the same file (same inode), shorter: copytruncate
        fh.truncate(0)
        fh.write(LINE * 2)
    assert os.stat(log).st_size < 3 * len(LINE)
    assert _read(log) == {"22": 3 + 2}
    assert _read(log) == {"22": 5}


@pytest.mark.usefixtures("fresh_tails")
def test_an_unreadable_log_is_unknown_not_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "gone.log"
    assert resources.read_log(missing) is None
    assert resources._log_errors([missing]) is None
    log = tmp_path / "a.log"
    log.write_bytes(LINE * 2)
    assert resources._log_errors([missing, log]) == (CountBy(key="22", count=2),)
    empty = tmp_path / "empty.log"
    empty.write_bytes(b"")
    assert resources._log_errors([empty]) == ()  # read, and nothing in it


def test_a_login_time_that_is_no_date_is_untimed() -> None:
    def login(time: bytes) -> bytes:
        return time + b' [9] 28P01 FATAL:  password authentication failed for user "x"'

    counts = resources.count_log_lines(
        [login(b"2026-01-02 03:04:05.678 UTC"), login(b"2026-13-45 03:04:05 UTC")]
    )
    assert counts.access == {"login_failed": 2}
    assert counts.login_times == (datetime(2026, 1, 2, 3, 4, 5, 678_000, tzinfo=UTC),)
    assert counts.last_login_untimed is True
    again = resources.count_log_lines(
        [login(b"2026-13-45 03:04:05 UTC"), login(b"2026-01-02 03:04:05 GMT")]
    )
    assert again.last_login_untimed is False  # the latest one has a time


@pytest.mark.parametrize(
    ("content", "why"),
    [(None, "no file"), ("", "empty"), ("not-a-pid\n/data\n", "garbage"), ("999999999\n", "dead")],
)
def test_a_server_that_is_not_running_here_has_no_processes(
    tmp_path: Path, content: str | None, why: str
) -> None:
    if content is not None:
        (tmp_path / "postmaster.pid").write_text(content)
    assert resources.server_processes(tmp_path) is None, why


def test_only_42501_is_a_denial_other_class_42_errors_are_not() -> None:
    def line(code: str, text: str) -> bytes:
        return f"2026-01-02 03:04:05.000 UTC [9] {code} ERROR:  {text}".encode()

    counts = resources.count_log_lines(
        [
            line("42601", 'syntax error at or near "SELEC"'),
            line("42P01", 'relation "nope" does not exist'),
            line("42501", "permission denied for table users"),
            line("42501", 'new row violates row-level security policy for table "teams"'),
        ]
    )
    assert counts.errors == {"42": 4}
    assert counts.access == {"privilege_denied": 1, "rls_denied": 1}


@pytest.mark.usefixtures("fresh_tails")
def test_a_log_replaced_by_a_longer_one_is_read_from_its_start(tmp_path: Path) -> None:
    """Rotation by rename: another file (another inode) at the path, already longer than
    where the last read ended. Its first lines are new, not skipped."""
    log = tmp_path / "a.log"
    log.write_bytes(LINE * 2)
    assert _read(log) == {"22": 2}
    fresh = tmp_path / "a.log.new"
    fresh.write_bytes(LINE * 5)
    old_inode = os.stat(log).st_ino
    fresh.replace(log)
    assert os.stat(log).st_ino != old_inode
    assert os.stat(log).st_size > 2 * len(LINE)
    assert _read(log) == {"22": 2 + 5}
