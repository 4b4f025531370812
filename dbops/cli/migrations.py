"""`dbops migrate|downgrade|current|history` (also as `dbops schema ...`): the schema revision.

Commands over the plain functions of :mod:`dbops.ops.migrate`, as alembic's CLI is built over
``alembic.command``. `migrate` and `downgrade` start a stopped embedded cluster; `current` does
not (it reports the stopped cluster, exit 3); `history` needs no database.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer

from dbops.cli import _target
from dbops.cli._render import print_history, rev, revision_line, say

if TYPE_CHECKING:
    from dbops.config import Settings
    from dbops.db import Dsn
    from dbops.ops.migrate import MigrationResult

__all__ = ["current", "downgrade", "history", "migrate", "upgrade"]


def upgrade(dsn: Dsn, settings: Settings, revision: str = "head") -> MigrationResult:
    """Upgrade to ``revision`` and report what this run applied.

    ``before`` is read after taking the migration lock, so of several concurrent runs only the
    one that applied something reports a change.
    """
    from dbops.ops import migrate as ops_migrate

    return ops_migrate.upgrade(dsn.sqlalchemy, settings, revision)


def migrate(
    revision: Annotated[
        str, typer.Argument(metavar="REV", help="Target revision, or FROM:TO with --sql.")
    ] = "head",
    sql: Annotated[
        bool,
        typer.Option(
            "--sql",
            help="Print the SQL instead of running it (alembic offline mode). FROM:TO needs no "
            "database; a bare REV starts from the database's current revision.",
        ),
    ] = False,
) -> None:
    """Upgrade the schema to REV (default: head), or print its SQL for review (--sql)."""
    from dbops.ops import migrate as ops_migrate

    settings = _target.settings()
    if sql:
        url = None if ":" in revision else _target.dsn_to_read(settings).sqlalchemy
        typer.echo(ops_migrate.render_sql(settings, revision, url=url), nl=False)
        return
    dsn = _target.dsn_to_change(settings)
    change = upgrade(dsn, settings, revision)
    mark = " (head)" if change.after == ops_migrate.head_revision() else ""
    if not change.applied:
        say(f"already at {rev(change.after)}{mark}: nothing to do")
    else:
        say(f"upgraded {rev(change.before)} -> {rev(change.after)}{mark}")


def downgrade(
    revision: Annotated[
        str, typer.Argument(metavar="REV", help="Target revision (`base` drops everything).")
    ],
) -> None:
    """Downgrade the schema to REV."""
    from dbops.ops import migrate as ops_migrate

    settings = _target.settings()
    dsn = _target.dsn_to_change(settings)
    change = ops_migrate.downgrade(dsn.sqlalchemy, settings, revision)
    if not change.applied:
        say(f"already at {rev(change.after)}: nothing to do")
    else:
        say(f"downgraded {rev(change.before)} -> {rev(change.after)}")


def current() -> None:
    """Print the database's revision and whether it is at head (never starts the cluster)."""
    from dbops.ops import migrate as ops_migrate

    settings = _target.settings()
    dsn = _target.dsn_to_read(settings)
    revision = ops_migrate.current_revision(dsn.sqlalchemy)
    say(revision_line(revision, ops_migrate.head_revision(), ops_migrate.pending(dsn.sqlalchemy)))


def history() -> None:
    """List the migrations of this code, newest first (no database needed)."""
    from dbops.ops import migrate as ops_migrate

    print_history(ops_migrate.history())


def require_head(dsn: Dsn) -> None:
    """Raise :class:`PendingMigrations` unless the database is at the code's head revision."""
    import psycopg

    from dbops.errors import PendingMigrations, translate_db_errors
    from dbops.ops.revisions import code_head, database_revision

    with translate_db_errors(), psycopg.connect(dsn.libpq) as conn:
        revision = database_revision(conn)
    head = code_head()
    if revision != head:
        raise PendingMigrations(
            f"database is at {revision or 'no revision'}, code expects {head}: run `dbops migrate`"
        )


#: The commands of this group, in the order `dbops --help` lists them.
COMMANDS: dict[str, Callable[..., None]] = {
    "migrate": migrate,
    "downgrade": downgrade,
    "current": current,
    "history": history,
}

migrations_app = typer.Typer(
    help="The schema revision (the same commands as `dbops migrate|downgrade|current|history`).",
    no_args_is_help=True,
)
for _name, _command in COMMANDS.items():
    migrations_app.command(_name)(_command)
