"""What replicas and PgBouncer cost a service call, against the direct primary in the same run.

    uv run python -m bench.bench_scale_out                       # 100k users / 10k teams
    uv run python -m bench.bench_scale_out --users 10000 --teams 1000 --write-docs

Makes a throwaway project under /var/tmp as a user would (`dbops up`, `dbops db replica add`,
`dbops db bouncer start`) and times, on the same inputs with the sides alternating:

- a lag-tolerant read (``UserService.get`` by a system actor): on the primary (replica reads
  off), routed to the replica, through PgBouncer in transaction pooling (prepared statements
  off), and direct with prepared statements off (the bouncer's hop apart from the read's
  transaction);
- a write (``TeamService.rename``): without and with replicas (the position recorded after
  commit for read-your-writes);
- a write then the same actor's read: on the primary, and with the replica (the read waits
  for the replay of the write when the replica has not shown it yet).
"""

from __future__ import annotations

import argparse
import functools
import os
import random
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from bench._harness import machine, markdown_table, measure_pair, publish
from dbops.cli import app
from dbops.config import Settings
from dbops.db import Database, EmbeddedCluster, open_database
from dbops.db.bouncer import Bouncer
from dbops.services import Actor, TeamService, UserService

DOCS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
HEADING = "Read replicas and PgBouncer: the cost per call (issue 21)"
APP_PASSWORD = "bench-app-" + uuid.uuid4().hex[:12]


def _cli(env: dict[str, str], *args: str) -> None:
    result = CliRunner().invoke(app, list(args), env=env)
    if result.exit_code != 0:
        raise SystemExit(f"dbops {' '.join(args)} failed: {result.output}")


def _open(home: Path, url: str | None = None, **overrides: Any) -> Database:
    fields: dict[str, Any] = {"_env_file": None, "home": home, "process_report_s": 0}
    fields.update(overrides)
    return open_database(Settings(**fields), url)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--teams", type=int, default=10_000)
    parser.add_argument("--calls", type=int, default=3_000)
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(dir="/var/tmp", prefix="dbops-bench-scale-"))
    home = root / ".dbops"
    env = {"DBOPS_HOME": str(home), "DBOPS_APP_PASSWORD": APP_PASSWORD, "COLUMNS": "200"}
    try:
        _cli(env, "up", "--users", str(args.users), "--teams", str(args.teams), "--no-progress")
        _cli(env, "db", "replica", "add", "r1")
        cluster = EmbeddedCluster(home)
        bouncer = Bouncer(cluster, pool_size=4)
        bouncer.start()
        through_bouncer = bouncer.url().replace("dbops_app@", f"dbops_app:{APP_PASSWORD}@")
        rows = _measure(home, through_bouncer, args.calls)
    finally:
        _cli(env, "db", "stop")
        EmbeddedCluster(home).destroy()
        shutil.rmtree(root, ignore_errors=True)
    body = "\n".join(
        [
            f"- **Command:** `uv run python -m bench.bench_scale_out --users {args.users} "
            f"--teams {args.teams}`",
            f"- **Machine:** {machine()}; the primary, the replica (`dbops db replica add`), "
            "PgBouncer 1.18 (pool of 4, transaction mode) and the client share it.",
            f"- **Method:** {args.calls:,} timed calls per side after 300 warm-up calls, in 20 "
            "rounds with the order of the sides rotating; medians and p99 in µs; ratio = side "
            "/ the first side of its group, in the same run.",
            "",
            markdown_table(("call", "side", "median µs", "p99 µs", "ratio"), rows),
            "",
            "Reading: a replica read costs what a primary read costs (the router picks the "
            "replica in memory); PgBouncer's price is the read's own transaction (prepared "
            "statements off: BEGIN, the actor, the query, COMMIT) more than the hop; a write "
            "with replicas pays one statement more (the WAL position after COMMIT); and a read "
            "right after the actor's own write waits for the replica's replay when the replica "
            "has not shown it yet.",
        ]
    )
    publish(body, DOCS, HEADING, write=args.write_docs)


def _measure(home: Path, through_bouncer: str, calls: int) -> list[tuple[object, ...]]:
    system = Actor.system("bench")
    primary = _open(home, replica_reads=False)
    routed = _open(home)
    bounced = _open(home, through_bouncer, prepared_statements=False, pool_max_size=4)
    direct_off = _open(home, prepared_statements=False)
    try:
        assert routed.replicas is not None
        routed.replicas.wait_checked(10)
        ids = [u.id for u in UserService(primary).list_users(system, limit=500).items]
        random.Random(42).shuffle(ids)
        reads = {
            "primary (replica reads off)": UserService(primary).get,
            "replica (routed)": UserService(routed).get,
            "direct, prepared statements off": UserService(direct_off).get,
            "through PgBouncer": UserService(bounced).get,
        }
        read = measure_pair(
            {name: functools.partial(fn, system) for name, fn in reads.items()},
            ids,
            calls=calls,
        )
        owner = UserService(primary).create(
            system,
            email=f"bench-{uuid.uuid4().hex[:8]}@example.com",
            password="a long enough password",
            display_name="bench",
        )
        actor = Actor.user(owner.id)
        team = TeamService(primary).create(actor, name="bench", slug=f"b-{uuid.uuid4().hex[:8]}")
        names = [f"bench {i}" for i in range(calls + 400)]
        write = measure_pair(
            {
                "without replicas": lambda n: TeamService(primary).rename(actor, team.id, n),
                "with replicas": lambda n: TeamService(routed).rename(actor, team.id, n),
            },
            names,
            calls=calls // 3,
        )
        pair = measure_pair(
            {
                "primary only": lambda n: _write_then_read(TeamService(primary), actor, team.id, n),
                "with the replica": lambda n: _write_then_read(
                    TeamService(routed), actor, team.id, n
                ),
            },
            names,
            calls=calls // 3,
        )
        stats = routed.replicas.stats()
    finally:
        for db in (primary, routed, bounced, direct_off):
            db.close()
    rows: list[tuple[object, ...]] = []
    for call, group in (
        ("users.get (lag-tolerant read)", read),
        ("teams.rename (write)", write),
        ("rename, then the actor's get", pair),
    ):
        base = next(iter(group.values())).median_us
        for side, latency in group.items():
            rows.append(
                (
                    call,
                    side,
                    f"{latency.median_us:,.0f}",
                    f"{latency.p99_us:,.0f}",
                    f"{latency.median_us / base:.2f}",
                )
            )
    rows.append(
        (
            "router counts (all routed calls)",
            f"replica {stats.replica_reads:,}, waited {stats.waited:,}, "
            f"primary {stats.primary_reads:,} {dict(stats.fallbacks) or ''}",
            "",
            "",
            "",
        )
    )
    return rows


def _write_then_read(teams: TeamService, actor: Actor, team_id: uuid.UUID, name: str) -> None:
    teams.rename(actor, team_id, name)
    if teams.get(actor, team_id).name != name:
        raise AssertionError("read-your-writes broken: the read missed the write")


if __name__ == "__main__":
    os.environ.pop("DATABASE_URL", None)
    main()
