"""How long the read-only CLI commands take, against a bare psycopg query, on the demo.

    uv run python -m bench.bench_cli [--runs 5] [--keep DIR]

Sets a demo up the way a newcomer does (``dbops up`` in an empty directory: the embedded
cluster, migrations, dbops' roles and the demo data under ``DIR/.dbops``), then runs each
command ``--runs`` times from that directory as a user would (the ``dbops`` console script, a
fresh process each time, output to /dev/null) and the baseline: a fresh ``python -c`` that imports
psycopg, connects to the same cluster and runs one query. Commands alternate with the
baseline in rounds. Prints the medians and the ratio to the baseline, and writes the section
"CLI read latency" of docs/benchmarks.md (unless ``--no-docs``). Target (issue 19): each
read-only command within 3x the baseline.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench._harness import machine, markdown_table, publish

DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
SECTION = "CLI read latency"
TARGET = 3.0
COMMANDS: dict[str, list[str]] = {
    "dbops status": ["status"],
    "dbops monitor checks": ["monitor", "checks"],
    "dbops monitor snapshot": ["monitor", "snapshot"],
    "dbops backup list": ["backup", "list"],
    "dbops audit verify": ["audit", "verify"],
}
#: The baseline: what any Python client pays to ask the server one thing.
BARE = """
import sys, psycopg
with psycopg.connect(sys.argv[1]) as conn:
    conn.execute("SELECT count(*) FROM pg_stat_activity").fetchone()
"""


def _run(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(
        argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False
    )
    elapsed = time.perf_counter() - started
    if done.returncode not in (0, 4):  # 4: `monitor checks` found something critical
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.decode()}")
    return elapsed


def _libpq_url(cwd: Path, env: dict[str, str]) -> str:
    code = (
        "from dbops.config import load_settings, to_libpq_url\n"
        "from dbops.db.purpose import dsn_for\n"
        "print(dsn_for(load_settings(), 'admin').libpq)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, check=True
    )
    return out.stdout.decode().strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--keep", type=Path, default=None, help="demo directory to (re)use")
    parser.add_argument("--no-docs", action="store_true", help="print only, keep docs as is")
    parser.add_argument(
        "--no-bytecode",
        action="store_true",
        help="keep PYTHONDONTWRITEBYTECODE as the environment has it (every process compiles "
        "every module it imports from source)",
    )
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DBOPS_", "DATABASE_URL"))}
    where = args.keep or Path(tempfile.mkdtemp(dir="/var/tmp", prefix="dbops-cli-"))
    where.mkdir(parents=True, exist_ok=True)
    if not args.no_bytecode:
        # As on a user's machine: modules compiled once, then loaded from their bytecode. This
        # machine sets PYTHONDONTWRITEBYTECODE, so each process would compile every module it
        # imports, the command's and the baseline's. The caches go beside the demo, not into
        # the source tree or the virtualenv.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(where / "pycache")
    dbops = [str(Path(sys.executable).with_name("dbops"))]  # the console script a user runs
    try:
        print(f"setting the demo up in {where} ...", file=sys.stderr, flush=True)
        subprocess.run([*dbops, "up"], cwd=where, env=env, check=True, stdout=subprocess.DEVNULL)
        subprocess.run(
            [*dbops, "backup", "create"], cwd=where, env=env, check=True, stdout=subprocess.DEVNULL
        )
        url = _libpq_url(where, env)
        sides = {"bare psycopg query": [sys.executable, "-c", BARE, url]}
        sides.update({name: [*dbops, *argv] for name, argv in COMMANDS.items()})
        for argv in sides.values():  # warm: page cache, pyc files
            _run(argv, where, env)
        times: dict[str, list[float]] = {name: [] for name in sides}
        for r in range(args.runs):
            names = list(sides)
            order = names[r % len(names) :] + names[: r % len(names)]
            for name in order:
                times[name].append(_run(sides[name], where, env))
    finally:
        if args.keep is None:
            subprocess.run([*dbops, "db", "stop"], cwd=where, env=env, check=False)
            shutil.rmtree(where, ignore_errors=True)
    base = statistics.median(times["bare psycopg query"])
    rows = []
    for name, values in times.items():
        median = statistics.median(values)
        ratio = median / base
        verdict = "" if name.startswith("bare") else ("met" if ratio <= TARGET else "**MISSED**")
        rows.append([name, f"{median * 1000:.0f} ms", f"{ratio:.1f}x", verdict])
    table = markdown_table(["command", "median", "vs bare query", f"≤ {TARGET:g}x"], rows)
    bytecode = (
        "Every process compiles the modules it imports "
        "(`PYTHONDONTWRITEBYTECODE`, `--no-bytecode`)."
        if args.no_bytecode
        else "Bytecode caches on, as on a user's machine (`PYTHONPYCACHEPREFIX` beside the demo; "
        "this machine sets `PYTHONDONTWRITEBYTECODE`, which makes every process compile every "
        "module it imports: `--no-bytecode` measures that)."
    )
    flag = " --no-bytecode" if args.no_bytecode else ""
    body = f"""Machine: {machine()}.
Command: `uv run python -m bench.bench_cli --runs {args.runs}{flag}` (a demo set up by
`dbops up` in an empty directory, plus one `dbops backup create`; each command a fresh
process from that directory, output discarded, {args.runs} rounds alternating with the
baseline; medians). Baseline: a fresh `python -c` that imports psycopg, connects to the
same cluster and runs one query. {bytecode}

{table}
"""
    publish(body, DOCS, SECTION, write=not args.no_docs)


if __name__ == "__main__":
    main()
