"""dbops exporter vs Debian's prometheus-postgres-exporter: scrape time, series, coverage.

    uv run python -m bench.bench_exporter [--scrapes 40] [--statements 5000]

One throwaway cluster (or DATABASE_URL): migrate, seed a little data, run ``--statements``
distinct statements so pg_stat_statements is full, then scrape both exporters ``--scrapes``
times each on the same database, alternating (dbops with the scrape cache off, so every scrape
collects; its slow collectors refresh in the background every ``exporter_slow_interval_s``,
timed apart). Prints median/p95 scrape time, series and family counts, and a coverage table.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from bench._harness import databases, free_port, machine, markdown_table
from dbops.config import Settings, to_libpq_url
from dbops.db import Database, open_database
from dbops.exporter import make_server
from dbops.monitoring.cadence import SLOW_COLLECTORS
from dbops.monitoring.collect import COLLECTORS, collect_snapshot
from dbops.ops.migrate import upgrade
from dbops.ops.seed import seed

#: What each side exposes, by topic, as the Debian packages run by default (checked by hand
#: against both scrapes: main() prints the family names of each).
COVERAGE = [
    (
        "server up / scrape time",
        "dbops_up, dbops_scrape_duration_seconds",
        "pg_up, pg_exporter_last_scrape_duration_seconds",
    ),
    (
        "per-index scans, size, validity, redundancy, bloat",
        "yes (dbops_index_*)",
        "no (only through a custom queries.yaml)",
    ),
    (
        "per-statement calls/time/rows (top N, queryid)",
        "yes (dbops_statement_*, query text in dbops_statement_info)",
        "no (pg_stat_statements collector off by default)",
    ),
    (
        "table rows, scans, vacuum/analyze times",
        "yes",
        "no by default (Debian runs it without --extend.query-path)",
    ),
    ("table/index/TOAST sizes", "yes", "no"),
    (
        "database size, xacts, deadlocks, temp, blocks",
        "yes",
        "yes (pg_stat_database_*, pg_database_size_bytes)",
    ),
    ("cache hit ratio", "yes (computed)", "no (compute from blks_hit/read)"),
    ("xid / multixact wraparound age", "yes", "no"),
    (
        "connections by state vs max_connections",
        "yes",
        "yes (pg_stat_activity_count, pg_settings_max_connections)",
    ),
    (
        "blocked sessions, longest query, idle in transaction",
        "yes",
        "partly (pg_stat_activity_max_tx_duration)",
    ),
    ("locks by mode", "no", "yes (pg_locks_count)"),
    ("replication lag / slots", "yes", "pg_stat_replication rows when standbys exist (none here)"),
    ("checkpoints / bgwriter", "checkpoints only", "yes (pg_stat_bgwriter_*)"),
    ("all pg_settings as gauges", "no (key settings in the snapshot only)", "yes (pg_settings_*)"),
    ("sequences near their maximum", "yes", "no"),
    ("app pool and query cache", "yes (dbops_pool_*, dbops_cache_*)", "no"),
    ("application data (users, teams, zero-owner teams)", "yes (dbops_data_*)", "no"),
    ("health-check status with fix hints", "yes (dbops_check_status)", "no"),
    (
        "collector errors as a counter",
        "yes (dbops_collector_errors_total)",
        "partly (pg_exporter_last_scrape_error gauge)",
    ),
    ("Go runtime / process metrics", "no", "yes (go_*, process_*)"),
]


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as resp:
        return str(resp.read().decode())


def _series(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def _families(text: str) -> set[str]:
    return {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}


@contextmanager
def _postgres_exporter(libpq: str) -> Iterator[str]:
    binary = shutil.which("prometheus-postgres-exporter")
    if binary is None:
        raise SystemExit("prometheus-postgres-exporter missing: run scripts/bootstrap.sh")
    parts = conninfo_to_dict(libpq)
    parts["sslmode"] = "disable"
    port = free_port()
    env = {**os.environ, "DATA_SOURCE_NAME": make_conninfo(**parts)}  # type: ignore[arg-type]
    proc = subprocess.Popen(
        [binary, f"--web.listen-address=127.0.0.1:{port}"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                if "pg_up 1" in _get(url):
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit("prometheus-postgres-exporter did not come up (pg_up != 1)")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _fill_statements(libpq: str, count: int) -> int:
    """Run ``count`` structurally distinct statements (constants alone do not change queryid).

    Statement ``i`` selects ``i % 100 + 1`` columns and filters on an IN list of
    ``i // 100 + 1`` items: every pair gives its own queryid.
    """
    with psycopg.connect(libpq, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        for i in range(count):
            columns = ", ".join(["1"] * (i % 100 + 1))
            in_list = ", ".join(["1"] * (i // 100 + 1))
            conn.execute(f"SELECT {columns} WHERE 1 IN ({in_list})")  # bench only, no input
        row = conn.execute("SELECT count(*) FROM pg_stat_statements").fetchone()
    return int(row[0]) if row else 0


def _summary(times: list[float]) -> tuple[str, str]:
    ordered = sorted(times)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    return f"{statistics.median(ordered):.1f}", f"{p95:.1f}"


def _alternate(urls: dict[str, str], n: int) -> dict[str, tuple[list[float], str]]:
    """``n`` scrapes of each URL, alternating (so drift on a shared machine hits both alike)."""
    for url in urls.values():
        _get(url)  # warm-up (connections, caches, the first whole snapshot)
    times: dict[str, list[float]] = {name: [] for name in urls}
    texts = dict.fromkeys(urls, "")
    for i in range(n):
        order = list(urls) if i % 2 == 0 else list(reversed(urls))
        for name in order:
            start = time.perf_counter()
            texts[name] = _get(urls[name])
            times[name].append((time.perf_counter() - start) * 1000)
    return {name: (times[name], texts[name]) for name in urls}


def _slow_refresh_ms(db: Database, settings: Settings, n: int = 5) -> float:
    """Median time of what the exporter refreshes in the background (``SLOW_COLLECTORS``)."""
    fast = tuple(name for name in COLLECTORS if name not in SLOW_COLLECTORS)
    times = []
    for _ in range(n):
        start = time.perf_counter()
        collect_snapshot(db, settings, skip=fast)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scrapes", type=int, default=40)
    parser.add_argument("--statements", type=int, default=5_000)
    parser.add_argument("--users", type=int, default=2_000)
    args = parser.parse_args()
    print(machine())
    dbops_name, pge_name = "dbops exporter", "prometheus-postgres-exporter 0.11 (Debian)"
    with databases(["bench_exporter"]) as urls:
        url = urls["bench_exporter"]
        settings = Settings(database_url=url, exporter_min_interval_s=0.0)
        upgrade(url, settings, "head")
        libpq = to_libpq_url(url)
        with open_database(settings, url) as db:
            seed(db, users=args.users, teams=args.users // 10)
            entries = _fill_statements(libpq, args.statements)
            print(f"pg_stat_statements entries: {entries}")
            with (
                make_server(settings, port=0, db=db).start() as server,
                _postgres_exporter(libpq) as pge_url,
            ):
                results = _alternate(
                    {dbops_name: f"{server.url}/metrics", pge_name: pge_url}, args.scrapes
                )
            slow_ms = _slow_refresh_ms(db, settings)
    rows = []
    medians = {}
    for name, (times, text) in results.items():
        median, p95 = _summary(times)
        medians[name] = statistics.median(times)
        rows.append([name, median, p95, len(_series(text)), len(_families(text))])
    print()
    print(markdown_table(["exporter", "median ms", "p95 ms", "series", "families"], rows))
    print()
    ratio = medians[dbops_name] / medians[pge_name]
    print(
        f"dbops / postgres_exporter (median scrape): {ratio:.2f}x; "
        f"the background refresh of the slow collectors ({', '.join(SLOW_COLLECTORS)}), every "
        f"{settings.exporter_slow_interval_s:g} s: {slow_ms:.1f} ms median"
    )
    print()
    pge_text = results[pge_name][1]
    dbops_text = results[dbops_name][1]
    pge = _families(pge_text)
    prefixes = sorted({"_".join(name.split("_")[:2]) for name in pge})
    print(f"postgres_exporter family prefixes: {', '.join(prefixes)}")
    print(f"dbops families: {', '.join(sorted(_families(dbops_text)))}")
    print()
    print(markdown_table(["topic", "dbops", "postgres_exporter"], COVERAGE))


if __name__ == "__main__":
    main()
