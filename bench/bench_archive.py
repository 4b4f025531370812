"""Archive throughput (rows/s): ``dbops.ops.archive.run`` in batches vs one set-based transaction.

    uv run python -m bench.bench_archive                      # 1M users / 100k teams, 5 %
    uv run python -m bench.bench_archive --users 100000 --teams 10000 --percent 10

Seeds a throwaway durable embedded cluster (or DATABASE_URL, whose seeded rows get replaced),
soft-deletes ``--percent`` of the users and of the teams 100 days ago (a deterministic choice),
then times, on the same rows:

1. the **baseline**: one transaction of set-based statements (``INSERT INTO archive.* SELECT``
   then ``DELETE``, one per table, same owner rule), rolled back afterwards, then ``VACUUM``;
2. ``dbops.ops.archive.run(apply=True)`` with ``--batch-size``, committed.

Prints rows/s of both and their ratio. The baseline runs first, so the batched run meets the
warmer cache; the baseline's rolled-back rows are vacuumed away before it.
"""

from __future__ import annotations

import argparse
import time
import uuid
from datetime import timedelta

from bench._harness import databases, machine
from dbops.config import Settings
from dbops.db import Database, open_database
from dbops.ops import archive
from dbops.ops.migrate import upgrade
from dbops.ops.seed import seed

OLDER_THAN = timedelta(days=90)

SOFT_DELETE = """
UPDATE {table} SET deleted_at = now() - interval '100 days'
WHERE id IN (SELECT id FROM {table} ORDER BY md5(id::text) LIMIT %(n)s)
"""
CUTOFF = "SELECT now() - interval '90 days'"

#: The baseline: every table in one statement each, in one transaction (no batches, no keyset).
BASELINE = (
    """
    INSERT INTO archive.team_locations
        (team_id, location, created_at, updated_at, archived_at, run_id)
    SELECT team_id, location::text, created_at, updated_at, now(), %(run)s FROM team_locations
    WHERE team_id IN (SELECT id FROM teams WHERE deleted_at < %(cutoff)s)
    """,
    """
    INSERT INTO archive.invitations
        (id, team_id, email, role, invited_by, token_hash, status, expires_at, accepted_at,
         created_at, updated_at, archived_at, run_id)
    SELECT id, team_id, email, role, invited_by, token_hash, status, expires_at, accepted_at,
           created_at, updated_at, now(), %(run)s FROM invitations
    WHERE team_id IN (SELECT id FROM teams WHERE deleted_at < %(cutoff)s)
    """,
    """
    INSERT INTO archive.team_members
        (team_id, user_id, role, created_at, updated_at, archived_at, run_id)
    SELECT team_id, user_id, role, created_at, updated_at, now(), %(run)s FROM team_members
    WHERE team_id IN (SELECT id FROM teams WHERE deleted_at < %(cutoff)s)
    """,
    """
    INSERT INTO archive.teams
        (id, name, slug, settings, created_at, updated_at, deleted_at, archived_at, run_id)
    SELECT id, name, slug, settings, created_at, updated_at, deleted_at, now(), %(run)s
    FROM teams WHERE deleted_at < %(cutoff)s
    """,
    "DELETE FROM team_locations WHERE team_id IN "
    "(SELECT id FROM teams WHERE deleted_at < %(cutoff)s)",
    "DELETE FROM invitations WHERE team_id IN (SELECT id FROM teams WHERE deleted_at < %(cutoff)s)",
    "DELETE FROM team_members WHERE team_id IN "
    "(SELECT id FROM teams WHERE deleted_at < %(cutoff)s)",
    "DELETE FROM teams WHERE deleted_at < %(cutoff)s",
    """
    CREATE TEMP TABLE movers ON COMMIT DROP AS
    SELECT u.id FROM users AS u
    WHERE u.deleted_at < %(cutoff)s
      AND NOT EXISTS (
        SELECT 1 FROM team_members AS m JOIN teams AS t ON t.id = m.team_id
        WHERE m.user_id = u.id AND m.role = 'OWNER' AND t.deleted_at IS NULL
          AND NOT EXISTS (
            SELECT 1 FROM team_members AS o JOIN users AS ou ON ou.id = o.user_id
            WHERE o.team_id = m.team_id AND o.role = 'OWNER' AND o.user_id <> m.user_id
              AND ou.deleted_at IS NULL))
    """,
    """
    INSERT INTO archive.users
        (id, email, password_hash, display_name, role, profile, tags, created_at, updated_at,
         deleted_at, archived_at, run_id)
    SELECT id, email, password_hash, display_name, role, profile, tags, created_at, updated_at,
           deleted_at, now(), %(run)s FROM users WHERE id IN (SELECT id FROM movers)
    """,
    """
    INSERT INTO archive.team_members
        (team_id, user_id, role, created_at, updated_at, archived_at, run_id)
    SELECT team_id, user_id, role, created_at, updated_at, now(), %(run)s FROM team_members
    WHERE user_id IN (SELECT id FROM movers)
    """,
    """
    INSERT INTO archive.invitation_senders (invitation_id, invited_by, archived_at, run_id)
    SELECT id, invited_by, now(), %(run)s FROM invitations
    WHERE invited_by IN (SELECT id FROM movers)
    """,
    "DELETE FROM team_members WHERE user_id IN (SELECT id FROM movers)",
    "DELETE FROM users WHERE id IN (SELECT id FROM movers)",
)
ARCHIVE_TABLES = (
    "archive.users",
    "archive.teams",
    "archive.team_members",
    "archive.invitations",
    "archive.invitation_senders",
    "archive.team_locations",
)


def _soft_delete(db: Database, users: int, teams: int) -> None:
    with db.connection() as conn:
        conn.execute(SOFT_DELETE.format(table="teams"), {"n": teams})
        conn.execute(SOFT_DELETE.format(table="users"), {"n": users})


def _vacuum(db: Database) -> None:
    with db.read() as conn:  # autocommit: VACUUM cannot run in a transaction
        for table in ("users", "teams", "team_members", "invitations", *ARCHIVE_TABLES):
            conn.execute(f"VACUUM ANALYZE {table}")


def _baseline(db: Database) -> tuple[int, float]:
    """Rows the set-based statements move, and their seconds; rolled back."""
    moved = 0
    with db.pool.connection() as conn:
        conn.autocommit = False
        row = conn.execute(CUTOFF).fetchone()
        assert row is not None
        params = {"cutoff": row[0], "run": uuid.uuid4()}
        started = time.perf_counter()
        for statement in BASELINE:
            cur = conn.execute(statement, params)
            if statement.lstrip().startswith("INSERT") or statement.lstrip().startswith("DELETE"):
                moved += max(cur.rowcount, 0)
        seconds = time.perf_counter() - started
        conn.rollback()
    # Each row was counted twice (copy and delete), plus sender links once.
    return moved, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--teams", type=int, default=100_000)
    parser.add_argument("--percent", type=float, default=5.0, help="share soft-deleted")
    parser.add_argument("--batch-size", type=int, default=archive.DEFAULT_BATCH_SIZE)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    print(f"machine: {machine()}")
    with databases(["bench_archive"]) as urls:
        url = urls["bench_archive"]
        settings = Settings(_env_file=None, database_url=url)
        upgrade(url, settings, "head")
        with open_database(settings, url) as db:
            started = time.perf_counter()
            seed(db, users=args.users, teams=args.teams, seed=args.seed, replace=True)
            print(f"seeded {args.users:,} users, {args.teams:,} teams in "
                  f"{time.perf_counter() - started:.1f} s")  # fmt: skip
            n_users = int(args.users * args.percent / 100)
            n_teams = int(args.teams * args.percent / 100)
            _soft_delete(db, n_users, n_teams)
            _vacuum(db)
            dry = archive.run(db, older_than=OLDER_THAN)  # also warms the cache
            rows = dry.moved.total
            print(
                f"soft-deleted {args.percent:g} % ({n_users:,} users, {n_teams:,} teams): "
                f"{rows:,} rows to move ({dry.moved}); {len(dry.skipped):,} users skipped "
                f"(last owners of live teams); dry run {dry.seconds:.2f} s"
            )

            copied_and_deleted, base_s = _baseline(db)
            _vacuum(db)
            report = archive.run(db, older_than=OLDER_THAN, batch_size=args.batch_size, apply=True)
            assert report.moved == dry.moved, (report.moved, dry.moved)
            base_rate = rows / base_s
            print(
                f"baseline, set-based in one transaction: {base_s:.2f} s, {base_rate:,.0f} rows/s "
                f"({copied_and_deleted:,} rows copied + deleted)"
            )
            print(
                f"dbops archive run, batch {args.batch_size:,}: {report.seconds:.2f} s, "
                f"{report.rows_per_s:,.0f} rows/s in {report.batches:,} batches; "
                f"ratio batched/baseline {report.rows_per_s / base_rate:.2f}"
            )


if __name__ == "__main__":
    main()
