"""The documented shape of the demo data, checked on 40,000 generated users (no database).

Each expected share below is computed by hand from the documentation (the ``Shape`` section of
:mod:`dbops.ops.seed`), never read from the generator's constants, so a changed share, weight,
age or spread turns a test red. Tolerances are about four standard deviations of the sample.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from dbops.ops.seed._plan import SeedPlan, make_plan
from dbops.ops.seed._rows import table_rows
from dbops.ops.seed._vocabulary import (
    CITIES,
    FEATURES,
    FIRST_NAMES,
    LAST_NAMES,
    LOCALES,
    PERSONAS,
    TAGS,
    TEAM_ADJECTIVES,
    TEAM_NOUNS,
    TITLES,
)

#: Not on a whole minute, so a lost or doubled second shows.
NOW = datetime(2026, 11, 25, 12, 0, 7, tzinfo=UTC)
TODAY = NOW.date()
USERS, TEAMS = 40_000, 4_000
DAY = 86_400
WEEK = 7 * DAY

Tables = dict[str, list[list[str]]]


@pytest.fixture(scope="module")
def plan() -> SeedPlan:
    return make_plan(USERS, TEAMS, 5, now=NOW)


@pytest.fixture(scope="module")
def tables(plan: SeedPlan) -> Tables:
    out: Tables = {}
    for rows in table_rows(plan, locations=True):
        out[rows.table] = [
            line.split("\t") for text, _ in rows.chunks for line in text[:-1].split("\n")
        ]
    return out


def _share(part: int, whole: int) -> float:
    assert whole > 0
    return part / whole


def _near(observed: float, expected: float, n: int) -> bool:
    """Within four standard deviations of a share ``expected`` estimated from ``n`` draws."""
    return abs(observed - expected) <= 4 * math.sqrt(expected * (1 - expected) / n) + 1e-9


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text)


# -- plan: team sizes, invitations, locations --------------------------------------------------


def test_team_sizes_follow_a_pareto_tail_cut_at_the_users(plan: SeedPlan) -> None:
    sizes = plan.team_sizes
    # Pareto(1.3) from 1: P(size < 3) = 1 - 3**-1.3, P(size >= 10) = 10**-1.3.
    assert min(sizes) == 1
    assert _near(_share(sum(s <= 2 for s in sizes), TEAMS), 1 - 3**-1.3, TEAMS)
    assert _near(_share(sum(s >= 10 for s in sizes), TEAMS), 10**-1.3, TEAMS)
    assert _near(_share(sum(s == 1 for s in sizes), TEAMS), 1 - 2**-1.3, TEAMS)
    small = make_plan(30, 4_000, 5, now=NOW)
    assert max(small.team_sizes) == 30  # cut at the number of users


def test_no_team_is_bigger_than_five_thousand_members() -> None:
    # P(size >= 5,000) = 5000**-1.3 = 1.6e-5: 400,000 teams reach the cut a few times.
    sizes = make_plan(10_000, 400_000, 1, now=NOW).team_sizes
    assert max(sizes) == 5_000
    assert sum(s == 5_000 for s in sizes) >= 2


def test_three_teams_in_ten_invite_one_to_twenty_people(plan: SeedPlan) -> None:
    counts = plan.invitation_counts
    inviting = [n for n in counts if n]
    assert _near(_share(len(inviting), TEAMS), 0.3, TEAMS)
    assert (min(inviting), max(inviting)) == (1, 20)
    # Pareto(1.5): P(count = 1) = 1 - 2**-1.5 (65 %), P(count >= 20) = 20**-1.5.
    assert _near(_share(inviting.count(1), len(inviting)), 1 - 2**-1.5, len(inviting))
    more = [n for n in make_plan(10_000, 100_000, 2, now=NOW).invitation_counts if n]
    assert _near(_share(more.count(20), len(more)), 20**-1.5, len(more))


def test_four_teams_in_ten_have_a_location(plan: SeedPlan, tables: Tables) -> None:
    assert _near(_share(plan.locations, TEAMS), 0.4, TEAMS)
    assert len(tables["team_locations"]) == plan.locations


# -- users ---------------------------------------------------------------------------------------


def test_users_are_named_from_the_vocabulary_with_a_numbered_email(tables: Tables) -> None:
    users = tables["users"][len(PERSONAS) :]
    assert len(users) == USERS
    firsts, lasts = set(FIRST_NAMES), set(LAST_NAMES)
    for i, (_, email, _, name, role, *_) in enumerate(users, start=1):
        first, last = name.split(" ")
        assert first in firsts
        assert last in lasts
        assert email == f"{first.lower()}.{last.lower()}{i}@example.com"
        assert role == "MEMBER"
    # Every first and last name is used (the draws cover the whole vocabulary).
    assert {u[3].split(" ")[0] for u in users} == firsts
    assert {u[3].split(" ")[1] for u in users} == lasts


def test_user_profiles_pair_every_locale_with_every_title(tables: Tables) -> None:
    users = tables["users"][len(PERSONAS) :]
    seen: Counter[tuple[str, str, str]] = Counter()
    for row in users:
        profile = json.loads(row[5])
        assert set(profile) == {"locale", "timezone", "title", "seed"}
        assert profile["seed"] == 5
        seen[(profile["locale"], profile["timezone"], profile["title"])] += 1
    combos = {(loc, tz, title) for loc, tz in LOCALES for title in TITLES}
    assert set(seen) == combos
    expected = 1 / len(combos)
    assert all(_near(n / USERS, expected, USERS) for n in seen.values())


def test_personas_live_in_london(tables: Tables) -> None:
    for row in tables["users"][: len(PERSONAS)]:
        profile = json.loads(row[5])
        assert (profile["locale"], profile["timezone"]) == ("en-GB", "Europe/London")


def test_user_tags_one_percent_none_then_one_two_or_three(tables: Tables) -> None:
    users = tables["users"][len(PERSONAS) :]
    sizes: Counter[int] = Counter()
    for row in users:
        assert row[6].startswith("{")
        assert row[6].endswith("}")
        tags = row[6][1:-1].split(",") if row[6] != "{}" else []
        assert tags == sorted(set(tags))
        assert set(tags) <= set(TAGS)
        sizes[len(tags)] += 1
    # The pool: 4 empty sets, and 64 sets each of sizes 1, 1, 1, 1, 2, 2, 3 (452 entries).
    pool = 4 + 7 * 64
    for k, entries in {0: 4, 1: 4 * 64, 2: 2 * 64, 3: 64}.items():
        assert _near(sizes[k] / USERS, entries / pool, USERS), (k, sizes)
    assert set(sizes) == {0, 1, 2, 3}


def test_users_joined_during_the_three_years_before_today(tables: Tables) -> None:
    created = [_ts(row[7]) for row in tables["users"]]
    assert all(row[7] == row[8] for row in tables["users"])
    days = Counter((TODAY - c.date()).days for c in created)
    # Every day from yesterday back to 3 * 365 days ago, none outside.
    assert set(days) == set(range(1, 3 * 365 + 1))
    assert {c.hour for c in created} == set(range(24))
    assert {c.minute for c in created} == set(range(60))
    assert {c.second for c in created} == set(range(60))
    assert all(c.tzinfo is not None and c.utcoffset() == timedelta(0) for c in created)


# -- teams ---------------------------------------------------------------------------------------


def test_team_plans_and_their_features(tables: Tables) -> None:
    plans: Counter[str] = Counter()
    features: dict[str, set[int]] = {}
    for row in tables["teams"]:
        settings = json.loads(row[3])
        assert settings["seed"] == 5
        plans[settings["plan"]] += 1
        chosen = settings["features"]
        assert chosen == sorted(set(chosen))
        assert set(chosen) <= set(FEATURES)
        features.setdefault(settings["plan"], set()).add(len(chosen))
    # A pool of 100 draws weighted 70/25/5: shares near those (the pool itself varies).
    assert abs(plans["free"] / TEAMS - 0.70) < 0.12
    assert abs(plans["pro"] / TEAMS - 0.25) < 0.10
    assert 0 < plans["enterprise"] / TEAMS < 0.12
    assert set(plans) == {"free", "pro", "enterprise"}
    assert (features["free"], features["pro"]) == ({0, 1}, {1, 2, 3})
    # About five enterprise entries in the pool: 3 features up to all seven.
    assert features["enterprise"] <= set(range(3, 8))
    assert len(features["enterprise"]) >= 3


def test_team_names_and_slugs(tables: Tables) -> None:
    suffixed = 0
    for j, (_, name, slug, *_) in enumerate(tables["teams"], start=1):
        words, number = name.rsplit(" ", 1)
        assert number == str(j)
        parts = words.lower().split(" ")
        assert parts[0] in TEAM_ADJECTIVES
        assert parts[1] in TEAM_NOUNS
        assert words == " ".join(p.capitalize() for p in parts)
        assert slug == "-".join(parts) + f"-{j}"
        suffixed += len(parts) == 3
    # 7 of the 10 suffixes are words, 3 are empty.
    assert _near(suffixed / TEAMS, 0.7, TEAMS)


def test_teams_were_created_during_the_three_years_before_today(tables: Tables) -> None:
    days = [(TODAY - _ts(row[4]).date()).days for row in tables["teams"]]
    assert all(row[4] == row[5] for row in tables["teams"])
    assert 1 <= min(days) <= 10
    assert 3 * 365 - 10 <= max(days) <= 3 * 365
    older = sum(d > 3 * 365 / 2 for d in days)
    assert _near(older / TEAMS, 0.5, TEAMS)


# -- memberships ---------------------------------------------------------------------------------


def test_teams_of_eight_or_more_have_a_second_owner_three_times_in_ten(
    plan: SeedPlan, tables: Tables
) -> None:
    persona_ids = {row[0] for row in tables["users"][: len(PERSONAS)]}
    owners: Counter[str] = Counter()
    members: Counter[str] = Counter()
    for team, user, role, created, updated in tables["team_members"]:
        assert created == updated
        if user in persona_ids:
            continue
        members[team] += 1
        owners[team] += role == "OWNER"
    team_ids = [row[0] for row in tables["teams"]]
    assert [members[t] for t in team_ids] == plan.team_sizes
    assert all(owners[t] == 1 for t in team_ids if members[t] < 8)
    big = [t for t in team_ids if members[t] >= 8]
    assert all(owners[t] in (1, 2) for t in big)
    assert _near(_share(sum(owners[t] == 2 for t in big), len(big)), 0.3, len(big))
    eight = [t for t in big if members[t] == 8]
    assert any(owners[t] == 2 for t in eight)  # 8 is "8 or more"


def test_membership_times_are_in_the_history_window(tables: Tables) -> None:
    days = {(TODAY - _ts(row[3]).date()).days for row in tables["team_members"]}
    assert min(days) == 1
    assert max(days) == 3 * 365


# -- invitations ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def invitations(tables: Tables) -> list[dict[str, str]]:
    columns = (
        *("id", "team_id", "email", "role", "invited_by", "token_hash", "status"),
        *("expires_at", "accepted_at", "created_at", "updated_at"),
    )
    return [dict(zip(columns, row, strict=True)) for row in tables["invitations"]]


def test_invitation_statuses_and_roles(invitations: list[dict[str, str]]) -> None:
    n = len(invitations)
    assert n > 2_000
    statuses = Counter(inv["status"] for inv in invitations)
    # A pool of 100 draws weighted 45/30/15/10.
    for status, weight in {"pending": 45, "accepted": 30, "expired": 15, "revoked": 10}.items():
        assert abs(statuses[status] / n - weight / 100) < 0.08, statuses
    assert set(statuses) == {"pending", "accepted", "expired", "revoked"}
    owners = sum(inv["role"] == "OWNER" for inv in invitations)
    assert _near(owners / n, 0.1, n)
    assert {inv["role"] for inv in invitations} == {"OWNER", "MEMBER"}


def test_invitations_come_from_the_team_owner_with_a_unique_token(
    tables: Tables, invitations: list[dict[str, str]]
) -> None:
    first_member: dict[str, str] = {}
    for team, user, *_ in tables["team_members"]:
        first_member.setdefault(team, user)
    token = re.compile(r"^\\\\x[0-9a-f]{64}$")
    for k, inv in enumerate(invitations, start=1):
        assert inv["invited_by"] == first_member[inv["team_id"]]
        assert token.match(inv["token_hash"]), inv["token_hash"]
        first, rest = inv["email"].split(".", 1)
        assert first.capitalize() in FIRST_NAMES
        assert rest.endswith(f"{k}@example.org")
    assert len({inv["token_hash"] for inv in invitations}) == len(invitations)


def test_pending_invitations_are_still_valid_and_the_others_are_older(
    invitations: list[dict[str, str]],
) -> None:
    ages: dict[str, list[float]] = {}
    for inv in invitations:
        created, expires = _ts(inv["created_at"]), _ts(inv["expires_at"])
        assert expires - created == timedelta(days=7)
        ages.setdefault(inv["status"], []).append((NOW - created).total_seconds())
    pending = ages.pop("pending")
    # Pending: 1 minute to 7 days - 1 hour old, so valid at least another hour.
    assert 60 <= min(pending) < 60 + 3_600
    assert WEEK - 2 * 3_600 < max(pending) < WEEK - 3_600
    assert _near(sum(a < WEEK / 2 for a in pending) / len(pending), 0.5, len(pending))
    # The others: 7 to 90 days old, uniformly.
    older = [a for values in ages.values() for a in values]
    assert WEEK <= min(older) < WEEK + DAY
    assert 89 * DAY < max(older) < 90 * DAY
    middle = WEEK + 83 * DAY / 2
    assert _near(sum(a < middle for a in older) / len(older), 0.5, len(older))


def test_accepted_invitations_were_accepted_within_their_week(
    invitations: list[dict[str, str]],
) -> None:
    delays = []
    for inv in invitations:
        if inv["status"] != "accepted":
            assert inv["accepted_at"] == "\\N"
            assert inv["updated_at"] == inv["created_at"]
            continue
        accepted, created = _ts(inv["accepted_at"]), _ts(inv["created_at"])
        assert inv["updated_at"] == inv["accepted_at"]
        delays.append((accepted - created).total_seconds())
    # Accepted 1 minute to 7 days - 1 minute after the invitation, uniformly.
    assert 60 <= min(delays) < 3_600
    assert WEEK - 3_600 < max(delays) <= WEEK - 60
    assert _near(sum(d < WEEK / 2 for d in delays) / len(delays), 0.5, len(delays))


# -- locations -----------------------------------------------------------------------------------


def test_locations_scatter_about_nine_kilometres_around_a_city(tables: Tables) -> None:
    point = re.compile(r"^SRID=4326;POINT\((-?\d+\.\d{6}) (-?\d+\.\d{6})\)$")
    dlat, dlon = [], []
    cities: Counter[str] = Counter()
    for row in tables["team_locations"]:
        match = point.match(row[1])
        assert match, row[1]
        lon, lat = float(match[1]), float(match[2])
        city = min(CITIES, key=lambda c: (lat - c.lat) ** 2 + (lon - c.lon) ** 2)
        cities[city.name] += 1
        dlat.append(lat - city.lat)
        dlon.append(lon - city.lon)
    n = len(dlat)
    assert set(cities) == {c.name for c in CITIES}
    # Standard deviations 0.08 degrees of latitude and 1.5 times that of longitude, mean 0.
    for values, sigma in ((dlat, 0.08), (dlon, 0.12)):
        mean = sum(values) / n
        sd = math.sqrt(sum((v - mean) ** 2 for v in values) / n)
        assert abs(mean) < 4 * sigma / math.sqrt(n)
        assert abs(sd - sigma) < 0.1 * sigma, (sd, sigma)
