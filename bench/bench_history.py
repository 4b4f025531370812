"""Query history capture time with 5,000 distinct statements in pg_stat_statements.

    uv run python -m bench.bench_history [--statements 5000] [--rounds 5]

Starts a throwaway embedded cluster unless DATABASE_URL is set, migrates it to head (schema
``dbops_monitor``), runs ``--statements`` distinct statements, then times ``capture`` in four
cases: the first capture (baseline only), the next one after every statement ran again (5,000
samples, and their 5,000 texts read and stored for the first time), a busy one (the same, texts
already stored; median of ``--rounds``) and an idle one (no statement ran again; median of
``--rounds``).
Prints only; docs/benchmarks.md is not touched.
"""

from __future__ import annotations

import argparse
import statistics
import time

from bench._harness import databases, machine
from bench.bench_snapshot import _fill
from dbops.config import Settings
from dbops.db import Database, open_database
from dbops.monitoring.history import capture
from dbops.monitoring.snapshot import CaptureResult
from dbops.ops.migrate import upgrade


def _timed(db: Database, settings: Settings) -> tuple[float, CaptureResult]:
    t0 = time.perf_counter()
    result = capture(db, settings)
    return (time.perf_counter() - t0) * 1000, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--statements", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with databases(["bench_history"]) as urls:
        url = urls["bench_history"]
        settings = Settings(_env_file=None, database_url=url)
        upgrade(url, settings)
        entries = _fill(url, args.statements)
        with open_database(settings, url) as db:
            first_ms, first = _timed(db, settings)
            _fill(url, args.statements)
            new_ms, new = _timed(db, settings)
            busy: list[float] = []
            idle: list[float] = []
            busy_result = idle_result = new
            for _ in range(args.rounds):
                _fill(url, args.statements)
                ms, busy_result = _timed(db, settings)
                busy.append(ms)
                ms, idle_result = _timed(db, settings)
                idle.append(ms)
        print(f"machine: {machine()}")
        print(f"pg_stat_statements entries (cluster): {entries}")
        print(f"first capture (baseline, {first.entries} entries): {first_ms:.1f} ms")
        print(
            f"first samples ({new.samples} samples, {new.new_statements} texts stored): "
            f"{new_ms:.1f} ms"
        )
        print(
            f"busy ({busy_result.samples} samples) over {args.rounds} rounds: median "
            f"{statistics.median(busy):.1f} ms, max {max(busy):.1f} ms"
        )
        print(
            f"idle ({idle_result.samples} samples) over {args.rounds} rounds: median "
            f"{statistics.median(idle):.1f} ms, max {max(idle):.1f} ms"
        )


if __name__ == "__main__":
    main()
