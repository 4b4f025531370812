"""The schema: SQLAlchemy models, the single source of truth for migrations."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dbops._lazy import lazy_exports
from dbops.errors import CHECK_CONSTRAINTS, UNIQUE_CONSTRAINTS
from dbops.models.accounts import (
    Invitation,
    InvitationStatus,
    Team,
    TeamMember,
    TeamMemberCount,
    User,
)
from dbops.models.base import Base, Role

if TYPE_CHECKING:
    from dbops.models.geo import TeamLocation

__all__ = [
    "Base",
    "Invitation",
    "InvitationStatus",
    "Role",
    "Team",
    "TeamLocation",
    "TeamMember",
    "TeamMemberCount",
    "User",
]

#: Tables of the foundation that carry ``updated_at`` and so get the ``set_updated_at`` trigger
#: (``team_locations``, from the optional geo model, has its own in migration 0002).
UPDATED_AT_TABLES = tuple(
    sorted(t.name for t in Base.metadata.sorted_tables if "updated_at" in t.c)
)


# ``TeamLocation`` loads the optional GeoAlchemy2 model only when it is asked for.
__getattr__, __dir__ = lazy_exports(__name__, {"TeamLocation": "dbops.models.geo"})


UNIQUE_CONSTRAINTS.update(
    {
        "uq_users_email_live": ("email", "a user with this email already exists"),
        "uq_teams_slug_live": ("slug", "a team with this slug already exists"),
        "pk_team_members": ("user_id", "the user is already a member of this team"),
        "uq_invitations_pending": (
            "email",
            "this email already has a pending invitation to the team",
        ),
        "uq_invitations_token_hash": ("token", "invitation token collision; try again"),
    }
)
CHECK_CONSTRAINTS.update(
    {
        "ck_users_email_format": ("email", "email must look like name@domain"),
        "ck_users_email_lowercase": ("email", "email must be stored lowercase"),
        "ck_users_display_name_length": ("display_name", "display name must be 1-200 characters"),
        "ck_users_profile_is_object": ("profile", "profile must be a JSON object"),
        "ck_users_password_hash_present": ("password", "password hash is missing"),
        "ck_users_phone_all_or_none": (
            "phone",
            "the phone's ciphertext, key version and blind index are set together",
        ),
        "ck_teams_slug_format": (
            "slug",
            "slug must be lowercase letters, digits and single hyphens, at most 63 characters",
        ),
        "ck_teams_name_length": ("name", "team name must be 1-200 characters"),
        "ck_teams_settings_is_object": ("settings", "settings must be a JSON object"),
        "ck_invitations_email_format": ("email", "email must look like name@domain"),
        "ck_invitations_token_hash_sha256": ("token", "token hash must be 32 bytes"),
        "ck_invitations_expires_after_created": (
            "expires_at",
            "an invitation must expire after it is created",
        ),
        "ck_invitations_accepted_at_matches_status": (
            "status",
            "accepted_at is set exactly when the invitation is accepted",
        ),
    }
)
