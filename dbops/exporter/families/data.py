"""The data section: users, teams, memberships, invitations, team sizes (aggregates only)."""

from __future__ import annotations

from dbops.exporter.families._base import Families
from dbops.monitoring.snapshot import (
    Snapshot,
)


def data_metrics(f: Families, snap: Snapshot) -> None:
    """The data section's families into ``f``."""
    data = snap.data
    if data is None:
        return
    f.gauge("dbops_data_users", "Users by state.", data.live_users, state="live")
    f.gauge("dbops_data_users", "Users by state.", data.deleted_users, state="deleted")
    f.gauge("dbops_data_teams", "Teams by state.", data.live_teams, state="live")
    f.gauge("dbops_data_teams", "Teams by state.", data.deleted_teams, state="deleted")
    for item in data.memberships_by_role:
        f.gauge(
            "dbops_data_memberships", "Live memberships by role.", item.count, role=item.key or ""
        )
    f.gauge(
        "dbops_data_invitations", "Invitations by state.", data.pending_invitations, state="pending"
    )
    f.gauge(
        "dbops_data_invitations", "Invitations by state.", data.expired_invitations, state="expired"
    )
    f.gauge(
        "dbops_data_zero_owner_teams",
        "Live teams without a live owner (must be 0).",
        data.zero_owner_teams,
    )
    if data.audit_last_id is not None:
        f.gauge(
            "dbops_audit_head_id",
            "Id of the audit trail's last record; it only grows (a drop: records deleted).",
            data.audit_last_id,
        )
