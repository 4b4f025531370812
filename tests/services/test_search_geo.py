"""Team search (full text + trigram typos), geospatial queries, and the indexes behind them."""

from __future__ import annotations

import psycopg
import pytest

from dbops.config import to_libpq_url
from dbops.db import Database, open_database
from dbops.errors import FeatureUnavailable, InvalidInput
from dbops.ops.migrate import upgrade
from dbops.services import teams as teams_module
from dbops.services import users as users_module
from dbops.services._base import Actor
from dbops.services.teams import GEO_UNAVAILABLE, TeamService
from dbops.services.users import UserService, UserView
from tests.fixtures.db import make_settings, skip_without_postgis
from tests.services._helpers import FAST_HASHER, PASSWORD, SYSTEM, as_system

NAMES = {
    "acme": "Acme Corp",
    "acme-rockets": "Acme Rockets",
    "globex": "Globex Corporation",
    "initech": "Initech",
    "umbrella": "Umbrella Corp",
    "corp-services": "Corp Services",
}

CITIES = {
    "paris": (48.8566, 2.3522),
    "brussels": (50.8503, 4.3517),
    "london": (51.5074, -0.1278),
    "berlin": (52.5200, 13.4050),
    "new-york": (40.7128, -74.0060),
}


@pytest.fixture
def owner(clean_db: Database) -> UserView:
    return UserService(clean_db, hasher=FAST_HASHER).create(
        SYSTEM, email="owner@example.com", password=PASSWORD, display_name="Owner"
    )


@pytest.fixture
def teams(clean_db: Database) -> TeamService:
    return TeamService(clean_db)


@pytest.fixture
def named(teams: TeamService, owner: UserView) -> dict[str, object]:
    me = Actor.user(owner.id)
    return {slug: teams.create(me, name=name, slug=slug).id for slug, name in NAMES.items()}


def slugs(matches: list[teams_module.TeamMatch]) -> list[str]:
    return [m.team.slug for m in matches]


# -- search -----------------------------------------------------------------------------------


def test_exact_full_text_matches_rank_first(teams: TeamService, named: object) -> None:
    found = teams.search_teams(SYSTEM, "acme corp")
    assert slugs(found)[0] == "acme"
    assert found[0].exact
    assert found[0].text_rank > 0
    exact = [m.exact for m in found]
    assert exact == sorted(exact, reverse=True), "every exact match comes before any near miss"

    corp = teams.search_teams(SYSTEM, "corp")
    exact_slugs = {m.team.slug for m in corp if m.exact}
    assert exact_slugs == {"acme", "umbrella", "corp-services"}
    ranks = [m.text_rank for m in corp if m.exact]
    assert ranks == sorted(ranks, reverse=True)


@pytest.mark.parametrize(
    ("typo", "slug"),
    [("acm corp", "acme"), ("Glbex", "globex"), ("Initch", "initech"), ("umbrela", "umbrella")],
)
def test_a_typo_still_finds_the_team(
    teams: TeamService, clean_db: Database, named: object, typo: str, slug: str
) -> None:
    found = teams.search_teams(SYSTEM, typo)
    assert found, f"nothing found for {typo!r}"
    assert found[0].team.slug == slug
    assert not found[0].exact
    assert found[0].similarity >= clean_db.settings.search_similarity_threshold


def test_web_search_syntax_and_exclusions(
    teams: TeamService, named: dict[str, object], owner: UserView
) -> None:
    assert [m.team.slug for m in teams.search_teams(SYSTEM, "acme -rockets") if m.exact] == ["acme"]
    assert slugs(teams.search_teams(SYSTEM, '"acme rockets"'))[0] == "acme-rockets"
    assert teams.search_teams(SYSTEM, "zzzzqqq") == []
    assert len(teams.search_teams(SYSTEM, "corp", limit=2)) == 2
    teams.delete(Actor.user(owner.id), named["acme"])  # type: ignore[arg-type]
    assert "acme" not in slugs(teams.search_teams(SYSTEM, "acme corp"))
    for bad in ("", "   ", "x" * 201):
        with pytest.raises(InvalidInput) as err:
            teams.search_teams(SYSTEM, bad)
        assert err.value.field == "q"


# -- geography --------------------------------------------------------------------------------


@pytest.fixture
def placed(teams: TeamService, owner: UserView, clean_db: Database) -> dict[str, object]:
    skip_without_postgis(clean_db)
    me = Actor.user(owner.id)
    ids: dict[str, object] = {}
    for slug, (lat, lon) in CITIES.items():
        team = teams.create(me, name=slug.title(), slug=slug)
        teams.set_location(me, team.id, lat, lon)
        ids[slug] = team.id
    return ids


def test_teams_near_a_point_nearest_first(teams: TeamService, placed: object) -> None:
    lat, lon = CITIES["paris"]
    near = teams.teams_near(SYSTEM, lat, lon, 400)
    assert [n.team.slug for n in near] == ["paris", "brussels", "london"]
    assert near[0].distance_km == pytest.approx(0, abs=0.01)
    assert near[1].distance_km == pytest.approx(264, rel=0.02)
    assert near[2].distance_km == pytest.approx(344, rel=0.02)
    wider = teams.teams_near(SYSTEM, lat, lon, 1000)
    assert [n.team.slug for n in wider] == ["paris", "brussels", "london", "berlin"]
    assert [n.team.slug for n in teams.teams_near(SYSTEM, lat, lon, 7000, limit=2)] == [
        "paris",
        "brussels",
    ]
    assert [n.team.slug for n in teams.teams_near(SYSTEM, 0, 0, 100)] == []


def test_moving_and_deleting_teams_changes_the_answer(
    teams: TeamService, placed: dict[str, object], owner: UserView
) -> None:
    me = Actor.user(owner.id)
    # New York's team moves next to Paris (an upsert, not a second location).
    teams.set_location(me, placed["new-york"], 48.86, 2.35)  # type: ignore[arg-type]
    near = teams.teams_near(SYSTEM, *CITIES["paris"], 50)
    assert {n.team.slug for n in near} == {"paris", "new-york"}
    teams.delete(me, placed["paris"])  # type: ignore[arg-type]
    assert [n.team.slug for n in teams.teams_near(SYSTEM, *CITIES["paris"], 50)] == ["new-york"]


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ((91, 0, 10), "lat"),
        ((0, -181, 10), "lon"),
        ((0, 0, 0), "radius_km"),
        ((0, 0, -5), "radius_km"),
    ],
)
def test_bad_coordinates_are_invalid_input(
    teams: TeamService, args: tuple[float, float, float], field: str
) -> None:
    with pytest.raises(InvalidInput) as err:
        teams.teams_near(SYSTEM, *args)
    assert err.value.field == field


def test_without_postgis_only_the_geo_calls_fail_clearly(empty_database: str) -> None:
    """A server without PostGIS gets no team_locations table (migration 0002 skips it)."""
    settings = make_settings(empty_database)
    upgrade(empty_database, settings, "head")
    with psycopg.connect(to_libpq_url(empty_database), autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS team_locations")  # none: a server without PostGIS
    with open_database(settings, empty_database) as db:
        owner = UserService(db, hasher=FAST_HASHER).create(
            SYSTEM, email="o@example.com", password=PASSWORD, display_name="O"
        )
        teams = TeamService(db)
        team = teams.create(Actor.user(owner.id), name="Acme Corp", slug="acme")
        with pytest.raises(FeatureUnavailable) as err:
            teams.teams_near(SYSTEM, 0, 0, 10)
        assert str(err.value) == GEO_UNAVAILABLE
        assert "postgis" in str(err.value).lower()
        with pytest.raises(FeatureUnavailable, match="PostGIS"):
            teams.set_location(SYSTEM, team.id, 0, 0)
        # Everything else still works.
        assert teams.search_teams(SYSTEM, "acme")[0].team.id == team.id
        assert teams.get_by_slug(SYSTEM, "acme").id == team.id


# -- the indexes serve the service's own predicates -------------------------------------------


@pytest.mark.parametrize(
    ("query", "params", "index"),
    [
        (
            "SELECT id FROM users WHERE " + users_module.WHERE_TAGS_ANY.as_string(),
            {"tags_any": ["a", "b"]},
            "ix_users_tags",
        ),
        (
            "SELECT id FROM users WHERE " + users_module.WHERE_TAGS_ALL.as_string(),
            {"tags_all": ["a"]},
            "ix_users_tags",
        ),
        (
            "SELECT id FROM teams WHERE " + teams_module.WHERE_SETTINGS_CONTAIN.as_string(),
            {"settings_contains": psycopg.types.json.Jsonb({"plan": "pro"})},
            "ix_teams_settings",
        ),
        ("SELECT id FROM teams AS t WHERE t.name %%>> %(q)s", {"q": "glbex"}, "ix_teams_name_trgm"),
        (
            teams_module.SELECT_TEAMS_NEAR_SQL,
            {"lat": 1.0, "lon": 2.0, "radius_m": 1000.0, "limit": 5},
            "ix_team_locations_location",
        ),
        (users_module.SELECT_USER_BY_EMAIL_SQL, {"email": "a@example.com"}, "uq_users_email_live"),
        (teams_module.SELECT_TEAM_BY_SLUG_SQL, {"slug": "acme"}, "uq_teams_slug_live"),
    ],
)
def test_index_serves_the_predicate(
    clean_db: Database, query: str, params: dict[str, object], index: str
) -> None:
    """As the app role acting for the system (the switch to dbops_system, decision 0007): the
    index is an Index Cond, not a full index scan under a filter. Operators that are not
    LEAKPROOF (``&&``, ``@>``, trigram, PostGIS) could only be filters under a policy."""
    if index == "ix_team_locations_location":
        skip_without_postgis(clean_db)
    with as_system(clean_db) as conn:
        conn.execute("SET LOCAL enable_seqscan = off")
        plan = "\n".join(str(r[0]) for r in conn.execute("EXPLAIN " + query, params))
    assert index in plan, plan
    assert "Index Cond" in plan, plan
