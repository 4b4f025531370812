"""Names without control characters or bidi overrides; JSON objects with a size cap.

A display name with ESC sequences or CR/LF forges terminal output and log lines; U+202E turns
"gpj.exe" into what reads "exe.jpg". A 5 MB settings value is stored twice per change by the
audit trail. Each is refused with InvalidInput naming the field, and nothing is written.
"""

from __future__ import annotations

import pytest

from dbops.db import Database
from dbops.errors import InvalidInput, NotFound
from tests.services._helpers import PASSWORD, SYSTEM, World, make_world

pytestmark = pytest.mark.usefixtures("clean_db")

HOSTILE = [
    "evil\x1b[2Jname",  # ESC: clears a terminal
    "line\r\nINFO forged log line",
    "tab\tname",
    "del\x7fname",
    "c1\x85name",  # NEL
    "invoice\u202egpj.exe",  # right-to-left override
    "iso\u2066late\u2069",
    "mark\u200fname",
    "sep\u2028name",
    "bom\ufeffname",
]
FINE = ["Ada Lovelace", "Zoë", "東京チーム", "👩\u200d💻 devs", "O'Brien & Co."]


@pytest.fixture
def world(clean_db: Database) -> World:
    return make_world(clean_db)


@pytest.mark.parametrize("name", HOSTILE)
def test_control_and_bidi_characters_are_refused_in_every_name(world: World, name: str) -> None:
    calls = [
        ("display_name", lambda: world.users.rename(world.me, world.user_id, name)),
        (
            "display_name",
            lambda: world.users.create(
                SYSTEM, email="b@example.com", password=PASSWORD, display_name=name
            ),
        ),
        ("name", lambda: world.teams.rename(world.me, world.team_id, name)),
        ("name", lambda: world.teams.create(world.me, name=name, slug="other")),
        ("tags", lambda: world.users.set_tags(world.me, world.user_id, ["ok", name])),
    ]
    for field, call in calls:
        with pytest.raises(InvalidInput, match="control characters or bidirectional") as err:
            call()
        assert err.value.field == field
        assert name not in err.value.message
    assert world.users.get(world.me, world.user_id).display_name == "Ada"
    assert world.teams.get(world.me, world.team_id).name == "Acme"
    with pytest.raises(NotFound):  # nothing was created either
        world.users.get_by_email(SYSTEM, "b@example.com")


@pytest.mark.parametrize("name", FINE)
def test_ordinary_names_in_any_script_pass(world: World, name: str) -> None:
    assert world.users.rename(world.me, world.user_id, name).display_name == name
    assert world.teams.rename(world.me, world.team_id, name).name == name


def test_json_objects_are_capped_and_nothing_half_applied(world: World) -> None:
    limit = world.teams._db.settings.json_max_bytes  # the setting in force
    big = {"blob": "x" * limit}
    with pytest.raises(InvalidInput, match="DBOPS_JSON_MAX_BYTES") as err:
        world.teams.update_settings(world.me, world.team_id, set=big)
    assert err.value.field == "settings"
    with pytest.raises(InvalidInput, match="DBOPS_JSON_MAX_BYTES"):
        world.teams.create(world.me, name="Big", slug="big", settings=big)
    with pytest.raises(InvalidInput, match="DBOPS_JSON_MAX_BYTES"):
        world.users.update_profile(world.me, world.user_id, set=big)
    # Patches that each fit but add up beyond the cap: the last one is refused, rolled back.
    half = "y" * (limit // 2)
    world.teams.update_settings(world.me, world.team_id, set={"a": half})
    with pytest.raises(InvalidInput, match="DBOPS_JSON_MAX_BYTES"):
        world.teams.update_settings(world.me, world.team_id, set={"b": half, "c": 1})
    assert world.teams.get(world.me, world.team_id).settings == {"a": half}
    world.users.update_profile(world.me, world.user_id, set={"a": half})
    with pytest.raises(InvalidInput, match="DBOPS_JSON_MAX_BYTES"):
        world.users.update_profile(world.me, world.user_id, set={"b": half})
    assert world.users.get(world.me, world.user_id).profile == {"a": half}
