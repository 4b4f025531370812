"""The dashboard's link to the database: cached handle, snapshot, findings and reads.

Pages call these functions and get frozen dataclasses or pandas DataFrames back; none of them
holds SQL or opens a connection (they import dbops' types and pure helpers only, such as the
snapshot's dataclasses). A failing read never raises into a page: it comes back as a
:class:`Note` the page shows on its panel.
"""

from __future__ import annotations

import importlib
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from dbops.config import Settings
from dbops.core.manifest import (
    BrokenManifest,
    default_backup_dir,
    drill_label,
    read_manifests,
)
from dbops.db import Database, open_database, readonly_dsn
from dbops.errors import DbopsError
from dbops.monitoring import Finding, Snapshot, evaluate
from dbops.monitoring.cadence import Cadence
from dbops.monitoring.checks import problems, worst_first
from dbops.services import Actor, MembershipService, TeamService

__all__ = [
    "ACTOR",
    "BACKUP_COLUMNS",
    "DRILL_COLUMNS",
    "PLAN_COLUMNS",
    "Backups",
    "Note",
    "Source",
    "backup_findings",
    "backups",
    "bouncer_findings",
    "close_all",
    "explain",
    "findings",
    "get_database",
    "get_settings",
    "index_advice",
    "load_snapshot",
    "maintenance_plan",
    "mask_email",
    "previous_snapshot",
    "process_series",
    "replication_findings",
    "search_teams",
    "source",
    "statement_series",
    "team_members",
    "xact_rate",
]

#: The service-layer actor of every dashboard read.
ACTOR = Actor.system("dashboard")

#: ``application_name`` of the dashboard's connections (shown on the Activity page).
APPLICATION_NAME = "dbops-dashboard"

NO_PROCESS_HISTORY = (
    "No application process has reported in this window: a process that opens the app "
    "database reports every DBOPS_PROCESS_REPORT_S seconds (`dbops up --serve`'s workload does)."
)
NO_HISTORY = (
    "No history captured yet: run `dbops monitor capture` "
    "(or `dbops up --serve`, which captures every minute)."
)


@dataclass(frozen=True)
class Note:
    """Why a panel has no data: shown as ``st.info`` (``warning`` False) or ``st.warning``."""

    message: str
    warning: bool = False


@dataclass(frozen=True)
class Source:
    """Where the snapshot comes from: a JSON file or a live database (redacted URL)."""

    kind: str
    label: str


class _ReadOnlySettings(Settings):
    """Settings whose connections start every transaction read-only."""

    def connection_options(self) -> str:
        """The usual session options plus ``default_transaction_read_only=on``."""
        return super().connection_options() + " -c default_transaction_read_only=on"


@st.cache_resource
def get_settings() -> Settings:
    """The process's settings (environment and `.env`), read once."""
    return Settings()


def _snapshot_file(settings: Settings) -> Path | None:
    return settings.dashboard_snapshot_file


def source() -> Source:
    """Where the data shown comes from."""
    settings = get_settings()
    path = _snapshot_file(settings)
    if path is not None:
        return Source("file", str(path))
    try:
        return Source("live", get_database().safe_url)
    except DbopsError as exc:
        return Source("live", f"unavailable ({exc})")


@st.cache_resource
def get_database() -> Database:
    """The dashboard's read-only pool: ``dashboard_database_url``, else the main URL.

    Every connection has ``default_transaction_read_only=on``; as dbops' read-only role
    (:func:`dbops.db.readonly_dsn`) it also has no write privilege at all.
    """
    settings = get_settings()
    values = dict(settings)
    values["application_name"] = APPLICATION_NAME
    values["pool_min_size"] = 0
    values["pool_max_size"] = min(settings.pool_max_size, 4)
    read_only = _ReadOnlySettings.model_construct(**values)
    # The dashboard only reads: like `dbops status` it never creates or starts a cluster, and
    # a stopped one is a note on each panel. On the embedded cluster it reads as dbops_readonly.
    dsn = readonly_dsn(settings)
    database = open_database(read_only, dsn, purpose="readonly")
    _OPENED.append(database)
    return database


#: Every pool :func:`get_database` opened in this process (for :func:`close_all`).
_OPENED: list[Database] = []


def close_all() -> None:
    """Close the dashboard's pools and forget every cached value (tests, shutdown)."""
    while _OPENED:
        _OPENED.pop().close()
    st.cache_data.clear()
    st.cache_resource.clear()


@st.cache_resource
def _history_of_snapshots() -> dict[str, Snapshot]:
    """The last two live snapshots (``current``, ``previous``), for rates between them."""
    return {}


@st.cache_data(max_entries=4, show_spinner=False)
def _snapshot_from_file(path: str, mtime: float) -> Snapshot:
    return Snapshot.from_json(Path(path).read_text(encoding="utf-8"))


@st.cache_resource
def _cadence() -> Cadence:
    """The process's snapshots: cheap collectors per page view, the slow ones carried.

    At 1M users the slow collectors (statements, bloat, tables, data counts) are most of a
    snapshot's 2-3 s; refreshed in the background every ``dashboard_slow_interval_s``, a page
    waits for the rest only (the exporter does the same, :mod:`dbops.monitoring.cadence`).
    """
    settings = get_settings()
    return Cadence(get_database(), settings, interval_s=settings.dashboard_slow_interval_s)


def refresh_now() -> None:
    """Forget the cached snapshot; the next one collects the slow parts too, while one waits."""
    _cadence().expire()
    st.cache_data.clear()


def carried_note(snap: Snapshot) -> str:
    """When the slow parts of ``snap`` were taken, for the sidebar."""
    part = snap.carried[0].collector  # the slow parts are refreshed together
    note = f"Statements, tables, indexes and data counts: {snap.collected_at(part):%H:%M:%S} UTC"
    older_s = snap.part_age_s(part)
    return note + (f", {older_s:,.0f} s before the snapshot" if older_s >= 1 else "")


@st.cache_data(max_entries=2, show_spinner="Collecting a snapshot…")
def _collect(bucket: int) -> Snapshot:
    snap = _cadence()()
    kept = _history_of_snapshots()
    if "current" in kept:
        kept["previous"] = kept["current"]
    kept["current"] = snap
    return snap


def load_snapshot() -> Snapshot:
    """The snapshot to show: from ``DBOPS_DASHBOARD_SNAPSHOT_FILE``, or collected live.

    A live snapshot is reused for ``dashboard_cache_ttl_s`` seconds by every page and viewer.

    Raises:
        DbopsError: the database cannot be reached at all (the app shows it as an error note).
    """
    settings = get_settings()
    path = _snapshot_file(settings)
    if path is not None:
        return _snapshot_from_file(str(path), path.stat().st_mtime)
    ttl = settings.dashboard_cache_ttl_s
    bucket = int(time.time() // ttl) if ttl > 0 else time.monotonic_ns()
    return _collect(bucket)


def previous_snapshot(current: Snapshot) -> Snapshot | None:
    """The live snapshot collected before ``current``, if this process has one."""
    kept = _history_of_snapshots()
    prev = kept.get("previous")
    if prev is None or prev.taken_at >= current.taken_at:
        return None
    return prev


def xact_rate(current: Snapshot) -> float | None:
    """Transactions per second (commits + rollbacks) between the last two snapshots."""
    prev = previous_snapshot(current)
    if prev is None or prev.database is None or current.database is None:
        return None
    a, b = prev.database, current.database
    if None in (a.commits, a.rollbacks, b.commits, b.rollbacks):
        return None
    seconds = (current.taken_at - prev.taken_at).total_seconds()
    if seconds <= 0:
        return None
    done = (b.commits or 0) + (b.rollbacks or 0) - (a.commits or 0) - (a.rollbacks or 0)
    return max(done, 0) / seconds


def findings() -> list[Finding]:
    """The health findings of the current snapshot, worst first."""
    found = evaluate(load_snapshot(), get_settings())
    return worst_first(found)


# ---------------------------------------------------------------------------- privacy
def mask_email(email: str) -> str:
    """``alice@example.com`` -> ``a***@example.com`` (unless ``dashboard_show_emails``)."""
    if get_settings().dashboard_show_emails:
        return email
    local, sep, domain = email.partition("@")
    if not sep:
        return "***"
    return f"{local[:1]}***@{domain}"


# ------------------------------------------------------------------------ service reads
def _live_only() -> Note | None:
    if _snapshot_file(get_settings()) is not None:
        return Note("This panel needs a live database (the dashboard shows a snapshot file).")
    return None


def search_teams(q: str, *, limit: int = 20) -> pd.DataFrame | Note:
    """Teams matching ``q`` through :meth:`TeamService.search_teams` (columns below)."""
    note = _live_only()
    if note is not None:
        return note
    try:
        matches = TeamService(get_database()).search_teams(ACTOR, q, limit=limit)
    except DbopsError as exc:
        return Note(str(exc), warning=True)
    rows = [
        {
            "id": str(m.team.id),
            "name": m.team.name,
            "slug": m.team.slug,
            "created": m.team.created_at,
            "match": "exact" if m.exact else "similar",
        }
        for m in matches
    ]
    return pd.DataFrame(rows, columns=["id", "name", "slug", "created", "match"])


def team_members(team_id: str) -> pd.DataFrame | Note:
    """Members of a team through :meth:`MembershipService.members`, e-mails masked."""
    note = _live_only()
    if note is not None:
        return note
    try:
        members = MembershipService(get_database()).members(ACTOR, uuid.UUID(team_id))
    except (DbopsError, ValueError) as exc:
        return Note(str(exc), warning=True)
    rows = [
        {
            "name": m.display_name,
            "email": mask_email(m.email),
            "role": str(m.role),
            "joined": m.joined_at,
        }
        for m in members
    ]
    return pd.DataFrame(rows, columns=["name", "email", "role", "joined"])


# ------------------------------------------------------------------ history and EXPLAIN
def _optional(module: str) -> Any | None:
    """A dbops module built by another part of the project, or ``None`` when absent."""
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


def _history(read: str, empty: str, *args: Any, **kwargs: Any) -> tuple[Any, ...] | Note:
    """``dbops.monitoring.history.<read>(db, ...)``'s points, or a note saying why there are none.

    A page never gets an exception: history not captured yet, its schema missing (a migration
    to run), no privilege or the module absent are each a note on the panel.
    """
    note = _live_only()
    if note is not None:
        return note
    history = _optional("dbops.monitoring.history")
    if history is None:
        return Note(empty)
    try:
        points = getattr(history, read)(get_database(), *args, **kwargs)
    except Exception as exc:  # any failure of the read is the panel's note, never a traceback
        return Note(f"{empty} ({exc})")
    return tuple(points) if points else Note(empty)


def statement_series(queryid: int, *, since: datetime | None = None) -> pd.DataFrame | Note:
    """A statement's captured history: ``captured_at``, calls/s, mean latency (ms), rows."""
    points = _history("statement_series", NO_HISTORY, queryid, since=since)
    if isinstance(points, Note):
        return points
    return pd.DataFrame(
        [
            {
                "captured_at": p.captured_at,
                "calls_per_s": p.calls_per_s,
                "mean_exec_time_ms": p.mean_exec_time_ms,
                "calls": p.calls,
                "rows": p.rows,
            }
            for p in points
        ]
    )


#: Columns of :func:`process_series`.
PROCESS_SERIES_COLUMNS = ["reported_at", "process", "in_use", "waiting", "size", "max_size"]


def process_series(*, since: datetime) -> pd.DataFrame | Note:
    """The application processes' pools over time, one row per process and sample.

    Columns: ``reported_at``, ``process`` (its label), connections in use, waiting requests,
    open connections and the pools' maximum.
    """
    points = _history("process_series", NO_PROCESS_HISTORY, since=since)
    if isinstance(points, Note):
        return points
    return pd.DataFrame(
        [
            {
                "reported_at": p.reported_at,
                "process": f"{p.name} (pid {p.pid})",
                "in_use": p.in_use,
                "waiting": p.waiting,
                "size": p.size,
                "max_size": p.max_size,
            }
            for p in points
        ],
        columns=PROCESS_SERIES_COLUMNS,
    )


def table_growth(*, since: datetime | None = None, limit: int = 10) -> pd.DataFrame | Note:
    """Table sizes over time from the history (``captured_at``, ``table``, ``total_bytes``)."""
    points = _history("table_growth", NO_HISTORY, since=since, limit=limit)
    if isinstance(points, Note):
        return points
    return pd.DataFrame([_as_dict(p) for p in points])


def _as_dict(value: Any) -> dict[str, Any]:
    fields = getattr(value, "__dataclass_fields__", None)
    if fields is not None:
        return {name: getattr(value, name) for name in fields}
    return dict(value)


def explain(query: str, *, analyze: bool = False) -> str | Note:
    """The plan of ``query`` through ``dbops monitor explain``'s safe path (read-only)."""
    note = _live_only()
    if note is not None:
        return note
    module = _optional("dbops.monitoring.explain")
    if module is None:
        return Note("EXPLAIN is not available in this version of dbops.")
    try:
        result = module.explain(get_database(), query, settings=get_settings(), analyze=analyze)
    except Exception as exc:  # refused as unsafe, parameters missing, timed out
        return Note(f"EXPLAIN failed: {exc}", warning=True)
    return str(result.text)


@st.cache_data(ttl=60, show_spinner="Verifying index candidates with the planner…")
def _advice(taken_at: datetime) -> tuple[list[dict[str, Any]], str | None]:
    from dbops.monitoring.advice import advise_report

    snap = load_snapshot()
    if snap.statements is None:
        return [], "No statements collected, so no index advice."
    try:
        with get_database().connection() as conn:
            report = advise_report(conn, snap.statements.top, settings=get_settings())
    except Exception as exc:
        hint = getattr(exc, "hint", None)
        message = getattr(exc, "message", None) or str(exc)
        return [], f"Index advice unavailable: {message}" + (f" ({hint})" if hint else "")
    rows = [
        {
            "table": f"{s.schema}.{s.table}",
            "columns": ", ".join(s.columns),
            "cost_before": max(g.cost_before for g in s.statements),
            "cost_after": min(g.cost_after for g in s.statements),
            "statements": len(s.statements),
            "saved_ms": s.saved_ms,
            "write_ms": s.write_ms,
            "create_sql": s.create_sql,
            "reason": s.reason,
        }
        for s in report.suggestions
    ]
    return rows, None


def index_advice() -> pd.DataFrame | Note:
    """Planner-verified index suggestions (hypopg) with cost before/after and the DDL."""
    note = _live_only()
    if note is not None:
        return note
    rows, problem = _advice(load_snapshot().taken_at)
    if problem is not None:
        return Note(problem)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------- backups and upkeep
#: Columns of :attr:`Backups.table`, one row per backup, newest first.
BACKUP_COLUMNS = [
    "id",
    "created",
    "age_h",
    "format",
    "size_bytes",
    "revision",
    "tables",
    "rows",
    "last_drill",
    "drill_s",
    "drill_message",
    "verified",
]
#: Columns of :attr:`Backups.drills`, one row per restore drill of any backup.
DRILL_COLUMNS = ["backup", "at", "result", "duration_s", "message"]
#: Columns of :func:`maintenance_plan`, most beneficial action first.
PLAN_COLUMNS = ["kind", "target", "reason", "estimated_bytes", "runs", "sql", "note"]

NO_BACKUPS = (
    "No backups in `{directory}` yet: create one with `dbops backup create`, "
    "then prove it restores with `dbops backup verify`."
)


@dataclass(frozen=True)
class Backups:
    """The backups in the backup directory, read from their manifests (no database).

    ``table`` has :data:`BACKUP_COLUMNS`; ``drills`` has :data:`DRILL_COLUMNS`; ``broken``
    names the folders whose manifest could not be read, with why.
    """

    directory: str
    table: pd.DataFrame
    drills: pd.DataFrame
    broken: tuple[str, ...]


def backups(now: datetime | None = None) -> Backups | Note:
    """Every backup of the ``backup_dir`` setting with its age and last restore drill.

    Reads the manifests on the dashboard's host (manifests hold no secret: the source is a
    database name and a redacted server). An empty or missing directory is a :class:`Note`
    with the command that creates the first backup.
    """
    settings = get_settings()
    directory = default_backup_dir(settings.backup_dir, settings.home)
    broken: list[BrokenManifest] = []
    try:
        manifests = read_manifests(directory, on_broken=broken.append)
    except OSError as exc:
        return Note(f"Cannot read the backup directory `{directory}`: {exc}", warning=True)
    problems = tuple(f"{b.path.name}: {b.reason}" for b in broken)
    if not manifests:
        extra = f" ({len(problems)} folder(s) with an unreadable manifest)" if problems else ""
        return Note(NO_BACKUPS.format(directory=directory) + extra, warning=bool(problems))
    at = now or datetime.now(UTC)
    rows = []
    drills: list[dict[str, Any]] = []
    for m in manifests:
        last = m.last_drill
        rows.append(
            {
                "id": m.id,
                "created": m.created_at,
                "age_h": round(max(0.0, (at - m.created_at).total_seconds()) / 3600, 2),
                "format": m.format,
                "size_bytes": m.size_bytes,
                "revision": m.revision or "none",
                "tables": len(m.tables),
                "rows": sum(t.rows for t in m.tables),
                "last_drill": drill_label(last),
                "drill_s": None if last is None else last.duration_s,
                "drill_message": "" if last is None else last.message,
                "verified": m.verified_at is not None,
            }
        )
        drills.extend(
            {
                "backup": m.id,
                "at": d.at,
                "result": d.label,
                "duration_s": d.duration_s,
                "message": d.message,
            }
            for d in m.drills
        )
    return Backups(
        directory=str(directory),
        table=pd.DataFrame(rows, columns=BACKUP_COLUMNS),
        drills=pd.DataFrame(drills, columns=DRILL_COLUMNS).sort_values("at", ascending=False),
        broken=problems,
    )


def bouncer_findings() -> list[Finding]:
    """The ``bouncer_waiting`` check's problems (clients waiting at PgBouncer)."""
    return problems(findings(), "bouncer_waiting")


def replication_findings() -> list[Finding]:
    """The replication checks' problems (Patroni, lag, slots) of the current snapshot."""
    checks = ("ha_cluster", "replication_lag", "replication_slots")
    return [f for f in problems(findings()) if f.check in checks]


def backup_findings() -> list[Finding]:
    """The backup checks' problems on the current snapshot (``backup_*``), worst first."""
    return [f for f in problems(findings()) if f.check.startswith("backup_")]


def maintenance_plan() -> pd.DataFrame | Note:
    """What ``dbops maintain run --apply`` would do now, from the current snapshot (read-only).

    Computed by :func:`dbops.monitoring.maintenance.plan` (pure); nothing is run.
    """
    from dbops.monitoring.maintenance import plan

    try:
        upkeep = plan(load_snapshot(), get_settings())
    except (DbopsError, OSError, ValueError) as exc:
        return Note(f"No maintenance plan: {exc}", warning=True)
    unknown = (
        f" (unknown: {', '.join(upkeep.unknown)} — their collector failed)"
        if upkeep.unknown
        else ""
    )
    if not upkeep.actions:
        return Note(f"Nothing to do: no table or index needs maintenance{unknown}.")
    rows = [
        {
            "kind": str(a.kind),
            "target": a.target,
            "reason": a.reason,
            "estimated_bytes": a.estimated_bytes,
            "runs": a.runs,
            "sql": a.sql,
            "note": a.note or "",
        }
        for a in upkeep.actions
    ]
    return pd.DataFrame(rows, columns=PLAN_COLUMNS)
