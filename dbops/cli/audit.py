"""`dbops audit verify|history|show`: the audit trail of migration 0006.

Read-only commands over :mod:`dbops.ops.audit`: they never start a stopped embedded cluster
(exit 3, like `dbops status`). `verify` exits :data:`CHAIN_BROKEN_EXIT` with one line naming
the first edited or deleted record.
"""

from __future__ import annotations

import enum
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer

from dbops.cli import _target
from dbops.cli._render import note, say

if TYPE_CHECKING:
    from dbops.ops.audit import AuditVerifyReport, Version

__all__ = ["CHAIN_BROKEN_EXIT", "audit_app", "history", "show", "verify"]

#: Exit code of `dbops audit verify` when the chain is broken (1-3 are dbops errors).
CHAIN_BROKEN_EXIT = 4

audit_app = typer.Typer(
    name="audit",
    help="The audit trail: verify its hash chain, list a team's or user's versions, read one "
    "as of a past time.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


class Subject(enum.StrEnum):
    """What `history` and `show` look up: a team by slug, a user by email."""

    team = "team"
    user = "user"


SubjectArgument = Annotated[Subject, typer.Argument(help="team (by slug) or user (by email).")]
KeyArgument = Annotated[str, typer.Argument(metavar="KEY", help="The team's slug or user's email.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _parse_time(value: str) -> datetime:
    """An ISO 8601 time (``2026-11-26T13:00:00Z``, ``2026-11-26 13:00+01:00``); naive = UTC."""
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise typer.BadParameter(
            f"not an ISO 8601 time: {value!r} (e.g. 2026-11-26T13:00:00Z)"
        ) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _verify_line(report: AuditVerifyReport) -> str:
    return (
        f"audit chain ok: {report.records:,} records, last record {report.last_id}, "
        f"head hash {report.last_hash}; anchor for the next verify: {report.anchor}"
    )


@audit_app.command("verify")
def verify(
    as_json: JsonOption = False,
    anchor: Annotated[
        str | None,
        typer.Option(
            "--anchor",
            metavar="SEQ:HASH",
            help="A record known from outside (an earlier verify's anchor, a backup "
            "manifest's audit_anchor): the chain must still reach it unchanged.",
        ),
    ] = None,
) -> None:
    """Walk the hash chain and recompute every hash.

    Exit 0 when it holds; exit 4 with one line naming the first edited or deleted record.
    Without --anchor, deleting the newest records and rewinding the head is not detected.
    """
    from dbops.ops import audit as ops_audit

    known = ops_audit.Anchor.parse(anchor) if anchor is not None else None
    settings = _target.settings()
    with _target.database(settings, _target.dsn_to_read(settings)) as db:
        report = ops_audit.verify(db, known)
    problem = report.problem
    if as_json:
        document = {
            "ok": report.ok,
            "records": report.records,
            "last_id": report.last_id,
            "last_hash": report.last_hash,
            "anchor": report.anchor,
            "problem": None
            if problem is None
            else {
                "kind": problem.kind,
                "record_id": problem.record_id,
                "table": problem.table_name,
                "row_key": problem.row_key,
                "at": problem.at.isoformat() if problem.at else None,
                "message": problem.message,
            },
        }
        typer.echo(json.dumps(document, indent=2))
    elif problem is None:
        say(_verify_line(report))
    else:
        note(f"audit chain broken: {problem.message}")
    if problem is not None:
        raise typer.Exit(CHAIN_BROKEN_EXIT)


#: What the "changed" column says for operations that concern the whole row.
_WHOLE_ROW = {"INSERT": "(new row)", "DELETE": "(row deleted)", "TRUNCATE": "(table truncated)"}


def _print_versions(title: str, versions: list[Version]) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, show_edge=False)
    table.add_column("record", justify="right")
    table.add_column("time (UTC)", no_wrap=True)
    table.add_column("actor")
    table.add_column("op")
    table.add_column("changed", overflow="fold")
    for v in versions:
        changed = ", ".join(v.changed) if v.op == "UPDATE" else _WHOLE_ROW.get(v.op, "")
        table.add_row(
            str(v.record_id),
            v.at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f"),
            Text(v.actor),
            v.op,
            Text(changed),
        )
    Console(highlight=False).print(table)


@audit_app.command("history")
def history(kind: SubjectArgument, key: KeyArgument, as_json: JsonOption = False) -> None:
    """The recorded versions of a team or user: time, actor, operation, changed fields."""
    from dbops.ops import audit as ops_audit

    settings = _target.settings()
    with _target.database(settings, _target.dsn_to_read(settings)) as db:
        versions = ops_audit.history(db, kind.value, key)
    if as_json:
        document = [
            {
                "record_id": v.record_id,
                "at": v.at.isoformat(),
                "actor": v.actor,
                "op": v.op,
                "changed": list(v.changed),
                "row": v.row,
            }
            for v in versions
        ]
        typer.echo(json.dumps(document, indent=2, default=str))
    elif not versions:
        say(f"no recorded change of {kind.value} {key} (loaded in bulk and never changed since)")
    else:
        _print_versions(f"{kind.value} {key}", versions)


@audit_app.command("show")
def show(
    kind: SubjectArgument,
    key: KeyArgument,
    as_of: Annotated[
        str,
        typer.Option(
            "--as-of",
            metavar="TIMESTAMP",
            help="ISO 8601 time, e.g. 2026-11-26T13:00:00Z (no offset: UTC).",
        ),
    ],
) -> None:
    """The team or user as it was at a past time (from the audit trail), as JSON."""
    from dbops.errors import NotFound
    from dbops.ops import audit as ops_audit

    at = _parse_time(as_of)
    settings = _target.settings()
    with _target.database(settings, _target.dsn_to_read(settings)) as db:
        row = ops_audit.as_of(db, kind.value, key, at)
    if row is None:
        raise NotFound(f"{kind.value} {key} did not exist at {at.isoformat()}")
    typer.echo(json.dumps(row, indent=2, sort_keys=True, default=str))
