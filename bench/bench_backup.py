"""Backup, restore and verify through dbops vs plain pg_dump/pg_restore with the same options.

    uv run python -m bench.bench_backup                   # 1M users / 100k teams
    uv run python -m bench.bench_backup --users 100000    # smaller
    uv run python -m bench.bench_backup --users 100000 --write-docs

Seeds a throwaway durable embedded cluster under /var/tmp (or DATABASE_URL), then for the custom
format and the directory format with ``-j 2``: times ``create_backup`` against plain ``pg_dump``
with the same format options, and ``restore_backup`` into a new database against plain
``createdb`` + ``pg_restore`` with the same options, alternating which side runs first each
round; then times ``verify_backup`` (restore drill) on a scratch database of the same server and
in a private scratch cluster. Prints medians and the overhead ratio (dbops / plain).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
from psycopg import sql

from bench._harness import databases, machine, markdown_table, replace_section
from dbops.config import Settings
from dbops.db import Dsn, open_database
from dbops.ops.backup import (
    Manifest,
    client_env,
    create_backup,
    pg_tool,
    restore_backup,
    verify_backup,
)
from dbops.ops.backup.restore import with_database
from dbops.ops.migrate import upgrade
from dbops.ops.seed import seed

DOCS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
SIZE_SQL = "SELECT pg_database_size(current_database()), current_setting('server_version')"
HEADING = "Backups: dbops vs plain pg_dump/pg_restore (issue 9)"


def _options(fmt: str, jobs: int) -> list[str]:
    return [f"--format={fmt}", *([f"--jobs={jobs}"] if fmt == "directory" else [])]


def _plain_dump(dsn: Dsn, fmt: str, jobs: int, out: Path) -> None:
    conninfo, env = client_env(dsn)
    argv = [pg_tool("pg_dump"), "--verbose", f"--dbname={conninfo}", f"--file={out}"]
    subprocess.run(argv + _options(fmt, jobs), env=env, check=True, capture_output=True)


def _plain_restore(dsn: Dsn, dump: Path, jobs: int, name: str) -> None:
    with psycopg.connect(with_database(dsn, "postgres").libpq, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    conninfo, env = client_env(with_database(dsn, name))
    argv = [pg_tool("pg_restore"), "--verbose", "--exit-on-error", f"--dbname={conninfo}"]
    argv += [f"--jobs={jobs}", str(dump)]
    subprocess.run(argv, env=env, check=True, capture_output=True)


def _drop(dsn: Dsn, name: str) -> None:
    with psycopg.connect(with_database(dsn, "postgres").libpq, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def _timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _bench_format(
    settings: Settings, dsn: Dsn, work: Path, fmt: str, jobs: int, rounds: int
) -> list[object]:
    """Dump, restore and verify one format; one row of the results table."""
    label = fmt + (f" -j {jobs}" if fmt == "directory" else "")
    dump_jobs = jobs if fmt == "directory" else 1
    plain_out = work / f"plain-{fmt}"
    dump_s: dict[str, list[float]] = {"dbops": [], "plain": []}
    manifest: Manifest | None = None
    for r in range(rounds):
        for side in ("plain", "dbops") if r % 2 == 0 else ("dbops", "plain"):
            if side == "plain":
                shutil.rmtree(plain_out, ignore_errors=True)
                plain_out.unlink(missing_ok=True)
                t0 = time.perf_counter()
                _plain_dump(dsn, fmt, dump_jobs, plain_out)
            else:
                t0 = time.perf_counter()
                manifest = create_backup(
                    settings,
                    dsn,
                    backup_format="directory" if fmt == "directory" else "custom",
                    jobs=dump_jobs,
                )
            dump_s[side].append(time.perf_counter() - t0)
    assert manifest is not None
    dump = work / "backups" / manifest.id / manifest.dump_path
    restore_s: dict[str, list[float]] = {"dbops": [], "plain": []}
    for r in range(rounds):
        for side in ("plain", "dbops") if r % 2 == 0 else ("dbops", "plain"):
            t0 = time.perf_counter()
            if side == "plain":
                _plain_restore(dsn, dump, jobs, "bench_plain")
            else:
                restore_backup(settings, manifest.id, with_database(dsn, "bench_dbops"), jobs=jobs)
            restore_s[side].append(time.perf_counter() - t0)
        _drop(dsn, "bench_plain")
        _drop(dsn, "bench_dbops")
    t0 = time.perf_counter()
    verify_backup(settings, manifest.id, scratch=dsn)
    verify_here = time.perf_counter() - t0
    t0 = time.perf_counter()
    verify_backup(settings, manifest.id)
    verify_private = time.perf_counter() - t0
    md = {k: statistics.median(v) for k, v in dump_s.items()}
    mr = {k: statistics.median(v) for k, v in restore_s.items()}
    mib = _size(dump) / 2**20
    print(
        f"\n{label}: {mib:,.0f} MiB\n"
        f"  backup  dbops {md['dbops']:6.1f} s  pg_dump    {md['plain']:6.1f} s  "
        f"x{md['dbops'] / md['plain']:.2f}\n"
        f"  restore dbops {mr['dbops']:6.1f} s  pg_restore {mr['plain']:6.1f} s  "
        f"x{mr['dbops'] / mr['plain']:.2f}  (-j {jobs}, into a new database)\n"
        f"  verify  scratch db {verify_here:6.1f} s, private cluster {verify_private:6.1f} s"
    )
    return [
        label,
        f"{mib:,.0f}",
        f"{md['plain']:.1f}",
        f"{md['dbops']:.1f}",
        f"{md['dbops'] / md['plain']:.2f}",
        f"{mr['plain']:.1f}",
        f"{mr['dbops']:.1f}",
        f"{mr['dbops'] / mr['plain']:.2f}",
        f"{verify_here:.1f}",
        f"{verify_private:.1f}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--teams", type=int, default=None, help="default: users / 10")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per side (median)")
    parser.add_argument("--write-docs", action="store_true", help=f"update {DOCS.name}")
    args = parser.parse_args()
    teams = args.teams if args.teams is not None else max(1, args.users // 10)

    work = Path(tempfile.mkdtemp(dir="/var/tmp", prefix="dbops-bench-backup-"))
    rows: list[list[object]] = []
    try:
        with databases(["bench_backup"]) as urls:
            url = urls["bench_backup"]
            dsn = Dsn.parse(url)
            settings = Settings(
                _env_file=None,
                database_url=url,
                backup_dir=work / "backups",
                backup_jobs=args.jobs,
            )
            upgrade(url, settings, "head")
            started = time.perf_counter()
            with open_database(settings, url) as db:
                seed(db, users=args.users, teams=teams, seed=42)
                with db.connection() as conn:
                    row = conn.execute(SIZE_SQL).fetchone()
            assert row is not None
            db_bytes, version = int(row[0]), str(row[1])
            seeded = time.perf_counter() - started
            print(f"seeded {args.users:,} users / {teams:,} teams in {seeded:.1f} s")
            print(f"database {db_bytes / 2**20:,.0f} MiB, PostgreSQL {version}; {machine()}")
            for fmt in ("custom", "directory"):
                rows.append(_bench_format(settings, dsn, work, fmt, args.jobs, args.rounds))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    table = markdown_table(
        [
            "format",
            "dump MiB",
            "pg_dump s",
            "dbops create s",
            "ratio",
            "pg_restore s",
            "dbops restore s",
            "ratio",
            "verify (scratch db) s",
            "verify (private cluster) s",
        ],
        rows,
    )
    print("\n" + table)
    if args.write_docs:
        command = "uv run python -m bench.bench_backup" + (
            f" --users {args.users}" if args.users != 1_000_000 else ""
        )
        body = f"""`{command}` — {args.users:,} users / {teams:,} teams ({db_bytes / 2**20:,.0f} MiB
database, PostgreSQL {version}), {machine()}; medians of {args.rounds} rounds, the two sides
alternating which runs first. Baseline: plain `pg_dump` / `createdb` + `pg_restore` with the same
options in the same run (`--verbose`, the format, `-j {args.jobs}` for the directory dump and for
every restore into a new database).

{table}

- **What dbops adds to a backup:** a REPEATABLE READ transaction that exports its snapshot and
  counts every table exactly (`count(*)`, in the snapshot pg_dump then dumps), and a sha256 of
  every file. **To a restore:** the sha256 check before anything is touched, and the exact row
  counts of the restored database compared with the manifest.
- **verify** is a whole restore drill: checksums, restore (`-j {args.jobs}`), revision, row counts,
  and the services' hot reads on a restored user and team. The private-cluster column includes
  `initdb` and start/stop of a throwaway cluster.
- The machine is shared with other jobs (2 cores): absolute seconds vary between runs; the
  ratios are from the same run.
"""
        replace_section(DOCS, HEADING, body)
        print(f"wrote {DOCS}")


if __name__ == "__main__":
    main()
