"""Time pgBackRest base backups and restore-to-time against pg_basebackup on a seeded cluster.

    uv run python -m bench.bench_pitr --users 100000 --rounds 3

Starts a throwaway durable embedded cluster under /var/tmp, migrates and seeds it, sets up
point-in-time recovery (``dbops.ops.pitr.setup``), then alternates in rounds:

* baseline backup: ``pg_basebackup -Fp -X stream -c fast`` (plain copy, no compression);
* ``pitr.base_backup`` full, then incremental after a small change;
* baseline restore: copy the pg_basebackup directory and start it on a free port (no WAL
  replay beyond the backup, no point in time);
* ``pitr.restore_to``: restore to a noted time into a new directory, replay, promote, start.

Everything it started is stopped and deleted at the end. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import statistics
import subprocess
import tempfile
import time
from datetime import datetime
from pathlib import Path

import psycopg

from bench._harness import machine, markdown_table
from dbops.config import Settings
from dbops.db import EmbeddedCluster, find_binaries, open_database
from dbops.ops import pitr
from dbops.ops.migrate import upgrade
from dbops.ops.seed import seed


def _as_server(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


def _server_dir(path: Path) -> Path:
    path.mkdir(parents=True, mode=0o700)
    if os.geteuid() == 0:
        entry = pwd.getpwnam("postgres")
        os.chown(path, entry.pw_uid, entry.pw_gid)
    return path


def _du(path: Path) -> int:
    out = subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0])


def _pg_basebackup(cluster: EmbeddedCluster, into: Path) -> float:
    tool = find_binaries().tool("pg_basebackup")
    argv = [tool, "-D", str(into), "-Fp", "-X", "stream", "-c", "fast", "-U", "postgres"]
    argv += ["-h", str(cluster.socket_dir), "-p", str(cluster.port)]
    started = time.perf_counter()
    subprocess.run(_as_server(argv), check=True, capture_output=True, cwd="/")
    return time.perf_counter() - started


def _start_plain_copy(backup: Path, home: Path) -> float:
    """Baseline restore: copy a plain pg_basebackup and start it as a cluster of its own."""
    started = time.perf_counter()
    copy = EmbeddedCluster(home)
    copy.prepare_restore(port=0, password=None)
    subprocess.run(_as_server(["cp", "-a", f"{backup}/.", str(copy.datadir)]), check=True, cwd="/")
    # The live cluster's archive settings came along: this copy must not archive into its repo.
    with (copy.datadir / "postgresql.auto.conf").open("a") as fh:
        fh.write("archive_mode = 'off'\n")
    # prepare_restore wants a port; 0 makes the first start pick a free one.
    copy.start_restored(timeout=600)
    seconds = time.perf_counter() - started
    copy.destroy()
    return seconds


class _Steps:
    """Progress callback of ``restore_to`` that times its steps."""

    NAMES = ("archive the live WAL", "pgbackrest restore", "start, replay, promote")

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.marks: list[float] = []

    def __call__(self, _message: str) -> None:
        self.marks.append(time.perf_counter() - self.start)

    def split(self, total: float) -> list[tuple[str, float]]:
        """Seconds per step (the marks are the start of each step)."""
        ends = [*self.marks[1:], total]
        return [(n, e - s) for n, s, e in zip(self.NAMES, self.marks, ends, strict=False)]


def _note_time(cluster: EmbeddedCluster) -> datetime:
    with psycopg.connect(cluster.libpq_url(), autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS bench_pitr (id serial, at timestamptz)")
        conn.execute("INSERT INTO bench_pitr (at) SELECT now() FROM generate_series(1, 1000)")
        row = conn.execute("SELECT now()").fetchone()
        time.sleep(0.2)
        conn.execute(
            "UPDATE users SET updated_at = now() WHERE id IN (SELECT id FROM users LIMIT 1000)"
        )
    assert row is not None
    return row[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="dbops-bench-pitr-", dir="/var/tmp"))
    work.chmod(0o755)
    home = work / "live"
    settings = Settings(_env_file=None, database_url=None, home=home)
    cluster = EmbeddedCluster(home, database=settings.embedded_database)
    results: dict[str, list[float]] = {}
    sizes: dict[str, int] = {}
    try:
        cluster.ensure_running()
        upgrade(cluster.url(), settings, "head")
        db = open_database(settings, cluster.url())
        started = time.perf_counter()
        seed(db, users=args.users, teams=max(1, args.users // 10), seed=42)
        db.close()
        print(f"seeded {args.users:,} users in {time.perf_counter() - started:.1f} s")
        with psycopg.connect(cluster.libpq_url()) as conn:
            row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
        sizes["database"] = int(row[0]) if row else 0
        pitr.setup(settings)
        scratch = _server_dir(cluster.datadir.parent / "bench")
        for n in range(args.rounds):
            plain = scratch / f"basebackup-{n}"
            results.setdefault("pg_basebackup -Fp (baseline)", []).append(
                _pg_basebackup(cluster, plain)
            )
            sizes["pg_basebackup -Fp (baseline)"] = _du(plain)
            full = pitr.base_backup(settings)
            results.setdefault(f"pgBackRest full ({settings.pitr_compress_type})", []).append(
                full.seconds
            )
            sizes[f"pgBackRest full ({settings.pitr_compress_type})"] = full.backup.repo_size_bytes
            time.sleep(1.1)  # a target must lie after the recorded (second) end of the backup
            noted = _note_time(cluster)
            incr = pitr.base_backup(settings, incremental=True)
            results.setdefault("pgBackRest incremental", []).append(incr.seconds)
            sizes["pgBackRest incremental"] = incr.backup.repo_size_bytes
            results.setdefault("start a copy of pg_basebackup (baseline)", []).append(
                _start_plain_copy(plain, work / f"plain-{n}")
            )
            shutil.rmtree(plain, ignore_errors=True)
            # Restore to before the incremental: the full backup plus WAL replay.
            steps = _Steps()
            restored = pitr.restore_to(settings, noted, work / f"copy-{n}", progress=steps)
            results.setdefault("pgBackRest restore-to-time + start", []).append(restored.seconds)
            for name, seconds in steps.split(restored.seconds):
                results.setdefault(f"  of which: {name}", []).append(seconds)
            EmbeddedCluster(restored.home).destroy()
            print(f"round {n + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in results.items()))
    finally:
        for path in sorted(work.glob("*-*")):
            EmbeddedCluster(path).destroy()
        cluster.destroy()
        shutil.rmtree(work, ignore_errors=True)

    base = statistics.median(results["pg_basebackup -Fp (baseline)"])
    base_restore = statistics.median(results["start a copy of pg_basebackup (baseline)"])
    rows = []
    for name, values in results.items():
        ref = base_restore if "start" in name or "of which" in name else base
        size = sizes.get(name)
        rows.append(
            [
                name,
                f"{statistics.median(values):.2f} s",
                f"{min(values):.2f} s",
                f"{statistics.median(values) / ref:.2f}x",
                f"{size / 1e6:.0f} MB" if size else "-",
            ]
        )
    print(f"\n{machine()}; database {sizes['database'] / 1e6:.0f} MB, {args.rounds} rounds\n")
    print(markdown_table(["operation", "median", "min", "vs baseline", "stored"], rows))


if __name__ == "__main__":
    main()
