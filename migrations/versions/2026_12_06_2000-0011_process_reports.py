"""Process reports: each application process's pools, caches and statements, for monitoring.

The dashboard, the notebooks and the exporter run in processes of their own; the pool and
query cache that matter are the application's (``dbops workload``, a user's web app). Each
process that opens the app database writes a small report every ``process_report_s``
(``dbops.db.report``): its pools' ``get_stats()``, its query caches' counters, its service
statements' latency histograms and its access events (docs/decisions/0009-process-reports.md).

- ``dbops_monitor.process_reports``: the last report of each process (one row a process).
- ``dbops_monitor.process_samples``: the pool and cache totals over time (history); at most
  one sample every 5 s a process, pruned with the rest of the history.
- ``dbops_monitor.report_process(...)``: the only way in. ``SECURITY DEFINER`` (runs as the
  owner of the schema, with ``search_path = pg_catalog, pg_temp``), ``EXECUTE`` revoked from
  ``PUBLIC``; ``dbops roles setup`` grants it to the application role, which has no privilege
  on the tables themselves. It checks the report's size and shape and refuses a 201st process
  reporting within an hour: a compromised application can write a wrong report about
  itself and nothing else (it cannot read, delete or rewrite another process's history beyond
  its own row, keyed by the process id it chooses).

New empty tables and a function: plain DDL, no lock on an existing table. The downgrade
drops them.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 20:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Rules squawk may skip for this revision's SQL (scripts/lint_migrations.py), with the reason.
SQUAWK_IGNORE = {
    "require-statement-timeout": (
        "creates empty tables and a function only: no scan, no rewrite; waits are bounded by "
        "the run's lock_timeout (decision 0003)"
    ),
}

#: Its identity, as ``to_regprocedure`` and ``GRANT EXECUTE`` take it.
REPORT_FUNCTION = (
    "dbops_monitor.report_process(text, text, text, integer, timestamp with time zone, jsonb)"
)

UPGRADE = (
    """
    CREATE TABLE dbops_monitor.process_reports (
        process text NOT NULL,
        name text NOT NULL,
        host text NOT NULL,
        pid bigint NOT NULL,
        started_at timestamptz NOT NULL,
        reported_at timestamptz NOT NULL,
        reported_by text NOT NULL,
        closed boolean NOT NULL,
        report jsonb NOT NULL,
        CONSTRAINT pk_process_reports PRIMARY KEY (process)
    )
    """,
    "CREATE INDEX ix_process_reports_reported_at ON dbops_monitor.process_reports (reported_at)",
    """
    CREATE TABLE dbops_monitor.process_samples (
        process text NOT NULL,
        reported_at timestamptz NOT NULL,
        pool_size bigint NOT NULL,
        pool_idle bigint NOT NULL,
        pool_waiting bigint NOT NULL,
        pool_max bigint NOT NULL,
        requests bigint NOT NULL,
        requests_wait_ms bigint NOT NULL,
        timeouts bigint NOT NULL,
        cache_hits bigint NOT NULL,
        cache_misses bigint NOT NULL,
        calls bigint NOT NULL,
        errors bigint NOT NULL,
        CONSTRAINT pk_process_samples PRIMARY KEY (process, reported_at)
    )
    """,
    "CREATE INDEX ix_process_samples_reported_at ON dbops_monitor.process_samples (reported_at)",
    r"""
    CREATE FUNCTION dbops_monitor.report_process(
        p_process text, p_name text, p_host text, p_pid integer, p_started_at timestamptz,
        p_report jsonb
    ) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
      others bigint;
    BEGIN
      IF p_process IS NULL OR length(p_process) NOT BETWEEN 1 AND 200
         OR p_name IS NULL OR length(p_name) NOT BETWEEN 1 AND 100
         OR p_host IS NULL OR length(p_host) > 255
         OR p_pid IS NULL OR p_pid <= 0
         OR p_started_at IS NULL OR p_started_at > now() + interval '1 minute'
         OR p_report IS NULL OR jsonb_typeof(p_report) <> 'object'
         OR octet_length(p_report::text) > 262144
         OR jsonb_typeof(coalesce(p_report->'pools', '[]')) <> 'array'
         OR jsonb_array_length(coalesce(p_report->'pools', '[]')) > 16
         OR jsonb_typeof(coalesce(p_report->'caches', '[]')) <> 'array'
         OR jsonb_array_length(coalesce(p_report->'caches', '[]')) > 16
      THEN
        RAISE EXCEPTION 'dbops: a process report must be a JSON object of at most 256 kB with '
          'at most 16 pools and 16 caches, from a named process (1-200 characters)'
          USING ERRCODE = '22023';
      END IF;
      SELECT count(*) INTO others FROM dbops_monitor.process_reports
       WHERE reported_at > now() - interval '1 hour' AND process <> p_process;
      IF others >= 200 THEN
        RAISE EXCEPTION 'dbops: 200 processes reported within the hour; this one is refused'
          USING ERRCODE = '54000';
      END IF;
      INSERT INTO dbops_monitor.process_reports AS r
        (process, name, host, pid, started_at, reported_at, reported_by, closed, report)
      VALUES (p_process, p_name, p_host, p_pid, p_started_at, now(), session_user,
              coalesce((p_report->>'closed')::boolean, false), p_report)
      ON CONFLICT (process) DO UPDATE
        SET name = EXCLUDED.name, host = EXCLUDED.host, pid = EXCLUDED.pid,
            started_at = EXCLUDED.started_at, reported_at = EXCLUDED.reported_at,
            reported_by = EXCLUDED.reported_by, closed = EXCLUDED.closed,
            report = EXCLUDED.report;
      IF NOT EXISTS (SELECT FROM dbops_monitor.process_samples
                      WHERE process = p_process AND reported_at > now() - interval '5 seconds')
      THEN
        INSERT INTO dbops_monitor.process_samples
          (process, reported_at, pool_size, pool_idle, pool_waiting, pool_max, requests,
           requests_wait_ms, timeouts, cache_hits, cache_misses, calls, errors)
        SELECT p_process, now(), pools.size, pools.idle, pools.waiting, pools.max, pools.requests,
               pools.wait_ms, pools.timeouts, caches.hits, caches.misses, calls.n, calls.errors
          FROM (SELECT coalesce(sum((p->>'size')::bigint), 0) AS size,
                       coalesce(sum((p->>'idle')::bigint), 0) AS idle,
                       coalesce(sum((p->>'waiting')::bigint), 0) AS waiting,
                       coalesce(sum((p->>'max_size')::bigint), 0) AS max,
                       coalesce(sum((p->>'requests')::bigint), 0) AS requests,
                       coalesce(sum((p->>'requests_wait_ms')::bigint), 0) AS wait_ms,
                       coalesce(sum((p->>'timeouts')::bigint), 0) AS timeouts
                  FROM jsonb_array_elements(coalesce(p_report->'pools', '[]')) p) pools,
               (SELECT coalesce(sum((c->>'hits')::bigint), 0) AS hits,
                       coalesce(sum((c->>'misses')::bigint), 0) AS misses
                  FROM jsonb_array_elements(coalesce(p_report->'caches', '[]')) c) caches,
               (SELECT coalesce(sum((s->>'count')::bigint), 0) AS n,
                       coalesce(sum((SELECT sum(e.value::bigint)
                                       FROM jsonb_each_text(coalesce(s->'errors', '{}')) e)), 0)
                         AS errors
                  FROM jsonb_array_elements(coalesce(p_report #> '{app,statements}', '[]')) s)
                 calls;
      END IF;
    END
    $$
    """,
    f"REVOKE ALL ON FUNCTION {REPORT_FUNCTION} FROM PUBLIC",
    f"COMMENT ON FUNCTION {REPORT_FUNCTION} IS "
    "'dbops: a process reports its pools, caches and statements (decision 0009)'",
)

#: Each object by name (no CASCADE: an object someone else added stops the drop).
DOWNGRADE = (
    f"DROP FUNCTION {REPORT_FUNCTION}",
    "DROP TABLE dbops_monitor.process_samples",
    "DROP TABLE dbops_monitor.process_reports",
)


def upgrade() -> None:
    for statement in UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    for statement in DOWNGRADE:
        op.execute(statement)
