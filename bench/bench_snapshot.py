"""Full monitoring snapshot time with 5,000 distinct statements in pg_stat_statements.

    uv run python -m bench.bench_snapshot [--statements 5000] [--rounds 30]

Starts a throwaway embedded cluster (pg_stat_statements.max = 10000 there) unless DATABASE_URL
is set, creates 100 small tables and runs ``--statements`` distinct statements over them, then
times ``collect_snapshot`` (median/p95/max of ``--rounds``, after one warm-up) and prints the
slowest collectors of one instrumented run. Prints only; docs/benchmarks.md is not touched.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import psycopg
from psycopg import sql

from bench._harness import databases, machine
from dbops.config import Settings, to_libpq_url
from dbops.db import open_database
from dbops.monitoring import collect, collect_snapshot

TABLES = 100


def _fill(url: str, n: int) -> int:
    with psycopg.connect(to_libpq_url(url), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        for t in range(TABLES):
            table = sql.Identifier(f"bench_t{t}")
            conn.execute(
                sql.SQL("CREATE TABLE IF NOT EXISTS {} (a int, b int, c text)").format(table)
            )
            conn.execute(
                sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} (a)").format(
                    sql.Identifier(f"ix_bench_t{t}_a"), table
                )
            )
        per_table = -(-n // TABLES)
        done = 0
        for t in range(TABLES):
            for k in range(per_table):
                if done >= n:
                    break
                # k + 1 terms: a different parse tree, so a different queryid per statement.
                expr = sql.SQL(" + ").join([sql.Identifier("a")] + [sql.Literal(1)] * (k + 1))
                conn.execute(
                    sql.SQL("SELECT {} FROM {} WHERE b = 1").format(
                        expr, sql.Identifier(f"bench_t{t}")
                    )
                )
                done += 1
        row = conn.execute("SELECT count(*) FROM pg_stat_statements").fetchone()
        return int(row[0]) if row else 0


def _timed_collectors(db: Any, settings: Settings) -> list[tuple[str, float]]:
    timings: list[tuple[str, float]] = []
    originals = dict(collect.COLLECTORS)

    def wrap(name: str, fn: Any) -> Any:
        def run(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                timings.append((name, (time.perf_counter() - t0) * 1000))

        return run

    try:
        for name, fn in originals.items():
            collect.COLLECTORS[name] = wrap(name, fn)
        collect_snapshot(db, settings)
    finally:
        collect.COLLECTORS.update(originals)
    return sorted(timings, key=lambda item: -item[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--statements", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    with databases(["bench_snapshot"]) as urls:
        url = urls["bench_snapshot"]
        entries = _fill(url, args.statements)
        settings = Settings(_env_file=None, database_url=url)
        with open_database(settings, url) as db:
            collect_snapshot(db, settings)  # warm-up (catalog caches, prepared statements)
            samples = []
            for _ in range(args.rounds):
                t0 = time.perf_counter()
                snap = collect_snapshot(db, settings)
                samples.append((time.perf_counter() - t0) * 1000)
            per_collector = _timed_collectors(db, settings)
        samples.sort()
        p95 = samples[min(len(samples) - 1, int(0.95 * len(samples)))]
        print(f"machine: {machine()}")
        print(f"pg_stat_statements entries: {entries}; errors: {len(snap.errors)}")
        print(
            f"collect_snapshot over {args.rounds} rounds: median "
            f"{statistics.median(samples):.1f} ms, p95 {p95:.1f} ms, max {samples[-1]:.1f} ms"
        )
        print("slowest collectors (one run, ms):")
        for name, ms in per_collector[:6]:
            print(f"  {name:24s} {ms:7.2f}")


if __name__ == "__main__":
    main()
