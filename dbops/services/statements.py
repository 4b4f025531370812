"""The hot statements of the service API under public names, for raw baselines and tools.

``bench/`` runs these on a bare psycopg connection to measure what the service layer adds
over the very same SQL; they are the texts the services prepare on their connections.
``SOLE_OWNERS_SQL`` is the last-owner rule, which archiving (dbops.ops.archive) applies too.
"""

from __future__ import annotations

from dbops.core.ownership import SOLE_OWNERS_SQL
from dbops.services._ownership import SELECT_OWN_AND_ROLE_SQL, SELECT_ROLE_SQL
from dbops.services.teams import SELECT_TEAM_BY_SLUG_SQL, SELECT_TEAMS_OF_USER_SQL
from dbops.services.users import SELECT_USER_BY_EMAIL_SQL

__all__ = [
    "SELECT_OWN_AND_ROLE_SQL",
    "SELECT_ROLE_SQL",
    "SELECT_TEAMS_OF_USER_SQL",
    "SELECT_TEAM_BY_SLUG_SQL",
    "SELECT_USER_BY_EMAIL_SQL",
    "SOLE_OWNERS_SQL",
]
