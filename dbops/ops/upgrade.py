"""Move the embedded cluster to a newer PostgreSQL major version with ``pg_upgrade``.

The runbook (docs/versions.md), each step refusing before it changes anything it cannot undo:

1. the new version's binaries are found or fetched (:mod:`dbops.db.builds`);
2. every extension installed in any database must exist for the new version; the ones that do
   not are named, and the upgrade stops, unless the caller lists them to drop (``DROP
   EXTENSION ... RESTRICT``: one that other objects depend on, such as PostGIS under a table
   with a ``geography`` column, is never dropped);
3. the old server stops; ``initdb`` makes the new data directory beside the old one, with the
   same superuser password and dbops' server configuration; ``pg_upgrade --check`` and then
   ``pg_upgrade`` (copy mode: the old data directory is left as it was);
4. the directories swap (the old one is kept as ``pgdata.<old major>``, to roll back or to
   delete once the new cluster is proven), the new binaries are recorded and the server starts;
5. extensions are updated to the new version's (``ALTER EXTENSION ... UPDATE``), the planner
   statistics rebuilt (``vacuumdb --analyze-in-stages``: pg_upgrade does not carry them), and
   the statement statistics of pg_upgrade's own restore purged of the roles' password
   verifiers (it replays ``ALTER ROLE ... PASSWORD``, and pg_stat_statements keeps the
   literals of utility statements).

Every drop is tried (and rolled back) before any is made, so a refused one changes nothing. A
failure in step 3 removes the new directory and starts the old server again: the cluster is as
it was, save the extensions the caller asked to drop. Then ``dbops migrate`` and a restore
drill (``dbops backup create`` + ``verify``) prove the upgraded cluster.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from dbops.db.embedded import EmbeddedCluster, PgBinaries, find_binaries, free_port
from dbops.errors import EmbeddedClusterError
from dbops.ops.roles.secrets import purge_secret_statements

__all__ = ["UpgradeResult", "upgrade_cluster"]

Progress = Callable[[str], None]

#: Extensions of every database that allows connections, and whether the new version has them.
EXTENSIONS_SQL = "SELECT extname FROM pg_extension ORDER BY extname"
DATABASES_SQL = (
    "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY datname"
)


@dataclass(frozen=True)
class UpgradeResult:
    """What :func:`upgrade_cluster` did."""

    from_version: str
    to_version: str
    #: The old data directory, kept for a rollback until it is deleted by hand.
    old_datadir: Path
    dropped: tuple[str, ...]
    duration_s: float


def _quiet(_message: str) -> None:
    """Progress callback that says nothing."""


def _extensions(cluster: EmbeddedCluster) -> dict[str, set[str]]:
    """Database -> the extensions installed in it."""
    import psycopg

    with psycopg.connect(cluster.libpq_url("postgres"), autocommit=True) as conn:
        names = [r[0] for r in conn.execute(DATABASES_SQL)]
    out: dict[str, set[str]] = {}
    for name in names:
        with psycopg.connect(cluster.libpq_url(name), autocommit=True) as conn:
            out[name] = {r[0] for r in conn.execute(EXTENSIONS_SQL)}
    return out


def _available(binaries: PgBinaries) -> set[str]:
    """The extensions the binaries' installation provides (its ``extension/*.control``)."""
    out = subprocess.run(
        [binaries.tool("pg_config"), "--sharedir"], capture_output=True, text=True, check=True
    )
    return {p.stem for p in (Path(out.stdout.strip()) / "extension").glob("*.control")}


def _drop(cluster: EmbeddedCluster, database: str, extension: str, *, commit: bool) -> None:
    """``DROP EXTENSION ... RESTRICT`` in ``database``; rolled back unless ``commit``."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(cluster.libpq_url(database)) as conn:
        try:
            conn.execute(sql.SQL("DROP EXTENSION {} RESTRICT").format(sql.Identifier(extension)))
        except psycopg.errors.DependentObjectsStillExist as exc:
            raise EmbeddedClusterError(
                f"extension {extension} in database {database} cannot be dropped: "
                f"{exc.diag.message_detail or exc} (install it for the new version instead). "
                "Nothing was changed"
            ) from exc
        if commit:
            conn.commit()
        else:
            conn.rollback()


def _finish(cluster: EmbeddedCluster, binaries: PgBinaries, progress: Progress) -> None:
    """Extensions to the new version's, then planner statistics (pg_upgrade carries neither)."""
    import psycopg
    from psycopg import sql

    for database, extensions in _extensions(cluster).items():
        with psycopg.connect(cluster.libpq_url(database), autocommit=True) as conn:
            for extension in sorted(extensions - {"plpgsql"}):
                conn.execute(sql.SQL("ALTER EXTENSION {} UPDATE").format(sql.Identifier(extension)))
    with psycopg.connect(cluster.libpq_url(cluster.database), autocommit=True) as conn:
        purged = purge_secret_statements(conn)
    if purged:
        progress(f"purged {purged} statement statistics entries holding a password literal")
    progress("rebuilding planner statistics (vacuumdb --analyze-in-stages)")
    cluster.run_as_server(
        [
            binaries.tool("vacuumdb"),
            "--all",
            "--analyze-in-stages",
            "--host",
            str(cluster.socket_dir),
            "--port",
            str(cluster.port),
            "--username",
            "postgres",
        ],
        timeout=3600,
    )


def upgrade_cluster(
    cluster: EmbeddedCluster,
    major: int,
    *,
    drop_extensions: Sequence[str] = (),
    progress: Progress = _quiet,
) -> UpgradeResult:
    """Upgrade ``cluster`` to PostgreSQL ``major`` in place (see the module docstring).

    Raises:
        EmbeddedClusterError: no cluster, not a newer version, an extension the new version
            lacks, or a pg_upgrade failure (then the old cluster runs again, unchanged).
    """
    started = time.perf_counter()
    old_major = cluster.data_major()
    if old_major is None:
        raise EmbeddedClusterError(f"no embedded cluster in {cluster.home} to upgrade")
    if major <= old_major:
        raise EmbeddedClusterError(
            f"the cluster is PostgreSQL {old_major}: an upgrade goes to a newer major version"
        )
    kept = cluster.runtime / f"pgdata.{old_major}"
    if kept.exists():  # before anything changes
        raise EmbeddedClusterError(f"{kept} exists (an earlier upgrade's): move it away first")
    old = cluster.recorded_binaries() or find_binaries(old_major)
    new = find_binaries(major)
    progress(f"from PostgreSQL {old.version} ({old.bindir}) to {new.version} ({new.bindir})")
    cluster.pg_version = None  # the old server runs until the swap
    cluster.ensure_running()

    available = _available(new)
    installed = _extensions(cluster)
    missing = {
        (database, name)
        for database, names in installed.items()
        for name in names
        if name not in available
    }
    refused = sorted(f"{name} (in {db})" for db, name in missing if name not in drop_extensions)
    if refused:
        raise EmbeddedClusterError(
            f"PostgreSQL {new.version} here has no {', '.join(refused)}: install it for "
            f"{major}, or drop it first (dbops db upgrade --drop-extension NAME; an extension "
            "other objects depend on is never dropped). Nothing was changed"
        )
    for database, name in sorted(missing):  # all of them, rolled back: any refusal first
        _drop(cluster, database, name, commit=False)
    for database, name in sorted(missing):
        progress(f"dropping extension {name} in {database} (PostgreSQL {major} lacks it)")
        _drop(cluster, database, name, commit=True)

    password = cluster.password or ""
    new_dir = cluster.runtime / f"pgdata.new-{major}"
    progress("stopping the server")
    cluster.stop()
    shutil.rmtree(new_dir, ignore_errors=True)  # a failed attempt's leftovers
    try:
        progress(f"initdb of PostgreSQL {new.version} in {new_dir}")
        cluster.initdb_at(new_dir, new, password)
        cluster.write_server_files(new_dir, cluster.port or free_port())
        argv = [
            new.tool("pg_upgrade"),
            "--old-bindir",
            str(old.bindir),
            "--new-bindir",
            str(new.bindir),
            "--old-datadir",
            str(cluster.datadir),
            "--new-datadir",
            str(new_dir),
            "--username",
            "postgres",
            "--socketdir",
            str(cluster.socket_dir),
            "--old-port",
            str(free_port()),
            "--new-port",
            str(free_port()),
        ]
        progress("pg_upgrade --check")
        cluster.run_as_server([*argv, "--check"], timeout=600)
        progress("pg_upgrade (copy mode: the old data directory stays as it was)")
        cluster.run_as_server(argv, timeout=7200)
    except EmbeddedClusterError:
        shutil.rmtree(new_dir, ignore_errors=True)
        cluster.ensure_running()  # the old cluster, as it was
        raise
    cluster.datadir.rename(kept)
    new_dir.rename(cluster.datadir)
    cluster.record_binaries(new)
    cluster.pg_version = major
    progress(f"starting PostgreSQL {new.version}")
    cluster.ensure_running()
    _finish(cluster, new, progress)
    return UpgradeResult(
        from_version=old.version,
        to_version=new.version,
        old_datadir=kept,
        dropped=tuple(sorted({name for _, name in missing})),
        duration_s=round(time.perf_counter() - started, 1),
    )
