"""`dbops maintain plan|run`: VACUUM, ANALYZE and REINDEX CONCURRENTLY planned from a snapshot.

`plan` collects a snapshot and prints what it calls for; `run` does the same and carries the
actions out (:mod:`dbops.workflows.maintenance`): a dry run unless ``--apply`` is given.
Neither starts a stopped embedded cluster (there is nothing to maintain in it). The tables
and the progress display are drawn here, with rich imported on use.
"""

from __future__ import annotations

from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Annotated

import typer

from dbops.cli import _target
from dbops.cli._render import note
from dbops.units import format_bytes

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from dbops.config import Settings
    from dbops.db import Database
    from dbops.monitoring.maintenance import MaintenancePlan
    from dbops.ops.maintenance import Facts, MaintenanceReport, ProgressEvent

__all__ = ["FAILED_EXIT", "MaintainProgress", "maintain_app", "plan", "run"]

#: Exit code of `dbops maintain run --apply` when an action failed (1-3 are dbops errors).
FAILED_EXIT = 4

#: The kinds `--only` accepts (kept here: the help must not import the ops module).
KINDS = ("analyze", "vacuum", "vacuum_analyze", "reindex", "advisory")

maintain_app = typer.Typer(
    name="maintain",
    help="Maintenance from a snapshot: stale statistics, dead rows, invalid or bloated "
    "indexes, sequences near their maximum. `plan` lists, `run --apply` does it.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


def _collect_plan(settings: Settings, db: Database) -> MaintenancePlan:
    """A fresh snapshot of ``db``, and the plan it calls for."""
    from dbops.workflows.maintenance import plan_maintenance

    return plan_maintenance(db, settings)


@maintain_app.command("plan")
def plan(
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
) -> None:
    """What maintenance a fresh snapshot calls for, most beneficial first, with reasons.

    Read-only. See docs/settings.md (maintain_*) for the thresholds.
    """
    settings = _target.settings()
    dsn = _target.dsn_to_read(settings)
    with _target.database(settings, dsn) as db:
        maintenance = _collect_plan(settings, db)
    if as_json:
        typer.echo(maintenance.to_json())
    else:
        print_plan(maintenance)


@maintain_app.command("run")
def run(
    apply: Annotated[
        bool, typer.Option("--apply", help="Really run the statements (default: a dry run).")
    ] = False,
    only: Annotated[
        list[str] | None,
        typer.Option(
            "--only",
            metavar="KIND",
            help=f"Only this kind of action (repeatable): {', '.join(KINDS)}.",
        ),
    ] = None,
    table: Annotated[
        str | None,
        typer.Option(
            "--table", metavar="NAME", help="Only actions on this table (name or schema.name)."
        ),
    ] = None,
) -> None:
    """Plan from a fresh snapshot, then run each action under lock and statement timeouts.

    VACUUM and ANALYZE run as such; indexes are rebuilt with REINDEX INDEX CONCURRENTLY (a
    failed one leaves no invalid index behind). Each statement has its own connection, so one
    failure does not stop the rest. Exit code 4 when an applied action failed.
    """
    from dbops.workflows.maintenance import run_maintenance

    settings = _target.settings()
    dsn = _target.dsn_to_read(settings)
    with _target.database(settings, dsn) as db:
        maintenance = _collect_plan(settings, db).only(only, table)
        if not maintenance.actions:
            typer.echo("nothing to do")
            return
        with MaintainProgress(enabled=apply) as progress:
            report = run_maintenance(
                db,
                settings,
                maintenance.actions,
                apply=apply,
                progress=progress.update if apply else None,
            )
    print_report(report)
    if not apply:
        note("dry run: nothing was changed; run again with --apply to do it")
    if report.failed:
        raise typer.Exit(FAILED_EXIT)


# ------------------------------------------------------------------------------- drawing


def print_plan(maintenance: MaintenancePlan) -> None:
    """The plan as a table: kind, target, reason, bytes to gain, SQL."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    out = Console(highlight=False)
    if not maintenance.actions:
        out.print("nothing to do", markup=False)
    else:
        table = Table(title=f"maintenance plan ({len(maintenance.actions)} actions)")
        table.add_column("#", justify="right", no_wrap=True)
        table.add_column("kind", no_wrap=True)
        table.add_column("target", overflow="fold")
        table.add_column("reason", overflow="fold")
        table.add_column("gain", justify="right", no_wrap=True)
        table.add_column("sql", overflow="fold")
        for number, a in enumerate(maintenance.actions, 1):
            sql = a.sql if a.runs else f"by hand: {a.sql}" + (f" ({a.note})" if a.note else "")
            table.add_row(
                str(number),
                str(a.kind),
                Text(a.target),
                Text(a.reason),
                format_bytes(a.estimated_bytes, unknown=""),
                Text(sql),
            )
        out.print(table)
    if maintenance.unknown:
        note(f"unknown (collector failed): {', '.join(maintenance.unknown)}")


def _change(label: str, before: str | None, after: str | None) -> str | None:
    if before is None:
        return None
    return f"{label} {before}" + (f" -> {after}" if after is not None else "")


def _when(value: datetime | None) -> str:
    return "never" if value is None else f"{value:%Y-%m-%d %H:%M:%S}"


def _facts_change(kind: str, before: Facts | None, after: Facts | None) -> str:
    """The facts this kind of action changes, ``before -> after`` (``before`` in a dry run)."""
    if before is None:
        return ""
    parts: list[str | None] = []
    if kind in ("vacuum", "vacuum_analyze") and before.dead_rows is not None:
        dead_after = after.dead_rows if after is not None else None
        parts.append(
            _change(
                "dead rows",
                f"{before.dead_rows:,}",
                None if after is None or dead_after is None else f"{dead_after:,}",
            )
        )
    if kind in ("analyze", "vacuum_analyze"):
        parts.append(
            _change(
                "last analyze",
                _when(before.last_analyze),
                None if after is None else _when(after.last_analyze),
            )
        )
    if kind == "reindex":
        if before.index_bytes is not None:
            parts.append(
                _change(
                    "size",
                    format_bytes(before.index_bytes, unknown=""),
                    None
                    if after is None or after.index_bytes is None
                    else format_bytes(after.index_bytes, unknown=""),
                )
            )
        if before.index_valid is not None:
            parts.append(
                _change(
                    "",
                    "valid" if before.index_valid else "invalid",
                    None
                    if after is None or after.index_valid is None
                    else ("valid" if after.index_valid else "invalid"),
                )
            )
    return ", ".join(p.strip() for p in parts if p)


_OUTCOME_STYLE = {"applied": "green", "skipped": "", "failed": "bold red"}


def print_report(report: MaintenanceReport) -> None:
    """Each action's outcome, duration, before -> after facts and reason; then the totals."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from dbops.ops.maintenance import Outcome

    title = "maintenance run" if report.applied_mode else "maintenance dry run"
    table = Table(title=title)
    table.add_column("kind", no_wrap=True)
    table.add_column("target", overflow="fold")
    table.add_column("outcome", no_wrap=True)
    table.add_column("s", justify="right", no_wrap=True)
    table.add_column("before -> after", overflow="fold")
    table.add_column("why / sql", overflow="fold")
    for r in report.results:
        outcome = str(r.outcome)
        why = r.reason or ""
        if r.outcome is Outcome.SKIPPED or not r.action.runs:
            why = f"{why}: {r.action.sql}" if why else r.action.sql
        table.add_row(
            str(r.action.kind),
            Text(r.action.target),
            Text(outcome, style=_OUTCOME_STYLE.get(outcome, "")),
            f"{r.duration_s:.2f}",
            Text(_facts_change(str(r.action.kind), r.before, r.after)),
            Text(why),
        )
    out = Console(highlight=False)
    out.print(table)
    out.print(
        f"{report.count(Outcome.APPLIED)} applied, {report.count(Outcome.SKIPPED)} skipped, "
        f"{report.count(Outcome.FAILED)} failed in {report.duration_s:.1f} s; "
        f"dead rows removed {report.dead_rows_removed:,}, index bytes saved "
        f"{format_bytes(report.index_bytes_saved, unknown='0 B')} "
        f"(lock_timeout {report.lock_timeout_ms} ms, "
        f"statement_timeout {report.statement_timeout_ms} ms)",
        markup=False,
        soft_wrap=True,
    )


class MaintainProgress:
    """A rich progress display on stderr: one line per action, its phase and blocks done.

    Use as a context manager; pass :meth:`update` as ``progress=`` to
    :func:`dbops.ops.maintenance.run`. Disabled, it draws nothing.
    """

    def __init__(self, *, enabled: bool = True) -> None:
        self._enabled = enabled
        self._progress: Progress | None = None
        self._tasks: dict[int, TaskID] = {}

    def update(self, event: ProgressEvent) -> None:
        """Show ``event``: a new line at ``started``, then phase and blocks, then the end."""
        if self._progress is None:
            return
        name = f"{event.action.kind} {event.action.target}"
        task = self._tasks.get(event.index)
        if task is None:
            task = self._tasks[event.index] = self._progress.add_task(
                name, total=None, phase="started"
            )
        if event.phase in ("done", "failed"):
            total = self._progress.tasks[task].total or 1
            self._progress.update(task, phase=event.phase, total=total, completed=total)
            return
        self._progress.update(
            task, phase=event.phase, total=event.blocks_total, completed=event.blocks_done or 0
        )

    def __enter__(self) -> MaintainProgress:
        if self._enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("blocks  {task.fields[phase]}"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
            )
            self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()
