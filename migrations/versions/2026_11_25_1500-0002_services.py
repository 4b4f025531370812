"""Services: trigram search, tag/settings GIN indexes, keyset indexes, team locations (PostGIS).

PostGIS is optional: when the server has no ``postgis`` extension (or the migrating role may not
create it), ``team_locations`` is not created and only "teams near a point" is unavailable.
Extensions this migration creates carry a comment, so the downgrade drops exactly those.

The indexes on ``users`` and ``teams`` (tables that exist and may be big and busy) are built and
dropped ``CONCURRENTLY`` in an autocommit block, first in each direction: the block commits what
ran before it, and what follows it commits together with this revision's version stamp
(docs/decisions/0003-migration-safety.md). ``team_locations`` is new here: its index is plain.
Offline (``--sql``) the extension steps are ``DO`` blocks that decide on the server.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 15:00:00
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op
from psycopg import errors as pg_errors
from sqlalchemy import exc as sa_exc

from dbops.ops.migrate import create_index_concurrently, drop_index_concurrently

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
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

_log = logging.getLogger("alembic.runtime.migration")

#: Comment put on an extension this migration created; the downgrade drops only those.
CREATED_MARK = "created by dbops migration 0002"

EXTENSION_INSTALLED = sa.text("SELECT 1 FROM pg_extension WHERE extname = :name")
EXTENSION_AVAILABLE = sa.text("SELECT 1 FROM pg_available_extensions WHERE name = :name")
EXTENSION_COMMENT = sa.text(
    "SELECT obj_description(oid, 'pg_extension') FROM pg_extension WHERE extname = :name"
)

CREATE_TEAM_LOCATIONS = """
CREATE TABLE team_locations (
    team_id uuid NOT NULL,
    location geography(POINT, 4326) NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT pk_team_locations PRIMARY KEY (team_id),
    CONSTRAINT fk_team_locations_team_id_teams FOREIGN KEY (team_id)
        REFERENCES teams (id) ON DELETE CASCADE
)
"""


#: The offline (``--sql``) forms of the extension steps: the server decides, as online.
OFFLINE_CREATE_PG_TRGM = """
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
        CREATE EXTENSION pg_trgm;
        COMMENT ON EXTENSION pg_trgm IS 'created by dbops migration 0002';
    END IF;
END
$$
"""
OFFLINE_CREATE_POSTGIS_PART = """
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'postgis')
        AND EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'postgis') THEN
        CREATE EXTENSION postgis;
        COMMENT ON EXTENSION postgis IS 'created by dbops migration 0002';
    END IF;
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'postgis') THEN
        CREATE TABLE team_locations (
            team_id uuid NOT NULL,
            location geography(POINT, 4326) NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT pk_team_locations PRIMARY KEY (team_id),
            CONSTRAINT fk_team_locations_team_id_teams FOREIGN KEY (team_id)
                REFERENCES teams (id) ON DELETE CASCADE
        );
        CREATE INDEX ix_team_locations_location ON team_locations USING gist (location);
        CREATE TRIGGER trg_team_locations_updated_at BEFORE UPDATE ON team_locations
            FOR EACH ROW EXECUTE FUNCTION set_updated_at();
    END IF;
END
$$
"""
OFFLINE_DROP_POSTGIS = """
DO $$
BEGIN
    IF (SELECT obj_description(oid, 'pg_extension') FROM pg_extension
        WHERE extname = 'postgis') = 'created by dbops migration 0002' THEN
        DROP EXTENSION postgis;
    END IF;
EXCEPTION WHEN dependent_objects_still_exist THEN
    RAISE WARNING 'extension postgis is still used by other objects: kept';
END
$$
"""
OFFLINE_DROP_PG_TRGM = """
DO $$
BEGIN
    IF (SELECT obj_description(oid, 'pg_extension') FROM pg_extension
        WHERE extname = 'pg_trgm') = 'created by dbops migration 0002' THEN
        DROP EXTENSION pg_trgm;
    END IF;
EXCEPTION WHEN dependent_objects_still_exist THEN
    RAISE WARNING 'extension pg_trgm is still used by other objects: kept';
END
$$
"""


def _create_extension(name: str, *, optional: bool) -> bool:
    """Create extension ``name`` unless installed; True when it is there afterwards."""
    bind = op.get_bind()
    if bind.execute(EXTENSION_INSTALLED, {"name": name}).first():
        return True
    if optional and not bind.execute(EXTENSION_AVAILABLE, {"name": name}).first():
        _log.warning("%s is not installed on the server: skipping its objects", name)
        return False
    try:
        with bind.begin_nested():
            # Identifiers cannot be bound; ``name`` is one of this module's literals.
            bind.execute(sa.text(f'CREATE EXTENSION "{name}"'))
            bind.execute(sa.text(f"COMMENT ON EXTENSION \"{name}\" IS '{CREATED_MARK}'"))
    except sa_exc.DBAPIError as exc:
        if not optional:
            raise
        # Not allowed (InsufficientPrivilege), or a half-installed package whose control file
        # is there without its library (UndefinedFile): the optional feature stays off.
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        _log.warning("cannot create extension %s (%s): skipping its objects", name, reason)
        return False
    return True


def _drop_extension_if_created(name: str) -> None:
    """Drop ``name`` if this migration created it and nothing else uses it now."""
    bind = op.get_bind()
    if bind.execute(EXTENSION_COMMENT, {"name": name}).scalar() != CREATED_MARK:
        return
    try:
        with bind.begin_nested():
            bind.execute(sa.text(f'DROP EXTENSION "{name}"'))
    except sa_exc.DBAPIError as exc:
        if not isinstance(exc.orig, pg_errors.DependentObjectsStillExist):
            raise
        _log.warning("extension %s is still used by other objects: kept", name)


def upgrade() -> None:
    if context.is_offline_mode():
        op.execute(OFFLINE_CREATE_PG_TRGM)
    else:
        # Before the autocommit block (which commits it): gin_trgm_ops is needed below.
        _create_extension("pg_trgm", optional=False)
    with op.get_context().autocommit_block():
        create_index_concurrently("ix_users_tags", "users", ["tags"], postgresql_using="gin")
        create_index_concurrently("ix_users_created_at_id", "users", ["created_at", "id"])
        create_index_concurrently(
            "ix_teams_settings",
            "teams",
            ["settings"],
            postgresql_using="gin",
            postgresql_ops={"settings": "jsonb_path_ops"},
        )
        create_index_concurrently(
            "ix_teams_name_trgm",
            "teams",
            ["name"],
            postgresql_using="gin",
            postgresql_ops={"name": "gin_trgm_ops"},
        )
        create_index_concurrently("ix_teams_created_at_id", "teams", ["created_at", "id"])

    if context.is_offline_mode():
        op.execute(OFFLINE_CREATE_POSTGIS_PART)
    elif _create_extension("postgis", optional=True):
        op.execute(CREATE_TEAM_LOCATIONS)
        op.create_index(
            "ix_team_locations_location", "team_locations", ["location"], postgresql_using="gist"
        )
        op.execute(
            "CREATE TRIGGER trg_team_locations_updated_at BEFORE UPDATE ON team_locations "
            "FOR EACH ROW EXECUTE FUNCTION set_updated_at()"
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        drop_index_concurrently("ix_teams_created_at_id", "teams")
        drop_index_concurrently("ix_teams_name_trgm", "teams")
        drop_index_concurrently("ix_teams_settings", "teams")
        drop_index_concurrently("ix_users_created_at_id", "users")
        drop_index_concurrently("ix_users_tags", "users")
    op.execute("DROP TABLE IF EXISTS team_locations")
    if context.is_offline_mode():
        op.execute(OFFLINE_DROP_POSTGIS)
        op.execute(OFFLINE_DROP_PG_TRGM)
        return
    _drop_extension_if_created("postgis")
    _drop_extension_if_created("pg_trgm")
