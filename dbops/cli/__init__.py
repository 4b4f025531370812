"""The `dbops` command (typer): embedded database, schema migrations, demo data and status.

Layout: ``_app`` wires the command tree and the root options; ``_errors`` is the one error
handler (one ``error:`` line, exit 2 for settings, 3 for an unreachable database or a stopped
embedded cluster, 1 otherwise); ``_render`` prints; ``_target`` picks the database. The command
groups are plain functions: ``db`` (start|stop|status|url), ``schema`` (migrate, downgrade,
current, history), ``data`` (seed, up), ``monitor`` (status).
"""

from __future__ import annotations

from dbops.cli._app import app, main

__all__ = ["app", "main"]
