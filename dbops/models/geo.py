"""Team locations (PostGIS): the one model that needs the optional ``geo`` extra (GeoAlchemy2).

``team_locations`` is a table of its own so that ``teams`` stays usable on a server without
PostGIS: the migration creates it only when the extension is available. Nothing imports this
module at ``import dbops.models`` time (``dbops.models.TeamLocation`` loads it on first use), so
the core runs without GeoAlchemy2; migrations/env.py imports it when the package is installed.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from geoalchemy2 import Geography
from sqlalchemy import ForeignKey, Index, func
from sqlalchemy.orm import Mapped, mapped_column

from dbops.models.base import Base

__all__ = ["TeamLocation"]


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
