"""`dbops backup create|list|show|verify|restore|prune`: logical backups proven by restoring.

The work is in :mod:`dbops.ops.backup`; these commands pick the database, draw the progress
the ops functions report, and print results. A database URL is only ever printed redacted,
and pg_dump/pg_restore get the password through their environment, never their arguments.
Exit codes: 4 when a backup fails its proof (a file differs from its checksum, or a restore
drill fails), 3 when the database cannot be reached, 1 for other errors, 2 for bad arguments.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from dbops.cli import _target
from dbops.cli._render import note, print_kv, say
from dbops.units import format_bytes

if TYPE_CHECKING:
    from dbops.ops.backup import Manifest, Step
    from dbops.ops.backup.prune import PrunePlan

__all__ = ["backup_app", "create", "list_backups", "prune", "restore", "show", "verify"]

backup_app = typer.Typer(
    name="backup",
    help="Logical backups (pg_dump) with manifests, proven by restore drills; restore; prune.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


class BackupFormat(StrEnum):
    """pg_dump's output formats dbops writes."""

    CUSTOM = "custom"
    DIRECTORY = "directory"


JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
WideOption = Annotated[
    bool,
    typer.Option("--wide", help="Every column (database, revision, format, drill time)."),
]
#: A terminal this wide gets every column without --wide.
WIDE_COLUMNS = 120
ProgressOption = Annotated[
    bool, typer.Option("--progress/--no-progress", help="Show each step on a terminal (stderr).")
]


@contextmanager
def _steps(enabled: bool) -> Iterator[Any]:
    """A callback for ``progress=`` that shows the latest step in a spinner on stderr."""
    if not (enabled and sys.stderr.isatty()):
        yield None
        return
    from rich.console import Console

    console = Console(stderr=True, highlight=False)
    with console.status("starting ...") as status:

        def update(step: Step) -> None:
            known = step.done and step.total and step.done <= step.total
            count = f" ({step.done}/{step.total})" if known else ""
            status.update(f"{step.message}{count}")

        yield update


def _ago(at: datetime | None) -> str:
    if at is None:
        return "never"
    seconds = (datetime.now(UTC) - at).total_seconds()
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 172_800:
        return f"{seconds / 3600:.1f} h ago"
    return f"{seconds / 86400:.1f} days ago"


def _drill_text(manifest: Manifest, *, brief: bool = False) -> str:
    from dbops.core.manifest import drill_label

    drill = manifest.last_drill
    if drill is None:
        return drill_label(None)
    if brief:
        return f"{drill.label} {_ago(drill.at)}"
    return f"{drill.label} {_ago(drill.at)} in {drill.duration_s:.1f} s"


@backup_app.command("create")
def create(
    backup_format: Annotated[
        BackupFormat | None,
        typer.Option(
            "--format",
            help="custom (one file) or directory (parallel with --jobs); "
            "default DBOPS_BACKUP_FORMAT.",
        ),
    ] = None,
    jobs: Annotated[
        int | None,
        typer.Option("--jobs", "-j", min=1, help="pg_dump workers (directory format)."),
    ] = None,
    as_json: JsonOption = False,
    progress: ProgressOption = True,
) -> None:
    """Dump the database (pg_dump) into a new backup with its manifest and row counts."""
    from dbops.ops.backup import create_backup

    settings = _target.settings()
    dsn = _target.dsn_to_read(settings)
    with _steps(progress and not as_json) as update:
        manifest = create_backup(
            settings,
            dsn,
            backup_format=None if backup_format is None else backup_format.value,
            jobs=jobs,
            progress=update,
        )
    if as_json:
        typer.echo(manifest.to_json(), nl=False)
        return
    rows = sum(t.rows for t in manifest.tables)
    say(
        f"backup {manifest.id}: {manifest.database} at revision {manifest.revision or 'none'}, "
        f"{len(manifest.tables)} tables, {rows:,} rows, {format_bytes(manifest.size_bytes)} "
        f"({manifest.format}) in {manifest.duration_s:.1f} s"
    )
    note("prove it restores: dbops backup verify " + manifest.id)


@backup_app.command("list")
def list_backups(as_json: JsonOption = False, wide: WideOption = False) -> None:
    """Every backup, newest first, with its age, size and last restore drill.

    Fits 80 columns; --wide (or a terminal of 120 columns) adds the database, the revision,
    the format and the drill's duration.
    """
    from dbops.ops.backup import backup_root, read_manifests

    settings = _target.settings()
    root = backup_root(settings)
    manifests = read_manifests(
        root, on_broken=lambda b: note(f"skipped {b.path.name}: unreadable manifest ({b.reason})")
    )
    if as_json:
        typer.echo(json.dumps([json.loads(m.to_json()) for m in manifests], indent=2))
        return
    if not manifests:
        say(f"no backups in {root}")
        return
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    if wide:  # every column whole: the terminal wraps the lines, nothing is cut
        console = Console(highlight=False, width=max(console.width, 160))
    wide = wide or console.width >= WIDE_COLUMNS
    table = Table(title=f"backups in {root}", title_justify="left")
    if wide:
        for column in ("id", "created", "database", "revision", "format", "size", "last drill"):
            table.add_column(column, no_wrap=column in ("id", "size"))
        for m in manifests:
            table.add_row(
                m.id,
                f"{m.created_at:%Y-%m-%d %H:%M} UTC ({_ago(m.created_at)})",
                m.database,
                m.revision or "none",
                m.format,
                format_bytes(m.size_bytes),
                _drill_text(m),
            )
    else:
        for column in ("id", "created", "size", "last drill"):
            table.add_column(column, no_wrap=True, justify="right" if column == "size" else "left")
        for m in manifests:
            table.add_row(
                m.id, _ago(m.created_at), format_bytes(m.size_bytes), _drill_text(m, brief=True)
            )
    console.print(table)


@backup_app.command("show")
def show(
    backup_id: Annotated[str, typer.Argument(help="Backup id (see `dbops backup list`).")],
    as_json: JsonOption = False,
) -> None:
    """One backup's manifest: files, row counts per table, restore drills."""
    from dbops.ops.backup import find_backup

    settings = _target.settings()
    path, m = find_backup(settings, backup_id)
    if as_json:
        typer.echo(m.to_json(), nl=False)
        return
    rows: list[tuple[str, str]] = [
        ("path", str(path)),
        ("created", f"{m.created_at.isoformat()} ({_ago(m.created_at)})"),
        ("database", m.database),
        ("server", m.server_version),
        ("revision", m.revision or "none"),
        ("format", f"{m.format} (pg_dump {m.pg_dump_version}, jobs {m.jobs})"),
        ("audit anchor", m.audit_anchor or "none (no audit trail, or no record yet)"),
        ("size", f"{format_bytes(m.size_bytes)} in {len(m.files)} files"),
        ("took", f"{m.duration_s:.1f} s"),
    ]
    rows += [(f"rows {t.schema}.{t.table}", f"{t.rows:,}") for t in m.tables]
    for drill in m.drills:
        rows.append((f"drill {drill.at:%Y-%m-%d %H:%M:%S}", f"{drill.label} ({drill.message})"))
    print_kv(f"backup {m.id}", rows)


@backup_app.command("verify")
def verify(
    backup_id: Annotated[
        str | None, typer.Argument(help="Backup id; default: the newest backup.")
    ] = None,
    scratch_url: Annotated[
        str | None,
        typer.Option(
            "--scratch-url",
            help="Restore on this server in a throwaway database instead of a private "
            "scratch cluster (needs CREATE DATABASE).",
        ),
    ] = None,
    as_json: JsonOption = False,
    progress: ProgressOption = True,
) -> None:
    """Prove a backup restores: checksums, restore, revision, row counts, hot reads.

    The drill (time, result, duration, message) is recorded in the manifest either way;
    a failed drill exits with code 4.
    """
    from dataclasses import asdict

    from dbops.db import Dsn
    from dbops.workflows.drill import restore_drill

    settings = _target.settings()
    scratch = Dsn.parse(scratch_url, source="--scratch-url") if scratch_url else None
    with _steps(progress and not as_json) as update:
        drill = restore_drill(settings, backup_id, scratch=scratch, progress=update)
    if as_json:
        typer.echo(json.dumps(asdict(drill), default=str, indent=2))
        return
    say(f"verified in {drill.duration_s:.1f} s: {drill.message}")


@backup_app.command("restore")
def restore(
    backup_id: Annotated[str, typer.Argument(help="Backup id (see `dbops backup list`).")],
    target: Annotated[
        str,
        typer.Option("--target", help="postgresql:// URL of the database to restore into."),
    ],
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Restore over a database that holds data: restore beside it, then swap by "
            "rename, keeping the old one as <name>_pre_<id>.",
        ),
    ] = False,
    no_owner: Annotated[
        bool,
        typer.Option(
            "--no-owner", help="Objects belong to the restoring user; no GRANTs restored."
        ),
    ] = False,
    as_json: JsonOption = False,
    progress: ProgressOption = True,
) -> None:
    """Restore a backup into an empty (or missing) database; all or nothing."""
    from dataclasses import asdict

    from dbops.db import Dsn
    from dbops.ops.backup import restore_backup

    settings = _target.settings()
    dsn = Dsn.parse(target, source="--target")
    with _steps(progress and not as_json) as update:
        result = restore_backup(
            settings, backup_id, dsn, force=force, owners=not no_owner, progress=update
        )
    if as_json:
        typer.echo(json.dumps(asdict(result), indent=2))
        return
    kept = f"; the old database is kept as {result.kept_as}" if result.kept_as else ""
    say(
        f"restored backup {result.backup_id} into {dsn.redacted} ({result.method}): "
        f"{result.tables} tables, {result.rows:,} rows in {result.duration_s:.1f} s{kept}"
    )


@backup_app.command("prune")
def prune(
    apply: Annotated[
        bool, typer.Option("--apply", help="Delete; without it only show what would go.")
    ] = False,
    keep_last: Annotated[
        int | None, typer.Option("--keep-last", min=0, help="Default DBOPS_BACKUP_KEEP_LAST.")
    ] = None,
    keep_daily: Annotated[
        int | None, typer.Option("--keep-daily", min=0, help="Default DBOPS_BACKUP_KEEP_DAILY.")
    ] = None,
    keep_weekly: Annotated[
        int | None,
        typer.Option("--keep-weekly", min=0, help="Default DBOPS_BACKUP_KEEP_WEEKLY."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Keep the last N, the newest of D days and W weeks, and the newest verified backup.

    A dry run by default: it shows what would be deleted. The newest backup and the newest
    verified one whose files still match their checksums are always kept.
    """
    from dbops.ops.backup import prune_backups

    settings = _target.settings()
    plan = prune_backups(
        settings,
        apply=apply,
        keep_last=keep_last,
        keep_daily=keep_daily,
        keep_weekly=keep_weekly,
    )
    if as_json:
        typer.echo(json.dumps(_plan_json(plan), indent=2))
        return
    for decision in plan.decisions:
        m = decision.manifest
        if decision.keep:
            say(f"keep    {m.id}  ({', '.join(decision.reasons)})")
        else:
            say(
                f"{'deleted' if plan.applied else 'delete '} {m.id}  ({format_bytes(m.size_bytes)})"
            )
    for backup_id, problem in plan.corrupt:
        note(f"verified backup {backup_id} is no longer intact, not kept as proven: {problem}")
    verb = "deleted" if plan.applied else "would delete"
    say(
        f"{verb} {len(plan.delete)} of {len(plan.decisions)} backups, "
        f"{format_bytes(plan.freed_bytes)}"
        + ("" if plan.applied or not plan.delete else "; --apply")
    )


def _plan_json(plan: PrunePlan) -> dict[str, Any]:
    return {
        "applied": plan.applied,
        "keep": [
            {"id": d.manifest.id, "reasons": list(d.reasons)} for d in plan.decisions if d.keep
        ],
        "delete": [m.id for m in plan.delete],
        "freed_bytes": plan.freed_bytes,
        "corrupt": [{"id": i, "problem": p} for i, p in plan.corrupt],
    }
