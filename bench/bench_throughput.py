"""Where 8-thread throughput goes: raw psycopg, then each layer the service adds, one at a time.

``uv run python -m bench.bench_throughput [--users 100000 --teams 20000 --seconds 4 --rounds 3]``

Runs user-by-email from ``threads`` threads of one process for each side, rotating the order
each round: raw (a connection per thread), pool (``getconn``/``putconn`` around the same
``execute``), read (``Database.read()`` + the service's row dataclass), service
(``UserService.get_by_email``). The step where the rate falls is the layer that costs. Results
replace the "8-thread throughput by layer" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import random
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import class_row

from bench._harness import databases, machine, markdown_table, replace_section, throughput
from dbops.config import Settings, to_libpq_url
from dbops.db import open_database
from dbops.ops.migrate import upgrade
from dbops.ops.seed import seed
from dbops.services import Actor, UserService, UserView
from dbops.services.statements import SELECT_USER_BY_EMAIL_SQL

USER_ROW = class_row(UserView)

SYSTEM = Actor.system("bench")
DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
SECTION = "8-thread throughput by layer"
SIDES = ("raw", "pool", "read", "service")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--teams", type=int, default=20_000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    with databases(["throughput"]) as urls:
        url = urls["throughput"]
        settings = Settings(_env_file=None, database_url=url)
        upgrade(url, settings)
        with open_database(settings, url) as db:
            seed(db, users=args.users, teams=args.teams)
            with db.read() as conn:
                emails = [r[0] for r in conn.execute("SELECT email FROM users LIMIT 5000")]
            random.Random(42).shuffle(emails)
            rates = _run(db, to_libpq_url(url), emails, args)
            pool_size = db.pool.get_stats().get("pool_size")
    _report(rates, args, pool_size)


def _run(
    db: Any, libpq_url: str, emails: list[str], args: argparse.Namespace
) -> dict[str, list[float]]:
    n = args.threads
    raw_conns = [psycopg.connect(libpq_url, autocommit=True) for _ in range(n)]
    users = UserService(db)

    def pick(i: int, k: int) -> str:
        return emails[(k * n + i) % len(emails)]

    def raw(i: int) -> Callable[[int], object]:
        conn = raw_conns[i]
        return lambda k: conn.execute(
            SELECT_USER_BY_EMAIL_SQL, {"email": pick(i, k)}, prepare=True
        ).fetchone()

    def pool(i: int) -> Callable[[int], object]:
        def work(k: int) -> object:
            conn = db.pool.getconn()
            try:
                conn.autocommit = True
                return conn.execute(SELECT_USER_BY_EMAIL_SQL, {"email": pick(i, k)}).fetchone()
            finally:
                db.pool.putconn(conn)

        return work

    def read(i: int) -> Callable[[int], object]:
        def work(k: int) -> object:
            with db.read() as conn, conn.cursor(row_factory=USER_ROW) as cur:
                cur.execute(SELECT_USER_BY_EMAIL_SQL, {"email": pick(i, k)})
                return cur.fetchone()

        return work

    def service(i: int) -> Callable[[int], object]:
        return lambda k: users.get_by_email(SYSTEM, pick(i, k))

    workers = {"raw": raw, "pool": pool, "read": read, "service": service}
    rates: dict[str, list[float]] = {side: [] for side in SIDES}
    try:
        for side in SIDES:  # warm-up: the pool grows and every connection prepares
            throughput(workers[side], n, 1.0)
        for r in range(args.rounds):
            order = SIDES[r % len(SIDES) :] + SIDES[: r % len(SIDES)]
            for side in order:
                rate, errors = throughput(workers[side], n, args.seconds)
                if errors:
                    raise RuntimeError(f"{side}: {errors} calls failed")
                rates[side].append(rate)
                print(f"round {r + 1} {side:8s} {rate:10,.0f} ops/s")
    finally:
        for conn in raw_conns:
            conn.close()
    return rates


def _report(rates: dict[str, list[float]], args: argparse.Namespace, pool_size: object) -> None:
    raw = statistics.median(rates["raw"])
    rows = [
        [
            side,
            f"{statistics.median(rates[side]):,.0f}",
            ", ".join(f"{x:,.0f}" for x in rates[side]),
            f"{statistics.median(rates[side]) / raw:.0%}",
        ]
        for side in SIDES
    ]
    table = markdown_table(["side", "ops/s (median)", "rounds", "vs raw"], rows)
    body = f"""Machine: {machine()}.
Command: `uv run python -m bench.bench_throughput --users {args.users} --teams {args.teams}`
({args.threads} threads, {args.rounds} rounds of {args.seconds:g} s per side, order rotated each
round; pool size at the end: {pool_size}).

Each side adds one layer to the one before: **raw** = a psycopg connection per thread,
`execute(prepare=True)`; **pool** = `getconn`/`putconn` of the shared psycopg_pool around the
same call; **read** = `Database.read()` and the service's frozen row dataclass; **service** =
`UserService.get_by_email` (email normalization, NotFound). Target (issue 3): service ≥ 70% of raw.

{table}

On this 2-core machine the server and all client threads share the cores and the client's
Python work is serialized by the GIL, so rounds vary by tens of percent; compare medians.
"""
    print(body)
    replace_section(DOC, SECTION, body)
    print(f"wrote section {SECTION!r} of {DOC}")


if __name__ == "__main__":
    main()
