"""`dbops status` (later `dbops snapshot`, `dbops check`): read-only reports, never a change.

These commands never start a stopped embedded cluster: they report it (exit 3).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from dbops.cli import _target
from dbops.cli._render import print_status

if TYPE_CHECKING:
    from dbops.db import Database
    from dbops.monitoring.status import StatusReport

__all__ = ["collect", "status"]


def collect(db: Database) -> StatusReport:
    """The status report of ``db`` against this code's migration history."""
    from dbops.monitoring.status import collect_status
    from dbops.ops import migrate as ops_migrate

    oldest_first = [info.revision for info in reversed(ops_migrate.history())]
    return collect_status(db, head_revision=ops_migrate.head_revision(), revisions=oldest_first)


def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Server version, size, revision vs head, row counts, pool settings, redacted DSN."""
    settings = _target.settings()
    dsn = _target.dsn_to_read(settings)
    with _target.database(settings, dsn) as db:
        report = collect(db)
    if as_json:
        typer.echo(report.to_json())
    else:
        print_status(report)
