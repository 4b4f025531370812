"""`dbops migrate|downgrade|current|history` (also as `dbops schema ...`): the schema revision.

Commands over the plain functions of :mod:`dbops.ops.migrate`, as alembic's CLI is built over
``alembic.command``. `migrate` and `downgrade` start a stopped embedded cluster; `current` does
not (it reports the stopped cluster, exit 3); `history` needs no database.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer

from dbops.cli import _target
from dbops.cli._render import print_history, rev, revision_line, say

if TYPE_CHECKING:
    from dbops.config import Settings
    from dbops.db import Dsn

__all__ = ["SchemaChange", "current", "downgrade", "history", "migrate", "upgrade"]


@dataclass(frozen=True)
class SchemaChange:
    """What one upgrade did: the revision before (read under the migration lock) and after."""

    before: str | None
    after: str | None
    applied: tuple[str, ...]


def upgrade(dsn: Dsn, settings: Settings, revision: str = "head") -> SchemaChange:
    """Upgrade to ``revision`` and report what this run applied.

    ``dbops.ops.migrate.upgrade`` returns ``MigrationResult(before, after, applied)`` with
    ``before`` read after taking the migration lock, so of several concurrent runs only the one
    that applied something reports a change.
    """
    from dbops.ops import migrate as ops_migrate

    # TODO(lead): once the migrations branch is merged `upgrade` returns MigrationResult:
    # drop the cast and the fallback reads below (they race with concurrent runs).
    before = ops_migrate.current_revision(dsn.sqlalchemy)
    result: Any = cast(Any, ops_migrate.upgrade)(dsn.sqlalchemy, settings, revision)
    if result is not None:
        return SchemaChange(result.before, result.after, tuple(result.applied))
    after = ops_migrate.current_revision(dsn.sqlalchemy)
    return SchemaChange(before, after, ())


def migrate(
    revision: Annotated[str, typer.Argument(metavar="REV", help="Target revision.")] = "head",
) -> None:
    """Upgrade the schema to REV (default: head)."""
    from dbops.ops import migrate as ops_migrate

    settings = _target.settings()
    dsn = _target.dsn_to_change(settings)
    change = upgrade(dsn, settings, revision)
    mark = " (head)" if change.after == ops_migrate.head_revision() else ""
    if change.before == change.after:
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
    before = ops_migrate.current_revision(dsn.sqlalchemy)
    ops_migrate.downgrade(dsn.sqlalchemy, settings, revision)
    after = ops_migrate.current_revision(dsn.sqlalchemy)
    if before == after:
        say(f"already at {rev(after)}: nothing to do")
    else:
        say(f"downgraded {rev(before)} -> {rev(after)}")


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
    from dbops.errors import PendingMigrations
    from dbops.ops import migrate as ops_migrate

    revision = ops_migrate.current_revision(dsn.sqlalchemy)
    head = ops_migrate.head_revision()
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

schema_app = typer.Typer(
    help="The schema revision (the same commands as `dbops migrate|downgrade|current|history`).",
    no_args_is_help=True,
)
for _name, _command in COMMANDS.items():
    schema_app.command(_name)(_command)
