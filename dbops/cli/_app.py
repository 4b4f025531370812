"""The `dbops` Typer app: the root options and the command tree, wired in one place.

Each command group lives in its own module of plain functions (``dbops.cli`` lists them) and
imports what it needs inside the command, so ``dbops --help`` loads neither SQLAlchemy nor
alembic nor the pool.
"""

from __future__ import annotations

import sys
from typing import Annotated, NoReturn

import typer

from dbops.cli import (
    archive,
    audit,
    backup,
    keys,
    maintain,
    migrations,
    monitor,
    pitr,
    roles,
    shard,
    up,
)
from dbops.cli._errors import ErrorHandlingGroup, report
from dbops.cli.db import db_app

__all__ = ["app", "main"]

app = typer.Typer(
    cls=ErrorHandlingGroup,
    name="dbops",
    help="PostgreSQL data layer and data-ops toolkit: database, migrations, demo data, status.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain click help: no ``<bool>`` type column next to flags, and no rich import for --help.
    rich_markup_mode=None,
)


@app.callback()
def _root(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show the traceback of an error.")
    ] = False,
) -> None:
    """PostgreSQL data layer and data-ops toolkit: database, migrations, demo data, status."""


# The command tree. Top-level names stay what they always were (`dbops migrate`, ...).
app.command("up")(up.up)
app.command("status")(monitor.status)
app.command("exporter")(monitor.exporter)
for _name, _command in migrations.COMMANDS.items():
    app.command(_name)(_command)
app.command("seed")(up.seed)
app.command("workload")(up.workload)
app.add_typer(db_app, name="db")
app.add_typer(migrations.migrations_app, name="schema")
app.add_typer(monitor.monitor_app, name="monitor")
app.add_typer(archive.archive_app, name="archive")
app.add_typer(maintain.maintain_app, name="maintain")
pitr.register(backup.backup_app)  # pitr-setup, pitr-base, pitr-info, pitr-restore
app.add_typer(backup.backup_app, name="backup")
app.add_typer(keys.keys_app, name="keys")
app.add_typer(roles.roles_app, name="roles")
app.add_typer(audit.audit_app, name="audit")
app.add_typer(shard.shard_app, name="shard")


def main() -> NoReturn:
    """Entry point of the ``dbops`` script."""
    try:
        app(prog_name="dbops")
    except SystemExit:
        raise
    except Exception as exc:  # pragma: no cover - the root group reports command errors
        sys.exit(report(exc, verbose="--verbose" in sys.argv or "-v" in sys.argv))
    sys.exit(0)  # pragma: no cover - click exits itself in standalone mode
