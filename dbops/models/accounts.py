"""Users, teams, team memberships and invitations."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Computed,
    Enum,
    ForeignKey,
    Index,
    LargeBinary,
    SmallInteger,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import TSVECTOR
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from dbops.models.base import (
    EMPTY_JSON_OBJECT,
    EMPTY_TEXT_ARRAY,
    Base,
    Role,
    SoftDeleteMixin,
    TimestampMixin,
    UuidPkMixin,
)

__all__ = [
    "SERVICE_INDEXES",
    "Invitation",
    "InvitationStatus",
    "Team",
    "TeamMember",
    "TeamMemberCount",
    "User",
    "role_enum",
]

#: The encrypted phone's three columns are all set or all null (migration 0007).
PHONE_ALL_OR_NONE = (
    "(phone_ciphertext IS NULL) = (phone_key_version IS NULL) "
    "AND (phone_key_version IS NULL) = (phone_blind_index IS NULL)"
)
#: Slugs: lowercase letters and digits in hyphen-separated words, 1 to 63 characters.
SLUG_PATTERN = "^[a-z0-9]+(-[a-z0-9]+)*$"


class InvitationStatus(enum.StrEnum):
    """Life cycle of an invitation."""

    PENDING = "pending"
    ACCEPTED = "accepted"
    REVOKED = "revoked"
    EXPIRED = "expired"


def _values(enum_cls: type[enum.Enum]) -> list[str]:
    return [str(member.value) for member in enum_cls]


role_enum = Enum(Role, name="role_enum", values_callable=_values, create_type=False)
invitation_status_enum = Enum(
    InvitationStatus, name="invitation_status", values_callable=_values, create_type=False
)


class User(UuidPkMixin, TimestampMixin, SoftDeleteMixin, Base):
    """A person who signs in; ``role`` is the account-wide role of the seed's schema."""

    __tablename__ = "users"

    email: Mapped[str]
    password_hash: Mapped[str]
    display_name: Mapped[str]
    role: Mapped[Role] = mapped_column(role_enum, server_default=Role.MEMBER.value)
    profile: Mapped[dict[str, Any]] = mapped_column(server_default=EMPTY_JSON_OBJECT)
    tags: Mapped[list[str]] = mapped_column(server_default=EMPTY_TEXT_ARRAY)
    # The phone number, encrypted in the application (dbops.crypto, migration 0007): AES-GCM
    # ciphertext bound to this row, the key version that made it, and the blind index (HMAC of
    # the E.164 form) for equality lookups. All three are set together or all null.
    phone_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)
    phone_key_version: Mapped[int | None] = mapped_column(SmallInteger, deferred=True)
    phone_blind_index: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)

    memberships: Mapped[list[TeamMember]] = relationship(
        back_populates="user", passive_deletes=True
    )

    @validates("email")
    def _lowercase_email(self, _key: str, value: str) -> str:
        """Stored lowercase, as the services store it (``ck_users_email_lowercase``)."""
        return value.lower()

    __table_args__ = (
        # One live user per email (a soft-deleted user frees it), case-insensitively: every
        # email is stored lowercase (the CHECK below). A plain column index, not lower(email):
        # ``email = $1`` may use it under row-level security, where the non-LEAKPROOF lower()
        # may not run before the policy (migration 0012).
        Index(
            "uq_users_email_live",
            "email",
            unique=True,
            postgresql_where=text("deleted_at IS NULL"),
        ),
        CheckConstraint("email = lower(email)", name="email_lowercase"),
        CheckConstraint(
            "char_length(email) BETWEEN 3 AND 320 AND email ~ '^[^@\\s]+@[^@\\s]+$'",
            name="email_format",
        ),
        CheckConstraint("char_length(display_name) BETWEEN 1 AND 200", name="display_name_length"),
        CheckConstraint("jsonb_typeof(profile) = 'object'", name="profile_is_object"),
        CheckConstraint("char_length(password_hash) > 0", name="password_hash_present"),
        CheckConstraint(PHONE_ALL_OR_NONE, name="phone_all_or_none"),
        # find_by_phone: equality on the blind index; only users with a phone are indexed.
        Index(
            "ix_users_phone_blind_index",
            "phone_blind_index",
            postgresql_where=text("phone_blind_index IS NOT NULL"),
        ),
    )


class Team(UuidPkMixin, TimestampMixin, SoftDeleteMixin, Base):
    """A tenant: the unit that owns data and has members."""

    __tablename__ = "teams"

    name: Mapped[str]
    slug: Mapped[str]
    settings: Mapped[dict[str, Any]] = mapped_column(server_default=EMPTY_JSON_OBJECT)
    search: Mapped[str] = mapped_column(
        TSVECTOR,
        Computed(
            "to_tsvector('simple'::regconfig, name || ' ' || replace(slug, '-', ' '))",
            persisted=True,
        ),
        deferred=True,
    )

    members: Mapped[list[TeamMember]] = relationship(back_populates="team", passive_deletes=True)

    __table_args__ = (
        # Unique among live teams; also the index behind "team by slug".
        Index(
            "uq_teams_slug_live",
            "slug",
            unique=True,
            postgresql_where=text("deleted_at IS NULL"),
        ),
        Index("ix_teams_search", "search", postgresql_using="gin"),
        CheckConstraint(f"slug ~ '{SLUG_PATTERN}' AND char_length(slug) <= 63", name="slug_format"),
        CheckConstraint("char_length(name) BETWEEN 1 AND 200", name="name_length"),
        CheckConstraint("jsonb_typeof(settings) = 'object'", name="settings_is_object"),
    )


class TeamMember(TimestampMixin, Base):
    """Membership of a user in a team, with the user's role there."""

    __tablename__ = "team_members"

    team_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[Role] = mapped_column(role_enum, server_default=Role.MEMBER.value)

    team: Mapped[Team] = relationship(back_populates="members")
    user: Mapped[User] = relationship(back_populates="memberships")

    __table_args__ = (
        # The primary key (team_id, user_id) serves "members of a team"; this one serves
        # "teams of a user" and the cascade from users, and with the team in it, the actor's
        # teams every tenant policy starts from are an index-only scan (migration 0013).
        Index("ix_team_members_user_id", "user_id", "team_id"),
    )


class TeamMemberCount(Base):
    """A team's number of memberships, kept by triggers on ``team_members`` (migration 0014).

    Written only by the trigger function (the application role may read it); a team that never
    had a member has no row (count 0).
    """

    __tablename__ = "team_member_counts"

    team_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True
    )
    members: Mapped[int] = mapped_column(BigInteger)


class Invitation(UuidPkMixin, TimestampMixin, Base):
    """An invitation of an email address into a team; only a hash of its token is stored."""

    __tablename__ = "invitations"

    team_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"))
    email: Mapped[str]
    role: Mapped[Role] = mapped_column(role_enum, server_default=Role.MEMBER.value)
    invited_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    token_hash: Mapped[bytes] = mapped_column(LargeBinary, unique=True)
    status: Mapped[InvitationStatus] = mapped_column(
        invitation_status_enum, server_default=InvitationStatus.PENDING.value
    )
    expires_at: Mapped[datetime]
    accepted_at: Mapped[datetime | None]

    __table_args__ = (
        # At most one pending invitation per team and email (any case).
        Index(
            "uq_invitations_pending",
            "team_id",
            func.lower(text("email")),
            unique=True,
            postgresql_where=text("status = 'pending'"),
        ),
        # "Invitations of a team" (all statuses) and the cascade from teams.
        Index("ix_invitations_team_id", "team_id"),
        # The expiry sweep (status = 'pending' AND expires_at <= now()); pending rows only.
        Index(
            "ix_invitations_pending_expiry",
            "expires_at",
            postgresql_where=text("status = 'pending'"),
        ),
        # The SET NULL cascade from users and "invitations sent by a user".
        Index("ix_invitations_invited_by", "invited_by"),
        CheckConstraint("email ~ '^[^@\\s]+@[^@\\s]+$'", name="email_format"),
        CheckConstraint("octet_length(token_hash) = 32", name="token_hash_sha256"),
        CheckConstraint("expires_at > created_at", name="expires_after_created"),
        CheckConstraint(
            "(status = 'accepted') = (accepted_at IS NOT NULL)", name="accepted_at_matches_status"
        ),
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
