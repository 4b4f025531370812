"""`dbops up --serve`: workload, exporter, dashboard and scheduler, stopped cleanly by a signal."""

from __future__ import annotations

import importlib.util
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from typer.testing import CliRunner

from dbops.cli import app
from dbops.cli.serve import (
    Dashboard,
    ScheduledJob,
    backup_job,
    check_port,
    maintain_job,
    scheduled_jobs,
    serve,
    start_scheduler,
    verify_job,
)
from dbops.config import Settings
from dbops.db import Database, Dsn, EmbeddedCluster, open_database
from dbops.errors import ConfigError
from dbops.ops.seed import seed
from tests.fixtures.db import make_settings

DBOPS_SCRIPT = Path(sys.executable).parent / "dbops"
HAS_STREAMLIT = importlib.util.find_spec("streamlit") is not None
STAND_IN_APP = 'import streamlit as st\n\nst.title("stand-in dashboard")\n'


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.status, response.read().decode()


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (from /proc; no psutil needed)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


# ------------------------------------------------------------------- the real command
@pytest.fixture
def serve_home() -> Iterator[Path]:
    """A tmp dir the postgres user can enter (the cluster runs as postgres under root)."""
    tmp = Path(tempfile.mkdtemp(prefix="dbops-serve-"))
    tmp.chmod(0o755)
    yield tmp
    EmbeddedCluster(tmp / "home").destroy()
    shutil.rmtree(tmp, ignore_errors=True)


def _lines(stream, into: queue.Queue[str]) -> None:
    for line in stream:
        into.put(line)


@pytest.mark.slow
def test_up_serve_runs_everything_and_stops_on_ctrl_c(serve_home: Path) -> None:
    metrics_port, dashboard_port = free_port(), free_port()
    (serve_home / "app.py").write_text(STAND_IN_APP)
    clean = {k: v for k, v in os.environ.items() if k != "DATABASE_URL" and "DBOPS_" not in k}
    env = {
        **clean,
        "DBOPS_HOME": str(serve_home / "home"),
        "DBOPS_SERVE_EXPORTER_PORT": str(metrics_port),
        "DBOPS_SERVE_DASHBOARD_PORT": str(dashboard_port),
        "DBOPS_SERVE_DASHBOARD_APP": str(serve_home / "app.py"),
        "DBOPS_SERVE_STOP_TIMEOUT_S": "5",
        "DBOPS_EXPORTER_MIN_INTERVAL_S": "0",
    }
    started = time.monotonic()
    proc = subprocess.Popen(
        [str(DBOPS_SCRIPT), "up", "--users", "50", "--teams", "5", "--no-progress", "--serve"],
        cwd=serve_home,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out: queue.Queue[str] = queue.Queue()
    err: queue.Queue[str] = queue.Queue()
    readers = [
        threading.Thread(target=_lines, args=(proc.stdout, out), daemon=True),
        threading.Thread(target=_lines, args=(proc.stderr, err), daemon=True),
    ]
    for reader in readers:
        reader.start()
    seen: list[str] = []
    try:
        while "press Ctrl-C to stop\n" not in seen:
            assert time.monotonic() - started < 120, "".join(seen)
            assert proc.poll() is None, "".join(seen) + "".join(list(err.queue))
            try:
                seen.append(out.get(timeout=1))
            except queue.Empty:
                continue
        text = "".join(seen)
        assert f"metrics: http://127.0.0.1:{metrics_port}/metrics" in text
        if HAS_STREAMLIT:
            assert f"dashboard: http://127.0.0.1:{dashboard_port}" in text

        status, body = get(f"http://127.0.0.1:{metrics_port}/metrics")
        assert status == 200
        assert "dbops_up 1.0" in body
        # The workload's pool, from its report: labelled with the serving process's pid.
        workload = f'pid="{proc.pid}",pool="dbops",process="dbops workload"'
        assert f"dbops_pool_requests_total{{{workload}}}" in body
        # The exporter reads as dbops_monitor, and still has the data section (migration 0009).
        assert 'dbops_connections_by_user{user="dbops_monitor"}' in body
        assert 'dbops_data_users{state="live"} ' in body
        assert 'dbops_collector_errors_total{collector="data"} 0.0' in body
        print(f"up --serve to /metrics with data: {time.monotonic() - started:.1f} s")

        if HAS_STREAMLIT:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if get(f"http://127.0.0.1:{dashboard_port}/_stcore/health")[0] == 200:
                        break
                except OSError:
                    pass
                assert time.monotonic() < deadline, "the dashboard never answered"
                time.sleep(0.5)
        time.sleep(1.0)  # some workload
        children = descendants(proc.pid)
        if HAS_STREAMLIT:
            assert children, "the dashboard is not a child process"

        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0, "".join(list(err.queue))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for reader in readers:
            reader.join(5)
        for stream in (proc.stdout, proc.stderr):
            assert stream is not None
            stream.close()
    time.sleep(0.2)
    assert [pid for pid in children if alive(pid)] == []
    rest = "".join(list(out.queue))
    assert "stopped: workload, exporter" in rest
    assert "0 unexpected" in rest, rest
    notes = "".join(list(err.queue))
    assert "Traceback" not in notes
    if not HAS_STREAMLIT:
        assert "dashboard skipped: Streamlit is not installed" in notes
    # The port is free again.
    check_port(metrics_port, what="the exporter", setting="serve_exporter_port")


def test_a_taken_port_is_a_one_line_error_naming_the_setting(migrated: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(
            app,
            ["up", "--serve"],
            env={"DATABASE_URL": migrated, "DBOPS_SERVE_EXPORTER_PORT": str(port)},
        )
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert lines == [
        f"error: port {port} on 127.0.0.1 is in use (the exporter): "
        "set DBOPS_SERVE_EXPORTER_PORT to a free port"
    ]
    assert result.stdout == ""  # nothing was done before the check


def test_check_port_names_the_dashboard_setting() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match="DBOPS_SERVE_DASHBOARD_PORT"):
            check_port(port, what="the dashboard", setting="serve_dashboard_port")
    check_port(port, what="the dashboard", setting="serve_dashboard_port")  # free again


# ------------------------------------------------------------------------- the pieces
def _launch(code: str) -> Dashboard:
    dashboard = Dashboard.launch(
        [sys.executable, "-c", code], url="http://127.0.0.1:1", env=dict(os.environ), log=None
    )
    time.sleep(0.5)  # let it install its handler
    return dashboard


def test_dashboard_stop_terminates_a_cooperative_child() -> None:
    dashboard = _launch("import time; time.sleep(60)")
    assert dashboard.running()
    assert dashboard.stop(timeout_s=5) == -signal.SIGTERM
    assert not dashboard.running()


def test_dashboard_stop_kills_a_child_that_ignores_sigterm() -> None:
    dashboard = _launch(
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
    )
    started = time.monotonic()
    assert dashboard.stop(timeout_s=0.5) == -signal.SIGKILL
    assert time.monotonic() - started < 3


class _Counter:
    """A job body that counts its calls and fails when told to."""

    def __init__(self, fail: bool = False) -> None:
        self.calls = 0
        self.fail = fail

    def __call__(self) -> None:
        self.calls += 1
        if self.fail:
            raise RuntimeError("capture broke")


def test_scheduler_runs_each_job_on_its_interval(capsys: pytest.CaptureFixture[str]) -> None:
    fast, late = _Counter(), _Counter()
    scheduler = start_scheduler(
        [
            ScheduledJob("fast", "history capture", 0.2, 0.0, fast),
            ScheduledJob("late", "backup", 3600.0, 0.5, late),
        ]
    )
    assert scheduler is not None
    time.sleep(0.9)
    scheduler.shutdown(wait=True)
    calls = fast.calls
    assert calls >= 3
    assert late.calls == 1, "the first run waits its delay, the next its interval"
    time.sleep(0.4)
    assert fast.calls == calls, "a job ran after shutdown"
    assert (
        "scheduled: history capture every 0.2 s, backup every 1 h (first in 0.5 s)"
        in capsys.readouterr().out
    )


def test_a_failing_job_is_a_note_and_the_schedule_goes_on(
    capsys: pytest.CaptureFixture[str],
) -> None:
    failing = _Counter(fail=True)
    scheduler = start_scheduler([ScheduledJob("x", "history capture", 0.2, 0.0, failing)])
    assert scheduler is not None
    time.sleep(0.5)
    scheduler.shutdown(wait=True)
    assert failing.calls >= 2
    err = capsys.readouterr().err
    assert "history capture failed: capture broke" in err
    assert "Traceback" not in err


def test_scheduled_jobs_follow_the_settings() -> None:
    settings = Settings(_env_file=None)
    assert [j.id for j in scheduled_jobs(object(), settings)] == [  # type: ignore[arg-type]
        "history_capture",
        "history_prune",
        "backup",
        "verify",
        "maintain",
    ]
    off = Settings(
        _env_file=None,
        serve_backup_interval_s=0,
        serve_verify_interval_s=0,
        serve_maintain_interval_s=0,
    )
    assert [j.id for j in scheduled_jobs(object(), off)] == ["history_capture", "history_prune"]  # type: ignore[arg-type]
    backup = next(j for j in scheduled_jobs(object(), settings) if j.id == "backup")  # type: ignore[arg-type]
    assert (backup.interval_s, backup.first_run_s) == (settings.serve_backup_interval_s, 30.0)
    # The startup line says the maintenance is only planned unless the setting applies it.
    names = {j.id: j.name for j in scheduled_jobs(object(), settings)}  # type: ignore[arg-type]
    assert names["maintain"] == "maintenance plan (not applied)"
    applying = settings.model_copy(update={"serve_maintain_apply": True})
    assert {j.id: j.name for j in scheduled_jobs(object(), applying)}["maintain"] == "maintenance"  # type: ignore[arg-type]


@pytest.mark.slow
def test_backup_verify_and_maintain_jobs_on_a_real_database(
    clean_db: Database, database_url: str, tmp_path: Path
) -> None:
    """The bodies the scheduler runs: a backup that retention keeps, a drill that passes and is
    recorded, a maintenance plan that is said but not applied unless the setting allows it."""
    from dbops.ops.backup import read_manifests

    seed(clean_db, users=30, teams=3, seed=5)
    backups = tmp_path / "backups"
    settings = make_settings(
        database_url,
        backup_dir=backups,
        backup_keep_last=1,
        backup_keep_daily=0,
        backup_keep_weekly=0,
    )
    assert "pruned 0" in backup_job(clean_db, settings)
    assert "pruned 1" in backup_job(clean_db, settings), "keep_last=1 and nothing verified yet"
    assert verify_job(settings).startswith("restore drill: passed in ")
    verified = read_manifests(backups)[0]
    assert verified.last_drill is not None
    assert verified.last_drill.ok
    assert "pruned 0" in backup_job(clean_db, settings), "the newest verified backup stays"
    assert [m.id for m in read_manifests(backups)][1] == verified.id

    with clean_db.connection() as conn:
        conn.execute("CREATE TABLE churn AS SELECT g AS id FROM generate_series(1, 5000) g")
        conn.execute("DELETE FROM churn")
    try:
        said = maintain_job(clean_db, settings)
        assert said.startswith("maintenance: "), said
        assert "planned" in said, said
        applied = maintain_job(clean_db, make_settings(database_url, serve_maintain_apply=True))
        assert "0 failed" in applied, applied
        assert " 0 applied" not in applied, applied
    finally:
        with clean_db.connection() as conn:
            conn.execute("DROP TABLE churn")


def test_serve_in_process_until_stopped(
    clean_db: Database, database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(clean_db, users=50, teams=5, seed=11)
    port = free_port()
    settings = make_settings(
        database_url,
        serve_exporter_port=port,
        serve_dashboard_app=tmp_path / "missing.py",
        workload_rate=50,
        exporter_min_interval_s=0,
        process_report_s=0.2,
    )
    capture = _Counter()
    stop = threading.Event()
    answers: list[str] = []

    def scrape_then_stop() -> None:
        try:
            time.sleep(1.0)
            answers.append(get(f"http://127.0.0.1:{port}/metrics")[1])
        finally:
            stop.set()

    threading.Thread(target=scrape_then_stop, daemon=True).start()
    jobs = [ScheduledJob("capture", "history capture", 0.2, 0.0, capture)]
    serve(clean_db, settings, Dsn.parse(database_url), stop=stop, jobs=jobs)

    assert "dbops_up 1.0" in answers[0]
    # The workload's report (this process): its pool and its query cache.
    workload = f'pid="{os.getpid()}",pool="dbops",process="dbops workload"'
    assert f"dbops_pool_requests_total{{{workload}}}" in answers[0]
    assert f'dbops_cache_hits_total{{backend="memory",pid="{os.getpid()}"' in answers[0]
    assert capture.calls >= 1
    captured = capsys.readouterr()
    assert f"metrics: http://127.0.0.1:{port}/metrics" in captured.out
    assert "press Ctrl-C to stop" in captured.out
    assert "stopped: workload, exporter, scheduler" in captured.out
    assert "0 unexpected" in captured.out
    assert "dashboard skipped: no Streamlit app" in captured.err
    check_port(port, what="the exporter", setting="serve_exporter_port")  # closed


def test_the_dashboard_of_serve_reads_through_the_read_only_role(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On the embedded cluster `up --serve` hands the dashboard a role that cannot write."""
    import psycopg

    from dbops.cli.serve import DASHBOARD_ROLE, dashboard_database_url
    from dbops.config import load_settings
    from dbops.db import Dsn, EmbeddedCluster, open_database
    from dbops.ops.migrate import upgrade
    from dbops.ops.roles import grant_privileges, role_passwords, setup_roles

    home = tmp_path / "home"
    home.mkdir()
    home.chmod(0o755)
    tmp_path.chmod(0o755)
    monkeypatch.setenv("DBOPS_HOME", str(home))
    settings = load_settings()
    assert settings.embedded
    cluster = EmbeddedCluster(home, database=settings.embedded_database)
    try:
        url = cluster.ensure_running()
        with open_database(settings, url) as db:
            setup_roles(db, role_passwords(settings)[0])  # as `dbops up` does
            upgrade(url, settings, "head")
            with db.connection() as conn:
                grant_privileges(conn)
            readonly = dashboard_database_url(settings)
            assert readonly is not None
            # the dashboard reads it as DBOPS_DASHBOARD_DATABASE_URL: it must parse as a URL
            assert Dsn.parse(readonly).redacted.count(DASHBOARD_ROLE) == 1
            with psycopg.connect(readonly, autocommit=True) as conn:
                assert conn.execute("SELECT current_user").fetchone() == (DASHBOARD_ROLE,)
                assert conn.execute("SELECT count(*) FROM users").fetchone() is not None
                conn.execute("SET default_transaction_read_only = off")
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute("INSERT INTO teams (name, slug) VALUES ('x', 'x') RETURNING id")
    finally:
        cluster.destroy()


def test_serve_on_the_embedded_cluster_reads_as_the_monitor_role(
    clean_db: Database,
    database_url: str,
    pg_cluster: EmbeddedCluster,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """On the embedded cluster the exporter's snapshots run as dbops_monitor, the workload as
    dbops_app; the data section still comes through (aggregate functions), and the page is
    valid: the pool families come once, from the workload's report (not the exporter's pool)."""
    seed(clean_db, users=40, teams=4, seed=13)
    port = free_port()
    settings = Settings(
        _env_file=None,
        home=pg_cluster.home,  # the project's .dbops: the test cluster
        embedded_database=urlsplit(database_url).path[1:],
        serve_exporter_port=port,
        serve_dashboard_app=tmp_path / "missing.py",
        workload_rate=50,
        exporter_min_interval_s=0,
    )
    assert settings.embedded
    stop = threading.Event()
    answers: list[str] = []

    def scrape_then_stop() -> None:
        try:
            time.sleep(1.0)
            answers.append(get(f"http://127.0.0.1:{port}/metrics")[1])
        finally:
            stop.set()

    threading.Thread(target=scrape_then_stop, daemon=True).start()
    serve(clean_db, settings, Dsn.parse(database_url), stop=stop, jobs=[])
    body = answers[0]
    assert "dbops_up 1.0" in body
    assert 'dbops_collector_errors_total{collector="data"} 0.0' in body
    live = re.search(r'^dbops_data_users\{state="live"\} (\S+)$', body, re.MULTILINE)
    assert live is not None
    assert float(live.group(1)) >= 40  # the seed, and the workload's signups
    assert 'dbops_connections_by_user{user="dbops_monitor"}' in body
    helps = [line for line in body.splitlines() if line.startswith("# HELP ")]
    assert len(helps) == len(set(helps)), "a metric family is given twice"
    workload = f'pid="{os.getpid()}",pool="dbops",process="dbops workload"'
    assert f"dbops_pool_requests_total{{{workload}}}" in body
    assert "0 unexpected" in capsys.readouterr().out


def test_the_history_jobs_run_on_the_monitor_database(monitor_history_url: str) -> None:
    """Capture and prune run as dbops_monitor; backups and maintenance stay on ``db``."""
    settings = make_settings(monitor_history_url)
    admin = object()  # any use of the administrator's database by a history job would fail
    with open_database(settings, monitor_history_url) as monitor:
        jobs = {j.id: j for j in scheduled_jobs(admin, settings, monitor=monitor)}  # type: ignore[arg-type]
        jobs["history_capture"].call()
        jobs["history_prune"].call()
        with monitor.connection() as conn:
            row = conn.execute(
                "SELECT current_user::text, (SELECT count(*) FROM dbops_monitor.captures)"
            ).fetchone()
    assert row == ("dbops_monitor", 1)


def test_the_dashboard_of_the_embedded_cluster_finds_the_server_on_this_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No DATABASE_URL for the embedded cluster's dashboard: with it, the dashboard would not
    know the server runs here (no volume, CPU, memory or failed logins from its log)."""
    from dbops.cli.serve import dashboard_env
    from dbops.db import Dsn

    dsn = Dsn.parse("postgresql://postgres@/dbops?host=/tmp/run&port=5432")
    embedded = Settings(_env_file=None, home=tmp_path / "home")
    monkeypatch.setenv("DATABASE_URL", "postgresql://leftover@/x")  # not inherited
    env = dashboard_env(embedded, dsn, "postgresql://dbops_readonly@/dbops?host=/tmp/run")
    assert "DATABASE_URL" not in env
    assert env["DBOPS_HOME"] == str((tmp_path / "home").resolve())
    assert env["DBOPS_DASHBOARD_DATABASE_URL"].startswith("postgresql://dbops_readonly@")
    external = Settings(_env_file=None, database_url=dsn.libpq)
    assert dashboard_env(external, dsn, None)["DATABASE_URL"] == dsn.libpq
