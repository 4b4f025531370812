"""Query history: schema ``dbops_monitor`` for pg_stat_statements deltas and growth samples.

``dbops.monitoring.history.capture`` writes here; nothing here is read by the application.
Every table is new and empty, so plain DDL in the run's transaction is enough (no
``CONCURRENTLY`` step). Ownership: the objects belong to the role that runs migrations (the
schema owner), not to the application role; a later security revision grants a monitoring
role what it needs (see docs/history.md).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 17:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Rules squawk may skip for this revision's SQL (scripts/lint_migrations.py), with the reason.
SQUAWK_IGNORE = {
    "require-statement-timeout": (
        "creates an empty schema and empty tables; waits are bounded by the run's lock_timeout "
        "(decision 0003)"
    ),
}

SCHEMA = "dbops_monitor"

UPGRADE = (
    "CREATE SCHEMA dbops_monitor",
    "COMMENT ON SCHEMA dbops_monitor IS "
    "'dbops query history: pg_stat_statements deltas and growth samples (docs/history.md)'",
    # Not readable by every role: query texts can reveal data shapes.
    "REVOKE ALL ON SCHEMA dbops_monitor FROM PUBLIC",
    """
    CREATE TABLE dbops_monitor.captures (
        id bigint GENERATED ALWAYS AS IDENTITY,
        captured_at timestamptz NOT NULL,
        interval_s double precision,
        stats_reset timestamptz,
        entries bigint NOT NULL,
        dealloc bigint,
        samples bigint NOT NULL DEFAULT 0,
        restarted bigint NOT NULL DEFAULT 0,
        reset_detected boolean NOT NULL DEFAULT false,
        duration_ms double precision NOT NULL DEFAULT 0,
        baseline boolean NOT NULL,
        CONSTRAINT pk_captures PRIMARY KEY (id)
    )
    """,
    "CREATE INDEX ix_captures_captured_at ON dbops_monitor.captures (captured_at)",
    """
    CREATE TABLE dbops_monitor.baseline (
        queryid bigint NOT NULL,
        userid oid NOT NULL,
        dbid oid NOT NULL,
        calls bigint NOT NULL,
        total_exec_time_ms double precision NOT NULL,
        rows bigint NOT NULL,
        shared_blks_hit bigint NOT NULL,
        shared_blks_read bigint NOT NULL,
        temp_blks_written bigint NOT NULL,
        total_plan_time_ms double precision NOT NULL,
        captured_at timestamptz NOT NULL,
        CONSTRAINT pk_baseline PRIMARY KEY (queryid, userid, dbid)
    )
    """,
    """
    CREATE TABLE dbops_monitor.statements (
        queryid bigint NOT NULL,
        userid oid NOT NULL,
        dbid oid NOT NULL,
        query text NOT NULL,
        first_seen timestamptz NOT NULL,
        last_seen timestamptz NOT NULL,
        CONSTRAINT pk_statements PRIMARY KEY (queryid, userid, dbid)
    )
    """,
    """
    CREATE TABLE dbops_monitor.statement_samples (
        capture_id bigint NOT NULL,
        captured_at timestamptz NOT NULL,
        queryid bigint NOT NULL,
        userid oid NOT NULL,
        dbid oid NOT NULL,
        interval_s double precision NOT NULL,
        calls bigint NOT NULL,
        total_exec_time_ms double precision NOT NULL,
        rows bigint NOT NULL,
        shared_blks_hit bigint NOT NULL,
        shared_blks_read bigint NOT NULL,
        temp_blks_written bigint NOT NULL,
        total_plan_time_ms double precision NOT NULL,
        CONSTRAINT pk_statement_samples PRIMARY KEY (capture_id, queryid, userid, dbid),
        CONSTRAINT fk_statement_samples_capture_id_captures FOREIGN KEY (capture_id)
            REFERENCES dbops_monitor.captures (id) ON DELETE CASCADE,
        CONSTRAINT ck_statement_samples_calls_positive CHECK (calls > 0)
    )
    """,
    # Time-range reads per queryid (statement_series) and the retention sweep.
    "CREATE INDEX ix_statement_samples_queryid_captured_at "
    "ON dbops_monitor.statement_samples (queryid, captured_at)",
    "CREATE INDEX ix_statement_samples_captured_at "
    "ON dbops_monitor.statement_samples (captured_at)",
    """
    CREATE TABLE dbops_monitor.database_samples (
        capture_id bigint NOT NULL,
        captured_at timestamptz NOT NULL,
        size_bytes bigint NOT NULL,
        numbackends bigint NOT NULL,
        xact_commit bigint NOT NULL,
        xact_rollback bigint NOT NULL,
        temp_bytes bigint NOT NULL,
        deadlocks bigint NOT NULL,
        blks_hit bigint NOT NULL,
        blks_read bigint NOT NULL,
        CONSTRAINT pk_database_samples PRIMARY KEY (capture_id),
        CONSTRAINT fk_database_samples_capture_id_captures FOREIGN KEY (capture_id)
            REFERENCES dbops_monitor.captures (id) ON DELETE CASCADE
    )
    """,
    "CREATE INDEX ix_database_samples_captured_at ON dbops_monitor.database_samples (captured_at)",
    """
    CREATE TABLE dbops_monitor.table_samples (
        capture_id bigint NOT NULL,
        captured_at timestamptz NOT NULL,
        schema_name text NOT NULL,
        table_name text NOT NULL,
        total_bytes bigint NOT NULL,
        live_rows bigint,
        dead_rows bigint,
        CONSTRAINT pk_table_samples PRIMARY KEY (capture_id, schema_name, table_name),
        CONSTRAINT fk_table_samples_capture_id_captures FOREIGN KEY (capture_id)
            REFERENCES dbops_monitor.captures (id) ON DELETE CASCADE
    )
    """,
    "CREATE INDEX ix_table_samples_captured_at ON dbops_monitor.table_samples (captured_at)",
)

#: Each table by name (no CASCADE: an object someone else added to the schema stops the drop).
DOWNGRADE = (
    "DROP TABLE dbops_monitor.table_samples",
    "DROP TABLE dbops_monitor.database_samples",
    "DROP TABLE dbops_monitor.statement_samples",
    "DROP TABLE dbops_monitor.statements",
    "DROP TABLE dbops_monitor.baseline",
    "DROP TABLE dbops_monitor.captures",
    "DROP SCHEMA dbops_monitor",
)


def upgrade() -> None:
    for statement in UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    for statement in DOWNGRADE:
        op.execute(statement)
