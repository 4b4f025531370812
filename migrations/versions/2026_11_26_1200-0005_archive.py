"""Archive: schema ``archive`` for soft-deleted users and teams moved out of the live tables.

``dbops.ops.archive.run`` moves soft-deleted users and teams older than a cutoff here, with
their memberships, invitations and team locations, in batches of one transaction each;
``dbops.ops.archive.restore`` moves them back. The tables are typed copies of the live ones
(same enum types, ``deleted_at`` now required) plus ``archived_at`` and the ``run_id`` of the
run that moved the row. Their primary keys are the live ones, so a row can be archived once
only (the run inserts with ``ON CONFLICT DO NOTHING`` and checks the counts). No foreign keys:
an archived membership may point at a live user, an archived invitation at a user that is gone.

A schema of its own, not ``*_archive`` tables next to the live ones: the application role never
needs it (``REVOKE ... FROM PUBLIC``: it holds password hashes), ``pg_dump --exclude-schema``
can leave it out, and the rules about live tables (an ``updated_at`` trigger on every public
table) do not apply to rows nobody updates. Every table is new and empty: plain DDL in the
run's transaction (no ``CONCURRENTLY`` step). See docs/schema.md.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Rules squawk may skip for this revision's SQL (scripts/lint_migrations.py), with the reason.
SQUAWK_IGNORE = {
    "require-statement-timeout": (
        "creates an empty schema and empty tables; waits are bounded by the run's lock_timeout "
        "(decision 0003)"
    ),
}

UPGRADE = (
    "CREATE SCHEMA archive",
    "COMMENT ON SCHEMA archive IS "
    "'dbops archive: soft-deleted users and teams moved out of the live tables "
    "(dbops archive run / restore, docs/schema.md)'",
    # Password hashes and personal data: no role but the owner reads it.
    "REVOKE ALL ON SCHEMA archive FROM PUBLIC",
    """
    CREATE TABLE archive.users (
        id uuid NOT NULL,
        email text NOT NULL,
        password_hash text NOT NULL,
        display_name text NOT NULL,
        role public.role_enum NOT NULL,
        profile jsonb NOT NULL,
        tags text[] NOT NULL,
        created_at timestamptz NOT NULL,
        updated_at timestamptz NOT NULL,
        deleted_at timestamptz NOT NULL,
        archived_at timestamptz NOT NULL DEFAULT now(),
        run_id uuid NOT NULL,
        CONSTRAINT pk_archive_users PRIMARY KEY (id)
    )
    """,
    # `dbops archive restore --user EMAIL`.
    "CREATE INDEX ix_archive_users_email ON archive.users (lower(email))",
    """
    CREATE TABLE archive.teams (
        id uuid NOT NULL,
        name text NOT NULL,
        slug text NOT NULL,
        settings jsonb NOT NULL,
        created_at timestamptz NOT NULL,
        updated_at timestamptz NOT NULL,
        deleted_at timestamptz NOT NULL,
        archived_at timestamptz NOT NULL DEFAULT now(),
        run_id uuid NOT NULL,
        CONSTRAINT pk_archive_teams PRIMARY KEY (id)
    )
    """,
    # `dbops archive restore --team SLUG`.
    "CREATE INDEX ix_archive_teams_slug ON archive.teams (slug)",
    """
    CREATE TABLE archive.team_members (
        team_id uuid NOT NULL,
        user_id uuid NOT NULL,
        role public.role_enum NOT NULL,
        created_at timestamptz NOT NULL,
        updated_at timestamptz NOT NULL,
        archived_at timestamptz NOT NULL DEFAULT now(),
        run_id uuid NOT NULL,
        CONSTRAINT pk_archive_team_members PRIMARY KEY (team_id, user_id)
    )
    """,
    # The primary key serves a team's restore; this one a user's.
    "CREATE INDEX ix_archive_team_members_user_id ON archive.team_members (user_id)",
    """
    CREATE TABLE archive.invitations (
        id uuid NOT NULL,
        team_id uuid NOT NULL,
        email text NOT NULL,
        role public.role_enum NOT NULL,
        invited_by uuid,
        token_hash bytea NOT NULL,
        status public.invitation_status NOT NULL,
        expires_at timestamptz NOT NULL,
        accepted_at timestamptz,
        created_at timestamptz NOT NULL,
        updated_at timestamptz NOT NULL,
        archived_at timestamptz NOT NULL DEFAULT now(),
        run_id uuid NOT NULL,
        CONSTRAINT pk_archive_invitations PRIMARY KEY (id)
    )
    """,
    "CREATE INDEX ix_archive_invitations_team_id ON archive.invitations (team_id)",
    # Live invitations sent by an archived user: the user's delete sets their invited_by to
    # NULL (its foreign key), this keeps the link so a restore of the user can put it back.
    """
    CREATE TABLE archive.invitation_senders (
        invitation_id uuid NOT NULL,
        invited_by uuid NOT NULL,
        archived_at timestamptz NOT NULL DEFAULT now(),
        run_id uuid NOT NULL,
        CONSTRAINT pk_archive_invitation_senders PRIMARY KEY (invitation_id)
    )
    """,
    "CREATE INDEX ix_archive_invitation_senders_invited_by "
    "ON archive.invitation_senders (invited_by)",
    # team_locations exists only with PostGIS (0002); the point is kept as geography's text
    # form (hex EWKB, exact), so this table does not need PostGIS itself.
    """
    CREATE TABLE archive.team_locations (
        team_id uuid NOT NULL,
        location text NOT NULL,
        created_at timestamptz NOT NULL,
        updated_at timestamptz NOT NULL,
        archived_at timestamptz NOT NULL DEFAULT now(),
        run_id uuid NOT NULL,
        CONSTRAINT pk_archive_team_locations PRIMARY KEY (team_id)
    )
    """,
)

#: Each table by name (no CASCADE: an object someone else added to the schema stops the drop).
DOWNGRADE = (
    "DROP TABLE archive.team_locations",
    "DROP TABLE archive.invitation_senders",
    "DROP TABLE archive.invitations",
    "DROP TABLE archive.team_members",
    "DROP TABLE archive.teams",
    "DROP TABLE archive.users",
    "DROP SCHEMA archive",
)


def upgrade() -> None:
    for statement in UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    for statement in DOWNGRADE:
        op.execute(statement)
