"""What the statement metrics recorder costs one service call (dbops/telemetry/metrics.py).

``uv run python -m bench.bench_metrics [--calls 200000] [--rounds 7]``

No database: times a trivial function bare, the same function under ``timed()`` (two
``perf_counter_ns`` reads, a bisect, a locked increment), and ``StatementSeries.observe``
alone, in interleaved rounds; prints the medians in ns per call and ``timed - bare``, the
cost every instrumented service call pays. The target is under 2 µs.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from dbops.telemetry.metrics import StatementMetrics, timed


def _per_call_ns(fn: Callable[[int], object], calls: int) -> float:
    started = time.perf_counter_ns()
    for i in range(calls):
        fn(i)
    return (time.perf_counter_ns() - started) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()

    metrics = StatementMetrics()
    series = metrics.series("bench.observe")

    def bare(x: int) -> int:
        return x

    wrapped = timed("bench.timed", metrics=metrics)(bare)
    sides: dict[str, Callable[[int], object]] = {
        "bare call": bare,
        "timed() call": wrapped,
        "observe() alone": series.observe,
    }
    results: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(args.rounds):
        for name, fn in sides.items():
            results[name].append(_per_call_ns(fn, args.calls))
    medians = {name: statistics.median(v) for name, v in results.items()}
    for name, value in medians.items():
        print(f"{name:>16}: {value:7.1f} ns/call (median of {args.rounds} x {args.calls:,})")
    overhead = medians["timed() call"] - medians["bare call"]
    print(f"{'recorder cost':>16}: {overhead:7.1f} ns/call (timed - bare; target < 2000)")


if __name__ == "__main__":
    main()
