"""Cost of the audit trail (migration 0006) and of sending the actor, on the service write path.

    uv run python -m bench.bench_audit [--calls 1500 --rounds 10 --threads 8 --seconds 5]
                                       [--users 20000 --teams 2000]

Starts a throwaway durable embedded cluster under /var/tmp (destroyed at the end). In one run,
on one database:

1. latency of two service writes, ``TeamService.create`` (INSERT team + owner membership) and
   ``TeamService.rename`` (lock + UPDATE), on three sides that alternate in rounds: *bare*
   (audit triggers disabled, the hook sends no actor: the code before this change), *actor*
   (the unit of work sends ``set_config('app.actor_*', ..., true)``, triggers disabled) and
   *actor + audit* (everything on);
2. throughput of renames from ``--threads`` threads (each on its own team), audit off vs on;
3. server-side cost per audited row: a 4,000-row ``INSERT ... SELECT`` into ``teams`` in one
   transaction, statement time (capture) and commit time (seal), against the same insert with
   the trigger disabled, in alternating rounds;
4. seed time (``dbops.ops.seed.seed``) into three fresh databases: at revision 0004 (no
   trail), at head with the seed's bulk bypass (one summary record per table), and at head
   with per-row capture forced on.

Prints a markdown report; nothing is written to docs/.
"""

from __future__ import annotations

import argparse
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Literal

import psycopg

from bench._harness import Latency, databases, machine, markdown_table, throughput
from dbops.config import Settings, to_libpq_url
from dbops.db import Database, open_database
from dbops.ops.migrate import upgrade
from dbops.ops.seed import seed
from dbops.services import Actor
from dbops.services.teams import TeamService
from dbops.services.users import UserService

AUDITED = ("users", "teams", "team_members", "invitations")
SYSTEM = Actor.system("bench")


def _settings(url: str, **extra: Any) -> Settings:
    return Settings(_env_file=None, database_url=url, **extra)


class Switch:
    """Turns the audit triggers and the actor statement on and off between blocks."""

    def __init__(self, url: str) -> None:
        self.admin = psycopg.connect(to_libpq_url(url), autocommit=True)
        self.state: bool | None = None

    def set(self, *, audit: bool) -> None:
        if self.state == audit:
            return
        verb = "ENABLE" if audit else "DISABLE"
        for table in AUDITED:
            self.admin.execute(f"ALTER TABLE {table} {verb} TRIGGER audit_capture")
        self.state = audit

    def close(self) -> None:
        self.set(audit=True)
        self.admin.close()


#: The actor statement is always sent (the unit of work's hook has no public off switch; its
#: cost alone is measured by ``bench.bench_actor_context``); the audit triggers are switched.
SIDES = {
    "no audit": {"audit": False},
    "audit": {"audit": True},
}


def _latencies(
    switch: Switch, op: Callable[[int], object], *, calls: int, rounds: int
) -> dict[str, Latency]:
    names = list(SIDES)
    samples: dict[str, list[int]] = {name: [] for name in names}
    per_round = max(1, calls // rounds)
    counter = iter(range(10**9))
    for name in names:  # warm-up
        switch.set(**SIDES[name])
        for _ in range(50):
            op(next(counter))
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            switch.set(**SIDES[name])
            out = samples[name]
            for _ in range(per_round):
                i = next(counter)
                t0 = time.perf_counter_ns()
                op(i)
                out.append(time.perf_counter_ns() - t0)
    return {name: Latency.of(samples[name]) for name in names}


@contextmanager
def _database(url: str, **extra: Any) -> Iterator[Database]:
    db = open_database(_settings(url, **extra), url)
    try:
        yield db
    finally:
        db.close()


def write_path(url: str, args: argparse.Namespace) -> list[str]:
    upgrade(url, _settings(url))
    lines: list[str] = []
    with _database(url, pool_max_size=args.threads + 2) as db:
        from argon2 import PasswordHasher

        users = UserService(db, hasher=PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
        teams = TeamService(db)
        owner = users.create(SYSTEM, email="bench@example.com", password="x" * 12, display_name="B")
        me = Actor.user(owner.id)
        run = uuid.uuid4().hex[:6]
        fixed = teams.create(me, name="Renamed", slug=f"renamed-{run}")
        switch = Switch(url)
        try:
            create = _latencies(
                switch,
                lambda i: teams.create(me, name=f"T {i}", slug=f"t-{run}-{i}"),
                calls=args.calls,
                rounds=args.rounds,
            )
            rename = _latencies(
                switch,
                lambda i: teams.rename(me, fixed.id, f"Renamed {i}"),
                calls=args.calls,
                rounds=args.rounds,
            )
            rows = []
            for op_name, result in (("TeamService.create", create), ("TeamService.rename", rename)):
                base = result[next(iter(SIDES))].median_us
                for side, lat in result.items():
                    rows.append(
                        [
                            op_name,
                            side,
                            f"{lat.median_us:.0f} µs",
                            f"{lat.p99_us:.0f} µs",
                            f"{1e6 / lat.median_us:,.0f}",
                            f"{lat.median_us / base:.2f}x",
                        ]
                    )
            lines.append(
                markdown_table(
                    ["operation", "side", "median", "p99", "ops/s (1 thread)", "vs no audit"], rows
                )
            )
            # Throughput: each thread renames its own team.
            own = [
                teams.create(me, name=f"Thread {n}", slug=f"th-{run}-{n}").id
                for n in range(args.threads)
            ]

            def worker(n: int) -> Callable[[int], object]:
                return lambda i: teams.rename(me, own[n], f"Thread {n} {i}")

            tput_rows = []
            results: dict[str, float] = {}
            for name in ("no audit", "audit") * 2:
                switch.set(**SIDES[name])
                rate, errors = throughput(worker, args.threads, args.seconds)
                results[name] = max(results.get(name, 0.0), rate)
                tput_rows.append([name, f"{rate:,.0f}", str(errors)])
            ratio = results["audit"] / results["no audit"]
            lines.append("")
            lines.append(
                markdown_table([f"renames, {args.threads} threads", "ops/s", "errors"], tput_rows)
            )
            lines.append(f"\nthroughput with audit / without (best of 2 each): {ratio:.2f}")
        finally:
            switch.close()
        with db.connection() as conn:
            count = conn.execute("SELECT count(*) FROM audit.record").fetchone()
        from dbops.ops.audit import verify

        started = time.perf_counter()
        report = verify(db)
        seconds = time.perf_counter() - started
        lines.append(
            f"\nverify: {report.records:,} records ({count[0] if count else 0:,} in the table) "
            f"in {seconds:.2f} s, ok={report.ok}"
        )
    return lines


SEEDS = (
    ("revision 0004 (no audit trail)", "seed_plain", "0004", False),
    (
        "head, triggers disabled by the seed (1 summary record per table)",
        "seed_bulk",
        "head",
        False,
    ),
    ("head, per-row audit forced", "seed_rows", "head", True),
)
SEED_ROUNDS = 2


PER_ROW_ROWS = 4_000
BULK_INSERT = (
    "INSERT INTO teams (name, slug) "
    "SELECT 'bulk ' || g, %(prefix)s || '-' || g FROM generate_series(1, %(rows)s) AS g"
)


def per_row(url: str, rounds: int = 3) -> list[str]:
    rows = []
    with psycopg.connect(to_libpq_url(url)) as conn:
        for r in range(rounds):
            for audit in (r % 2 == 0, r % 2 != 0):
                verb = "ENABLE" if audit else "DISABLE"
                conn.execute(f"ALTER TABLE teams {verb} TRIGGER audit_capture")
                conn.commit()
                prefix = f"bulk-{uuid.uuid4().hex[:8]}"
                t0 = time.perf_counter()
                conn.execute(BULK_INSERT, {"prefix": prefix, "rows": PER_ROW_ROWS})
                t1 = time.perf_counter()
                conn.commit()
                t2 = time.perf_counter()
                per = 1e6 / PER_ROW_ROWS
                rows.append(
                    [
                        "audit on" if audit else "trigger disabled",
                        f"round {r + 1}",
                        f"{(t1 - t0) * per:.0f} µs",
                        f"{(t2 - t1) * per:.0f} µs",
                    ]
                )
        conn.execute("ALTER TABLE teams ENABLE TRIGGER audit_capture")
        conn.commit()
    header = [f"{PER_ROW_ROWS:,}-row insert", "round", "statement / row", "commit / row"]
    return [markdown_table(header, rows)]


def seed_times(urls: dict[str, str], args: argparse.Namespace) -> list[str]:
    rows = []
    best: dict[str, float] = {}
    for r in range(SEED_ROUNDS):
        order = SEEDS[r % 3 :] + SEEDS[: r % 3]
        for label, name, revision, per_row in order:
            seconds, result, records = _seed_once(urls[f"{name}_{r}"], revision, per_row, args)
            best[label] = min(best.get(label, seconds), seconds)
            rows.append([label, f"round {r + 1}", f"{seconds:.2f} s", f"{records:,}"])
    plain = best[SEEDS[0][0]]
    summary = [
        [label, f"{best[label]:.2f} s", f"{best[label] / plain:.2f}x"] for label, *_ in SEEDS
    ]
    return [
        f"seed of {result.users:,} users, {result.teams:,} teams, "
        f"{result.memberships:,} memberships, {result.invitations:,} invitations",
        "",
        markdown_table(["seed into", "round", "time", "audit records"], rows),
        "",
        markdown_table(["seed into", "best", "vs 0004"], summary),
    ]


def _seed_once(
    url: str, revision: str, per_row: bool, args: argparse.Namespace
) -> tuple[float, Any, int]:
    """One seed into ``url`` at ``revision``: seconds, the result, audit records."""
    upgrade(url, _settings(url), revision)
    with _database(url) as db:
        started = time.perf_counter()
        audit: Literal["summary", "per-row"] = "per-row" if per_row else "summary"
        result = seed(db, users=args.users, teams=args.teams, seed=1, audit=audit)
        seconds = time.perf_counter() - started
        records = 0
        if revision == "head":
            with db.connection() as conn:
                found = conn.execute("SELECT count(*) FROM audit.record").fetchone()
                records = found[0] if found else 0
    return seconds, result, records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--teams", type=int, default=2_000)
    parser.add_argument(
        "--sync-off",
        action="store_true",
        help="synchronous_commit = off for the write-path database: CPU and round trips "
        "without the WAL flush of each commit",
    )
    args = parser.parse_args()
    print(f"machine: {machine()}")
    names = ["writes"] + [f"{s[1]}_{r}" for r in range(SEED_ROUNDS) for s in SEEDS]
    with databases(names) as urls:
        with psycopg.connect(to_libpq_url(urls["writes"])) as conn:
            version = conn.execute("SHOW server_version").fetchone()
            if args.sync_off:
                conn.execute("ALTER DATABASE writes SET synchronous_commit = off")
                conn.commit()
        print(f"PostgreSQL {version[0] if version else '?'}, sync_off={args.sync_off}\n")
        for line in write_path(urls["writes"], args):
            print(line)
        print()
        for line in per_row(urls["writes"]):
            print(line)
        print()
        for line in seed_times(urls, args):
            print(line)


if __name__ == "__main__":
    main()
