"""What TLS costs the embedded cluster: connection setup and a hot point read, TLS on vs off.

``uv run python -m bench.bench_tls [--connects 600] [--reads 6000]``

Two throwaway clusters started side by side with the same settings but ``embedded_tls``:
one serves TLS (TLSv1.3, EC P-256 certificate, clients on ``sslmode=verify-full``), the other
plain TCP. Sides: ``TCP + TLS`` (verify-full), ``TCP plain`` (the baseline) and ``unix socket``
(what dbops itself uses on the embedded cluster). Times ``psycopg.connect()`` + ``close()``
(the handshake: TCP, TLS, SCRAM, startup) and a prepared primary-key read on an open
connection, alternating sides in rounds (bench._harness.measure_pair). Also times the one-off
certificate generation and the per-start check of existing files.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg

from bench._harness import machine, markdown_table, measure_pair
from dbops.config import to_libpq_url
from dbops.db import EmbeddedCluster
from dbops.db.embedded import ServerOptions
from dbops.db.tls import ensure_server_tls

SETUP_SQL = """
CREATE TABLE IF NOT EXISTS accounts (id int PRIMARY KEY, email text NOT NULL);
INSERT INTO accounts SELECT i, 'user' || i || '@example.com' FROM generate_series(1, 20000) AS i
ON CONFLICT DO NOTHING;
ANALYZE accounts;
"""
READ_SQL = "SELECT id, email FROM accounts WHERE id = %(id)s"
OWN_SSL = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"


def _certificate_times(root: Path) -> tuple[float, float]:
    """Milliseconds to create the CA and server certificate, and to check them again."""
    t0 = time.perf_counter()
    ensure_server_tls(root / "tls-timing")
    created = (time.perf_counter() - t0) * 1000
    t0 = time.perf_counter()
    ensure_server_tls(root / "tls-timing")
    return created, (time.perf_counter() - t0) * 1000


def main() -> None:
    """Run the benchmark and print a markdown section for docs/benchmarks.md."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--connects", type=int, default=600)
    parser.add_argument("--reads", type=int, default=6000)
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(dir="/var/tmp", prefix="dbops-bench-tls-"))
    with_tls = EmbeddedCluster(root / "tls", database="bench", durable=False)
    plain = EmbeddedCluster(
        root / "plain", database="bench", durable=False, options=ServerOptions(tls=False)
    )
    try:
        created_ms, checked_ms = _certificate_times(root)
        for cluster in (with_tls, plain):
            cluster.ensure_running()
            with psycopg.connect(cluster.libpq_url(), autocommit=True) as conn:
                conn.execute(SETUP_SQL)
        urls = {
            "TCP + TLS (verify-full)": to_libpq_url(with_tls.tcp_url()),
            "TCP plain": to_libpq_url(plain.tcp_url()),
            "unix socket": with_tls.libpq_url(),
        }
        for name, url in urls.items():
            with psycopg.connect(url) as conn:
                row = conn.execute(OWN_SSL).fetchone()
            assert row is not None
            assert row[0] is name.startswith("TCP + TLS"), (name, row)

        def connector(url: str) -> Any:
            return lambda _: psycopg.connect(url).close()

        connects = measure_pair(
            {name: connector(url) for name, url in urls.items()},
            list(range(100)),
            calls=args.connects,
            rounds=20,
            warmup=20,
        )
        conns = {name: psycopg.connect(url, autocommit=True) for name, url in urls.items()}
        try:

            def reader(conn: psycopg.Connection[Any]) -> Any:
                return lambda i: conn.execute(READ_SQL, {"id": i}, prepare=True).fetchone()

            reads = measure_pair(
                {name: reader(conn) for name, conn in conns.items()},
                [(i * 7919) % 20000 + 1 for i in range(20000)],
                calls=args.reads,
                rounds=20,
                warmup=300,
            )
        finally:
            for conn in conns.values():
                conn.close()
    finally:
        for cluster in (with_tls, plain):
            cluster.destroy()
        shutil.rmtree(root, ignore_errors=True)

    base_connect = connects["TCP plain"].median_us
    base_read = reads["TCP plain"].median_us
    rows = []
    for name in urls:
        c, r = connects[name], reads[name]
        rows.append(
            [
                name,
                f"{c.median_us / 1000:.2f}",
                f"{c.p99_us / 1000:.2f}",
                f"{c.median_us / base_connect:.2f}x",
                f"{r.median_us:.0f}",
                f"{r.p99_us:.0f}",
                f"{r.median_us / base_read:.2f}x",
            ]
        )
    print(f"Machine: {machine()}")
    print(
        f"{args.connects} connects and {args.reads} prepared point reads per side; "
        f"certificates: created in {created_ms:.1f} ms, checked in {checked_ms:.1f} ms"
    )
    print()
    print(
        markdown_table(
            [
                "side",
                "connect median (ms)",
                "connect p99 (ms)",
                "vs TCP plain",
                "read median (µs)",
                "read p99 (µs)",
                "vs TCP plain",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    main()
