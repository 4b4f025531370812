"""`dbops db bouncer start|stop|url`: PgBouncer in front of the embedded cluster.

Transaction pooling, as production runs it (:mod:`dbops.db.bouncer`). An application that
connects through it sets ``DBOPS_PREPARED_STATEMENTS=false`` (PgBouncer 1.18 has no
prepared-statement support); the exporter reads its pools with
``DBOPS_MONITOR_PGBOUNCER_URL``. docs/scale-out.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from dbops.cli import _target
from dbops.cli._render import say

if TYPE_CHECKING:
    from dbops.db.bouncer import Bouncer

__all__ = ["bouncer_app", "start", "stop", "url"]

bouncer_app = typer.Typer(
    name="bouncer",
    help="PgBouncer (transaction pooling) in front of the embedded cluster.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


def _bouncer(pool_size: int = 10) -> Bouncer:
    from dbops.db.bouncer import Bouncer
    from dbops.errors import ConfigError

    settings = _target.settings()
    if settings.database_url is not None:
        raise ConfigError(
            f"{_target.EXTERNAL_NO_SERVER}: run PgBouncer with that server's tooling and "
            "set DBOPS_MONITOR_PGBOUNCER_URL to its console"
        )
    return Bouncer(_target.cluster(settings), pool_size=pool_size)


@bouncer_app.command("start")
def start(
    pool_size: Annotated[
        int, typer.Option("--pool-size", min=1, help="Server connections per database and role.")
    ] = 10,
) -> None:
    """Start PgBouncer on a loopback port; print what to connect with."""
    bouncer = _bouncer(pool_size)
    app_url = bouncer.start()
    say(f"pgbouncer (transaction pooling) on {app_url}")
    say(
        "  the app: DATABASE_URL with its role's password (DBOPS_APP_PASSWORD, applied by "
        "`dbops roles setup`) and DBOPS_PREPARED_STATEMENTS=false"
    )
    say(
        f"  the monitoring: DBOPS_MONITOR_PGBOUNCER_URL={bouncer.url('dbops_monitor', 'pgbouncer')}"
    )


@bouncer_app.command("stop")
def stop() -> None:
    """Stop PgBouncer (it lets running transactions finish)."""
    say("pgbouncer stopped" if _bouncer().stop() else "pgbouncer was not running")


@bouncer_app.command("url")
def url(
    user: Annotated[str, typer.Option("--user", help="The role to connect as.")] = "dbops_app",
) -> None:
    """Print the URL through PgBouncer (no password: give the role's own)."""
    typer.echo(_bouncer().url(user))
