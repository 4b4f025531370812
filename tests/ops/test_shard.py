"""`dbops shard check|plan` on the demo schema and on schemas built by hand to break each rule."""

from __future__ import annotations

import json

import psycopg
import pytest
from typer.testing import CliRunner

from dbops.cli import app
from dbops.cli.shard import NOT_READY_EXIT
from dbops.config import to_libpq_url
from dbops.db import Database
from dbops.ops.seed import seed
from dbops.ops.shard import TableRole, check_sharding, prove_partitioning, shard_plan


def _check(url: str) -> tuple[dict[str, TableRole], set[tuple[str, str]]]:
    with psycopg.connect(to_libpq_url(url)) as conn:
        result = check_sharding(conn)
    return {r.table: r for r in result.roles}, {(f.table, f.key) for f in result.findings}


def test_the_demo_schema_and_what_it_lacks_for_citus(migrated: str) -> None:
    """Read from the models by hand: users are shared by teams (reference); every other table
    has the team; three keys are global (an invitation's id and token, a team's slug)."""
    roles, findings = _check(migrated)
    assert roles["teams"] == TableRole("teams", "distributed", "id")
    assert roles["users"] == TableRole("users", "reference")
    for table in ("team_members", "invitations", "team_member_counts", "team_locations"):
        assert roles[table] == TableRole(table, "distributed", "team_id")
    assert set(roles) == {
        "teams",
        "users",
        "team_members",
        "invitations",
        "team_member_counts",
        "team_locations",
    }
    assert findings == {
        ("invitations", "pk_invitations"),
        ("invitations", "uq_invitations_token_hash"),
        ("teams", "uq_teams_slug_live"),
    }


HAND_BUILT = """
CREATE TABLE teams (id uuid PRIMARY KEY);
CREATE TABLE countries (code text PRIMARY KEY);
CREATE TABLE flags (name text PRIMARY KEY);
CREATE TABLE users (id uuid PRIMARY KEY, email text UNIQUE,
                    country text REFERENCES countries (code),
                    favorite_team uuid CONSTRAINT fk_users_team REFERENCES teams (id));
CREATE TABLE members (team_id uuid REFERENCES teams (id), user_id uuid REFERENCES users (id),
                      PRIMARY KEY (team_id, user_id));
CREATE TABLE notes (id uuid CONSTRAINT pk_notes PRIMARY KEY, team_id uuid REFERENCES teams (id));
CREATE TABLE tags (team_id uuid REFERENCES teams (id), name text,
                   CONSTRAINT uq_tags_name UNIQUE (name));
CREATE TABLE links (team_id uuid REFERENCES teams (id), partner uuid,
                    CONSTRAINT fk_links_partner FOREIGN KEY (partner) REFERENCES teams (id));
CREATE UNIQUE INDEX uq_tags_team_name ON tags (team_id, name);
"""


def test_each_rule_on_a_schema_built_to_break_it(empty_database: str) -> None:
    with psycopg.connect(to_libpq_url(empty_database), autocommit=True) as conn:
        conn.execute(HAND_BUILT)
    roles, findings = _check(empty_database)
    assert {t: (r.role, r.column) for t, r in roles.items()} == {
        "teams": ("distributed", "id"),
        "members": ("distributed", "team_id"),
        "notes": ("distributed", "team_id"),
        "tags": ("distributed", "team_id"),
        "links": ("distributed", "team_id"),
        "users": ("reference", None),
        "countries": ("reference", None),  # reached through users
        "flags": ("local", None),  # reached by nothing distributed
    }
    assert findings == {
        ("notes", "pk_notes"),  # a primary key without the team
        ("tags", "uq_tags_name"),  # a unique key without it (uq_tags_team_name is fine)
        ("links", "fk_links_partner"),  # a foreign key to teams not on the distribution column
        ("users", "fk_users_team"),  # a reference table pointing at a distributed one
    }


def test_the_plan_creates_reference_then_tenant_then_colocated_tables(migrated: str) -> None:
    with psycopg.connect(to_libpq_url(migrated)) as conn:
        result = check_sharding(conn)
    lines = shard_plan(result)
    comments = [line for line in lines if line.startswith("--")]
    calls = [line for line in lines if not line.startswith("--")]
    assert len(comments) == len(result.findings) == 3
    assert calls[0] == "SELECT create_reference_table('public.users');"
    assert calls[1] == "SELECT create_distributed_table('public.teams', 'id');"
    assert all("colocate_with => 'public.teams'" in c for c in calls[2:])
    assert len(calls) == 2 + 4


def test_the_cli_exits_5_until_the_schema_is_ready(
    migrated: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", migrated)
    runner = CliRunner()
    checked = runner.invoke(app, ["shard", "check"], env={"COLUMNS": "120"})
    assert checked.exit_code == NOT_READY_EXIT, checked.output
    assert "invitations.pk_invitations: primary key (id) lacks" in checked.stdout
    assert "not ready: 3 finding(s)" in checked.stdout
    as_json = runner.invoke(app, ["shard", "check", "--json"])
    document = json.loads(as_json.stdout)
    assert document["ready"] is False
    assert len(document["findings"]) == 3
    planned = runner.invoke(app, ["shard", "plan"])
    assert planned.exit_code == 0, planned.output
    assert "SELECT create_reference_table('public.users');" in planned.stdout


def test_a_tenants_query_reads_one_partition_of_the_copy(
    clean_db: Database, database_url: str
) -> None:
    """The oracle is the catalog: the biggest team and its member count, counted by hand."""
    seed(clean_db, users=60, teams=6, seed=11)
    with psycopg.connect(to_libpq_url(database_url)) as conn:
        row = conn.execute(
            "SELECT team_id::text, count(*) FROM team_members GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 1"
        ).fetchone()
        assert row is not None
        proof = prove_partitioning(conn, partitions=4, runs=5)
        left = conn.execute("SELECT to_regclass('pg_temp.p_team_members')").fetchone()
    assert (proof.team_id, proof.team_rows) == (row[0], row[1])
    assert proof.partitions == 4
    assert proof.planned_partitions == 1  # pruned when planned
    assert proof.removed_at_run == 3  # and when a generic plan ran
    assert proof.plain_median_us > 0
    assert proof.partitioned_median_us > 0
    assert left == (None,)  # rolled back: nothing left behind


def test_the_proof_needs_memberships(empty_database: str) -> None:
    with psycopg.connect(to_libpq_url(empty_database), autocommit=True) as conn:
        conn.execute("CREATE TABLE team_members (team_id uuid, user_id uuid, role text)")
        with pytest.raises(ValueError, match="team_members is empty"):
            prove_partitioning(conn)
