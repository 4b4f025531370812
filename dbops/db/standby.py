"""Streaming replicas of the embedded cluster: ``dbops db replica add|remove|list``.

A replica is an embedded cluster of its own under ``.dbops/replicas/<name>/`` (its data
directory, port, unix socket and log), made by ``pg_basebackup -R`` from the primary: PostgreSQL's
own physical streaming replication, with a replication slot on the primary
(``dbops_replica_<name>``) so the primary keeps the WAL a stopped replica still needs. The
monitoring shows that retained WAL (the Activity page, ``dbops_replication_slot_*``): a replica
left stopped for long fills the primary's disk, so remove the ones you no longer run.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from dbops.db.embedded import EmbeddedCluster, free_port
from dbops.errors import ConfigError, EmbeddedClusterError

__all__ = [
    "ReplicaInfo",
    "add_replica",
    "check_name",
    "embedded_replicas",
    "remove_replica",
    "replica_cluster",
    "replica_info",
    "slot_name",
    "start_replicas",
    "stop_replicas",
]

#: Replica names: short, lowercase, usable in a slot name and a directory.
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,29}$")
_DIR = "replicas"


@dataclass(frozen=True)
class ReplicaInfo:
    """One replica of the embedded cluster, as its files and its server say."""

    name: str
    slot: str
    port: int | None
    running: bool
    datadir: Path


def slot_name(name: str) -> str:
    """The replication slot on the primary that keeps WAL for replica ``name``."""
    return f"dbops_replica_{name}"


def check_name(name: str) -> str:
    """``name`` if it is a valid replica name; ConfigError otherwise."""
    if not _NAME.match(name):
        raise ConfigError(
            f"replica name {name!r}: a lowercase letter, then up to 29 lowercase letters, "
            "digits or _"
        )
    return name


def replica_cluster(primary: EmbeddedCluster, name: str) -> EmbeddedCluster:
    """The replica ``name`` of ``primary``, described (not created), run as the primary is."""
    return EmbeddedCluster(
        primary.home / _DIR / check_name(name),
        database=primary.database,
        durable=primary.durable,
        options=primary.options,
        pg_version=primary.pg_version,
    )


def embedded_replicas(primary: EmbeddedCluster) -> list[tuple[str, EmbeddedCluster]]:
    """Every replica made for ``primary`` (created, running or not), by name."""
    root = primary.home / _DIR
    if not root.is_dir():
        return []
    found = []
    for entry in sorted(root.iterdir()):
        if entry.is_dir() and _NAME.match(entry.name):
            replica = replica_cluster(primary, entry.name)
            if replica.initialized():
                found.append((entry.name, replica))
    return found


def replica_info(primary: EmbeddedCluster) -> list[ReplicaInfo]:
    """:func:`embedded_replicas` with their ports and whether they run."""
    return [
        ReplicaInfo(
            name=name,
            slot=slot_name(name),
            port=replica.port,
            running=replica.running(),
            datadir=replica.datadir,
        )
        for name, replica in embedded_replicas(primary)
    ]


def add_replica(primary: EmbeddedCluster, name: str, *, timeout: float = 600) -> EmbeddedCluster:
    """Make replica ``name`` of the running ``primary`` and start it; return it.

    ``pg_basebackup -R -C -S dbops_replica_<name> -X stream``: a copy of the primary taken
    online, its replication slot created in the same step, and the settings that make it
    follow the primary (``primary_conninfo`` over the primary's unix socket, as the server's
    user). Anything left half-made by a failure is removed (the slot, the directory).
    """
    replica = replica_cluster(primary, name)
    if replica.initialized() or replica.home.exists():
        raise EmbeddedClusterError(
            f"a replica named {name} exists already ({replica.home}): `dbops db replica "
            f"remove {name}` first, or pick another name"
        )
    if not primary.running():
        raise EmbeddedClusterError("the embedded cluster is not running: `dbops db start` first")
    binaries = primary.binaries()
    try:
        replica.prepare_restore(port=free_port(), password=primary.password)
        replica.record_binaries(binaries)
        # The replica names itself to the primary (pg_stat_replication.application_name).
        source = f"{primary.libpq_url('postgres')}&application_name={slot_name(name)}"
        replica.run_as_server(
            [
                binaries.tool("pg_basebackup"),
                "--pgdata",
                str(replica.datadir),
                "--dbname",
                source,
                "--write-recovery-conf",
                "--create-slot",
                "--slot",
                slot_name(name),
                "--wal-method",
                "stream",
                "--checkpoint",
                "fast",
                "--no-password",
            ],
            timeout=timeout,
        )
        replica.start_standby()
    except BaseException:
        _discard(primary, replica, name)
        raise
    return replica


def remove_replica(primary: EmbeddedCluster, name: str) -> bool:
    """Stop replica ``name``, delete its files and drop its slot; False when there was none."""
    replica = replica_cluster(primary, name)
    existed = replica.home.exists()
    _discard(primary, replica, name)
    return existed


def _discard(primary: EmbeddedCluster, replica: EmbeddedCluster, name: str) -> None:
    if replica.initialized():
        replica.stop()
    if replica.runtime != replica.home:
        shutil.rmtree(replica.runtime, ignore_errors=True)
    shutil.rmtree(replica.home, ignore_errors=True)
    if primary.running():
        _drop_slot(primary, slot_name(name))


def _drop_slot(primary: EmbeddedCluster, slot: str) -> None:
    import psycopg

    with psycopg.connect(primary.libpq_url("postgres"), autocommit=True) as conn:
        conn.execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
            "WHERE slot_name = %s AND NOT active",
            (slot,),
        )


def start_replicas(primary: EmbeddedCluster) -> list[str]:
    """Start every stopped replica of ``primary``; the names started."""
    started = []
    for name, replica in embedded_replicas(primary):
        if not replica.running():
            replica.start_standby()
            started.append(name)
    return started


def stop_replicas(primary: EmbeddedCluster) -> list[str]:
    """Stop every running replica of ``primary``; the names stopped."""
    return [name for name, replica in embedded_replicas(primary) if replica.stop()]
