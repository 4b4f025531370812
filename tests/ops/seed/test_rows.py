"""Row generation without a database: determinism, counts, owners, uniqueness, personas."""

from __future__ import annotations

import json
import re
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from dbops.ops.seed._plan import MARKER_EMAIL, SeedPlan, make_plan
from dbops.ops.seed._rows import CHUNK_ROWS, _Clock, table_rows, uuid4_text
from dbops.ops.seed._vocabulary import CITIES, PERSONAS

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
POINT = re.compile(r"^SRID=4326;POINT\((-?\d+\.\d{6}) (-?\d+\.\d{6})\)$")

Tables = dict[str, list[list[str]]]


def _generate(plan: SeedPlan, *, locations: bool = True) -> tuple[Tables, dict[str, int]]:
    """Every table's rows split into fields, and the row counts the chunks claimed."""
    tables: Tables = {}
    claimed: dict[str, int] = {}
    for rows in table_rows(plan, locations=locations):
        lines: list[list[str]] = []
        claimed[rows.table] = 0
        for text, count in rows.chunks:
            assert text.endswith("\n")
            chunk = [line.split("\t") for line in text[:-1].split("\n")]
            assert len(chunk) == count <= CHUNK_ROWS
            assert all(len(fields) == len(rows.columns) for fields in chunk)
            lines += chunk
            claimed[rows.table] += count
        assert len(lines) == rows.total
        tables[rows.table] = lines
    return tables, claimed


@pytest.fixture(scope="module")
def plan() -> SeedPlan:
    return make_plan(3_000, 300, 42, now=NOW)


@pytest.fixture(scope="module")
def tables(plan: SeedPlan) -> Tables:
    return _generate(plan)[0]


def test_uuid_text_matches_the_uuid_module() -> None:
    for bits in (0, (1 << 128) - 1, 0x0123456789ABCDEF0123456789ABCDEF):
        assert uuid4_text(bits) == str(uuid.UUID(int=bits, version=4))


def test_same_seed_gives_the_same_text_and_another_seed_does_not(plan: SeedPlan) -> None:
    def text(p: SeedPlan) -> list[str]:
        return ["".join(t for t, _ in rows.chunks) for rows in table_rows(p, locations=True)]

    same = text(plan)
    assert text(make_plan(3_000, 300, 42, now=NOW)) == same
    other = text(make_plan(3_000, 300, 7, now=NOW))
    assert all(a != b for a, b in zip(same, other, strict=True))


def test_counts_match_the_plan(plan: SeedPlan, tables: Tables) -> None:
    _, claimed = _generate(plan)
    expected = plan.table_rows(locations=True)
    assert {t: len(rows) for t, rows in tables.items()} == expected == claimed
    assert list(tables) == ["users", "teams", "team_members", "invitations", "team_locations"]
    assert expected["users"] == 3_000 + len(PERSONAS)
    assert "team_locations" not in _generate(plan, locations=False)[0]


def test_chunks_stay_within_the_chunk_size() -> None:
    big = make_plan(CHUNK_ROWS * 2 + 5, 10, 1, now=NOW)
    users = next(iter(table_rows(big, locations=False)))
    assert [count for _, count in users.chunks] == [len(PERSONAS), CHUNK_ROWS, CHUNK_ROWS, 5]


def test_every_team_has_an_owner_and_memberships_are_unique(plan: SeedPlan, tables: Tables) -> None:
    team_ids = [row[0] for row in tables["teams"]]
    members = tables["team_members"]
    owners = Counter(team for team, _, role, *_ in members if role == "OWNER")
    assert set(owners) == set(team_ids)
    # One designated owner per team, a second one sometimes in bigger teams, and Olivia's teams.
    olivia = PERSONAS[1]
    assert max(owners.values()) <= 2 + olivia.owner_of
    assert sum(owners.values()) >= len(team_ids) + olivia.owner_of
    pairs = [(team, user) for team, user, *_ in members]
    assert len(pairs) == len(set(pairs))
    user_ids = {row[0] for row in tables["users"]}
    assert {user for _, user in pairs} <= user_ids
    assert len(user_ids) == len(tables["users"])
    assert len(set(team_ids)) == len(team_ids)


def test_emails_and_slugs_are_unique(tables: Tables) -> None:
    emails = [row[1].lower() for row in tables["users"]]
    assert len(emails) == len(set(emails))
    slugs = [row[2] for row in tables["teams"]]
    assert len(slugs) == len(set(slugs))
    invited = [row[2] for row in tables["invitations"]]
    assert len(invited) == len(set(invited))


def test_personas_are_present_with_their_teams(plan: SeedPlan, tables: Tables) -> None:
    by_email = {row[1]: row for row in tables["users"]}
    roles: dict[str, Counter[str]] = {}
    for _, user, role, *_ in tables["team_members"]:
        roles.setdefault(user, Counter())[role] += 1
    for persona in PERSONAS:
        row = by_email[persona.email]
        assert (row[3], row[4]) == (persona.display_name, persona.role)
        assert (
            roles.get(row[0], Counter())
            == Counter({"OWNER": persona.owner_of, "MEMBER": persona.member_of}) - Counter()
        )
        profile = json.loads(row[5])
        assert profile["seed"] == 42
    marker = json.loads(by_email[MARKER_EMAIL][5])["seed_run"]
    assert marker == plan.marker(locations=True)
    assert marker["locations"] == plan.locations > 0
    # One user carries the run's marker: the first persona (it sorts before the others).
    marked = [row[1] for row in tables["users"] if "seed_run" in json.loads(row[5])]
    assert marked == [MARKER_EMAIL]


def test_locations_are_points_near_a_city_for_planned_teams(plan: SeedPlan, tables: Tables) -> None:
    team_ids = [row[0] for row in tables["teams"]]
    assert [row[0] for row in tables["team_locations"]] == [team_ids[i] for i in plan.located_teams]
    for row in tables["team_locations"]:
        match = POINT.match(row[1])
        assert match, row[1]
        lon, lat = float(match[1]), float(match[2])
        assert min(abs(lat - c.lat) + abs(lon - c.lon) for c in CITIES) < 1.5


def test_pure_generation_needs_tables_in_order(plan: SeedPlan) -> None:
    tables = table_rows(plan, locations=False)
    next(tables)  # users, not consumed
    next(tables)  # teams, not consumed
    with pytest.raises(RuntimeError, match="consume"):
        next(tables)


def test_the_clock_writes_every_second_of_the_day_and_the_days_before_today() -> None:
    today = NOW.date()
    clock = _Clock(today)
    midnight = datetime(2000, 1, 1, tzinfo=UTC)
    assert clock.times == [
        (midnight + timedelta(seconds=s)).strftime("%H:%M:%S+00") for s in range(86_400)
    ]
    assert clock.days[0] == (today - timedelta(days=1)).isoformat()
    assert clock.days[-1] == (today - timedelta(days=3 * 365)).isoformat()
    assert len(clock.days) == 3 * 365
    # r picks the day from its remainder and the second from the rest.
    assert clock.pick(0) == f"{clock.days[0]} 00:00:00+00"
    assert clock.pick(3 * 365 * 3_661 + 2) == f"{clock.days[2]} 01:01:01+00"


def test_small_tables_come_in_one_chunk_each(plan: SeedPlan) -> None:
    """Under CHUNK_ROWS rows a table is one COPY chunk (the personas are one of their own)."""
    for rows in table_rows(plan, locations=True):
        counts = [count for _, count in rows.chunks]
        expected = (
            [len(PERSONAS), rows.total - len(PERSONAS)] if rows.table == "users" else [rows.total]
        )
        assert counts == expected, rows.table


def test_invited_addresses_draw_first_and_last_names_from_the_whole_vocabulary(
    tables: Tables,
) -> None:
    """Each part of ``first.lastN@example.org`` varies: a name that never changes (an index
    computed wrongly, a shift for a modulo) would make every invitee a namesake."""
    from dbops.ops.seed._vocabulary import FIRST_NAMES, LAST_NAMES

    parts = [row[2].split("@")[0] for row in tables["invitations"]]
    firsts = {p.split(".")[0] for p in parts}
    lasts = {re.sub(r"\d+$", "", p.split(".", 1)[1]) for p in parts}
    assert len(parts) > 150
    assert firsts <= {n.lower() for n in FIRST_NAMES}
    assert lasts <= {n.lower() for n in LAST_NAMES}
    # Uniform draws: 186 invitations over 64-69 names leave about 3 of them out.
    assert len(firsts) >= min(len(FIRST_NAMES), len(parts)) * 0.8
    assert len(lasts) >= min(len(LAST_NAMES), len(parts)) * 0.8
