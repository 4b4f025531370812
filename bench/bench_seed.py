"""Time ``dbops.ops.seed.seed()`` (COPY) at 10k users and at a large size, per table.

    uv run python -m bench.bench_seed --users 1000000 --teams 100000

Starts a throwaway durable embedded cluster under /var/tmp (one fresh database per size) and
deletes it afterwards, or uses DATABASE_URL when it is set (its seeded rows get replaced).
Prints rows/s per table, the total, the idempotent re-run and a replace run with another seed.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import time
from dataclasses import dataclass

from bench._harness import databases
from dbops.config import Settings
from dbops.db import Database, open_database
from dbops.ops.migrate import upgrade
from dbops.ops.seed import seed

TABLES = ("users", "teams", "team_members", "invitations", "team_locations")


@dataclass
class Run:
    label: str
    users: int
    teams: int
    seconds: float
    tables: dict[str, tuple[int, float]]
    steps: list[str]


class _TableTimes(logging.Handler):
    """Collects the per-table records ``seed()`` logs (extra: table, rows, seconds)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.tables: dict[str, tuple[int, float]] = {}
        self.steps: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        table = getattr(record, "table", None)
        if table is not None:
            self.tables[table] = (record.rows, record.seconds)  # type: ignore[attr-defined]
        else:
            self.steps.append(record.getMessage().removeprefix("seed: "))


def _timed(
    db: Database, label: str, users: int, teams: int, seed_value: int, *, replace: bool = False
) -> Run:
    handler = _TableTimes()
    log = logging.getLogger("dbops.ops.seed")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        started = time.perf_counter()
        result = seed(db, users=users, teams=teams, seed=seed_value, replace=replace)
        seconds = time.perf_counter() - started
    finally:
        log.removeHandler(handler)
    run = Run(label, result.users, result.teams, seconds, handler.tables, handler.steps)
    _print(run, result.created)
    return run


def _print(run: Run, created: bool) -> None:
    state = "created" if created else "no-op (already seeded)"
    print(
        f"\n{run.label}: {run.users:,} users, {run.teams:,} teams -> {run.seconds:.2f} s, {state}"
    )
    for table in TABLES:
        if table in run.tables:
            rows, seconds = run.tables[table]
            rate = rows / seconds if seconds else float("inf")
            print(f"  {table:<13} {rows:>10,} rows {seconds:7.2f} s {rate:>12,.0f} rows/s")
    for step in run.steps:
        print(f"  {step}")


def _sizes(db: Database) -> str:
    with db.connection() as conn:
        row = conn.execute(
            "SELECT pg_size_pretty(sum(pg_total_relation_size(c.oid))) FROM pg_class c "
            "WHERE c.relname = ANY(%(t)s) AND c.relkind = 'r'",
            {"t": list(TABLES)},
        ).fetchone()
    return str(row[0]) if row else "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--teams", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--no-replace", action="store_true", help="skip the replace run")
    args = parser.parse_args()

    python = platform.python_version()
    print(f"machine: {os.cpu_count()} cores, {platform.platform()}, Python {python}")
    sizes = [(10_000, 1_000), (args.users, args.teams)]
    names = [f"bench_seed_{users}" for users, _ in sizes]
    with databases(names) as urls:
        for (users, teams), name in zip(sizes, names, strict=True):
            url = urls[name]
            settings = Settings(_env_file=None, database_url=url)
            upgrade(url, settings, "head")
            with open_database(settings, url) as db:
                with db.connection() as conn:
                    row = conn.execute("SHOW server_version").fetchone()
                version = row[0] if row else "?"
                print(f"\n== {users:,} users / {teams:,} teams (PostgreSQL {version})")
                _timed(db, "seed", users, teams, args.seed)
                print(f"  on disk: {_sizes(db)}")
                _timed(db, "re-run", users, teams, args.seed)
                if not args.no_replace:
                    _timed(db, "replace (other seed)", users, teams, args.seed + 1, replace=True)


if __name__ == "__main__":
    main()
