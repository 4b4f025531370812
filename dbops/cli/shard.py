"""`dbops shard check|plan`: is the schema ready to shard by tenant with Citus (docs/scale-out.md).

Read-only, over :mod:`dbops.ops.shard`: the tables' roles (distributed by the team, reference,
local) and the Citus rules the schema breaks; `plan` prints the calls. They never start a
stopped embedded cluster (exit 3, like `dbops status`).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from dbops.cli import _target
from dbops.cli._render import print_kv, say

if TYPE_CHECKING:
    from dbops.ops.shard import ShardCheck

__all__ = ["NOT_READY_EXIT", "check", "plan", "prove", "shard_app"]

#: Exit code of `dbops shard check` when a rule is broken: 4, the verdict of every dbops check
#: (`monitor checks`, `backup verify`, `audit verify`); 1-3 are errors.
NOT_READY_EXIT = 4

shard_app = typer.Typer(
    name="shard",
    help="Sharding by tenant (team) with Citus: check the schema's readiness, print the plan.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


def _check() -> ShardCheck:
    import psycopg

    from dbops.ops.shard import check_sharding

    settings = _target.settings()
    dsn = _target.dsn_to_read(settings)
    with psycopg.connect(dsn.libpq, autocommit=True) as conn:
        return check_sharding(conn)


@shard_app.command("check")
def check(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
) -> None:
    """Which tables would be distributed by team, which are reference tables, what breaks.

    The rules are Citus': keys and foreign keys that include the distribution column. Exit 4
    when the schema breaks one.
    """
    result = _check()
    if as_json:
        document = {
            "ready": result.ready,
            "tables": [
                {"table": r.table, "role": r.role, "column": r.column} for r in result.roles
            ],
            "findings": [
                {"table": f.table, "key": f.key, "problem": f.problem, "fix": f.fix}
                for f in result.findings
            ],
        }
        typer.echo(json.dumps(document, indent=2))
    else:
        print_kv(
            "tables",
            [(r.table, r.role + (f" by {r.column}" if r.column else "")) for r in result.roles],
        )
        for f in result.findings:
            say(f"{f.table}.{f.key}: {f.problem}")
            say(f"  fix: {f.fix}")
        say(
            "ready to distribute by team"
            if result.ready
            else f"not ready: {len(result.findings)} finding(s); `dbops shard plan` lists them"
        )
    if not result.ready:
        raise typer.Exit(NOT_READY_EXIT)


@shard_app.command("plan")
def plan() -> None:
    """Print the Citus calls that shard the schema by team, after the fixes still needed."""
    from dbops.ops.shard import shard_plan

    for line in shard_plan(_check()):
        typer.echo(line)


@shard_app.command("prove")
def prove(
    partitions: Annotated[
        int, typer.Option("--partitions", min=2, max=64, help="Hash partitions of the copy.")
    ] = 8,
) -> None:
    """Show tenant pruning on a copy of team_members hash-partitioned by team (rolled back).

    The biggest team's query plans one partition and, prepared generically, skips the
    others when it runs; the same query is timed on the table and on the copy.
    """
    import psycopg

    from dbops.ops.shard import prove_partitioning

    settings = _target.settings()
    dsn = _target.dsn_to_read(settings)
    with psycopg.connect(dsn.libpq) as conn:
        proof = prove_partitioning(conn, partitions=partitions)
    say(
        f"team {proof.team_id} ({proof.team_rows:,} members): its query plans "
        f"{proof.planned_partitions} of {proof.partitions} partitions; a generic plan skipped "
        f"{proof.removed_at_run} when it ran"
    )
    say(
        f"median {proof.plain_median_us:,.1f} µs on team_members, "
        f"{proof.partitioned_median_us:,.1f} µs on the partitioned copy"
    )
