"""`dbops db replica add|remove|list`: streaming replicas of the embedded cluster.

Each replica is PostgreSQL's own physical standby (:mod:`dbops.db.standby`); the services read
from them by themselves (:mod:`dbops.db.replicas`, docs/scale-out.md). With ``DATABASE_URL``
dbops manages no server: list the replicas in ``DBOPS_REPLICA_URLS`` instead.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from dbops.cli import _target
from dbops.cli._render import say

if TYPE_CHECKING:
    from dbops.db import EmbeddedCluster

__all__ = ["add", "list_replicas", "remove", "replica_app"]

replica_app = typer.Typer(
    name="replica",
    help="Streaming replicas of the embedded cluster (the services read from them).",
    no_args_is_help=True,
    rich_markup_mode=None,
)


def _primary() -> EmbeddedCluster:
    from dbops.errors import ConfigError

    settings = _target.settings()
    if settings.database_url is not None:
        raise ConfigError(
            f"{_target.EXTERNAL_NO_SERVER}: run replicas with that server's tooling and list "
            "them in DBOPS_REPLICA_URLS"
        )
    return _target.cluster(settings)


@replica_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="A short lowercase name: r1, eu_1.")] = "r1",
) -> None:
    """Make a streaming replica of the running embedded cluster and start it.

    A copy taken online with pg_basebackup, with its own port, directory and replication
    slot; `dbops db start|stop` start and stop it with the primary.
    """
    from dbops.db.standby import add_replica, check_name, slot_name

    primary = _primary()
    replica = add_replica(primary, check_name(name))
    say(f"replica {name} streaming: {replica.libpq_url()} (slot {slot_name(name)})")


@replica_app.command("remove")
def remove(name: Annotated[str, typer.Argument(help="The replica's name.")]) -> None:
    """Stop a replica, delete its files and drop its slot on the primary."""
    from dbops.db.standby import check_name, remove_replica

    primary = _primary()
    if remove_replica(primary, check_name(name)):
        say(f"replica {name} removed")
    else:
        say(f"no replica named {name}")


@replica_app.command("list")
def list_replicas(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
) -> None:
    """The replicas, whether they run, and how far behind the primary each one is.

    The lag and the WAL each slot keeps are the monitoring's own figures (`pg_stat_replication`
    and `pg_replication_slots`, the numbers the Activity page and the exporter show).
    """
    from dbops.db.standby import replica_info

    primary = _primary()
    replicas = replica_info(primary)
    streams, slots = _replication(primary) if primary.running() else ({}, {})
    rows: list[dict[str, Any]] = []
    for r in replicas:
        stream = streams.get(r.slot)
        slot = slots.get(r.slot)
        rows.append(
            {
                "name": r.name,
                "running": r.running,
                "port": r.port,
                "state": stream.state if stream else None,
                "lag_bytes": stream.lag_bytes if stream else None,
                "replay_lag_s": stream.replay_lag_s if stream else None,
                "slot": r.slot,
                "slot_retained_bytes": slot.retained_bytes if slot else None,
            }
        )
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        say("no replicas (`dbops db replica add` makes one)")
        return
    from dbops.units import format_bytes

    for row in rows:
        state = row["state"] or ("running, not streaming" if row["running"] else "stopped")
        lag = row["replay_lag_s"]
        say(
            f"{row['name']}: {state}, port {row['port']}, "
            f"behind {format_bytes(row['lag_bytes'])}"
            f"{'' if lag is None else f' ({lag:.3f} s)'}, "
            f"slot keeps {format_bytes(row['slot_retained_bytes'])}"
        )


def _replication(primary: EmbeddedCluster) -> tuple[dict[str, Any], dict[str, Any]]:
    """The primary's standbys (by the slot name they connect with) and slots, by name."""
    import psycopg

    from dbops.config import MonitorSettings
    from dbops.monitoring.collectors.database import replicas, replication_slots

    monitor = MonitorSettings.of(_target.settings())
    with psycopg.connect(primary.libpq_url(), autocommit=True) as conn:
        streams = {r.application or "": r for r in replicas(conn, settings=monitor)}
        slots = {s.name: s for s in replication_slots(conn, settings=monitor)}
    return streams, slots
