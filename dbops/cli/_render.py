"""What the `dbops` command prints: plain lines, notes on stderr, tables, the seed progress bar.

Commands decide what to say; this module decides how it looks. Rich is imported when something
is printed, not when the command starts.
"""

from __future__ import annotations

from collections import Counter
from types import TracebackType
from typing import TYPE_CHECKING

from dbops.units import format_bytes

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID
    from rich.table import Table

    from dbops.monitoring.checks import Finding
    from dbops.monitoring.snapshot import CaptureResult, PruneResult, Snapshot
    from dbops.monitoring.status import ConnectionSecurity, StatusReport
    from dbops.ops.migrate import RevisionInfo

__all__ = [
    "SeedProgress",
    "capture_line",
    "note",
    "print_findings",
    "print_history",
    "print_snapshot",
    "print_status",
    "prune_line",
    "rev",
    "revision_line",
    "say",
    "tls_line",
]


def _out() -> Console:
    from rich.console import Console

    return Console(highlight=False)


def say(message: str) -> None:
    """Print a plain line to stdout (no markup, never wrapped)."""
    _out().print(message, markup=False, soft_wrap=True)


def note(message: str) -> None:
    """Print a note to stderr, so that stdout stays parseable (``--json``, ``db url``)."""
    from rich.console import Console

    Console(stderr=True, highlight=False).print(message, markup=False, soft_wrap=True)


def rev(revision: str | None) -> str:
    """A revision for humans: ``base (empty)`` for a database that was never migrated."""
    return revision if revision is not None else "base (empty)"


def revision_line(current: str | None, head: str, pending: list[str]) -> str:
    """Where the schema is relative to the code's head."""
    if current == head and not pending:
        return f"{current} (head)"
    if current is not None and current != head and not pending:
        return f"{current} (not a revision of this code; head is {head})"
    return f"{rev(current)}; head is {head}: {len(pending)} pending ({', '.join(pending)})"


def _kv_table(title: str) -> Table:
    from rich.table import Table

    table = Table(title=title, show_header=False)
    table.add_column("key", style="bold", no_wrap=True)
    table.add_column("value", overflow="fold")
    return table


def _row(table: Table, key: str, value: str) -> None:
    """Add a row whose value is plain text (brackets in data are not rich markup)."""
    from rich.text import Text

    table.add_row(key, Text(value))


def print_kv(title: str, rows: list[tuple[str, str]]) -> None:
    """A two-column key/value table."""
    table = _kv_table(title)
    for key, value in rows:
        _row(table, key, value)
    _out().print(table)


def print_status(report: StatusReport) -> None:
    """The `dbops status` report: the URL on a line of its own, then the table."""
    where = "embedded cluster" if report.embedded else "DATABASE_URL"
    # On its own line, never wrapped by rich: a URL folded at 80 columns cannot be copied.
    say(f"database: {report.url}  [{where}]")
    table = _kv_table("dbops status")
    server = report.server
    from dbops.db.builds import SUPPORTED_RANGE

    flag = "" if server.supported else f" (not supported: dbops runs on {SUPPORTED_RANGE})"
    _row(table, "server", f"PostgreSQL {server.server_version}{flag}")
    _row(table, "size", f"{server.size_pretty} ({server.size_bytes:,} bytes) in {server.database}")
    _row(
        table,
        "revision",
        revision_line(report.current_revision, report.head_revision, list(report.pending)),
    )
    counts = report.counts
    if counts is None:
        _row(table, "rows", "unavailable: schema not migrated (run `dbops migrate`)")
    else:
        _row(table, "users", f"{counts.live_users:,} live, {counts.deleted_users:,} deleted")
        _row(table, "teams", f"{counts.live_teams:,} live, {counts.deleted_teams:,} deleted")
        _row(table, "memberships", f"{counts.memberships:,}")
        by_status = ", ".join(f"{c.status} {c.count:,}" for c in counts.invitations_by_status)
        _row(table, "invitations", f"{counts.invitations:,} ({by_status})")
    pool = report.pool
    _row(
        table,
        "pool",
        f"{pool.min_size}-{pool.max_size} connections, idle {pool.max_idle_s:g} s, "
        f"wait {pool.timeout_s:g} s, lifetime {pool.max_lifetime_s:g} s",
    )
    _row(
        table,
        "pre-ping",
        f"on (skipped within {pool.pre_ping_bypass_s:g} s of use)" if pool.pre_ping else "off",
    )
    _row(
        table,
        "prepared statements",
        f"on (after {pool.prepare_threshold} runs)" if pool.prepared_statements else "off",
    )
    _row(
        table,
        "timeouts",
        f"statement {pool.statement_timeout_ms:,} ms, lock {pool.lock_timeout_ms:,} ms, "
        f"idle in transaction {pool.idle_in_transaction_timeout_ms:,} ms",
    )
    _row(table, "TLS", tls_line(report.tls))
    _out().print(table)


def tls_line(tls: ConnectionSecurity) -> str:
    """``on (TLSv1.3, cipher, bits)``, or ``off`` and why it does not matter on a socket."""
    if tls.ssl:
        bits = f", {tls.bits}-bit" if tls.bits else ""
        return f"on ({tls.version}, {tls.cipher}{bits})"
    return "off (unix socket: local only)" if tls.unix_socket else "off: connection not encrypted"


def print_snapshot(
    snap: Snapshot,
    findings: list[Finding],
    *,
    top: int = 5,
    wide: bool = False,
    everyone: bool = False,
) -> None:
    """The `dbops monitor snapshot` summary: key facts, top statements, index advice, errors.

    ``findings`` are the checks' over ``snap``: the index counts are theirs, so the summary
    says what `dbops monitor checks`, the dashboard and the exporter say. A query is one line
    cut to the terminal unless ``wide``. The top statements are the application's
    (:meth:`Snapshot.app_statements`, as on the dashboard) unless ``everyone``.
    """
    from rich.table import Table
    from rich.text import Text

    table = _kv_table(f"dbops snapshot at {snap.taken_at:%Y-%m-%d %H:%M:%S} UTC")
    server = snap.server
    if server is not None:
        role = "standby" if server.in_recovery else "primary"
        _row(
            table,
            "server",
            f"PostgreSQL {server.version} ({role}), {server.database} as {server.current_user}",
        )
    else:
        _row(table, "server", "unknown")
    database = snap.database
    _row(table, "size", format_bytes(database.size_bytes if database else None, unknown="unknown"))
    activity = snap.activity
    if activity is not None and activity.total is not None:
        limit = f" of {activity.max_connections:,}" if activity.max_connections else ""
        states = ", ".join(f"{c.key or 'none'} {c.count}" for c in activity.by_state or ())
        _row(
            table, "connections", f"{activity.total:,}{limit}" + (f" ({states})" if states else "")
        )
    else:
        _row(table, "connections", "unknown")
    indexes = snap.indexes
    if indexes is not None:
        from dbops.monitoring.checks import problems

        found = Counter(f.check for f in problems(findings))
        invalid = found["invalid_indexes"]
        duplicate = found["duplicate_indexes"]
        unused = found["unused_indexes"]
        _row(
            table,
            "indexes",
            f"{len(indexes):,}: {unused} unused, {duplicate} duplicate, {invalid} invalid",
        )
    else:
        _row(table, "indexes", "unknown")
    if snap.statements is not None:
        stats = snap.statements
        _row(table, "statements", f"{stats.entries:,} entries, {stats.total_calls:,} calls")
    if snap.advice is not None:
        _row(table, "index advice", f"{len(snap.advice.suggestions)} verified suggestions")
    if database is not None and database.replicas is not None:
        streaming = len(database.replicas)
        kept = sum(s.retained_bytes or 0 for s in database.slots or ())
        _row(
            table,
            "replication",
            f"{streaming} standby streaming, slots keep {format_bytes(kept)}"
            if streaming == 1
            else f"{streaming} standbys streaming, slots keep {format_bytes(kept)}",
        )
    if snap.bouncer is not None:
        waiting = sum(p.clients_waiting for p in snap.bouncer.pools)
        wait = max((p.max_wait_s for p in snap.bouncer.pools), default=0.0)
        _row(table, "pgbouncer", f"{waiting} clients waiting (longest {wait:.1f} s)")
    _row(table, "errors", str(len(snap.errors)))
    _row(table, "collected in", f"{snap.duration_s * 1000:.0f} ms")
    out = _out()
    out.print(table)

    shown = snap.statements.top if everyone and snap.statements else snap.app_statements()
    if shown:
        whose = "statements" if everyone else "application statements"
        statements = Table(title=f"top {top} {whose} by total time")
        # The numbers keep their width (a 64-bit queryid has up to 20 characters); the query
        # takes what is left of the terminal, one line cut with an ellipsis unless wide.
        numbers = (("queryid", 20), ("calls", 7), ("total s", 8), ("mean ms", 8))
        for name, width in numbers:
            statements.add_column(name, justify="right", no_wrap=True, min_width=width)
        rest = out.width - sum(w for _, w in numbers) - 3 * (len(numbers) + 1) - 1
        if wide:
            statements.add_column("query", overflow="fold", min_width=12, max_width=max(rest, 12))
        else:
            statements.add_column(
                "query", overflow="ellipsis", no_wrap=True, max_width=max(rest, 12)
            )
        for q in shown[:top]:
            statements.add_row(
                str(q.queryid),
                f"{q.calls:,}",
                f"{q.total_exec_time_ms / 1000:,.1f}",
                f"{q.mean_exec_time_ms:,.2f}",
                Text(" ".join((q.query or "").split())[: None if wide else 200]),
            )
        out.print(statements)
    if snap.advice is not None and snap.advice.suggestions:
        advice = Table(title="suggested indexes (planner-verified)")
        advice.add_column("saves ms", justify="right", no_wrap=True)
        advice.add_column("create", overflow="fold")
        advice.add_column("why", overflow="fold")
        for s in snap.advice.suggestions:
            advice.add_row(f"{s.saved_ms:,.0f}", Text(s.create_sql), Text(s.reason))
        out.print(advice)
    if snap.errors:
        errors = Table(title="collector errors")
        errors.add_column("collector", no_wrap=True)
        errors.add_column("message", overflow="fold")
        errors.add_column("hint", overflow="fold")
        for e in snap.errors:
            errors.add_row(e.collector, Text(e.message), Text(e.hint or ""))
        out.print(errors)


_SEVERITY_STYLE = {"ok": "green", "warning": "yellow", "critical": "bold red"}


def print_findings(findings: list[Finding]) -> None:
    """The `dbops monitor checks` table: severity, check, message, hint; worst first."""
    from rich.table import Table
    from rich.text import Text

    from dbops.monitoring.checks import worst_first

    table = Table(title="dbops checks")
    table.add_column("severity", no_wrap=True)
    table.add_column("check", no_wrap=True)
    table.add_column("message", overflow="fold")
    table.add_column("hint", overflow="fold")
    for f in worst_first(findings):
        severity = str(f.severity)
        table.add_row(
            Text(severity, style=_SEVERITY_STYLE.get(severity, "")),
            f.check,
            Text(f.message),
            Text(f.hint or ""),
        )
    _out().print(table)


def capture_line(result: CaptureResult) -> str:
    """One line for `dbops monitor capture`: a baseline, or N samples from M entries."""
    if result.baseline:
        line = f"capture {result.capture_id}: baseline of {result.entries} entries"
    else:
        line = (
            f"capture {result.capture_id}: {result.samples} samples from {result.entries} entries"
        )
        if result.interval_s is not None:
            line += f" over {result.interval_s:.1f} s"
    line += f" in {result.duration_ms:.1f} ms"
    extras = []
    if result.new_statements:
        extras.append(f"{result.new_statements} new statements")
    if result.restarted:
        extras.append(f"{result.restarted} restarted from zero")
    if result.reset_detected:
        extras.append("pg_stat_statements was reset")
    return line + (f" ({', '.join(extras)})" if extras else "")


def prune_line(result: PruneResult) -> str:
    """One line for `dbops monitor prune`: what was deleted, older than the cutoff."""
    return (
        f"deleted {result.captures} captures, {result.statement_samples} statement samples, "
        f"{result.database_samples} database samples, {result.table_samples} table samples "
        f"and {result.statements} statement texts older than {result.cutoff.isoformat()}"
    )


def print_history(revisions: list[RevisionInfo]) -> None:
    """The migration history, newest first."""
    from rich.table import Table
    from rich.text import Text

    table = Table(show_edge=False)
    table.add_column("revision")
    table.add_column("down")
    table.add_column("message", overflow="fold")
    for info in revisions:
        name = f"{info.revision} (head)" if info.is_head else info.revision
        table.add_row(name, info.down_revision or "base", Text(info.message))
    _out().print(table)


class SeedProgress:
    """A rich progress bar on stderr, one task per table, fed by the seed's progress callback.

    Use as a context manager; pass :meth:`update` as ``progress=`` to the seed.
    """

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self._progress: Progress = Progress(
            TextColumn("{task.description:<12}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
        )
        self._tasks: dict[str, TaskID] = {}

    def update(self, table: str, done: int, total: int) -> None:
        """Show ``done`` of ``total`` rows written to ``table``."""
        task = self._tasks.get(table)
        if task is None:
            task = self._tasks[table] = self._progress.add_task(table, total=total)
        self._progress.update(task, completed=done, total=total)

    def __enter__(self) -> SeedProgress:
        self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.stop()
