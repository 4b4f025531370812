"""Partial index for the invitation expiry sweep.

``InvitationService.expire_overdue`` runs ``UPDATE invitations SET status = 'expired'
WHERE status = 'pending' AND expires_at <= now()``; without this index that is a scan of every
invitation ever sent. Only pending rows are indexed, so the index stays small. ``invitations``
exists and takes writes: the index is built and dropped ``CONCURRENTLY`` (autocommit block).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 16:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from dbops.ops.migrate import create_index_concurrently, drop_index_concurrently

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Rules squawk may skip for this revision's SQL (scripts/lint_migrations.py), with the reason.
SQUAWK_IGNORE = {
    "prefer-robust-stmts": (
        "create_index_concurrently is rerun-safe without IF NOT EXISTS: online it keeps a valid "
        "index and drops an INVALID one (pg_index), offline it drops the name first; IF NOT "
        "EXISTS would silently skip the build when another relation has the name"
    ),
    "require-statement-timeout": (
        "a statement_timeout would abort a CONCURRENTLY build on a big table halfway; waits are "
        "bounded by the run's lock_timeout (decision 0003)"
    ),
}


def upgrade() -> None:
    with op.get_context().autocommit_block():
        create_index_concurrently(
            "ix_invitations_pending_expiry",
            "invitations",
            ["expires_at"],
            postgresql_where=sa.text("status = 'pending'"),
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        drop_index_concurrently("ix_invitations_pending_expiry", "invitations")
