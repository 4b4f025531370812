"""User accounts: sign-up, sign-in (argon2id), profile and tags, phone (encrypted), soft delete."""

from __future__ import annotations

import hmac
import secrets
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from psycopg import sql
from psycopg.rows import args_row, class_row
from psycopg.types.json import Jsonb

from dbops.crypto import Keyring, load_keyring, normalize_phone
from dbops.db.engine import Database
from dbops.errors import Forbidden, LoginFailed, NotFound
from dbops.models.base import Role
from dbops.services._base import (
    Actor,
    UnitOfWork,
    check_actor,
    in_transaction,
    lag_tolerant,
    reading,
)
from dbops.services._cache import QueryCache
from dbops.services._keys import role_key
from dbops.services._ownership import remove_user_memberships
from dbops.services._query import Page, decode_cursor, fetch_all, fetch_one, page_of
from dbops.services._visibility import USER_NOT_FOUND, VISIBLE_USER, require_self_or_system
from dbops.services.inputs import (
    JsonPatch,
    PhoneInput,
    TagsUpdate,
    UserCreate,
    UserListQuery,
    UserRename,
    check_json_size,
    normalize_email,
    reject_nul,
    validate,
)
from dbops.telemetry.metrics import timed_methods

__all__ = ["UserService", "UserView"]

T = TypeVar("T")

#: Message of every failed sign-in: it does not say whether the email exists.
WRONG_CREDENTIALS = "wrong email or password"
NO_DELETED_USER = "no deleted user with this id"

_USER_COLUMNS = "id, email, display_name, role, profile, tags, created_at, updated_at, deleted_at"

SELECT_USER_BY_EMAIL_SQL = (
    "SELECT " + _USER_COLUMNS + " FROM users WHERE email = %(email)s AND deleted_at IS NULL"
)
SELECT_USER_SQL = "SELECT " + _USER_COLUMNS + " FROM users WHERE id = %(id)s"
# The same reads for a user actor: the row only if it is the actor or a teammate of it
# (docs/permissions.md), in the same single statement.
SELECT_VISIBLE_USER_BY_EMAIL_SQL = (
    "SELECT "
    + _USER_COLUMNS
    + " FROM users AS u WHERE u.email = %(email)s AND u.deleted_at IS NULL AND "
    + VISIBLE_USER
)
SELECT_VISIBLE_USER_SQL = (
    "SELECT " + _USER_COLUMNS + " FROM users AS u WHERE u.id = %(id)s AND " + VISIBLE_USER
)
SELECT_CREDENTIALS_SQL = """
SELECT id, password_hash FROM users WHERE email = %(email)s AND deleted_at IS NULL
"""
INSERT_USER_SQL = (
    """
INSERT INTO users (email, password_hash, display_name, profile, tags)
VALUES (%(email)s, %(password_hash)s, %(display_name)s, %(profile)s, %(tags)s::text[])
RETURNING """
    + _USER_COLUMNS
)
REHASH_USER_SQL = """
UPDATE users SET password_hash = %(new_hash)s
WHERE id = %(id)s AND password_hash = %(old_hash)s
"""
# Merge and key removal happen in the database, on the latest row version: two concurrent
# patches of different keys both survive (no read-modify-write in Python).
UPDATE_PROFILE_SQL = (
    """
UPDATE users SET profile = (profile || %(patch)s) - %(remove)s::text[]
WHERE id = %(id)s AND deleted_at IS NULL
RETURNING """
    + _USER_COLUMNS
)
UPDATE_TAGS_SQL = (
    """
UPDATE users SET tags = %(tags)s::text[]
WHERE id = %(id)s AND deleted_at IS NULL
RETURNING """
    + _USER_COLUMNS
)
UPDATE_DISPLAY_NAME_SQL = (
    """
UPDATE users SET display_name = %(display_name)s
WHERE id = %(id)s AND deleted_at IS NULL
RETURNING """
    + _USER_COLUMNS
)
LOCK_LIVE_USER_SQL = "SELECT id FROM users WHERE id = %(id)s AND deleted_at IS NULL FOR UPDATE"
SOFT_DELETE_USER_SQL = (
    "UPDATE users SET deleted_at = now() WHERE id = %(id)s AND deleted_at IS NULL"
)
RESTORE_USER_SQL = (
    """
UPDATE users SET deleted_at = NULL
WHERE id = %(id)s AND deleted_at IS NOT NULL
RETURNING """
    + _USER_COLUMNS
)
# The phone: encrypted in Python (dbops.crypto) before any SQL runs; the statements only ever
# carry the ciphertext and the blind index, as bound parameters.
PHONE_TABLE, PHONE_COLUMN = "users", "phone"
SET_PHONE_SQL = """
UPDATE users
SET phone_ciphertext = %(ciphertext)s, phone_key_version = %(key_version)s,
    phone_blind_index = %(blind_index)s
WHERE id = %(id)s AND deleted_at IS NULL
RETURNING id
"""
CLEAR_PHONE_SQL = """
UPDATE users SET phone_ciphertext = NULL, phone_key_version = NULL, phone_blind_index = NULL
WHERE id = %(id)s AND deleted_at IS NULL
RETURNING id
"""
SELECT_PHONE_SQL = "SELECT id, phone_ciphertext FROM users WHERE id = %(id)s AND deleted_at IS NULL"
#: Served by ix_users_phone_blind_index (partial: users with a phone only).
SELECT_USERS_BY_PHONE_SQL = (
    "SELECT phone_ciphertext, "
    + _USER_COLUMNS
    + " FROM users"
    + " WHERE phone_blind_index = %(blind_index)s AND deleted_at IS NULL"
    + " ORDER BY created_at, id"
)
SELECT_USERS_SQL = sql.SQL("SELECT " + _USER_COLUMNS + " FROM users WHERE {where}")
ORDER_USERS_SQL = sql.SQL(" ORDER BY created_at, id LIMIT %(limit)s")
#: Filters of list_users; each combination is its own statement text (and prepared plan).
WHERE_LIVE = sql.SQL("deleted_at IS NULL")
WHERE_TAGS_ANY = sql.SQL("tags && %(tags_any)s::text[]")
WHERE_TAGS_ALL = sql.SQL("tags @> %(tags_all)s::text[]")
WHERE_AFTER = sql.SQL("(created_at, id) > (%(after_created_at)s, %(after_id)s)")
WHERE_TRUE = sql.SQL("TRUE")


@dataclass(frozen=True)
class UserView:
    """A user as the service API shows it (never the password hash)."""

    id: uuid.UUID
    email: str
    display_name: str
    role: Role
    profile: dict[str, Any]
    tags: tuple[str, ...]
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None = field(default=None)

    def __post_init__(self) -> None:
        # psycopg hands over the enum as text and the array as a list.
        object.__setattr__(self, "role", Role(self.role))
        object.__setattr__(self, "tags", tuple(self.tags))


@dataclass(frozen=True)
class _Credentials:
    id: uuid.UUID
    password_hash: str


@dataclass(frozen=True)
class _PhoneRow:
    id: uuid.UUID
    phone_ciphertext: bytes | None


_USER_ROW = class_row(UserView)
_CREDENTIALS_ROW = class_row(_Credentials)
_PHONE_ROW = class_row(_PhoneRow)


def _user_and_phone(phone_ciphertext: bytes, *user: Any) -> tuple[UserView, bytes]:
    return UserView(*user), phone_ciphertext


#: ``(UserView, ciphertext)`` rows of SELECT_USERS_BY_PHONE_SQL (ciphertext first, then the
#: user columns in UserView's field order).
_USER_AND_PHONE_ROW = args_row(_user_and_phone)


#: Forbidden for a teammate changing another user's account (a stranger gets NotFound).
ONLY_SELF_CHANGES = "only the user themselves can change this account"
ONLY_SELF_READS_PHONE = "only the user themselves can read their phone"


@timed_methods("users")
class UserService:
    """Use cases on users. Every method takes the acting :class:`Actor` first.

    Args:
        db: the process's database (pool + sessions).
        cache: optional query cache (users are not cached today; kept for symmetry).
        hasher: argon2id parameters; a stored hash made with other parameters is re-hashed at
            the next successful sign-in.
        keyring: keys of the encrypted phone; default: loaded from ``db.settings`` the first
            time the phone is read or written (:func:`dbops.crypto.load_keyring`), so a
            missing key only fails the calls that need it.
    """

    def __init__(
        self,
        db: Database,
        cache: QueryCache | None = None,
        *,
        hasher: PasswordHasher | None = None,
        keyring: Keyring | None = None,
    ) -> None:
        self._db = db
        self._cache = cache
        self._hasher = hasher or PasswordHasher()
        self._dummy_hash: str | None = None
        self._keyring = keyring

    # -- reads ------------------------------------------------------------------------------

    def get(self, actor: Actor, user_id: uuid.UUID, *, include_deleted: bool = False) -> UserView:
        """The user with ``user_id``; NotFound when absent (or soft-deleted, by default).

        A user actor sees itself and its teammates (users sharing a live team with it); anyone
        else is NotFound, the same error as a user that does not exist.
        """
        params: dict[str, uuid.UUID | None]
        if check_actor(actor).is_system:
            statement, params = SELECT_USER_SQL, {"id": user_id}
        else:
            statement, params = SELECT_VISIBLE_USER_SQL, {"id": user_id, "actor_id": actor.user_id}
        user = lag_tolerant(
            self._db, actor, lambda conn: fetch_one(conn, statement, _USER_ROW, params)
        )
        if user is None or (user.deleted_at is not None and not include_deleted):
            raise NotFound(USER_NOT_FOUND)
        return user

    def get_by_email(self, actor: Actor, email: str) -> UserView:
        """The live user with ``email`` (any case); one prepared statement, one round trip.

        Seen by a user actor only if it is itself or a teammate, as :meth:`get`.
        """
        check_actor(actor)
        reject_nul("email", email)
        try:
            address = normalize_email(email)
        except ValueError:
            raise NotFound(USER_NOT_FOUND) from None
        params: dict[str, str | uuid.UUID | None]
        if actor.is_system:
            statement, params = SELECT_USER_BY_EMAIL_SQL, {"email": address}
        else:
            statement = SELECT_VISIBLE_USER_BY_EMAIL_SQL
            params = {"email": address, "actor_id": actor.user_id}
        with reading(self._db, actor) as conn:
            user = fetch_one(conn, statement, _USER_ROW, params)
        if user is None:
            raise NotFound(USER_NOT_FOUND)
        return user

    def list_users(
        self,
        actor: Actor,
        *,
        limit: int = 50,
        cursor: str | None = None,
        tags_any: Sequence[str] | None = None,
        tags_all: Sequence[str] | None = None,
        include_deleted: bool = False,
    ) -> Page[UserView]:
        """Users oldest first, ``limit`` per page (keyset on ``(created_at, id)``).

        Stable under concurrent inserts: a row that existed when paging started is seen
        exactly once. ``tags_any``/``tags_all`` use the GIN index on ``tags``. System actors
        only (it lists every e-mail): Forbidden for a user actor, whatever the data.
        """
        if not check_actor(actor).is_system:
            raise Forbidden("only a system actor can list users")
        query = validate(
            UserListQuery,
            limit=limit,
            cursor=cursor,
            tags_any=list(tags_any) if tags_any is not None else None,
            tags_all=list(tags_all) if tags_all is not None else None,
            include_deleted=include_deleted,
        )
        where: list[sql.SQL] = []
        params: dict[str, Any] = {"limit": query.limit + 1}
        if not query.include_deleted:
            where.append(WHERE_LIVE)
        if query.tags_any is not None:
            where.append(WHERE_TAGS_ANY)
            params["tags_any"] = query.tags_any
        if query.tags_all is not None:
            where.append(WHERE_TAGS_ALL)
            params["tags_all"] = query.tags_all
        if query.cursor is not None:
            params["after_created_at"], params["after_id"] = decode_cursor(query.cursor)
            where.append(WHERE_AFTER)
        statement = SELECT_USERS_SQL.format(where=sql.SQL(" AND ").join(where or [WHERE_TRUE]))
        rows = lag_tolerant(
            self._db,
            actor,
            lambda conn: fetch_all(conn, statement + ORDER_USERS_SQL, _USER_ROW, params),
        )
        return page_of(rows, query.limit, lambda u: (u.created_at, u.id))

    # -- sign-up and sign-in ----------------------------------------------------------------

    def create(
        self,
        actor: Actor,
        *,
        email: str,
        password: str,
        display_name: str,
        tags: Sequence[str] = (),
        profile: dict[str, Any] | None = None,
    ) -> UserView:
        """Create a user; Conflict(field="email") when a live user has this email already."""
        check_actor(actor)
        data = validate(
            UserCreate,
            email=email,
            password=password,
            display_name=display_name,
            tags=list(tags),
            profile=profile or {},
        )
        check_json_size("profile", data.profile, self._db.settings.services.json_max_bytes)
        # Hash before the transaction: argon2 takes tens of ms and must not hold a connection.
        password_hash = self._hasher.hash(data.password.get_secret_value())
        params = {
            "email": data.email,
            "password_hash": password_hash,
            "display_name": data.display_name,
            "profile": Jsonb(data.profile),
            "tags": data.tags,
        }
        return self._write(actor, lambda uow: _one(uow, INSERT_USER_SQL, params))

    def authenticate(self, actor: Actor, email: str, password: str) -> UserView:
        """The user whose email and password match; Forbidden otherwise (same message always).

        A hash made with older argon2 parameters is replaced on success.
        """
        check_actor(actor)
        reject_nul("email", email)
        try:
            address = normalize_email(email)
        except ValueError:
            address = None
        credentials = None
        if address is not None:
            with reading(self._db, actor) as conn:
                credentials = fetch_one(
                    conn, SELECT_CREDENTIALS_SQL, _CREDENTIALS_ROW, {"email": address}
                )
        if credentials is None:
            # Spend the same time as a real check, so timing does not reveal unknown emails.
            self._verify(self._dummy(), password)
            raise LoginFailed(WRONG_CREDENTIALS)
        if not self._verify(credentials.password_hash, password):
            raise LoginFailed(WRONG_CREDENTIALS)
        if self._hasher.check_needs_rehash(credentials.password_hash):
            params = {
                "id": credentials.id,
                "old_hash": credentials.password_hash,
                "new_hash": self._hasher.hash(password),
            }
            # Guarded by the old hash: a password changed meanwhile is not overwritten.
            self._write(actor, lambda uow: uow.conn.execute(REHASH_USER_SQL, params))
        # The password proved who this is: the caller gets that user, whoever the actor is.
        with reading(self._db, actor) as conn:
            user = fetch_one(conn, SELECT_USER_SQL, _USER_ROW, {"id": credentials.id})
        if user is None or user.deleted_at is not None:  # deleted since the check
            raise Forbidden(WRONG_CREDENTIALS)
        return user

    # -- profile ----------------------------------------------------------------------------

    def update_profile(
        self,
        actor: Actor,
        user_id: uuid.UUID,
        *,
        set: dict[str, Any] | None = None,
        remove: Sequence[str] = (),
    ) -> UserView:
        """Merge ``set`` into the profile and drop the ``remove`` keys, in one UPDATE."""
        self._self_or_system(actor, user_id)
        patch = validate(JsonPatch, set=set or {}, remove=list(remove))
        limit = self._db.settings.services.json_max_bytes
        check_json_size("profile", patch.set, limit)
        params = {"id": user_id, "patch": Jsonb(patch.set), "remove": patch.remove}

        def work(uow: UnitOfWork) -> UserView:
            user = _one(uow, UPDATE_PROFILE_SQL, params)
            check_json_size("profile", user.profile, limit)  # rolls the change back
            return user

        return self._write(actor, work)

    def rename(self, actor: Actor, user_id: uuid.UUID, display_name: str) -> UserView:
        """Change the display name."""
        self._self_or_system(actor, user_id)
        data = validate(UserRename, display_name=display_name)
        params = {"id": user_id, "display_name": data.display_name}
        return self._write(actor, lambda uow: _one(uow, UPDATE_DISPLAY_NAME_SQL, params))

    def set_tags(self, actor: Actor, user_id: uuid.UUID, tags: Sequence[str]) -> UserView:
        """Replace the user's tags (trimmed, lowercased, de-duplicated)."""
        self._self_or_system(actor, user_id)
        data = validate(TagsUpdate, tags=list(tags))
        params = {"id": user_id, "tags": data.tags}
        return self._write(actor, lambda uow: _one(uow, UPDATE_TAGS_SQL, params))

    # -- phone (encrypted) ------------------------------------------------------------------

    def set_phone(self, actor: Actor, user_id: uuid.UUID, phone: str) -> str:
        """Store ``phone`` encrypted (with its blind index); returns the E.164 form stored.

        Raises:
            InvalidInput: not an international number (the message never echoes it).
            ConfigError: no encryption keys configured (never stored in plain text).
            NotFound: no live user has this id.
        """
        self._self_or_system(actor, user_id)
        number = validate(PhoneInput, phone=phone).phone
        keys = self._keys()
        params = {
            "id": user_id,
            "ciphertext": keys.encrypt(
                number, table=PHONE_TABLE, column=PHONE_COLUMN, row_id=user_id
            ),
            "key_version": keys.current,
            "blind_index": keys.blind_index(number, table=PHONE_TABLE, column=PHONE_COLUMN),
        }
        self._write(actor, lambda uow: _touch(uow, SET_PHONE_SQL, params))
        return number

    def clear_phone(self, actor: Actor, user_id: uuid.UUID) -> None:
        """Remove the user's phone (ciphertext, key version and blind index)."""
        self._self_or_system(actor, user_id)
        self._write(actor, lambda uow: _touch(uow, CLEAR_PHONE_SQL, {"id": user_id}))

    def get_phone(self, actor: Actor, user_id: uuid.UUID) -> str | None:
        """The user's phone, decrypted; ``None`` when unset. The user themself or a system actor.

        Raises:
            DecryptionError: the stored value does not decrypt for this row (altered, copied
                from another row, or its key version was removed from the keyring).
        """
        self._self_or_system(
            actor, user_id, forbidden="only the user themselves can read the phone"
        )
        with reading(self._db, actor) as conn:
            row = fetch_one(conn, SELECT_PHONE_SQL, _PHONE_ROW, {"id": user_id})
        if row is None:
            raise NotFound(USER_NOT_FOUND)
        if row.phone_ciphertext is None:
            return None
        return self._keys().decrypt(
            row.phone_ciphertext, table=PHONE_TABLE, column=PHONE_COLUMN, row_id=row.id
        )

    def find_by_phone(self, actor: Actor, phone: str) -> list[UserView]:
        """Live users whose phone is ``phone`` (any formatting), oldest first; system actors only.

        One indexed equality on the blind index (HMAC of the E.164 form); each match is then
        decrypted and compared, so a row whose ciphertext does not belong to it is an error,
        not a wrong answer.
        """
        if not check_actor(actor).is_system:
            raise Forbidden("only a system actor can look users up by phone")
        number = normalize_phone(phone)  # the rule of PhoneInput, without pydantic (hot read)
        keys = self._keys()
        params = {"blind_index": keys.blind_index(number, table=PHONE_TABLE, column=PHONE_COLUMN)}
        with reading(self._db, actor) as conn:
            rows = fetch_all(conn, SELECT_USERS_BY_PHONE_SQL, _USER_AND_PHONE_ROW, params)
        found: list[UserView] = []
        for user, ciphertext in rows:
            stored = keys.decrypt(
                ciphertext, table=PHONE_TABLE, column=PHONE_COLUMN, row_id=user.id
            )
            if hmac.compare_digest(stored, number):
                found.append(user)
        return found

    # -- soft delete ------------------------------------------------------------------------

    def delete(self, actor: Actor, user_id: uuid.UUID) -> None:
        """Soft-delete the user and remove their memberships, in one transaction.

        The owner rule and the locking are the ones every membership write uses
        (:func:`~dbops.services._ownership.remove_user_memberships`), so removing a user and
        demoting an owner cannot race each other into a team without owners.

        Raises:
            Forbidden: the user is the last owner of a live team (transfer it or delete it).
            NotFound: no live user has this id.
        """
        self._self_or_system(actor, user_id)
        params = {"id": user_id}

        def work(uow: UnitOfWork) -> list[uuid.UUID]:
            conn = uow.conn
            if conn.execute(LOCK_LIVE_USER_SQL, params).fetchone() is None:
                raise NotFound(USER_NOT_FOUND)
            left = remove_user_memberships(conn, user_id)
            conn.execute(SOFT_DELETE_USER_SQL, params)
            return left

        left = self._write(actor, work)
        if self._cache is not None:
            self._cache.delete([role_key(team_id, user_id) for team_id in left])

    def restore(self, actor: Actor, user_id: uuid.UUID) -> UserView:
        """Undo a soft delete (memberships are not restored); Conflict if the email is taken."""
        self._self_or_system(actor, user_id, missing=NO_DELETED_USER)
        return self._write(
            actor, lambda uow: _one(uow, RESTORE_USER_SQL, {"id": user_id}, NO_DELETED_USER)
        )

    # -- internals --------------------------------------------------------------------------

    def _write(self, actor: Actor, work: Callable[[UnitOfWork], T]) -> T:
        return in_transaction(self._db, actor, work)

    def _self_or_system(
        self,
        actor: Actor,
        user_id: uuid.UUID,
        *,
        forbidden: str = ONLY_SELF_CHANGES,
        missing: str = USER_NOT_FOUND,
    ) -> None:
        """The user themselves or a system actor; a teammate: Forbidden; others: NotFound."""
        require_self_or_system(self._db, actor, user_id, forbidden=forbidden, missing=missing)

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    def _keys(self) -> Keyring:
        if self._keyring is None:
            self._keyring = load_keyring(self._db.settings)
        return self._keyring

    def _dummy(self) -> str:
        if self._dummy_hash is None:
            self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(16))
        return self._dummy_hash


def _one(
    uow: UnitOfWork, query: str, params: dict[str, Any], missing: str = USER_NOT_FOUND
) -> UserView:
    user = fetch_one(uow.conn, query, _USER_ROW, params)
    if user is None:
        raise NotFound(missing)
    return user


def _touch(uow: UnitOfWork, query: str, params: dict[str, Any]) -> None:
    if uow.conn.execute(query, params).fetchone() is None:
        raise NotFound(USER_NOT_FOUND)
