"""`dbops seed` against the seed API contract: progress callback, WouldReplaceData, --replace.

The seed function is replaced by a stand-in that always finds bigger demo data (raising
``dbops.errors.WouldReplaceData`` unless ``replace``), so the CLI's side of the contract is
tested in isolation; tests/cli/test_cli.py runs the same flow against the real seed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from typer.testing import CliRunner

from dbops import errors
from dbops.cli import app
from dbops.cli.up import run_seed
from dbops.db import Database
from dbops.ops import seed as ops_seed
from dbops.ops.seed import SeedResult


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []

    def seed(
        db: Database,
        *,
        users: int,
        teams: int,
        seed: int,
        replace: bool = False,
        progress: Callable[[str, int, int], None] | None = None,
    ) -> SeedResult:
        seen.append({"replace": replace, "progress": progress})
        if progress is not None:
            progress("users", users + 3, users + 3)
        if not replace:
            raise errors.WouldReplaceData(existing_rows=5_000, new_rows=40)
        return SeedResult(
            users=users + 3,
            teams=teams,
            memberships=1,
            invitations=2,
            locations=0,
            created=True,
            replaced_rows=5_000,
            seconds=0.1,
        )

    monkeypatch.setattr(ops_seed, "seed", seed)
    return seen


def test_without_a_terminal_it_asks_for_replace(
    migrated: str, calls: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", migrated)
    result = CliRunner().invoke(app, ["seed", "--users", "30", "--teams", "3"])
    assert result.exit_code == 1, result.output
    assert result.stderr.strip() == (
        "error: existing demo data has 5,000 rows, more than the 40 this seed writes: "
        "pass --replace to replace it"
    )
    assert [call["replace"] for call in calls] == [False]


def test_replace_skips_the_question(
    migrated: str, calls: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", migrated)
    result = CliRunner().invoke(app, ["seed", "--users", "30", "--teams", "3", "--replace"])
    assert result.exit_code == 0, result.output
    assert "seeded 33 users (30 + 3 personas), 3 teams" in result.stdout
    assert [call["replace"] for call in calls] == [True]


def test_progress_bar_is_fed_by_the_callback(db: Database, calls: list[dict[str, Any]]) -> None:
    run_seed(db, users=10, teams=1, seed=1, progress=True, replace=True)
    assert callable(calls[0]["progress"])
