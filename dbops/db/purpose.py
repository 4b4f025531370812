"""The connection plan: as whom and where, for each purpose, decided here only.

Every caller that needs a database URL (the library's :func:`~dbops.db.open_database`, the CLI,
the scheduler of ``dbops up --serve``, the exporter, the dashboard, the notebooks) asks
:func:`dsn_for` with its purpose:

============  ===============================  ==============================================
purpose       embedded cluster (no URL set)    ``DATABASE_URL`` set
============  ===============================  ==============================================
``app``       ``dbops_app``: row-level         ``DATABASE_URL`` (the operator picks the role
              security applies, owns nothing   in the URL)
``owner``     ``dbops_owner``: runs the        ``DATABASE_URL``
              migrations, owns the schema
``readonly``  ``dbops_readonly``: reads every  ``DBOPS_DASHBOARD_DATABASE_URL``, else
              tenant, no secret column, no     ``DATABASE_URL``
              write
``monitor``   ``dbops_monitor``: statistics,   ``DATABASE_URL``
              history, aggregates only
``admin``     the cluster's superuser: roles,  ``DATABASE_URL``
              backups, extensions
============  ===============================  ==============================================

``DBOPS_DASHBOARD_DATABASE_URL`` wins for ``readonly`` on the embedded cluster too. Over the
embedded cluster's unix socket dbops' roles need no password (``dbops up`` creates them).

Only :func:`dsn_for` with ``start=True`` starts (or creates) the embedded cluster: reading code
(notebooks, the dashboard, ``dbops status``) never does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, get_args

from dbops.db.dsn import Dsn, configured_dsn
from dbops.db.roles import ROLE_NAMES

if TYPE_CHECKING:
    from dbops.config import Settings
    from dbops.db.embedded import EmbeddedCluster

__all__ = ["PURPOSES", "Purpose", "dsn_for", "project_cluster", "replica_dsns", "role_of"]

Purpose = Literal["app", "owner", "readonly", "monitor", "admin"]
#: Every purpose, in the order of the table above.
PURPOSES: tuple[Purpose, ...] = get_args(Purpose)


def project_cluster(settings: Settings) -> EmbeddedCluster:
    """The project's embedded cluster (under ``settings.home``), described, not started.

    The one place it is built: with the server options of ``settings``, so whoever starts it
    starts it the same way.
    """
    from dbops.db.embedded import EmbeddedCluster, ServerOptions

    return EmbeddedCluster(
        settings.home,
        database=settings.embedded_database,
        options=ServerOptions.from_settings(settings),
        pg_version=settings.embedded_server.pg_version,
    )


def role_of(purpose: Purpose) -> str | None:
    """The PostgreSQL role ``purpose`` uses on the embedded cluster (``None``: the superuser)."""
    if purpose not in PURPOSES:
        raise ValueError(f"unknown purpose {purpose!r}: one of {', '.join(PURPOSES)}")
    return None if purpose == "admin" else ROLE_NAMES[purpose]


def dsn_for(settings: Settings, purpose: Purpose = "app", *, start: bool = False) -> Dsn:
    """The database URL for ``purpose`` (see the module's table).

    Args:
        settings: ``DATABASE_URL``, ``DBOPS_DASHBOARD_DATABASE_URL``, the embedded cluster's home.
        purpose: who connects: ``app``, ``owner``, ``readonly``, ``monitor`` or ``admin``.
        start: create and start the embedded cluster when it is not running (commands that
            change the database); without it a stopped cluster is an error.

    Raises:
        ConfigError: a URL setting is invalid.
        EmbeddedClusterError: no cluster yet and no PostgreSQL binaries to create one.
        DatabaseUnavailable: without ``start``, the embedded cluster does not exist yet or is
            stopped.
    """
    role = role_of(purpose)
    if purpose == "readonly" and settings.dashboard.database_url is not None:
        return Dsn.parse(
            settings.dashboard.database_url.get_secret_value(),
            source="DBOPS_DASHBOARD_DATABASE_URL",
        )
    external = configured_dsn(settings)
    if external is not None:
        return external
    cluster = project_cluster(settings)
    if start:
        superuser = Dsn.parse(cluster.ensure_running(), source="the embedded cluster's URL")
    else:
        superuser = _running(cluster)
    return superuser if role is None else superuser.as_user(role)


def _running(cluster: EmbeddedCluster) -> Dsn:
    from dbops.db.embedded import find_binaries
    from dbops.errors import EMBEDDED_NOT_CREATED, EMBEDDED_STOPPED, DatabaseUnavailable

    if not cluster.initialized():
        find_binaries()  # no binaries: the install hint says more than "not created"
        raise DatabaseUnavailable(EMBEDDED_NOT_CREATED.format(home=cluster.home))
    if not cluster.running():
        raise DatabaseUnavailable(EMBEDDED_STOPPED)
    return Dsn.parse(cluster.url(), source="the embedded cluster's URL")


def replica_dsns(settings: Settings, *, embedded_primary: bool) -> list[tuple[str, Dsn]]:
    """The replicas the application's lag-tolerant reads may use, as ``(name, dsn)``.

    ``DBOPS_REPLICA_URLS`` when set (the operator picks each URL's role; the name is its
    ``host:port``); else, when the primary is the embedded cluster (``embedded_primary``: no
    URL was given and ``DATABASE_URL`` is unset), its replicas (``dbops db replica add``) as
    ``dbops_app`` over their unix sockets. None with ``DBOPS_REPLICA_READS=false``.
    """
    section = settings.replicas
    if not section.reads:
        return []
    if section.urls is not None:
        from psycopg.conninfo import conninfo_to_dict

        found = []
        for index, url in enumerate(section.urls.get_secret_value().split(), start=1):
            dsn = Dsn.parse(url, source=f"DBOPS_REPLICA_URLS (URL {index})")
            parts = conninfo_to_dict(dsn.libpq)
            found.append((f"{parts.get('host', 'local')}:{parts.get('port', 5432)}", dsn))
        return found
    if not embedded_primary or configured_dsn(settings) is not None:
        return []
    from dbops.db.standby import embedded_replicas

    role = ROLE_NAMES["app"]
    return [
        (name, Dsn.parse(replica.url(), source="an embedded replica's URL").as_user(role))
        for name, replica in embedded_replicas(project_cluster(settings))
        if replica.port is not None
    ]
