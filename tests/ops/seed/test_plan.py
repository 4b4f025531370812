"""The seed plan without a database: determinism, shapes, argument checks."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from argon2 import PasswordHasher

from dbops.errors import InvalidInput
from dbops.ops.seed import DEMO_PASSWORD
from dbops.ops.seed._plan import (
    MAX_INVITATIONS_PER_TEAM,
    MAX_TEAM_SIZE,
    MAX_USERS,
    SEED_FORMAT,
    make_plan,
    validate_arguments,
)
from dbops.ops.seed._vocabulary import PERSONAS

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def test_same_arguments_give_the_same_plan() -> None:
    assert make_plan(1_000, 100, 3, now=NOW) == make_plan(1_000, 100, 3, now=NOW)
    assert make_plan(1_000, 100, 3, now=NOW) != make_plan(1_000, 100, 4, now=NOW)


def test_plan_shapes_and_totals() -> None:
    plan = make_plan(10_000, 1_000, 42, now=NOW)
    assert len(plan.team_sizes) == len(plan.invitation_counts) == 1_000
    assert all(1 <= size <= min(10_000, MAX_TEAM_SIZE) for size in plan.team_sizes)
    assert all(0 <= n <= MAX_INVITATIONS_PER_TEAM for n in plan.invitation_counts)
    assert [len(p) for p in plan.persona_teams] == [p.owner_of + p.member_of for p in PERSONAS]
    assert plan.located_teams == sorted(set(plan.located_teams))
    assert 300 < plan.locations < 500
    totals = plan.table_rows(locations=True)
    assert totals == {
        "users": 10_000 + len(PERSONAS),
        "teams": 1_000,
        "team_members": sum(plan.team_sizes) + sum(map(len, plan.persona_teams)),
        "invitations": sum(plan.invitation_counts),
        "team_locations": plan.locations,
    }
    assert "team_locations" not in plan.table_rows(locations=False)
    assert plan.marker(locations=False)["locations"] == 0
    assert plan.marker(locations=True) == {
        "seed": 42,
        "users": 10_000,
        "teams": 1_000,
        "memberships": totals["team_members"],
        "invitations": totals["invitations"],
        "locations": plan.locations,
        "format": SEED_FORMAT,
    }
    assert PasswordHasher().verify(plan.password_hash, DEMO_PASSWORD)


def test_persona_teams_fit_a_small_seed() -> None:
    plan = make_plan(3, 2, 1, now=NOW)
    assert all(len(p) == 2 for p in plan.persona_teams)
    assert make_plan(0, 0, 1, now=NOW).table_rows(locations=True) == {
        "users": len(PERSONAS),
        "teams": 0,
        "team_members": 0,
        "invitations": 0,
        "team_locations": 0,
    }


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"users": -1}, "users"),
        ({"users": MAX_USERS + 1}, "users"),
        ({"users": True}, "users"),
        ({"teams": -5}, "teams"),
        ({"users": 10, "teams": 11}, "teams"),
        ({"seed": "42"}, "seed"),
        ({"seed": 1.5}, "seed"),
    ],
)
def test_arguments_out_of_range_are_refused(kwargs: dict[str, Any], field: str) -> None:
    args = {"users": 100, "teams": 10, "seed": 1} | kwargs
    with pytest.raises(InvalidInput) as info:
        validate_arguments(**args)
    assert info.value.field == field


def test_arguments_at_the_limits_are_accepted() -> None:
    validate_arguments(MAX_USERS, MAX_USERS, 0)
    validate_arguments(0, 0, -1)
    validate_arguments(5, 5, 1)


def test_the_documented_limit_is_ten_million_users() -> None:
    validate_arguments(10_000_000, 10, 1)
    with pytest.raises(InvalidInput, match="at most 10,000,000"):
        validate_arguments(10_000_001, 10, 1)
