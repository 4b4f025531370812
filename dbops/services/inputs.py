"""Input models of the service API: pydantic validation at the boundary, before any SQL runs.

Services build these from their keyword arguments with :func:`validate`, which turns a pydantic
``ValidationError`` into :class:`dbops.errors.InvalidInput` naming the field, with a message that
never echoes the rejected value (it may be a password).
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import timedelta
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    SecretStr,
    StringConstraints,
    ValidationError,
    field_validator,
)

from dbops.crypto import PHONE_RULE, normalize_phone
from dbops.errors import InvalidInput
from dbops.models.accounts import SLUG_PATTERN
from dbops.models.base import Role

__all__ = [
    "EMAIL_MAX_LENGTH",
    "INVITATION_MAX_TTL",
    "PASSWORD_MAX_LENGTH",
    "PASSWORD_MIN_LENGTH",
    "Email",
    "GeoPoint",
    "InvitationRef",
    "InviteInput",
    "JsonPatch",
    "ListQuery",
    "MemberRole",
    "MemberTarget",
    "NearQuery",
    "Phone",
    "PhoneInput",
    "RoleCheck",
    "SearchQuery",
    "Slug",
    "TagList",
    "TagsUpdate",
    "TeamCreate",
    "TeamListQuery",
    "TeamRef",
    "TeamRename",
    "TeamSlug",
    "TokenInput",
    "UserCreate",
    "UserListQuery",
    "UserRename",
    "check_json_size",
    "normalize_email",
    "reject_nul",
    "validate",
]

ModelT = TypeVar("ModelT", bound=BaseModel)

#: RFC 5321's practical limit for a forward path; local part at most 64.
EMAIL_MAX_LENGTH = 254
PASSWORD_MIN_LENGTH = 8
PASSWORD_MAX_LENGTH = 256
#: Tags per user and characters per tag.
MAX_TAGS = 50
MAX_TAG_LENGTH = 64
#: Rows per page of a listing, and results of a search.
MAX_PAGE_SIZE = 500
#: Longest an invitation may stay valid.
INVITATION_MAX_TTL = timedelta(days=90)

#: ``local@domain``: the dot-atom local part of RFC 5322 and a DNS host name with a dot and a
#: letter-only top-level label. Stricter than the database's check, which is only a backstop.
_EMAIL = re.compile(
    r"^[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$"
)
_SLUG = re.compile(SLUG_PATTERN)


def normalize_email(value: str) -> str:
    """Strip and lowercase ``value``; raise ``ValueError`` unless it is a plausible address."""
    email = value.strip().lower()
    local, _, _ = email.partition("@")
    if len(email) > EMAIL_MAX_LENGTH or len(local) > 64 or not _EMAIL.match(email):
        raise ValueError("must be an email address like name@example.com")
    return email


#: Characters a name may not hold: C0/C1 controls and DEL (ESC sequences, CR/LF that forge
#: log lines or terminal output), bidirectional overrides and isolates (U+202E makes "gpj.exe"
#: read "exe.jpg"), the line and paragraph separators, and the BOM. Joiners stay (emoji).
_FORBIDDEN_IN_NAMES = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029\ufeff]"
)
NAME_RULE = "must not contain control characters or bidirectional overrides"


def _plain_name(value: str) -> str:
    if _FORBIDDEN_IN_NAMES.search(value):
        raise ValueError(NAME_RULE)
    return value


def _normalize_slug(value: str) -> str:
    slug = value.strip().lower()
    if len(slug) > 63 or not _SLUG.match(slug):
        raise ValueError(
            "must be lowercase letters, digits and single hyphens, at most 63 characters"
        )
    return slug


def _normalize_tags(values: list[str]) -> list[str]:
    tags: list[str] = []
    for raw in values:
        tag = raw.strip().lower()
        if not tag or len(tag) > MAX_TAG_LENGTH:
            raise ValueError(f"each tag must be 1-{MAX_TAG_LENGTH} characters")
        if _FORBIDDEN_IN_NAMES.search(tag):
            raise ValueError(f"each tag {NAME_RULE}")
        if tag not in tags:
            tags.append(tag)
    if len(tags) > MAX_TAGS:
        raise ValueError(f"at most {MAX_TAGS} tags")
    return tags


def _normalize_phone(value: str) -> str:
    try:
        return normalize_phone(value)
    except InvalidInput:
        raise ValueError(PHONE_RULE) from None


Email = Annotated[str, AfterValidator(normalize_email)]
#: A phone number in E.164 form (``+`` and 7-15 digits; separators dropped, ``00`` -> ``+``).
Phone = Annotated[str, StringConstraints(max_length=64), AfterValidator(_normalize_phone)]
Slug = Annotated[str, AfterValidator(_normalize_slug)]
TagList = Annotated[list[str], AfterValidator(_normalize_tags)]
Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(_plain_name),
]
JsonKey = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class _Input(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class UserCreate(_Input):
    """A new user; ``email`` is normalized (stripped, lowercased)."""

    email: Email
    password: SecretStr
    display_name: Name
    tags: TagList = Field(default_factory=list)
    profile: dict[JsonKey, JsonValue] = Field(default_factory=dict)

    @field_validator("password")
    @classmethod
    def _password_policy(cls, value: SecretStr) -> SecretStr:
        length = len(value.get_secret_value())
        if not PASSWORD_MIN_LENGTH <= length <= PASSWORD_MAX_LENGTH:
            raise ValueError(
                f"must be {PASSWORD_MIN_LENGTH} to {PASSWORD_MAX_LENGTH} characters long"
            )
        return value


class PhoneInput(_Input):
    """A user's phone number, normalized to E.164 before it is encrypted or looked up."""

    phone: Phone


class UserRename(_Input):
    """A new display name."""

    display_name: Name


class TagsUpdate(_Input):
    """The new set of tags of a user."""

    tags: TagList


class JsonPatch(_Input):
    """A partial update of a JSON object column: keys to set (merged) and keys to remove."""

    set: dict[JsonKey, JsonValue] = Field(default_factory=dict)
    remove: list[JsonKey] = Field(default_factory=list)


class TeamCreate(_Input):
    """A new team; ``slug`` is stripped and lowercased."""

    name: Name
    slug: Slug
    settings: dict[JsonKey, JsonValue] = Field(default_factory=dict)


class TeamRename(_Input):
    """A new team name."""

    name: Name


class TeamSlug(_Input):
    """A new team slug."""

    slug: Slug


class ListQuery(_Input):
    """One page of a keyset-paginated listing."""

    limit: int = Field(default=50, ge=1, le=MAX_PAGE_SIZE)
    cursor: str | None = Field(default=None, max_length=200)
    include_deleted: bool = False


class UserListQuery(ListQuery):
    """Users filtered by tags: any of ``tags_any`` (``&&``), all of ``tags_all`` (``@>``)."""

    tags_any: TagList | None = None
    tags_all: TagList | None = None


class TeamListQuery(ListQuery):
    """Teams whose settings contain ``settings_contains`` (``@>``)."""

    settings_contains: dict[JsonKey, JsonValue] | None = None


class SearchQuery(_Input):
    """Full-text + typo-tolerant search terms (web search syntax: quotes, ``or``, ``-``)."""

    q: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    limit: int = Field(default=20, ge=1, le=100)


class GeoPoint(_Input):
    """A WGS 84 point in degrees."""

    lat: float = Field(ge=-90, le=90, allow_inf_nan=False)
    lon: float = Field(ge=-180, le=180, allow_inf_nan=False)


class NearQuery(GeoPoint):
    """Teams within ``radius_km`` of a point, at most ``limit`` of them."""

    radius_km: float = Field(gt=0, le=20_038, allow_inf_nan=False)
    limit: int = Field(default=20, ge=1, le=MAX_PAGE_SIZE)


class TeamRef(_Input):
    """A team, by id."""

    team_id: uuid.UUID


class RoleCheck(TeamRef):
    """The least role an action needs in a team."""

    minimum: Role


class MemberTarget(TeamRef):
    """A team and one of its (future) members."""

    user_id: uuid.UUID


class MemberRole(MemberTarget):
    """A team, a user and the role the user gets there."""

    role: Role


class InviteInput(TeamRef):
    """An invitation to issue; ``email`` is normalized (stripped, lowercased)."""

    email: Email
    role: Role
    ttl: timedelta = Field(gt=timedelta(0), le=INVITATION_MAX_TTL)


class TokenInput(_Input):
    """A token as handed out by ``InvitationService.invite``."""

    token: Annotated[str, StringConstraints(strip_whitespace=True, min_length=16, max_length=128)]


class InvitationRef(_Input):
    """An invitation, by id."""

    invitation_id: uuid.UUID


NUL_MESSAGE = "must not contain NUL (\\x00) characters"


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, SecretStr):
        return "\x00" in value.get_secret_value()
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple | set | frozenset):
        return any(_has_nul(v) for v in value)
    return False


def reject_nul(field: str, value: Any) -> None:
    """InvalidInput naming ``field`` if ``value`` holds a NUL character anywhere (keys too).

    PostgreSQL text and jsonb cannot store NUL; without this check the driver or the server
    refuses it with an error whose context line echoes the value. The message never does.
    """
    if _has_nul(value):
        raise InvalidInput(f"{field}: {NUL_MESSAGE}", field=field)


def check_json_size(field: str, value: Any, limit: int) -> None:
    """InvalidInput naming ``field`` if ``value`` as JSON text is longer than ``limit`` bytes."""
    size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
    if size > limit:
        raise InvalidInput(
            f"{field}: {size:,} bytes of JSON, at most {limit:,} (DBOPS_JSON_MAX_BYTES)",
            field=field,
        )


def validate(model: type[ModelT], /, **data: Any) -> ModelT:
    """Build ``model`` from ``data`` or raise :class:`InvalidInput` naming the first bad field.

    Text with a NUL character is refused first, in any field, nested value or key.
    """
    for field, value in data.items():
        reject_nul(field, value)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        field = ".".join(str(part) for part in first["loc"]) or model.__name__
        message = first["msg"].removeprefix("Value error, ")
        top = str(first["loc"][0]) if first["loc"] else None
        raise InvalidInput(f"{field}: {message}", field=top) from None
