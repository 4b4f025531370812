"""`dbops up --serve`: the long-running main job: workload, exporter, dashboard, scheduled jobs.

After `dbops up` has the database migrated and seeded, :func:`serve` starts, on 127.0.0.1:

- a small realistic workload through the services (:func:`dbops.workload.run_workload`),
  continuous at ``workload_rate`` until stopped, so the statements and pool panels have data;
  its pool, query cache and service statements are reported like any application process's
  (:mod:`dbops.telemetry.report`, as "dbops workload"), which is how the dashboard and the exporter
  see them;
- the Prometheus exporter (:func:`dbops.exporter.make_server`) on ``serve_exporter_port``; on
  the embedded cluster it reads as the monitor role (``dbops_monitor``: statistics and the data
  section's aggregate functions, no tenant row), like the history capture and prune;
- the Streamlit dashboard (``streamlit run serve_dashboard_app``) on ``serve_dashboard_port`` as
  a child process whose environment carries the database URL (skipped with a note when the app
  file or Streamlit is missing);
- an APScheduler ``BackgroundScheduler`` running :func:`scheduled_jobs`: history capture,
  logical backups with retention, restore drills of the newest backup, and the maintenance plan,
  at intervals from settings (``serve_*_interval_s``; 0 turns one off).

Ctrl-C (SIGINT) or SIGTERM stops all of it in reverse order: the workload threads are joined,
the scheduler shut down, the exporter closed, the dashboard terminated (killed after
``serve_stop_timeout_s``); the caller then closes the pool. A busy port is a one-line settings
error that names the setting to change.
"""

from __future__ import annotations

import errno
import importlib
import importlib.util
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from dbops.cli._render import note, say
from dbops.db.roles import ROLE_NAMES
from dbops.errors import ConfigError, DbopsError
from dbops.units import format_bytes

if TYPE_CHECKING:
    from apscheduler.schedulers.background import BackgroundScheduler

    from dbops.config import Settings
    from dbops.db import Database, Dsn
    from dbops.exporter import ExporterServer
    from dbops.services import QueryCache

__all__ = [
    "HOST",
    "Dashboard",
    "check_port",
    "dashboard_command",
    "serve",
    "start_exporter",
    "start_scheduler",
]

#: Everything `dbops up --serve` starts listens on loopback only.
HOST = "127.0.0.1"
#: How often old history is pruned.
PRUNE_INTERVAL_S = 3600.0
#: Delays of the first backup, restore drill and maintenance plan after `up --serve` starts.
FIRST_BACKUP_S = 30.0
FIRST_VERIFY_S = 120.0
FIRST_MAINTAIN_S = 60.0
#: Longest wait for the workload threads to finish their current operation.
WORKLOAD_JOIN_S = 30.0
#: Where the dashboard's output goes, under the dbops home.
DASHBOARD_LOG = "dashboard.log"
PORT_IN_USE = "port {port} on {host} is in use ({what}): set DBOPS_{setting} to a free port"


# ------------------------------------------------------------------------------ ports
def check_port(port: int, *, what: str, setting: str, host: str = HOST) -> None:
    """Fail with a one-line settings error when ``host:port`` cannot be bound.

    Raises:
        ConfigError: the port is taken; the message names the setting that changes it.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise _port_error(exc, port, what, setting, host) from None


def _port_error(exc: OSError, port: int, what: str, setting: str, host: str) -> DbopsError:
    if exc.errno in (errno.EADDRINUSE, errno.EACCES):
        message = PORT_IN_USE.format(port=port, host=host, what=what, setting=setting.upper())
        return ConfigError(message)
    return ConfigError(f"cannot listen on {host}:{port} ({what}): {exc.strerror}")


# --------------------------------------------------------------------------- exporter
def start_exporter(db: Database, settings: Settings) -> ExporterServer:
    """The exporter on ``serve_exporter_port``, serving in a thread.

    Snapshots are taken through ``db``. The application's pool, cache and service statements
    (the workload's here) come with them, from the processes' reports
    (:mod:`dbops.telemetry.report`): one route for each fact, whichever process runs the
    exporter.
    """
    from dbops.exporter import SnapshotSource, make_server

    port = settings.serve.exporter_port
    source = SnapshotSource.for_database(db, settings)
    try:
        server = make_server(settings, host=HOST, port=port, source=source)
    except OSError as exc:
        source.close()
        raise _port_error(exc, port, "the exporter", "serve_exporter_port", HOST) from None
    return server.start()


# -------------------------------------------------------------------------- dashboard
def dashboard_command(app: Path, port: int) -> list[str]:
    """``streamlit run`` of ``app`` on loopback, headless, without usage statistics."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(app),
        "--server.address",
        HOST,
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
    ]


class Dashboard:
    """A child process (the Streamlit server), stopped with SIGTERM, then SIGKILL."""

    def __init__(self, process: subprocess.Popen[bytes], url: str, log: Path | None) -> None:
        self.process = process
        self.url = url
        self.log = log

    @classmethod
    def launch(
        cls, command: list[str], *, url: str, env: dict[str, str], log: Path | None
    ) -> Dashboard:
        """Start ``command`` with ``env``; its output goes to ``log`` (or is dropped)."""
        if log is not None:
            log.parent.mkdir(parents=True, exist_ok=True)
            with log.open("ab") as out:
                process = subprocess.Popen(
                    command, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out
                )
        else:
            process = subprocess.Popen(
                command,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        return cls(process, url, log)

    def running(self) -> bool:
        """True while the child has not exited."""
        return self.process.poll() is None

    def stop(self, timeout_s: float) -> int:
        """Terminate the child, kill it after ``timeout_s``; its exit code (negative: signal)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


#: The login role the dashboard of `dbops up --serve` reads with on the embedded cluster.
DASHBOARD_ROLE = ROLE_NAMES["readonly"]


def dashboard_database_url(settings: Settings) -> str | None:
    """A URL for the read-only dashboard role, or None when dbops does not own the server.

    On the embedded cluster: ``dbops_readonly`` over the socket (``dbops up`` created it); on
    a ``DATABASE_URL`` the operator chooses: ``DBOPS_DASHBOARD_DATABASE_URL``, else the main
    URL with ``default_transaction_read_only``.
    """
    if settings.dashboard.database_url is None and not settings.embedded:
        return None
    from dbops.db import dsn_for

    # `dbops up` set the roles up (dbops.ops.roles): the read-only role reads across tenants
    # (BYPASSRLS) without the secret columns.
    return dsn_for(settings, "readonly").libpq


def _app_database(db: Database, settings: Settings) -> Database:
    """The services' own database, as an application opens it (``purpose="app"``).

    The app role on the embedded cluster (RLS applies), else ``DATABASE_URL``; a pool of its
    own, reported as the workload's process (:mod:`dbops.telemetry.report`).
    """
    from dbops.db import open_database
    from dbops.workload import WORKLOAD_PROCESS

    named = settings.model_copy(update={"process_name": settings.process_name or WORKLOAD_PROCESS})
    return open_database(named, purpose="app")


def _monitor_database(db: Database, settings: Settings) -> Database:
    """The exporter's and history's database: the monitor role on the embedded cluster, else ``db``.

    ``dbops_monitor`` (``dbops up`` set it up) reads the statistics views, writes the history
    schema and gets the data section's numbers from the aggregate functions of migration 0009;
    it reads no tenant row. Over the cluster's socket it needs no password.
    """
    if not settings.embedded:
        return db
    from dbops.db import open_database

    return open_database(settings, purpose="monitor")


def dashboard_env(settings: Settings, dsn: Dsn, readonly_url: str | None) -> dict[str, str]:
    """The environment of the dashboard's process."""
    env = {**os.environ, "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "0"}
    if settings.embedded:
        # The dashboard finds the embedded cluster itself (never starting it), so it knows
        # the server runs on this host: its volume, CPU, memory and log (failed logins).
        env["DBOPS_HOME"] = str(settings.home.resolve())
        env.pop("DATABASE_URL", None)
    else:
        env["DATABASE_URL"] = dsn.libpq
    if readonly_url is not None:
        # The dashboard reads through the read-only role (dashboard/data.py).
        env["DBOPS_DASHBOARD_DATABASE_URL"] = readonly_url
    return env


def start_dashboard(
    settings: Settings, dsn: Dsn, *, readonly_url: str | None = None
) -> Dashboard | None:
    """Streamlit on ``serve_dashboard_port``, or None with a note saying why it is skipped."""
    app = settings.serve.dashboard_app
    if not app.is_file():
        note(f"dashboard skipped: no Streamlit app at {app} (set DBOPS_SERVE_DASHBOARD_APP)")
        return None
    if importlib.util.find_spec("streamlit") is None:
        note("dashboard skipped: Streamlit is not installed in this environment")
        return None
    port = settings.serve.dashboard_port
    check_port(port, what="the dashboard", setting="serve_dashboard_port")
    env = dashboard_env(settings, dsn, readonly_url)
    return Dashboard.launch(
        dashboard_command(app, port),
        url=f"http://{HOST}:{port}",
        env=env,
        log=settings.home / DASHBOARD_LOG,
    )


# -------------------------------------------------------------------------- scheduler
@dataclass(frozen=True)
class ScheduledJob:
    """One job of the main job's scheduler: what it is, how often, and when first."""

    id: str
    name: str
    interval_s: float
    first_run_s: float
    call: Callable[[], object]


def scheduled_jobs(
    db: Database, settings: Settings, *, monitor: Database | None = None
) -> list[ScheduledJob]:
    """The jobs `dbops up --serve` runs, from settings (an interval of 0 turns a job off).

    Backups and maintenance run on ``db`` (the administrator); history capture and prune on
    ``monitor`` when given (the monitor role has exactly what they need), else on ``db``.

    - history capture every ``history_capture_interval_s`` (first at once), prune hourly;
    - a logical backup every ``serve_backup_interval_s`` (first after ``FIRST_BACKUP_S``, so
      a newcomer's dashboard shows one), followed by retention (``backup_keep_*``);
    - a restore drill of the newest backup every ``serve_verify_interval_s`` (first after
      ``FIRST_VERIFY_S``, once the first backup exists);
    - the maintenance plan every ``serve_maintain_interval_s``: said, and carried out only with
      ``serve_maintain_apply``.
    """
    from dbops.monitoring import history

    observer = monitor or db
    jobs = [
        ScheduledJob(
            "history_capture",
            "history capture",
            settings.history.capture_interval_s,
            0.0,
            lambda: history.capture(observer, settings),
        ),
        ScheduledJob(
            "history_prune",
            "history prune",
            PRUNE_INTERVAL_S,
            0.0,
            lambda: history.prune(observer, settings),
        ),
        ScheduledJob(
            "backup",
            "backup",
            settings.serve.backup_interval_s,
            FIRST_BACKUP_S,
            lambda: backup_job(db, settings),
        ),
        ScheduledJob(
            "verify",
            "restore drill",
            settings.serve.verify_interval_s,
            FIRST_VERIFY_S,
            lambda: verify_job(settings),
        ),
        ScheduledJob(
            "maintain",
            "maintenance" if settings.serve.maintain_apply else "maintenance plan (not applied)",
            settings.serve.maintain_interval_s,
            FIRST_MAINTAIN_S,
            lambda: maintain_job(db, settings),
        ),
    ]
    return [job for job in jobs if job.interval_s > 0]


def backup_job(db: Database, settings: Settings) -> str:
    """Take a logical backup of ``db`` and apply the retention rules; return what it did."""
    from dbops.workflows.backup import backup_and_prune

    manifest, pruned = backup_and_prune(settings, db.dsn)
    line = (
        f"backup {manifest.id}: {format_bytes(manifest.size_bytes)} in "
        f"{manifest.duration_s:.1f} s; pruned {len(pruned.delete)}"
    )
    say(line)
    return line


def verify_job(settings: Settings) -> str:
    """Prove the newest backup by restoring it into a throwaway cluster; return the result."""
    from dbops.errors import BackupNotFound
    from dbops.workflows.drill import restore_drill

    try:
        drill = restore_drill(settings)
    except BackupNotFound:
        line = "restore drill: no backup yet"
    else:
        line = f"restore drill: {drill.label} in {drill.duration_s:.1f} s"
    say(line)
    return line


def maintain_job(db: Database, settings: Settings) -> str:
    """Plan maintenance from a fresh snapshot; carry it out only with ``serve_maintain_apply``."""
    from dbops.ops.maintenance import Outcome
    from dbops.workflows.maintenance import plan_maintenance, run_maintenance

    actions = plan_maintenance(db, settings).actions
    if not actions:
        line = "maintenance: nothing to do"
    elif not settings.serve.maintain_apply:
        line = f"maintenance: {len(actions)} action(s) planned (dbops maintain plan)"
    else:
        report = run_maintenance(db, settings, actions, apply=True)
        line = (
            f"maintenance: {report.count(Outcome.APPLIED)} applied, "
            f"{report.count(Outcome.FAILED)} failed, {report.dead_rows_removed} dead rows removed"
        )
    say(line)
    return line


def _job(name: str, call: Callable[[], object]) -> Callable[[], None]:
    """A scheduled call whose failure is one note line, never a traceback or a dead scheduler."""

    def run() -> None:
        try:
            call()
        except Exception as exc:
            note(f"{name} failed: {exc}")

    return run


def start_scheduler(jobs: Sequence[ScheduledJob]) -> BackgroundScheduler | None:
    """An APScheduler ``BackgroundScheduler`` running ``jobs``; None when there are none."""
    from apscheduler.schedulers.background import BackgroundScheduler

    if not jobs:
        return None
    # Missed or overlapping runs collapse into one; a late run still runs.
    logging.getLogger("apscheduler").setLevel(logging.ERROR)
    scheduler = BackgroundScheduler(
        timezone=UTC,
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
    )
    now = datetime.now(UTC)
    for job in jobs:
        scheduler.add_job(
            _job(job.name, job.call),
            "interval",
            seconds=job.interval_s,
            next_run_time=now + timedelta(seconds=job.first_run_s),
            id=job.id,
        )
    scheduler.start()
    say("scheduled: " + ", ".join(_when(job) for job in jobs))
    return scheduler


def _when(job: ScheduledJob) -> str:
    """``backup every 6 h (first in 30 s)``: what the startup line promises, as it will run."""
    first = f" (first in {_every(job.first_run_s)})" if job.first_run_s > 0 else ""
    return f"{job.name} every {_every(job.interval_s)}{first}"


def _every(seconds: float) -> str:
    for unit, size in (("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g} {unit}"
    return f"{seconds:g} s"


# ---------------------------------------------------------------------------- signals
@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """Set ``stop`` on SIGINT (Ctrl-C) and SIGTERM; restore the handlers afterwards."""

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


# ------------------------------------------------------------------------------- main
def _workload_thread(
    db: Database, settings: Settings, cache: QueryCache, stop: threading.Event
) -> threading.Thread:
    from dbops.workload import run_workload

    def run() -> None:
        try:
            result = run_workload(
                db,
                duration_s=None,
                rate=settings.serve.workload_rate,
                stop=stop,
                cache=cache,
                threads=settings.serve.workload_threads,
            )
        except DbopsError as exc:
            note(f"workload skipped: {exc}")
            return
        extra = f"; last unexpected error: {result.last_unexpected}" if result.unexpected else ""
        say(
            f"workload: {result.total:,} operations at {result.rate:.1f}/s, "
            f"{sum(result.errors.values()):,} expected errors, "
            f"{sum(result.unexpected.values()):,} unexpected{extra}"
        )

    thread = threading.Thread(target=run, name="dbops-workload", daemon=True)
    thread.start()
    return thread


def serve(
    db: Database,
    settings: Settings,
    dsn: Dsn,
    *,
    stop: threading.Event | None = None,
    jobs: Sequence[ScheduledJob] | None = None,
) -> None:
    """Run workload, exporter, dashboard and scheduler until SIGINT/SIGTERM or ``stop``.

    ``jobs`` replaces :func:`scheduled_jobs` (tests).

    The caller owns ``db`` and closes it after this returns.

    Raises:
        ConfigError: a port is taken (the message names the setting that changes it).
    """
    from dbops.services import MemoryCache

    stop = stop or threading.Event()
    check_port(settings.serve.exporter_port, what="the exporter", setting="serve_exporter_port")
    cache = MemoryCache(ttl_s=30)
    with stop_on_signals(stop):
        monitor_db: Database | None = None
        app_db: Database | None = None
        exporter: ExporterServer | None = None
        dashboard: Dashboard | None = None
        scheduler: BackgroundScheduler | None = None
        workload_stop = threading.Event()
        workload: threading.Thread | None = None
        try:
            monitor_db = _monitor_database(db, settings)
            app_db = _app_database(db, settings)
            exporter = start_exporter(monitor_db, settings)
            dashboard = start_dashboard(
                settings, dsn, readonly_url=dashboard_database_url(settings)
            )
            workload = _workload_thread(app_db, settings, cache, workload_stop)
            say(
                f"workload: {settings.serve.workload_rate:g} operations/s through the services "
                f"({settings.serve.workload_threads} threads)"
            )
            if jobs is None:
                jobs = scheduled_jobs(db, settings, monitor=monitor_db)
            scheduler = start_scheduler(jobs)
            say(f"metrics: {exporter.url}/metrics")
            if dashboard is not None:
                say(f"dashboard: {dashboard.url}")
            say("press Ctrl-C to stop")
            _wait(stop, dashboard)
            say("stopping ...")
        finally:
            workload_stop.set()
            if workload is not None:
                workload.join(WORKLOAD_JOIN_S)
            if scheduler is not None:
                scheduler.shutdown(wait=True)
            if exporter is not None:
                exporter.close()
            for opened in (app_db, monitor_db):
                if opened is not None and opened is not db:
                    opened.close()
            if dashboard is not None:
                dashboard.stop(settings.serve.stop_timeout_s)
    stopped = ["workload", "exporter"]
    stopped += ["scheduler"] if scheduler is not None else []
    stopped += ["dashboard"] if dashboard is not None else []
    say(f"stopped: {', '.join(stopped)}")


def _wait(stop: threading.Event, dashboard: Dashboard | None) -> None:
    """Wait for ``stop``; say so once if the dashboard exits by itself meanwhile."""
    watched = dashboard
    while not stop.wait(0.5):
        if watched is not None and not watched.running():
            where = f" (see {watched.log})" if watched.log is not None else ""
            note(f"the dashboard exited with code {watched.process.returncode}{where}")
            watched = None
