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
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from dbops.config import Settings, redact_dsn
from dbops.db import Database, EmbeddedCluster, open_database
from dbops.ops.migrate import upgrade
from dbops.ops.seed import seed

TABLES = ("users", "teams", "team_members", "invitations")


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


@contextmanager
def _databases(names: list[str]) -> Iterator[dict[str, str]]:
    """SQLAlchemy URL per name: fresh databases in a throwaway cluster, or DATABASE_URL."""
    url = os.environ.get("DATABASE_URL")
    if url:
        print(f"using DATABASE_URL {redact_dsn(url)} (seeded rows there are replaced)")
        yield dict.fromkeys(names, url)
        return
    home = Path(tempfile.mkdtemp(dir="/var/tmp", prefix="dbops-bench-")) / "cluster"
    cluster = EmbeddedCluster(home, database="bench", durable=True)
    try:
        cluster.ensure_running()
        with psycopg.connect(cluster.libpq_url("postgres"), autocommit=True) as conn:
            for name in names:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        yield {name: cluster.url(name) for name in names}
    finally:
        cluster.destroy()
        home.parent.rmdir()


def _timed(db: Database, label: str, users: int, teams: int, seed_value: int) -> Run:
    handler = _TableTimes()
    log = logging.getLogger("dbops.ops.seed")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        started = time.perf_counter()
        result = seed(db, users=users, teams=teams, seed=seed_value)
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
    with _databases(names) as urls:
        for (users, teams), name in zip(sizes, names, strict=True):
            url = urls[name]
            settings = Settings(_env_file=None, database_url=url)  # type: ignore[call-arg]
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
                    _timed(db, "replace (other seed)", users, teams, args.seed + 1)


if __name__ == "__main__":
    main()
