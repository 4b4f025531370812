"""What ``dbops.ops.maintenance.run`` adds to a plain VACUUM: connection, timeouts, facts, progress.

``uv run python -m bench.bench_maintain [--rows 300000 --rounds 5]``

A throwaway embedded cluster; each round makes ``rows / 2`` dead rows in a table (autovacuum
off) and vacuums it twice: once with ``VACUUM`` on an open autocommit connection (baseline),
once through ``run(..., apply=True, progress=...)`` (its own connection, ``SET`` timeouts,
before/after facts, a second connection polling ``pg_stat_progress_vacuum`` every 0.2 s). The
order alternates between rounds. Prints medians and the ratio.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg

from dbops.db import EmbeddedCluster
from dbops.ops.maintenance import Action, ActionKind, Outcome, ProgressEvent, run

VACUUM = Action(ActionKind.VACUUM, "public", "churn", "bench")


def _make_dead(conn: psycopg.Connection[Any], rows: int) -> None:
    conn.execute("TRUNCATE churn")
    conn.execute(
        "INSERT INTO churn SELECT g, repeat('x', 60) FROM generate_series(1, %s) g", [rows]
    )
    conn.execute("DELETE FROM churn WHERE id % 2 = 0")
    conn.execute("SELECT pg_stat_force_next_flush()")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cluster = EmbeddedCluster(Path(tmp) / "c", database="bench", durable=False)
        url = cluster.ensure_running()
        try:
            times: dict[str, list[float]] = {"VACUUM": [], "run()": []}
            events = 0
            with psycopg.connect(cluster.libpq_url(), autocommit=True) as conn:
                conn.execute(
                    "CREATE TABLE churn (id int PRIMARY KEY, note text) "
                    "WITH (autovacuum_enabled = off)"
                )
                for number in range(args.rounds):
                    sides = ["VACUUM", "run()"] if number % 2 == 0 else ["run()", "VACUUM"]
                    for side in sides:
                        _make_dead(conn, args.rows)
                        started = time.perf_counter()
                        if side == "VACUUM":
                            conn.execute("VACUUM public.churn")
                        else:
                            seen: list[ProgressEvent] = []
                            report = run(
                                url,
                                [VACUUM],
                                apply=True,
                                lock_timeout_ms=3_000,
                                statement_timeout_ms=600_000,
                                progress=seen.append,
                            )
                            assert report.results[0].outcome is Outcome.APPLIED
                            events += len(seen)
                        times[side].append(time.perf_counter() - started)
            base = statistics.median(times["VACUUM"])
            ours = statistics.median(times["run()"])
            print(f"rows {args.rows:,} ({args.rows // 2:,} dead), rounds {args.rounds}")
            print(
                f"VACUUM median {base * 1000:.0f} ms  {[round(t * 1000) for t in times['VACUUM']]}"
            )
            print(
                f"run()  median {ours * 1000:.0f} ms  {[round(t * 1000) for t in times['run()']]}"
            )
            print(f"ratio run()/VACUUM {ours / base:.2f}; progress events {events}")
        finally:
            cluster.destroy()


if __name__ == "__main__":
    main()
