"""The `dbops` command (typer): the database, its schema, data, health, backups and roles.

Layout: ``_app`` wires the command tree and the root options; ``_errors`` is the one error
handler (one ``error:`` line, exit 2 for settings, 3 for an unreachable database or a stopped
embedded cluster, 1 otherwise); ``_render`` prints; ``_target`` picks the settings and the
administrator's database (every other connection: :func:`dbops.db.dsn_for`). The command
groups are plain functions, one module each: ``db`` (the embedded cluster), ``migrations``
(migrate, downgrade, current, history; also the ``dbops schema`` group), ``up`` (up, seed,
workload), ``serve``
(``up --serve``: workload, exporter, dashboard, scheduler), ``monitor`` (snapshot, checks,
explain, history, advice), ``maintain``, ``backup``, ``pitr``, ``archive``, ``keys``,
``roles`` and ``audit``.
"""

from __future__ import annotations

from dbops.cli._app import app, main

__all__ = ["app", "main"]
