"""What carrying ``app.actor_id`` costs an autocommit point read (docs/decisions/0004).

``uv run python -m bench.bench_actor_context [--calls 6000]``

Ways to run one prepared point read, on one unix-socket connection each:
``plain`` (autocommit, what ``reading()`` does today), ``pipelined`` (autocommit plus psycopg
pipeline mode: ``BEGIN; SELECT set_config('app.actor_id', ..., true); <read>; COMMIT`` sent
in one round trip, with and without an explicit sync), ``transaction`` (the same statements,
one round trip each) and ``session setting, changed`` (autocommit: a session-level
``set_config`` then the read, two round trips: what a per-connection actor costs when it
changes). Prints the medians and the ratios to ``plain``; checks that the setting is
visible inside the pipelined transaction and gone after it.
"""

from __future__ import annotations

import argparse
import uuid
from typing import Any

import psycopg

from bench._harness import databases, machine, markdown_table, measure_pair
from dbops.config import to_libpq_url

SETUP_SQL = """
CREATE TABLE accounts (id uuid PRIMARY KEY, email text NOT NULL, name text NOT NULL);
INSERT INTO accounts
SELECT gen_random_uuid(), 'user' || i || '@example.com', 'User ' || i
FROM generate_series(1, 20000) AS i;
ANALYZE accounts;
"""
SELECT_ACCOUNT_SQL = "SELECT id, email, name FROM accounts WHERE id = %(id)s"
SET_ACTOR_SQL = "SELECT set_config('app.actor_id', %(actor_id)s, true)"
SET_SESSION_ACTOR_SQL = "SELECT set_config('app.actor_id', %(actor_id)s, false)"
CURRENT_ACTOR_SQL = "SELECT current_setting('app.actor_id', true)"


def plain(conn: psycopg.Connection[Any], account_id: uuid.UUID) -> object:
    return conn.execute(SELECT_ACCOUNT_SQL, {"id": account_id}, prepare=True).fetchone()


def pipelined(conn: psycopg.Connection[Any], account_id: uuid.UUID, actor: str) -> object:
    with conn.pipeline() as pipe:
        conn.execute("BEGIN")
        conn.execute(SET_ACTOR_SQL, {"actor_id": actor}, prepare=True)
        cur = conn.execute(SELECT_ACCOUNT_SQL, {"id": account_id}, prepare=True)
        conn.execute("COMMIT")
        pipe.sync()
        return cur.fetchone()


def pipelined_one_sync(conn: psycopg.Connection[Any], account_id: uuid.UUID, actor: str) -> object:
    with conn.pipeline():
        conn.execute("BEGIN")
        conn.execute(SET_ACTOR_SQL, {"actor_id": actor}, prepare=True)
        cur = conn.execute(SELECT_ACCOUNT_SQL, {"id": account_id}, prepare=True)
        conn.execute("COMMIT")
    return cur.fetchone()


def session_setting(conn: psycopg.Connection[Any], account_id: uuid.UUID, actor: str) -> object:
    """The worst case of a per-connection setting: the actor changed since the last read."""
    conn.execute(SET_SESSION_ACTOR_SQL, {"actor_id": actor}, prepare=True)
    return plain(conn, account_id)


def transaction(conn: psycopg.Connection[Any], account_id: uuid.UUID, actor: str) -> object:
    conn.execute(SET_ACTOR_SQL, {"actor_id": actor}, prepare=True)
    row = conn.execute(SELECT_ACCOUNT_SQL, {"id": account_id}, prepare=True).fetchone()
    conn.commit()
    return row


def check_setting(conn: psycopg.Connection[Any], actor: str) -> None:
    """The setting is seen inside the pipelined transaction and is gone after its COMMIT."""
    with conn.pipeline() as pipe:
        conn.execute("BEGIN")
        conn.execute(SET_ACTOR_SQL, {"actor_id": actor})
        cur = conn.execute(CURRENT_ACTOR_SQL)
        conn.execute("COMMIT")
        pipe.sync()
        inside = cur.fetchone()
    after = conn.execute(CURRENT_ACTOR_SQL).fetchone()
    if inside != (actor,) or after not in ((None,), ("",)):
        raise SystemExit(f"set_config did not behave: inside={inside} after={after}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=6_000)
    args = parser.parse_args()
    actor = str(uuid.uuid4())
    with databases(["actor"]) as urls:
        libpq = to_libpq_url(urls["actor"])
        with psycopg.connect(libpq, autocommit=True) as setup:
            setup.execute(SETUP_SQL)
            ids = [r[0] for r in setup.execute("SELECT id FROM accounts ORDER BY random()")]
        with (
            psycopg.connect(libpq, autocommit=True) as a,
            psycopg.connect(libpq, autocommit=True) as b,
            psycopg.connect(libpq) as c,
            psycopg.connect(libpq, autocommit=True) as d,
            psycopg.connect(libpq, autocommit=True) as e,
        ):
            check_setting(b, actor)
            results = measure_pair(
                {
                    "plain": lambda i: plain(a, i),
                    "pipelined": lambda i: pipelined(b, i, actor),
                    "pipelined, one sync": lambda i: pipelined_one_sync(d, i, actor),
                    "transaction": lambda i: transaction(c, i, actor),
                    "session setting, changed": lambda i: session_setting(e, i, actor),
                },
                ids,
                calls=args.calls,
            )
            prepared = b.execute("SELECT count(*) FROM pg_prepared_statements").fetchone()
    base = results["plain"].median_us
    print(f"Machine: {machine()}; {args.calls} calls per side")
    print(f"Server-side prepared statements on the pipelined connection: {prepared}")
    print(
        markdown_table(
            ["side", "median", "p99", "vs plain"],
            [
                [name, f"{r.median_us:.1f} µs", f"{r.p99_us:.1f} µs", f"{r.median_us / base:.2f}x"]
                for name, r in results.items()
            ],
        )
    )


if __name__ == "__main__":
    main()
