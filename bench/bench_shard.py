"""Tenant pruning at scale: a team's query on ``team_members`` vs a hash-partitioned copy.

    uv run python -m bench.bench_shard                        # 1M users / 100k teams
    uv run python -m bench.bench_shard --users 100000 --teams 10000
    uv run python -m bench.bench_shard --write-docs

Seeds a throwaway durable embedded cluster under /var/tmp (or DATABASE_URL), then runs
``dbops.ops.shard.prove_partitioning`` (what ``dbops shard prove`` runs) with 8, 32 and 64
partitions: the biggest team's query planned on one partition, the others skipped at run time
by a generic plan, and the median of the same query on the table and on the copy, in the same
run (the ratio is the cost of routing by tenant). The copy is temporary and rolled back.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import psycopg

from bench._harness import databases, machine, markdown_table, publish
from dbops.config import Settings
from dbops.db import Dsn, open_database
from dbops.ops.migrate import upgrade
from dbops.ops.seed import seed
from dbops.ops.shard import prove_partitioning

DOCS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
HEADING = "Sharding by tenant: partition pruning at scale (issue 21)"
SIZE_SQL = """
SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM teams),
       (SELECT count(*) FROM team_members), pg_size_pretty(pg_database_size(current_database())),
       current_setting('server_version')
"""
#: Each domain table with its indexes: what a reference copy or a shard would hold.
TABLE_SIZES_SQL = """
SELECT relname::text, pg_size_pretty(pg_total_relation_size(oid))
FROM pg_class WHERE relnamespace = 'public'::regnamespace
  AND relname IN ('users', 'teams', 'team_members', 'invitations')
ORDER BY pg_total_relation_size(oid) DESC
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--teams", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    with databases(["shard"]) as urls:
        url = urls["shard"]
        settings = Settings(_env_file=None, database_url=url)
        upgrade(url, settings, "head")
        started = time.perf_counter()
        with open_database(settings, url, purpose="admin") as db:
            seed(db, users=args.users, teams=args.teams, seed=42)
        seeded_s = time.perf_counter() - started
        libpq = Dsn.parse(url).libpq
        with psycopg.connect(libpq, autocommit=True) as conn:
            conn.execute("VACUUM (ANALYZE) team_members")
            users, teams, members, size, version = conn.execute(SIZE_SQL).fetchone() or ()
            sizes = ", ".join(f"{n} {z}" for n, z in conn.execute(TABLE_SIZES_SQL).fetchall())
            rows = []
            team_rows = 0
            for partitions in (8, 32, 64):
                began = time.perf_counter()
                proof = prove_partitioning(conn, partitions=partitions, runs=args.runs)
                took = time.perf_counter() - began
                team_rows = proof.team_rows
                rows.append(
                    (
                        partitions,
                        f"{proof.planned_partitions} of {partitions}",
                        proof.removed_at_run,
                        f"{proof.plain_median_us:.0f}",
                        f"{proof.partitioned_median_us:.0f}",
                        f"{proof.partitioned_median_us / proof.plain_median_us:.2f}",
                        f"{took:.1f}",
                    )
                )
    table = markdown_table(
        (
            "partitions",
            "planned (plan-time pruning)",
            "skipped at run time (generic plan)",
            "table µs (median)",
            "partitioned copy µs (median)",
            "ratio copy / table",
            "copy + proof s",
        ),
        rows,
    )
    body = "\n".join(
        [
            f"- **Command:** `uv run python -m bench.bench_shard --users {args.users} "
            f"--teams {args.teams}`",
            f"- **Machine:** {machine()}; PostgreSQL {version}, a durable embedded cluster.",
            f"- **Data:** {users:,} users, {teams:,} teams, {members:,} memberships ({size}), "
            f"seeded in {seeded_s:.1f} s; with their indexes: {sizes}. The biggest team's "
            f"query ({team_rows:,} members): `SELECT user_id, role FROM team_members WHERE "
            f"team_id = $1`, {args.runs} runs "
            "per side, the table and the copy in the same transaction.",
            "",
            table,
            "",
            "Reading: the tenant's query reads one partition whatever their number and costs "
            "what it costs on the unpartitioned table, within the run-to-run noise of this "
            "shared 2-core machine (ratios 0.80-1.17 over four runs): its index reaches the "
            "same rows either way, and the time is the rows themselves. Routing by tenant is "
            "free for the tenant's reads; what it costs is elsewhere (cross-tenant queries "
            "visit every partition, and moving the data: the copy here).",
        ]
    )
    publish(body, DOCS, HEADING, write=args.write_docs)


if __name__ == "__main__":
    main()
