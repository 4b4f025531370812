"""What the `dbops` command prints: plain lines, notes on stderr, tables, the seed progress bar.

Commands decide what to say; this module decides how it looks. Rich is imported when something
is printed, not when the command starts.
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID
    from rich.table import Table

    from dbops.monitoring.status import StatusReport
    from dbops.ops.migrate import RevisionInfo

__all__ = [
    "SeedProgress",
    "note",
    "print_history",
    "print_status",
    "rev",
    "revision_line",
    "say",
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
    _row(table, "server", f"PostgreSQL {server.server_version}")
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
    _out().print(table)


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
