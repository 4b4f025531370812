"""Teams: create with an owner, rename, slugs, settings, soft delete, search, geography."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from psycopg import errors as pg_errors
from psycopg import sql
from psycopg.rows import class_row, scalar_row
from psycopg.types.json import Jsonb

from dbops.db.engine import Database
from dbops.errors import FeatureUnavailable, Forbidden, InvalidInput, NotFound
from dbops.models.base import Role
from dbops.services._base import (
    Actor,
    UnitOfWork,
    check_actor,
    elevate,
    in_transaction,
    lag_tolerant,
    read_transaction,
    reading,
)
from dbops.services._cache import QueryCache, cached
from dbops.services._keys import role_key, team_slug_key
from dbops.services._ownership import DELETED_TEAM_NOT_FOUND, TeamState, load_role, lock_team
from dbops.services._query import Page, decode_cursor, fetch_all, fetch_one, page_of
from dbops.services._visibility import MEMBER_OF_TEAM, TEAM_NOT_FOUND, require_self_or_system
from dbops.services.inputs import (
    GeoPoint,
    JsonPatch,
    NearQuery,
    SearchQuery,
    TeamCreate,
    TeamListQuery,
    TeamRename,
    TeamSlug,
    check_json_size,
    reject_nul,
    validate,
)
from dbops.telemetry.metrics import timed_methods

__all__ = ["GEO_UNAVAILABLE", "TeamMatch", "TeamNear", "TeamOfUser", "TeamService", "TeamView"]

T = TypeVar("T")

ONLY_OWNERS_CHANGE_TEAM = "only an owner of the team can change it"

#: Raised (as FeatureUnavailable) by the geospatial calls when the database has no PostGIS.
GEO_UNAVAILABLE = (
    "geospatial queries need PostGIS on the server: install it (Debian/Ubuntu: "
    "postgresql-NN-postgis-3 for PostgreSQL NN) and run `dbops migrate` again"
)

_TEAM_COLUMNS = "id, name, slug, settings, created_at, updated_at, deleted_at"
_T_TEAM_COLUMNS = "t.id, t.name, t.slug, t.settings, t.created_at, t.updated_at, t.deleted_at"

SELECT_TEAM_BY_SLUG_SQL = (
    "SELECT " + _TEAM_COLUMNS + " FROM teams WHERE slug = %(slug)s AND deleted_at IS NULL"
)
SELECT_TEAM_SQL = "SELECT " + _TEAM_COLUMNS + " FROM teams WHERE id = %(id)s"
# The same reads for a user actor: the team only if the actor is a live member of it
# (docs/permissions.md), in the same single statement.
SELECT_MEMBER_TEAM_BY_SLUG_SQL = (
    "SELECT "
    + _T_TEAM_COLUMNS
    + " FROM teams AS t WHERE t.slug = %(slug)s AND t.deleted_at IS NULL AND "
    + MEMBER_OF_TEAM
)
SELECT_MEMBER_TEAM_SQL = (
    "SELECT " + _T_TEAM_COLUMNS + " FROM teams AS t WHERE t.id = %(id)s AND " + MEMBER_OF_TEAM
)
# One statement for the whole list: the role from the user's membership row and the member
# count from team_member_counts (kept by triggers, migration 0014): one row per team, the
# same cost for a team of 10 or of 10,000 (counting took an index scan of the whole team).
SELECT_TEAMS_OF_USER_SQL = """
SELECT t.id AS team_id, t.slug, t.name, m.role, coalesce(c.members, 0) AS member_count
FROM team_members AS m
JOIN teams AS t ON t.id = m.team_id AND t.deleted_at IS NULL
LEFT JOIN team_member_counts AS c ON c.team_id = t.id
WHERE m.user_id = %(user_id)s
ORDER BY t.name, t.id
"""
INSERT_TEAM_SQL = (
    """
INSERT INTO teams (name, slug, settings)
VALUES (%(name)s, %(slug)s, %(settings)s)
RETURNING """
    + _TEAM_COLUMNS
)
# The owner must be a live user; no row inserted means there is none (the caller rolls back).
INSERT_OWNER_SQL = """
INSERT INTO team_members (team_id, user_id, role)
SELECT %(team_id)s, id, 'OWNER' FROM users WHERE id = %(user_id)s AND deleted_at IS NULL
"""
UPDATE_TEAM_NAME_SQL = (
    "UPDATE teams SET name = %(name)s WHERE id = %(id)s RETURNING " + _TEAM_COLUMNS
)
UPDATE_TEAM_SLUG_SQL = (
    "UPDATE teams SET slug = %(slug)s WHERE id = %(id)s RETURNING " + _TEAM_COLUMNS
)
# Merged in the database (no read-modify-write): concurrent patches of different keys survive.
UPDATE_TEAM_SETTINGS_SQL = (
    "UPDATE teams SET settings = (settings || %(patch)s) - %(remove)s::text[] "
    "WHERE id = %(id)s RETURNING " + _TEAM_COLUMNS
)
SOFT_DELETE_TEAM_SQL = (
    "UPDATE teams SET deleted_at = now() WHERE id = %(id)s RETURNING " + _TEAM_COLUMNS
)
RESTORE_TEAM_SQL = "UPDATE teams SET deleted_at = NULL WHERE id = %(id)s RETURNING " + _TEAM_COLUMNS
SELECT_TEAMS_SQL = sql.SQL("SELECT " + _TEAM_COLUMNS + " FROM teams AS t WHERE {where}")
ORDER_TEAMS_SQL = sql.SQL(" ORDER BY created_at, id LIMIT %(limit)s")
WHERE_LIVE = sql.SQL("deleted_at IS NULL")
WHERE_SETTINGS_CONTAIN = sql.SQL("settings @> %(settings_contains)s")
WHERE_AFTER = sql.SQL("(created_at, id) > (%(after_created_at)s, %(after_id)s)")
WHERE_TRUE = sql.SQL("TRUE")
#: A user actor lists only its own teams (keyset paging is unchanged by the extra condition).
WHERE_MEMBER = sql.SQL(MEMBER_OF_TEAM)
SET_SEARCH_THRESHOLD_SQL = (
    "SELECT set_config('pg_trgm.strict_word_similarity_threshold', %(threshold)s, true)"
)
# Full-text matches (websearch syntax, ranked by ts_rank) first, then names that are close to
# the terms (pg_trgm: ``name %>> q``, i.e. strict word similarity, can use ix_teams_name_trgm),
# most similar first.
_SEARCH_TEAMS = (
    "SELECT "
    + _T_TEAM_COLUMNS
    + """,
    t.search @@ websearch_to_tsquery('simple', %(q)s) AS exact,
    ts_rank(t.search, websearch_to_tsquery('simple', %(q)s)) AS text_rank,
    strict_word_similarity(%(q)s, t.name) AS similarity
FROM teams AS t
WHERE t.deleted_at IS NULL
  AND (t.search @@ websearch_to_tsquery('simple', %(q)s) OR t.name %%>> %(q)s)
"""
)
_SEARCH_ORDER = """ORDER BY exact DESC, text_rank DESC, similarity DESC, t.name, t.id
LIMIT %(limit)s
"""
SEARCH_TEAMS_SQL = _SEARCH_TEAMS + _SEARCH_ORDER
#: The search of a user actor: its own teams only.
SEARCH_MEMBER_TEAMS_SQL = _SEARCH_TEAMS + "  AND " + MEMBER_OF_TEAM + "\n" + _SEARCH_ORDER
UPSERT_TEAM_LOCATION_SQL = """
INSERT INTO team_locations (team_id, location)
VALUES (%(id)s, ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326)::geography)
ON CONFLICT (team_id) DO UPDATE SET location = EXCLUDED.location
"""
# ST_DWithin narrows with the GiST index; distances are on the WGS 84 spheroid.
_TEAMS_NEAR = (
    "WITH p AS (SELECT ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326)::geography AS point) "
    "SELECT "
    + _T_TEAM_COLUMNS
    + """,
    ST_Distance(l.location, p.point) / 1000.0 AS distance_km
FROM p
JOIN team_locations AS l ON ST_DWithin(l.location, p.point, %(radius_m)s)
JOIN teams AS t ON t.id = l.team_id AND t.deleted_at IS NULL
"""
)
_NEAR_ORDER = """ORDER BY distance_km, t.id
LIMIT %(limit)s
"""
SELECT_TEAMS_NEAR_SQL = _TEAMS_NEAR + _NEAR_ORDER
#: Near teams of a user actor: its own teams only.
SELECT_MEMBER_TEAMS_NEAR_SQL = _TEAMS_NEAR + "WHERE " + MEMBER_OF_TEAM + "\n" + _NEAR_ORDER


@dataclass(frozen=True)
class TeamView:
    """A team as the service API shows it."""

    id: uuid.UUID
    name: str
    slug: str
    settings: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None = None


@dataclass(frozen=True)
class TeamOfUser:
    """One team of a user, with the user's role there and the team's member count."""

    team_id: uuid.UUID
    slug: str
    name: str
    role: Role
    member_count: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "role", Role(self.role))


@dataclass(frozen=True)
class TeamMatch:
    """A search result: ``exact`` for a full-text match (ranked by ``text_rank``)."""

    team: TeamView
    exact: bool
    text_rank: float
    similarity: float


@dataclass(frozen=True)
class TeamNear:
    """A team and its distance from the queried point."""

    team: TeamView
    distance_km: float


@dataclass(frozen=True)
class _TeamMatchRow(TeamView):
    """A row of SEARCH_TEAMS_SQL: the team's columns and the ranking ones."""

    exact: bool = False
    text_rank: float = 0.0
    similarity: float = 0.0

    def match(self) -> TeamMatch:
        return TeamMatch(_team_of(self), self.exact, self.text_rank, self.similarity)


@dataclass(frozen=True)
class _TeamNearRow(TeamView):
    """A row of SELECT_TEAMS_NEAR_SQL: the team's columns and its distance."""

    distance_km: float = 0.0

    def near(self) -> TeamNear:
        return TeamNear(_team_of(self), float(self.distance_km))


def _team_of(row: TeamView) -> TeamView:
    return TeamView(
        row.id, row.name, row.slug, row.settings, row.created_at, row.updated_at, row.deleted_at
    )


_TEAM_ROW = class_row(TeamView)
_TEAM_OF_USER_ROW = class_row(TeamOfUser)
_MATCH_ROW = class_row(_TeamMatchRow)
_NEAR_ROW = class_row(_TeamNearRow)


SELECT_MEMBER_IDS_SQL = "SELECT user_id FROM team_members WHERE team_id = %(id)s"


def _encode(team: TeamView) -> dict[str, Any]:
    return {
        "id": str(team.id),
        "name": team.name,
        "slug": team.slug,
        "settings": team.settings,
        "created_at": team.created_at.isoformat(),
        "updated_at": team.updated_at.isoformat(),
    }


def _decode(value: dict[str, Any]) -> TeamView:
    return TeamView(
        id=uuid.UUID(value["id"]),
        name=value["name"],
        slug=value["slug"],
        settings=value["settings"],
        created_at=datetime.fromisoformat(value["created_at"]),
        updated_at=datetime.fromisoformat(value["updated_at"]),
    )


@timed_methods("teams")
class TeamService:
    """Use cases on teams. Every method takes the acting :class:`Actor` first.

    Changes need an OWNER of the team (or a system actor). ``get_by_slug`` reads through
    ``cache``; every write here deletes the keys whose answer it changes, after commit.
    """

    def __init__(self, db: Database, cache: QueryCache | None = None) -> None:
        self._db = db
        self._cache = cache

    # -- reads ------------------------------------------------------------------------------

    def get(self, actor: Actor, team_id: uuid.UUID, *, include_deleted: bool = False) -> TeamView:
        """The team with ``team_id``; NotFound when absent (or soft-deleted, by default).

        A user actor sees only a team it is a member of (NotFound otherwise, the same error).
        """
        params: dict[str, uuid.UUID | None]
        if check_actor(actor).is_system:
            statement, params = SELECT_TEAM_SQL, {"id": team_id}
        else:
            statement, params = SELECT_MEMBER_TEAM_SQL, {"id": team_id, "actor_id": actor.user_id}
        team = lag_tolerant(
            self._db, actor, lambda conn: fetch_one(conn, statement, _TEAM_ROW, params)
        )
        if team is None or (team.deleted_at is not None and not include_deleted):
            raise NotFound(TEAM_NOT_FOUND)
        return team

    def get_by_slug(self, actor: Actor, slug: str) -> TeamView:
        """The live team with ``slug``: from the cache, else one prepared statement.

        The cached team is shared by every actor; a user actor then passes the membership check
        (the cached role check: no round trip on a hit) or gets NotFound, as for a slug no team
        has. Without a cache, or on a miss, a user actor's read is one statement with the
        membership folded in, and only a team it found is stored (its "no team" is its own).
        """
        check_actor(actor)
        reject_nul("slug", slug)
        slug = slug.strip().lower()
        params: dict[str, str | uuid.UUID | None]
        if actor.is_system:
            statement, params = SELECT_TEAM_BY_SLUG_SQL, {"slug": slug}
        else:
            statement = SELECT_MEMBER_TEAM_BY_SLUG_SQL
            params = {"slug": slug, "actor_id": actor.user_id}
        checked = actor.is_system

        def load() -> TeamView | None:
            nonlocal checked
            checked = True  # the statement itself applied the membership rule
            with reading(self._db, actor) as conn:
                return fetch_one(conn, statement, _TEAM_ROW, params)

        team = cached(
            self._cache,
            team_slug_key(slug),
            load,
            _encode,
            _decode,
            store_absent=actor.is_system,
        )
        if team is None:
            raise NotFound(TEAM_NOT_FOUND)
        if not checked:
            assert actor.user_id is not None
            if load_role(self._db, self._cache, actor, team.id, actor.user_id) is None:
                raise NotFound(TEAM_NOT_FOUND)
        return team

    def teams_of_user(self, actor: Actor, user_id: uuid.UUID) -> list[TeamOfUser]:
        """Live teams of a user with their role and member count, by name; one statement.

        The user themselves or a system actor; a teammate gets Forbidden, anyone else NotFound.
        """
        require_self_or_system(
            self._db, actor, user_id, forbidden="only the user themselves can list their teams"
        )
        params = {"user_id": user_id}
        return lag_tolerant(
            self._db,
            actor,
            lambda conn: fetch_all(conn, SELECT_TEAMS_OF_USER_SQL, _TEAM_OF_USER_ROW, params),
        )

    def list_teams(
        self,
        actor: Actor,
        *,
        limit: int = 50,
        cursor: str | None = None,
        settings_contains: dict[str, Any] | None = None,
        include_deleted: bool = False,
    ) -> Page[TeamView]:
        """Teams oldest first, ``limit`` per page (keyset on ``(created_at, id)``).

        A user actor gets only the teams it is a member of. ``settings_contains`` keeps teams
        whose settings contain that JSON (``@>``, GIN index).
        """
        check_actor(actor)
        query = validate(
            TeamListQuery,
            limit=limit,
            cursor=cursor,
            settings_contains=settings_contains,
            include_deleted=include_deleted,
        )
        where: list[sql.SQL] = []
        params: dict[str, Any] = {"limit": query.limit + 1}
        if not actor.is_system:
            where.append(WHERE_MEMBER)
            params["actor_id"] = actor.user_id
        if not query.include_deleted:
            where.append(WHERE_LIVE)
        if query.settings_contains is not None:
            where.append(WHERE_SETTINGS_CONTAIN)
            params["settings_contains"] = Jsonb(query.settings_contains)
        if query.cursor is not None:
            params["after_created_at"], params["after_id"] = decode_cursor(query.cursor)
            where.append(WHERE_AFTER)
        statement = SELECT_TEAMS_SQL.format(where=sql.SQL(" AND ").join(where or [WHERE_TRUE]))
        rows = lag_tolerant(
            self._db,
            actor,
            lambda conn: fetch_all(conn, statement + ORDER_TEAMS_SQL, _TEAM_ROW, params),
        )
        return page_of(rows, query.limit, lambda t: (t.created_at, t.id))

    def search_teams(self, actor: Actor, q: str, *, limit: int = 20) -> list[TeamMatch]:
        """Live teams matching ``q``: full-text matches by rank, then near-miss names.

        ``q`` takes web search syntax (``"exact phrase"``, ``or``, ``-word``); a typo in a
        name ("Glbex" for "Globex") still finds it through trigram similarity. A user actor
        finds only the teams it is a member of.
        """
        check_actor(actor)
        query = validate(SearchQuery, q=q, limit=limit)
        params: dict[str, Any] = {"q": query.q, "limit": query.limit}
        statement = SEARCH_TEAMS_SQL
        if not actor.is_system:
            statement, params["actor_id"] = SEARCH_MEMBER_TEAMS_SQL, actor.user_id
        # A transaction of its own so the similarity threshold is SET LOCAL to this search.
        with read_transaction(self._db, actor) as conn:
            conn.execute(
                SET_SEARCH_THRESHOLD_SQL,
                {"threshold": str(self._db.settings.services.search_similarity_threshold)},
            )
            return [row.match() for row in fetch_all(conn, statement, _MATCH_ROW, params)]

    # -- writes -----------------------------------------------------------------------------

    def create(
        self,
        actor: Actor,
        *,
        name: str,
        slug: str,
        settings: dict[str, Any] | None = None,
        owner_id: uuid.UUID | None = None,
    ) -> TeamView:
        """Create a team whose owner is the acting user (or ``owner_id`` for system actors).

        Team and OWNER membership are written in one transaction: both or neither.
        """
        if check_actor(actor).is_system:
            if owner_id is None:
                raise InvalidInput("owner_id: a system actor must name the owner", "owner_id")
        elif owner_id not in (None, actor.user_id):
            raise Forbidden("a user can only create teams they own themselves")
        owner = owner_id or actor.user_id
        data = validate(TeamCreate, name=name, slug=slug, settings=settings or {})
        check_json_size("settings", data.settings, self._db.settings.services.json_max_bytes)
        params = {"name": data.name, "slug": data.slug, "settings": Jsonb(data.settings)}

        def work(uow: UnitOfWork) -> TeamView:
            if not actor.is_system:
                # The team exists before its first member: RLS lets only a system actor
                # insert it (decision 0007); the rules above already checked the user.
                elevate(uow, "teams.create")
            team = fetch_one(uow.conn, INSERT_TEAM_SQL, _TEAM_ROW, params)
            assert team is not None
            added = uow.conn.execute(INSERT_OWNER_SQL, {"team_id": team.id, "user_id": owner})
            if added.rowcount != 1:
                raise NotFound("the owner is not a live user")
            return team

        team = self._write(actor, work)
        # "No such team" may be cached for this slug.
        self._invalidate([team.slug])
        return team

    def rename(self, actor: Actor, team_id: uuid.UUID, name: str) -> TeamView:
        """Change the team's display name (its slug stays)."""
        data = validate(TeamRename, name=name)
        return self._owner_update(actor, team_id, UPDATE_TEAM_NAME_SQL, {"name": data.name})

    def change_slug(self, actor: Actor, team_id: uuid.UUID, slug: str) -> TeamView:
        """Give the team a new slug; Conflict(field="slug") when a live team has it."""
        data = validate(TeamSlug, slug=slug)
        return self._owner_update(actor, team_id, UPDATE_TEAM_SLUG_SQL, {"slug": data.slug})

    def update_settings(
        self,
        actor: Actor,
        team_id: uuid.UUID,
        *,
        set: dict[str, Any] | None = None,
        remove: Iterable[str] = (),
    ) -> TeamView:
        """Merge ``set`` into the settings and drop the ``remove`` keys, in one UPDATE."""
        patch = validate(JsonPatch, set=set or {}, remove=list(remove))
        limit = self._db.settings.services.json_max_bytes
        check_json_size("settings", patch.set, limit)
        params = {"patch": Jsonb(patch.set), "remove": patch.remove}

        def merged_fits(team: TeamView) -> None:  # many small patches must not add up either
            check_json_size("settings", team.settings, limit)

        return self._owner_update(
            actor, team_id, UPDATE_TEAM_SETTINGS_SQL, params, check=merged_fits
        )

    def delete(self, actor: Actor, team_id: uuid.UUID) -> TeamView:
        """Soft-delete the team; members and settings are kept for :meth:`restore`."""
        return self._owner_update(actor, team_id, SOFT_DELETE_TEAM_SQL, {}, roles_change=True)

    def restore(self, actor: Actor, team_id: uuid.UUID) -> TeamView:
        """Undo a soft delete; Conflict(field="slug") when a live team took the slug."""
        return self._owner_update(
            actor, team_id, RESTORE_TEAM_SQL, {}, deleted=True, roles_change=True
        )

    # -- geography --------------------------------------------------------------------------

    def set_location(self, actor: Actor, team_id: uuid.UUID, lat: float, lon: float) -> None:
        """Place the team at (``lat``, ``lon``) in degrees, replacing any earlier location."""
        point = validate(GeoPoint, lat=lat, lon=lon)

        def work(uow: UnitOfWork) -> None:
            self._lock_as_owner(uow, team_id, deleted=False)
            uow.conn.execute(
                UPSERT_TEAM_LOCATION_SQL, {"id": team_id, "lat": point.lat, "lon": point.lon}
            )

        with _postgis_required():
            self._write(actor, work)

    def teams_near(
        self, actor: Actor, lat: float, lon: float, radius_km: float, *, limit: int = 20
    ) -> list[TeamNear]:
        """Live teams within ``radius_km`` of (``lat``, ``lon``), nearest first.

        A user actor finds only the teams it is a member of.
        """
        check_actor(actor)
        query = validate(NearQuery, lat=lat, lon=lon, radius_km=radius_km, limit=limit)
        params: dict[str, Any] = {
            "lat": query.lat,
            "lon": query.lon,
            "radius_m": query.radius_km * 1000.0,
            "limit": query.limit,
        }
        statement = SELECT_TEAMS_NEAR_SQL
        if not actor.is_system:
            statement, params["actor_id"] = SELECT_MEMBER_TEAMS_NEAR_SQL, actor.user_id
        with _postgis_required():
            rows = lag_tolerant(
                self._db, actor, lambda conn: fetch_all(conn, statement, _NEAR_ROW, params)
            )
        return [row.near() for row in rows]

    # -- internals --------------------------------------------------------------------------

    def _owner_update(
        self,
        actor: Actor,
        team_id: uuid.UUID,
        statement: str,
        params: dict[str, Any],
        *,
        deleted: bool = False,
        roles_change: bool = False,
        check: Callable[[TeamView], None] | None = None,
    ) -> TeamView:
        """Lock as owner, run ``statement``, then drop the cache keys whose answer moved.

        ``roles_change``: the statement changes whether the team is live, and so every member's
        answer of ``MembershipService.role_of`` (it answers for live teams only). ``check``
        sees the changed team inside the transaction; an error it raises rolls it back.
        """
        old_slug = ""
        members: list[uuid.UUID] = []

        def work(uow: UnitOfWork) -> TeamView:
            nonlocal old_slug, members
            old_slug = self._lock_as_owner(uow, team_id, deleted=deleted).slug
            team = fetch_one(uow.conn, statement, _TEAM_ROW, {**params, "id": team_id})
            assert team is not None  # the row is locked: it cannot have gone
            if check is not None:
                check(team)
            if roles_change:
                members = fetch_all(uow.conn, SELECT_MEMBER_IDS_SQL, scalar_row, {"id": team_id})
            return team

        team = self._write(actor, work)
        self._invalidate({old_slug, team.slug})
        if self._cache is not None and members:
            self._cache.delete([role_key(team_id, user_id) for user_id in members])
        return team

    @staticmethod
    def _lock_as_owner(uow: UnitOfWork, team_id: uuid.UUID, *, deleted: bool) -> TeamState:
        """The team lock every team change takes first, then the owner rule.

        A non-member gets the NotFound of a team that does not exist; a member who is not an
        owner gets Forbidden.
        """
        state = lock_team(uow.conn, team_id, [uow.actor.user_id], deleted=deleted)
        state.require_owner(
            uow.actor,
            hidden=DELETED_TEAM_NOT_FOUND if deleted else TEAM_NOT_FOUND,
            forbidden=ONLY_OWNERS_CHANGE_TEAM,
        )
        return state

    def _write(self, actor: Actor, work: Callable[[UnitOfWork], T]) -> T:
        return in_transaction(self._db, actor, work)

    def _invalidate(self, slugs: Iterable[str]) -> None:
        if self._cache is not None:
            self._cache.delete([team_slug_key(s) for s in slugs])


@contextmanager
def _postgis_required() -> Iterator[None]:
    """Turn what a server without PostGIS answers into FeatureUnavailable.

    Migration 0002 makes no ``team_locations`` there (``UndefinedTable``), and the geo
    statements name PostGIS's type and functions (``UndefinedObject`` for ``geography``,
    ``UndefinedFunction`` for ``ST_*``), which fail before the table is looked up. Any other
    undefined object is a bug, not a missing extension, and is raised as it is.
    """
    try:
        yield
    except pg_errors.UndefinedTable as exc:
        raise FeatureUnavailable(GEO_UNAVAILABLE) from exc
    except (pg_errors.UndefinedObject, pg_errors.UndefinedFunction) as exc:
        message = (exc.diag.message_primary or "").lower()
        if any(name in message for name in ('"geography"', '"geometry"', "st_")):
            raise FeatureUnavailable(GEO_UNAVAILABLE) from exc
        raise
