"""Text with a NUL character is refused at the boundary, naming the field, never echoing it."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from dbops.db import Database
from dbops.errors import InvalidInput
from tests.services._helpers import PASSWORD, SYSTEM, World, make_world

pytestmark = pytest.mark.usefixtures("clean_db")

SECRET = "Ada\x00Lovelace"


@pytest.fixture
def world(clean_db: Database) -> World:
    return make_world(clean_db)


Call = Callable[[World], object]

#: (entry point, the field it must name, the call with a NUL in that field).
CASES: list[tuple[str, str, Call]] = [
    (
        "users.create display_name",
        "display_name",
        lambda w: w.users.create(
            SYSTEM, email="b@example.com", password=PASSWORD, display_name=SECRET
        ),
    ),
    (
        "users.create email",
        "email",
        lambda w: w.users.create(
            SYSTEM, email="b\x00@example.com", password=PASSWORD, display_name="B"
        ),
    ),
    (
        "users.create tag",
        "tags",
        lambda w: w.users.create(
            SYSTEM, email="b@example.com", password=PASSWORD, display_name="B", tags=["ok", SECRET]
        ),
    ),
    (
        "users.create profile value",
        "profile",
        lambda w: w.users.create(
            SYSTEM,
            email="b@example.com",
            password=PASSWORD,
            display_name="B",
            profile={"a": SECRET},
        ),
    ),
    ("users.rename", "display_name", lambda w: w.users.rename(w.me, w.user_id, SECRET)),
    ("users.set_tags", "tags", lambda w: w.users.set_tags(w.me, w.user_id, [SECRET])),
    (
        "users.update_profile value",
        "set",
        lambda w: w.users.update_profile(w.me, w.user_id, set={"bio": SECRET}),
    ),
    (
        "users.update_profile nested value",
        "set",
        lambda w: w.users.update_profile(w.me, w.user_id, set={"bio": {"x": [1, SECRET]}}),
    ),
    (
        "users.update_profile key",
        "set",
        lambda w: w.users.update_profile(w.me, w.user_id, set={SECRET: 1}),
    ),
    (
        "users.update_profile remove",
        "remove",
        lambda w: w.users.update_profile(w.me, w.user_id, remove=[SECRET]),
    ),
    ("users.get_by_email", "email", lambda w: w.users.get_by_email(SYSTEM, SECRET + "@x.org")),
    ("users.authenticate", "email", lambda w: w.users.authenticate(SYSTEM, SECRET, PASSWORD)),
    (
        "users.list_users tags_any",
        "tags_any",
        lambda w: w.users.list_users(SYSTEM, tags_any=[SECRET]),
    ),
    (
        "users.list_users tags_all",
        "tags_all",
        lambda w: w.users.list_users(SYSTEM, tags_all=[SECRET]),
    ),
    ("teams.create name", "name", lambda w: w.teams.create(w.me, name=SECRET, slug="x")),
    ("teams.create slug", "slug", lambda w: w.teams.create(w.me, name="X", slug="x\x00y")),
    (
        "teams.create settings",
        "settings",
        lambda w: w.teams.create(w.me, name="X", slug="x", settings={"k": SECRET}),
    ),
    ("teams.rename", "name", lambda w: w.teams.rename(w.me, w.team_id, SECRET)),
    ("teams.change_slug", "slug", lambda w: w.teams.change_slug(w.me, w.team_id, "a\x00b")),
    (
        "teams.update_settings",
        "set",
        lambda w: w.teams.update_settings(w.me, w.team_id, set={"k": SECRET}),
    ),
    ("teams.get_by_slug", "slug", lambda w: w.teams.get_by_slug(SYSTEM, "ac\x00me")),
    ("teams.search_teams", "q", lambda w: w.teams.search_teams(SYSTEM, SECRET)),
    (
        "teams.list_teams settings_contains",
        "settings_contains",
        lambda w: w.teams.list_teams(SYSTEM, settings_contains={"k": SECRET}),
    ),
    (
        "invitations.invite email",
        "email",
        lambda w: w.invitations.invite(w.me, w.team_id, "new\x00@example.com"),
    ),
    ("invitations.accept token", "token", lambda w: w.invitations.accept(w.me, "t" * 20 + "\x00")),
]


@pytest.mark.parametrize(("field", "call"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_nul_is_invalid_input_naming_the_field(world: World, field: str, call: Call) -> None:
    with pytest.raises(InvalidInput) as err:
        call(world)
    assert err.value.field == field
    assert str(err.value).startswith(f"{field}: ")
    assert "NUL" in str(err.value)
    assert "\x00" not in str(err.value)
    assert "Lovelace" not in str(err.value)
    assert err.value.__cause__ is None  # refused before any driver or server error
    # Nothing changed.
    assert world.users.get(SYSTEM, world.user_id).display_name == "Ada"
    assert world.teams.get(SYSTEM, world.team_id).name == "Acme"
