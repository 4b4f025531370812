"""`dbops backup pitr-setup|pitr-base|pitr-info|pitr-restore`: point-in-time recovery.

Plain command functions over :mod:`dbops.ops.pitr` (pgBackRest, embedded cluster only);
:func:`register` adds them to the `backup` group. Progress goes to stderr, results to stdout.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from dbops.cli import _target
from dbops.cli._render import note, print_kv, say
from dbops.units import format_bytes

__all__ = ["pitr_base", "pitr_info", "pitr_restore", "pitr_setup", "register"]


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def pitr_setup() -> None:
    """Turn on WAL archiving to pgBackRest and create the stanza (idempotent).

    Restarts the embedded cluster only when archive_mode or wal_level changes.
    """
    from dbops.ops.pitr import setup

    result = setup(_target.settings(), progress=note)
    changed = ", ".join(result.settings_changed) or "none"
    say(
        f"point-in-time recovery ready: config {result.config}, repository {result.repo}; "
        f"settings changed: {changed}; restarted: {'yes' if result.restarted else 'no'}; "
        f"stanza {'created' if result.stanza_created else 'already there'}"
    )


def pitr_base(
    incremental: Annotated[
        bool,
        typer.Option(
            "--incremental",
            help="Copy only files changed since the last backup (full when there is none).",
        ),
    ] = False,
) -> None:
    """Take a base backup of the embedded cluster (full unless --incremental)."""
    from dbops.ops.pitr import base_backup

    result = base_backup(_target.settings(), incremental=incremental, progress=note)
    b = result.backup
    say(
        f"base backup {b.label} ({b.type}): {format_bytes(b.size_bytes)} copied, "
        f"{format_bytes(b.repo_size_bytes)} in the repository, {result.seconds:.1f} s; "
        f"restorable from {_when(b.finished_at)}"
    )


def pitr_info() -> None:
    """List the base backups and the archived WAL range of the repository."""
    from dbops.ops.pitr import info

    result = info(_target.settings())
    rows = [
        ("repository", str(result.repo)),
        ("status", result.status),
        ("archived WAL", f"{result.wal_min} .. {result.wal_max}" if result.wal_min else "none"),
        (
            "earliest target",
            _when(result.earliest_target) if result.earliest_target else "none (no backup)",
        ),
    ]
    for b in result.backups:
        rows.append(
            (
                b.label,
                f"{b.type}, {_when(b.started_at)} .. {_when(b.finished_at)}, "
                f"{format_bytes(b.size_bytes)} copied, {format_bytes(b.repo_size_bytes)} stored",
            )
        )
    print_kv(f"pgBackRest stanza {result.stanza}", rows)


def _parse_time(value: str) -> datetime:
    try:
        return datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise typer.BadParameter(
            "expected an ISO timestamp such as 2026-01-31T14:05:00Z (no zone means UTC)",
            param_hint="--to",
        ) from exc


def pitr_restore(
    to: Annotated[
        str,
        typer.Option(
            "--to",
            help="Moment to restore to, ISO 8601 (2026-01-31T14:05:00Z; no zone means UTC).",
        ),
    ],
    into: Annotated[
        Path,
        typer.Option("--into", help="New or empty directory: the copy's home (DBOPS_HOME)."),
    ],
    start: Annotated[
        bool,
        typer.Option("--start/--no-start", help="Start the copy (replays WAL to --to)."),
    ] = True,
) -> None:
    """Restore a copy of the embedded cluster as of --to into --into; the live one is untouched.

    The copy runs as a separate cluster on its own loopback port: manage it with
    `DBOPS_HOME=<into> dbops db status|url|stop`.
    """
    from dbops.ops.pitr import restore_to

    target = _parse_time(to)
    result = restore_to(_target.settings(), target, into, start=start, progress=note)
    state = f"running on port {result.port}" if result.started else "restored, not started"
    say(
        f"copy as of {result.target_time.isoformat()} (from backup {result.backup_label}) "
        f"{state} in {result.seconds:.1f} s"
    )
    say(f"url: {result.url}")
    say(f"tcp: {result.tcp_url}")
    if result.started:
        say(f"stop it with: DBOPS_HOME={result.home} dbops db stop")
    else:
        say(f"start it with: DBOPS_HOME={result.home} dbops db start (recovery runs then)")


def register(group: typer.Typer) -> None:
    """Add the point-in-time recovery commands to ``group`` (the `backup` group)."""
    group.command("pitr-setup")(pitr_setup)
    group.command("pitr-base")(pitr_base)
    group.command("pitr-info")(pitr_info)
    group.command("pitr-restore")(pitr_restore)
