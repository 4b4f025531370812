"""Maintenance from a snapshot: collect, plan (monitoring), run (ops), with the settings' limits.

The CLI (``dbops maintain plan|run``), the scheduler of ``dbops up --serve`` and notebook 04
call these two functions; each only renders what comes back.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from dbops.config import Settings
from dbops.core.maintenance import Action
from dbops.db import Database
from dbops.monitoring.collect import collect_snapshot
from dbops.monitoring.maintenance import MaintenancePlan, plan
from dbops.monitoring.snapshot import Snapshot
from dbops.ops.maintenance import MaintenanceReport, ProgressEvent, run

__all__ = ["plan_maintenance", "run_maintenance"]


def plan_maintenance(
    db: Database, settings: Settings, *, snapshot: Snapshot | None = None
) -> MaintenancePlan:
    """What maintenance ``snapshot`` (default: a fresh one of ``db``) calls for."""
    return plan(snapshot if snapshot is not None else collect_snapshot(db, settings), settings)


def run_maintenance(
    db: Database,
    settings: Settings,
    actions: Sequence[Action],
    *,
    apply: bool,
    progress: Callable[[ProgressEvent], None] | None = None,
) -> MaintenanceReport:
    """Run ``actions``, a dry run unless ``apply``, under the settings' maintenance timeouts.

    ``maintain_lock_timeout_ms`` and ``maintain_statement_timeout_ms``, per statement.
    """
    return run(
        db,
        actions,
        apply=apply,
        lock_timeout_ms=settings.maintain.lock_timeout_ms,
        statement_timeout_ms=settings.maintain.statement_timeout_ms,
        progress=progress,
    )
