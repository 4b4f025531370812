"""Throughput of the service under row-level security as a deployment runs it, against raw psycopg.

    uv run python -m bench.bench_processes [--users 20000] [--seconds 4] [--rounds 2]
                                           [--processes 1,2,4,8] [--threads 8]

A real deployment runs N worker processes, each with its own pool. This sets the database up as
``bench/bench_rls.py`` does (dbops' roles, migrations as the owner, grants; the seeded data set
with ~3 memberships per user), draws one user actor in small teams and the e-mails of their
teammates, then measures ``users.get_by_email`` for ``seconds`` per run on three sides:

- ``raw``: per process one autocommit psycopg connection as the superuser, ``prepare=True``,
  the very statement the service sends for a user actor (``SELECT_VISIBLE_USER_BY_EMAIL_SQL``)
  with the same parameters: no RLS, no layers;
- ``service (rls)``: per process ``open_database()`` as ``dbops_app`` (RLS forced) and
  ``UserService.get_by_email(Actor.user(...), email)``, no cache;
- ``service (superuser)``: the same service on a Database opened as the superuser (RLS
  bypassed): (rls) / (superuser) is the policies' share, (superuser) / raw the layers'.

for 1, 2, 4 and 8 processes (started with ``spawn``, warmed up, released together by a
barrier), sides alternating and their order rotated each round; then ``threads`` threads in one
process, each with its own raw connection, or sharing the process's pool (the service sides).
Prints the medians and the ratio to raw, and writes the section "Throughput under RLS:
processes and threads" of docs/benchmarks.md (unless ``--no-docs``).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import psycopg

from bench._harness import databases, machine, markdown_table, publish, throughput
from bench.bench_rls import pick_inputs, setup_cluster
from bench.bench_services import prepare as seed_dataset
from dbops.config import Settings, to_libpq_url
from dbops.db import Database, open_database
from dbops.services import Actor, UserService
from dbops.services.users import SELECT_VISIBLE_USER_BY_EMAIL_SQL

DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
SECTION = "Throughput under RLS: processes and threads"
SIDES = ("raw", "service (rls)", "service (superuser)")
PROCESS_TARGET = 0.80
THREAD_TARGET = 0.70
WARMUP_CALLS = 200


@dataclass(frozen=True)
class Job:
    """What one worker process needs (picklable: it crosses a spawn)."""

    side: str
    superuser_url: str
    app_url: str
    user_id: uuid.UUID
    emails: tuple[str, ...]
    offset: int
    pool_size: int


def _settings(url: str, pool_size: int) -> Settings:
    return Settings(
        _env_file=None,
        database_url=url,
        process_report_s=0,
        pool_min_size=pool_size,
        pool_max_size=pool_size,
    )


def make_call(job: Job) -> tuple[Callable[[int], object], Callable[[], None]]:
    """The side's call (given a counter) and what closes its resources."""
    emails, n = job.emails, len(job.emails)
    if job.side == "raw":
        conn = psycopg.connect(to_libpq_url(job.superuser_url), autocommit=True)

        def raw(k: int) -> object:
            params = {"email": emails[(job.offset + k) % n], "actor_id": job.user_id}
            return conn.execute(SELECT_VISIBLE_USER_BY_EMAIL_SQL, params, prepare=True).fetchone()

        return raw, conn.close
    url = job.app_url if job.side == "service (rls)" else job.superuser_url
    db: Database = open_database(_settings(url, job.pool_size), url)
    users = UserService(db)
    actor = Actor.user(job.user_id)

    def service(k: int) -> object:
        return users.get_by_email(actor, emails[(job.offset + k) % n])

    return service, db.close


def _worker(job: Job, seconds: float, barrier: Any, results: Any) -> None:
    call, close = make_call(job)
    try:
        for k in range(WARMUP_CALLS):
            call(k)
        barrier.wait()
        deadline = time.perf_counter() + seconds
        done = 0
        while time.perf_counter() < deadline:
            call(done)
            done += 1
        results.put(done)
    finally:
        close()


def run_processes(jobs: list[Job], seconds: float) -> float:
    """Calls per second of all ``jobs``, one process each, released together."""
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(len(jobs))
    results = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(job, seconds, barrier, results)) for job in jobs]
    for proc in procs:
        proc.start()
    total = sum(results.get(timeout=120 + seconds) for _ in procs)
    for proc in procs:
        proc.join(timeout=30)
        if proc.exitcode != 0:
            raise RuntimeError(f"a {jobs[0].side} worker exited with {proc.exitcode}")
    return total / seconds


def run_threads(jobs: list[Job], seconds: float) -> float:
    """Calls per second of ``len(jobs)`` threads in this process; service sides share one pool."""
    if jobs[0].side == "raw":
        made = [make_call(job) for job in jobs]
        calls = [call for call, _ in made]
        closers = [close for _, close in made]
    else:
        shared = replace(jobs[0], pool_size=len(jobs))
        call, close = make_call(shared)
        calls, closers = [call] * len(jobs), [close]
    try:
        for call in calls:
            for k in range(WARMUP_CALLS // 4):
                call(k)
        rate, errors = throughput(lambda i: calls[i], len(calls), seconds)
        if errors:
            raise RuntimeError(f"{jobs[0].side}: {errors} calls failed")
        return rate
    finally:
        for close in closers:
            close()


def measure(
    make_jobs: Callable[[str, int], list[Job]],
    counts: list[int],
    threads: int,
    seconds: float,
    rounds: int,
) -> dict[str, dict[str, list[float]]]:
    """rates[shape][side]: one per round; shapes "N processes" and "T threads"."""
    shapes = [(f"{n} processes", n, run_processes) for n in counts]
    shapes.append((f"{threads} threads", threads, run_threads))
    rates: dict[str, dict[str, list[float]]] = {
        shape: {side: [] for side in SIDES} for shape, _, _ in shapes
    }
    for r in range(rounds):
        for shape, n, runner in shapes:
            order = SIDES[r % len(SIDES) :] + SIDES[: r % len(SIDES)]
            for side in order:
                rate = runner(make_jobs(side, n), seconds)
                rates[shape][side].append(rate)
                print(f"round {r + 1} {shape:12s} {side:20s} {rate:9,.0f} ops/s", file=sys.stderr)
    return rates


def report(
    rates: dict[str, dict[str, list[float]]], args: argparse.Namespace, actor_line: str
) -> str:
    rows = []
    verdicts = []
    for shape, sides in rates.items():
        raw = statistics.median(sides["raw"])
        medians = {side: statistics.median(values) for side, values in sides.items()}
        target = THREAD_TARGET if shape.endswith("threads") else PROCESS_TARGET
        rls = medians["service (rls)"] / raw
        rows.append(
            [
                shape,
                *(f"{medians[side]:,.0f}" for side in SIDES),
                f"{rls:.0%}",
                f"{medians['service (superuser)'] / raw:.0%}",
                f"≥ {target:.0%}: {'met' if rls >= target else '**MISSED**'}",
            ]
        )
        verdicts.append(rls >= target)
    table = markdown_table(
        [
            "shape",
            "raw ops/s",
            "service (rls) ops/s",
            "service (superuser) ops/s",
            "rls vs raw",
            "superuser vs raw",
            "target",
        ],
        rows,
    )
    return f"""Machine: {machine()}.
Command: `uv run python -m bench.bench_processes --users {args.users} --seconds {args.seconds:g}
--rounds {args.rounds}` ({args.rounds} rounds of {args.seconds:g} s per side and shape, sides
alternating, order rotated each round; medians). {actor_line}

`users.get_by_email` for a teammate's address, by one user actor. **raw** = per process one
autocommit psycopg connection as the superuser, `prepare=True`, the statement the service sends
for a user actor (`SELECT_VISIBLE_USER_BY_EMAIL_SQL`, same parameters: same answer, no RLS);
**service (rls)** = per process `open_database()` as `dbops_app` (RLS forced) and
`UserService.get_by_email`, no cache; **service (superuser)** = the same service with RLS
bypassed. Processes start with `spawn`, warm up ({WARMUP_CALLS} calls), and are released
together. The threads row: one process, a raw connection per thread, or one pool of that many
connections shared by the service's threads. Targets (issue 19): service (rls) ≥ 80% of raw
with N processes, ≥ 70% with 8 threads.

{table}

On 2 cores the server and every client share the CPU: a side's rate is the inverse of its CPU
per call, client and server together, so a ratio is how much CPU the layers and the policies add
to a call. Rounds vary by tens of percent on this shared machine.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--teams", type=int, default=None, help="default: users / 5")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--processes", default="1,2,4,8")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--no-docs", action="store_true", help="print only, keep docs as is")
    args = parser.parse_args()
    counts = [int(x) for x in args.processes.split(",")]
    teams = args.teams or max(1, args.users // 5)

    with databases(["bench_processes"]) as urls:
        url = urls["bench_processes"]
        settings = Settings(_env_file=None, database_url=url, process_report_s=0)
        role_urls = setup_cluster(url, settings)
        data = seed_dataset(url, args.users, teams, args.seed)
        inputs = pick_inputs(data, args.seed, None)
        actor_line = (
            f"{args.users:,} users; the actor is in {inputs.teams} teams of "
            f"{', '.join(str(s) for s in inputs.team_sizes)} members "
            f"({len(inputs.emails)} teammates' e-mails)."
        )

        def make_jobs(side: str, n: int) -> list[Job]:
            return [
                Job(
                    side,
                    url,
                    role_urls["app"],
                    inputs.user_id,
                    tuple(inputs.emails),
                    offset=i * 7,
                    pool_size=1,
                )
                for i in range(n)
            ]

        rates = measure(make_jobs, counts, args.threads, args.seconds, args.rounds)
    body = report(rates, args, actor_line)
    publish(body, DOCS, SECTION, write=not args.no_docs)


if __name__ == "__main__":
    main()
