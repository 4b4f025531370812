"""`dbops archive run|restore|status`: move old soft-deleted users and teams out, and back."""

from __future__ import annotations

import re
import sys
import uuid
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated

import typer

from dbops.cli import _target
from dbops.cli._render import note, print_kv, say

if TYPE_CHECKING:
    from dbops.ops.archive import ArchiveProgress, ArchiveReport, RestoreReport, TableCounts

__all__ = ["archive_app", "parse_duration", "restore", "run", "status"]

_DURATION = re.compile(r"^\s*(\d+)\s*(w|d|h|m|s)\s*$")
_UNITS = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes", "s": "seconds"}
#: The default batch size of `dbops archive run` (same as dbops.ops.archive.DEFAULT_BATCH_SIZE;
#: not imported from there so that `--help` loads no driver).
BATCH_SIZE = 1_000


#: The longest duration accepted: nothing was soft-deleted longer ago than this.
MAX_DURATION = timedelta(days=36_525)


def parse_duration(text: str) -> timedelta:
    """``90d``, ``12h``, ``30m``, ``2w``, ``45s`` -> timedelta; BadParameter otherwise."""
    match = _DURATION.match(text)
    if match is None:
        raise typer.BadParameter(f"{text!r} is not a duration like 90d, 12h, 30m, 2w or 45s")
    try:
        value = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    except OverflowError:
        value = None
    if value is None or value > MAX_DURATION:
        raise typer.BadParameter(f"{text.strip()} is longer than 100 years (36525d)")
    return value


def _counts(counts: TableCounts) -> str:
    return (
        f"{counts.users:,} users, {counts.teams:,} teams, {counts.team_members:,} memberships, "
        f"{counts.invitations:,} invitations, {counts.invitation_senders:,} sender links, "
        f"{counts.team_locations:,} team locations"
    )


def _print_report(report: ArchiveReport) -> None:
    cutoff = report.cutoff.isoformat(timespec="seconds")
    if report.applied:
        say(
            f"archived {_counts(report.moved)} (soft-deleted before {cutoff}) in "
            f"{report.batches:,} batches, {report.seconds:.1f} s, {report.rows_per_s:,.0f} rows/s; "
            f"run {report.run_id}"
        )
    else:
        say(f"dry run: would archive {_counts(report.moved)} (soft-deleted before {cutoff})")
    for skipped in report.skipped:
        say(f"skipped user {skipped.user_id} ({skipped.email}): {skipped.reason}")
    if not report.applied:
        say("nothing changed: pass --apply to archive")


def _progress(event: ArchiveProgress) -> None:
    note(f"{event.phase}: batch {event.batches:,}, {event.moved.total:,} rows moved")


def run(
    older_than: Annotated[
        timedelta,
        typer.Option(
            "--older-than",
            parser=parse_duration,
            metavar="DURATION",
            help="Archive what was soft-deleted longer ago than this: 90d, 12h, 2w, 30m.",
        ),
    ],
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Users or teams per transaction.")
    ] = BATCH_SIZE,
    apply: Annotated[
        bool, typer.Option("--apply", help="Move the rows (default: only report what would move).")
    ] = False,
) -> None:
    """Move old soft-deleted teams and users (with memberships, invitations) into the archive.

    Each batch is one transaction: an interrupted run loses nothing and the next run goes on.
    A user who is the last owner of a live team is skipped and reported.
    """
    from dbops.ops import archive

    settings = _target.settings()
    dsn = _target.dsn_to_change(settings) if apply else _target.dsn_to_read(settings)
    from dbops.cli.migrations import require_head

    require_head(dsn)
    with _target.database(settings, dsn) as db:
        report = archive.run(
            db,
            older_than=older_than,
            batch_size=batch_size,
            apply=apply,
            progress=_progress if sys.stderr.isatty() else None,
        )
    _print_report(report)


def _restored(report: RestoreReport) -> None:
    left = (
        f"; {report.left_in_archive:,} memberships stay archived until the other side is back"
        if report.left_in_archive
        else ""
    )
    say(f"restored {report.kind} {report.name} ({report.id}): {_counts(report.restored)}{left}")
    say("it is still soft-deleted: undo that through the services, or the next run archives it")


def _as_uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


def restore(
    user: Annotated[
        str | None, typer.Option("--user", metavar="EMAIL|ID", help="The archived user.")
    ] = None,
    team: Annotated[
        str | None, typer.Option("--team", metavar="SLUG|ID", help="The archived team.")
    ] = None,
) -> None:
    """Bring one archived user or team back into the live tables (still soft-deleted).

    Refused when a live row has its e-mail or slug now, or when a team would come back
    without an owner (restore the owner first).
    """
    if (user is None) == (team is None):
        raise typer.BadParameter("give exactly one of --user or --team")
    from dbops.ops import archive

    settings = _target.settings()
    dsn = _target.dsn_to_change(settings)
    from dbops.cli.migrations import require_head

    require_head(dsn)
    with _target.database(settings, dsn) as db:
        if user is not None:
            user_id = _as_uuid(user)
            report = (
                archive.restore(db, user_id=user_id)
                if user_id
                else archive.restore(db, user_email=user)
            )
        else:
            assert team is not None
            team_id = _as_uuid(team)
            report = (
                archive.restore(db, team_id=team_id)
                if team_id
                else archive.restore(db, team_slug=team)
            )
    _restored(report)


def status() -> None:
    """What the archive holds, and how much is soft-deleted but still live."""
    from dbops.ops import archive

    settings = _target.settings()
    dsn = _target.dsn_to_read(settings)
    from dbops.cli.migrations import require_head

    require_head(dsn)
    with _target.database(settings, dsn) as db:
        found = archive.status(db)
    counts = found.archived
    last = found.last_archived_at
    print_kv(
        "archive",
        [
            ("users", f"{counts.users:,}"),
            ("teams", f"{counts.teams:,}"),
            ("memberships", f"{counts.team_members:,}"),
            ("invitations", f"{counts.invitations:,}"),
            ("sender links", f"{counts.invitation_senders:,}"),
            ("team locations", f"{counts.team_locations:,}"),
            ("last archived", last.isoformat(timespec="seconds") if last else "never"),
            ("soft-deleted users (live)", f"{found.soft_deleted_users:,}"),
            ("soft-deleted teams (live)", f"{found.soft_deleted_teams:,}"),
        ],
    )


archive_app = typer.Typer(
    help="Archive old soft-deleted users and teams, restore them, count what is archived.",
    no_args_is_help=True,
)
archive_app.command("run")(run)
archive_app.command("restore")(restore)
archive_app.command("status")(status)
