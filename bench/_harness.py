"""Shared plumbing of the benchmarks: throwaway cluster, timing loops, tables, docs sections."""

from __future__ import annotations

import gc
import os
import platform
import re
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from dbops.config import redact_dsn
from dbops.db import EmbeddedCluster

__all__ = [
    "Latency",
    "databases",
    "machine",
    "markdown_table",
    "measure_pair",
    "replace_section",
    "throughput",
]

Call = Callable[[Any], object]


@dataclass(frozen=True)
class Latency:
    """Per-call latency of one operation on one side, in microseconds."""

    n: int
    median_us: float
    p99_us: float

    @classmethod
    def of(cls, samples_ns: Sequence[int]) -> Latency:
        """Median and p99 (nearest rank) of ``samples_ns``."""
        ordered = sorted(samples_ns)
        p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
        return cls(len(ordered), statistics.median(ordered) / 1000, p99 / 1000)


def machine() -> str:
    """One line: cores, CPU model, OS, Python."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} cores{' (' + model + ')' if model else ''}, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}"
    )


@contextmanager
def databases(names: Sequence[str]) -> Iterator[dict[str, str]]:
    """SQLAlchemy URL per name: fresh databases in a throwaway durable cluster, or DATABASE_URL.

    The cluster lives in a new directory under /var/tmp and is destroyed on exit. With
    DATABASE_URL set, every name maps to that one database.
    """
    url = os.environ.get("DATABASE_URL")
    if url:
        print(f"using DATABASE_URL {redact_dsn(url)} (its seeded rows get replaced)")
        yield dict.fromkeys(names, url)
        return
    root = Path(tempfile.mkdtemp(dir="/var/tmp", prefix="dbops-bench-"))
    cluster = EmbeddedCluster(root / "cluster", database="bench", durable=True)
    try:
        cluster.ensure_running()
        with psycopg.connect(cluster.libpq_url("postgres"), autocommit=True) as conn:
            for name in names:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        yield {name: cluster.url(name) for name in names}
    finally:
        cluster.destroy()
        if root.exists():
            root.rmdir()


def _block(fn: Call, inputs: Sequence[Any], start: int, count: int, out: list[int]) -> None:
    clock = time.perf_counter_ns
    n = len(inputs)
    for i in range(start, start + count):
        arg = inputs[i % n]
        t0 = clock()
        fn(arg)
        out.append(clock() - t0)


def measure_pair(
    sides: dict[str, Call],
    inputs: Sequence[Any],
    *,
    calls: int = 3_000,
    rounds: int = 20,
    warmup: int = 300,
) -> dict[str, Latency]:
    """Time every side on the same inputs, alternating sides in rounds to cancel drift.

    Each side first runs ``warmup`` untimed calls. Then, for ``rounds`` rounds, each side runs
    ``calls / rounds`` timed calls on the same slice of ``inputs``; the order of the sides
    rotates every round, so neither always runs first (warmer CPU caches) or last.
    """
    names = list(sides)
    for name in names:
        _block(sides[name], inputs, 0, warmup, [])
    per_round = -(-calls // rounds)
    samples: dict[str, list[int]] = {name: [] for name in names}
    gc.collect()
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            _block(sides[name], inputs, warmup + r * per_round, per_round, samples[name])
    return {name: Latency.of(samples[name]) for name in names}


def throughput(
    make_worker: Callable[[int], Callable[[int], object]], threads: int, seconds: float
) -> tuple[float, int]:
    """Calls per second of ``threads`` threads calling their worker for ``seconds``.

    ``make_worker(thread_index)`` is called in the main thread and returns the function a thread
    calls with an increasing counter (so it can pick its input). All threads start together.
    Returns (calls per second, errors).
    """
    workers = [make_worker(i) for i in range(threads)]
    counts = [0] * threads
    errors = [0] * threads
    start = threading.Barrier(threads + 1)
    stop = threading.Event()

    def run(i: int) -> None:
        work = workers[i]
        n = 0
        start.wait()
        while not stop.is_set():
            try:
                work(n)
            except Exception:
                errors[i] += 1
            n += 1
        counts[i] = n

    pool = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(threads)]
    for t in pool:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - t0
    return sum(counts) / elapsed, sum(errors)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub markdown table (first column left-aligned, the others right-aligned)."""
    aligns = [":--"] + ["--:"] * (len(header) - 1)
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(aligns) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def replace_section(path: Path, heading: str, body: str) -> None:
    """Put ``## heading`` + ``body`` into ``path``, replacing only that section if present.

    A section runs from its ``## `` heading to the next ``## `` heading (or the end); other
    sections are left byte for byte. The file is created with a title when missing.
    """
    title = f"## {heading}"
    section = f"{title}\n\n{body.strip()}\n"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^{re.escape(title)}[ \t]*\n.*?(?=^## |\Z)", re.DOTALL | re.MULTILINE)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1).rstrip("\n") + "\n"
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


def publish(body: str, path: Path, heading: str, *, write: bool) -> None:
    """Print a benchmark's report and, when ``write``, put it in ``path`` as ``## heading``."""
    print(body)
    if write:
        replace_section(path, heading, body)
        print(f"wrote section {heading!r} of {path}", file=sys.stderr)


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
