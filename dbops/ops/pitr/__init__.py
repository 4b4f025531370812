"""Point-in-time recovery of the embedded cluster with pgBackRest: setup, base backups, restore.

dbops owns one pgBackRest configuration per embedded cluster, in ``pgbackrest/`` next to the
cluster's data directory (``.dbops/`` or its /var/tmp relocation), with its own repository, log,
lock and spool directories. :func:`setup` turns WAL archiving on (``ALTER SYSTEM``, so that the
embedded cluster's own ``dbops.conf``, rewritten on every start, does not undo it) and creates
the stanza; :func:`base_backup` takes full or incremental backups; :func:`restore_to` restores a
*copy* of the cluster as of a moment into a new directory and starts it as a separate embedded
cluster on its own port and socket. The live cluster's data and settings are never changed by a
restore.

pgBackRest refuses to run as root: when dbops runs as root every pgBackRest command runs as the
``postgres`` system user, like the embedded server itself, and the directories it writes are
handed to that user. Only the embedded cluster is supported (with ``DATABASE_URL`` set, use the
server's own backup tooling).

One module per job, as :mod:`dbops.ops.backup`: ``configure`` (:func:`setup`), ``backups``
(:func:`base_backup`, :func:`info`), ``restoring`` (:func:`restore_to`), ``results``; ``_layout``
holds the paths, the configuration file and the runner they share.
"""

from __future__ import annotations

from dbops.ops.pitr._layout import STANZA, config_path
from dbops.ops.pitr.backups import base_backup, info
from dbops.ops.pitr.configure import setup
from dbops.ops.pitr.restoring import restore_to
from dbops.ops.pitr.results import BackupResult, BackupSet, PitrInfo, RestoreResult, SetupResult

__all__ = [
    "STANZA",
    "BackupResult",
    "BackupSet",
    "PitrInfo",
    "RestoreResult",
    "SetupResult",
    "base_backup",
    "config_path",
    "info",
    "restore_to",
    "setup",
]
