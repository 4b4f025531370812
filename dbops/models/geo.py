"""Team locations (PostGIS) and the search/containment indexes that migration 0002 adds.

``team_locations`` is a table of its own so that ``teams`` stays usable on a server without
PostGIS: the migration creates it only when the extension is available. The indexes declared at
the bottom attach to the ``users``/``teams`` tables, so ``Base.metadata`` matches the DDL of
migration 0002 once this module is imported.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from geoalchemy2 import Geography
from sqlalchemy import ForeignKey, Index, func
from sqlalchemy.orm import Mapped, mapped_column

from dbops.models.accounts import Team, User
from dbops.models.base import Base

__all__ = ["SERVICE_INDEXES", "TeamLocation"]


class TeamLocation(Base):
    """Where a team is: one point (WGS 84) per team, for "teams near a point" queries."""

    __tablename__ = "team_locations"

    team_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True
    )
    # spatial_index=False: the GiST index is declared below under our naming convention
    # instead of GeoAlchemy2's implicit ``idx_<table>_<column>``.
    location: Mapped[Any] = mapped_column(
        Geography(geometry_type="POINT", srid=4326, spatial_index=False)
    )
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())

    __table_args__ = (
        # ST_DWithin and the KNN ``<->`` ordering of teams_near() use it.
        Index("ix_team_locations_location", "location", postgresql_using="gist"),
    )


#: Indexes of migration 0002 on the foundation tables (they attach to the tables on creation).
SERVICE_INDEXES = (
    # Tag queries: ``tags && ARRAY[...]`` (any) and ``tags @> ARRAY[...]`` (all).
    Index("ix_users_tags", User.tags, postgresql_using="gin"),
    # Keyset pagination of list_users: ORDER BY created_at, id.
    Index("ix_users_created_at_id", User.created_at, User.id),
    # Settings containment: ``settings @> '{"plan": "pro"}'``.
    Index(
        "ix_teams_settings",
        Team.settings,
        postgresql_using="gin",
        postgresql_ops={"settings": "jsonb_path_ops"},
    ),
    # Typo-tolerant search: ``name %>> q`` (pg_trgm strict word similarity).
    Index(
        "ix_teams_name_trgm",
        Team.name,
        postgresql_using="gin",
        postgresql_ops={"name": "gin_trgm_ops"},
    ),
    # Keyset pagination of list_teams: ORDER BY created_at, id.
    Index("ix_teams_created_at_id", Team.created_at, Team.id),
)
