"""Audit trail: an append-only, hash-chained record of every change to the four domain tables.

Schema ``audit``:

- ``audit.record``: one row per INSERT/UPDATE/DELETE of ``users``, ``teams``, ``team_members``
  and ``invitations`` (and one per TRUNCATE of them, and one ``BULK`` summary per table that a
  bulk load wrote with the capture trigger disabled). Old and new row as JSONB without secret
  columns (``users.password_hash``,
  ``invitations.token_hash``; ``teams.search`` is derived and left out too), the actor the
  service layer put on the transaction (``app.actor_kind``/``app.actor_id``/``app.actor_name``),
  the database role, the transaction id, and ``prev_hash``/``hash``:
  ``hash = sha256(prev_hash || canonical text of the record)``. Ids are contiguous: a gap means
  a deleted record.
- ``audit.pending``: what the row triggers capture during a transaction. A deferred constraint
  trigger moves it into ``audit.record`` at commit, under the row lock of ``audit.head`` (the
  chain's last id and hash): docs/decisions/0006-audit-chain.md says why at commit.
- Append-only: BEFORE UPDATE/DELETE/TRUNCATE triggers raise, and nobody but the owner has any
  privilege in the schema (the trigger functions are SECURITY DEFINER).

Every object is new; the triggers on the four tables take a SHARE ROW EXCLUSIVE lock each,
bounded by the run's lock_timeout (decision 0003).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 13:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Rules squawk may skip for this revision's SQL (scripts/lint_migrations.py), with the reason.
SQUAWK_IGNORE = {
    "require-statement-timeout": (
        "creates an empty schema, empty tables and triggers; waits are bounded by the run's "
        "lock_timeout (decision 0003)"
    ),
}

#: Audited table -> (key columns, columns left out of the JSON: secrets and derived values).
AUDITED = {
    # The phone is encrypted in the application (0007, docs/encryption.md): its ciphertext and
    # blind index stay out too, so no value outlives a key rotation in the trail.
    "users": ("{id}", "{password_hash,phone_ciphertext,phone_blind_index}"),
    "teams": ("{id}", "{search}"),
    "team_members": ("{team_id,user_id}", "{}"),
    "invitations": ("{id}", "{token_hash}"),
}

UPGRADE = (
    "CREATE SCHEMA audit",
    "COMMENT ON SCHEMA audit IS "
    "'dbops audit trail: append-only, hash-chained change records (docs/decisions/0006)'",
    "REVOKE ALL ON SCHEMA audit FROM PUBLIC",
    """
    CREATE TABLE audit.record (
        id bigint NOT NULL,
        at timestamptz NOT NULL,
        txid xid8 NOT NULL,
        actor_kind text NOT NULL,
        actor_id text,
        actor_name text,
        db_role text NOT NULL,
        table_name text NOT NULL,
        op text NOT NULL,
        row_key text NOT NULL,
        old_row jsonb,
        new_row jsonb,
        prev_hash bytea NOT NULL,
        hash bytea NOT NULL,
        CONSTRAINT pk_record PRIMARY KEY (id),
        CONSTRAINT ck_record_op CHECK (op IN ('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'BULK')),
        CONSTRAINT ck_record_actor_kind CHECK (actor_kind IN ('user', 'system', 'none'))
    )
    """,
    # history(team SLUG) / as_of: the versions of one row, in order.
    "CREATE INDEX ix_record_table_name_row_key_id ON audit.record (table_name, row_key, id)",
    """
    CREATE TABLE audit.pending (
        pending_id bigint GENERATED ALWAYS AS IDENTITY,
        txid xid8 NOT NULL DEFAULT pg_current_xact_id(),
        actor_kind text NOT NULL,
        actor_id text,
        actor_name text,
        db_role text NOT NULL DEFAULT session_user,
        table_name text NOT NULL,
        op text NOT NULL,
        row_key text NOT NULL,
        old_row jsonb,
        new_row jsonb,
        CONSTRAINT pk_pending PRIMARY KEY (pending_id)
    )
    """,
    """
    CREATE TABLE audit.head (
        singleton boolean NOT NULL DEFAULT true,
        last_id bigint NOT NULL,
        last_hash bytea NOT NULL,
        CONSTRAINT pk_head PRIMARY KEY (singleton),
        CONSTRAINT ck_head_singleton CHECK (singleton)
    )
    """,
    "INSERT INTO audit.head (last_id, last_hash) VALUES (0, decode(repeat('00', 32), 'hex'))",
    # The canonical text a record's hash covers. No SET search_path (here and in actor_kind):
    # a SQL function with one is never inlined and costs a GUC save/restore per call, which
    # doubled the per-row cost; they are not SECURITY DEFINER and call pg_catalog only.
    # verify() holds its own copy of this expression (dbops/ops/audit.py), so replacing this
    # function cannot fool it.
    """
    CREATE FUNCTION audit.canonical_text(
        id bigint, at timestamptz, txid xid8, actor_kind text, actor_id text, actor_name text,
        db_role text, table_name text, op text, row_key text, old_row jsonb, new_row jsonb
    ) RETURNS text
    LANGUAGE sql STABLE
    AS $$
        SELECT jsonb_build_array(
            $1, to_char($2 AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), $3::text,
            $4, $5, $6, $7, $8, $9, $10, $11, $12
        )::text
    $$
    """,
    # The actor kind the service layer set (decision 0004); anything else counts as none.
    """
    CREATE FUNCTION audit.actor_kind() RETURNS text
    LANGUAGE sql STABLE
    AS $$
        SELECT CASE WHEN current_setting('app.actor_kind', true) IN ('user', 'system')
                    THEN current_setting('app.actor_kind', true) ELSE 'none' END
    $$
    """,
    # Does this session own the table (and so may switch its capture off for a bulk load)?
    """
    CREATE FUNCTION audit.owns(relid oid) RETURNS boolean
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
        SELECT coalesce(bool_or(pg_has_role(session_user, c.relowner, 'MEMBER')), false)
        FROM pg_class AS c WHERE c.oid = relid
    $$
    """,
    # The actor of the transaction, as the service layer set it (decision 0004).
    """
    CREATE FUNCTION audit.capture() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
        key_columns text[] := TG_ARGV[0]::text[];
        hidden text[] := TG_ARGV[1]::text[];
        old_row jsonb;
        new_row jsonb;
        row_key text;
    BEGIN
        IF TG_LEVEL = 'STATEMENT' THEN
            row_key := '*';
        ELSE
            IF TG_OP <> 'INSERT' THEN
                old_row := to_jsonb(OLD) - hidden;
            END IF;
            IF TG_OP <> 'DELETE' THEN
                new_row := to_jsonb(NEW) - hidden;
            END IF;
            IF cardinality(key_columns) = 1 THEN
                row_key := coalesce(new_row, old_row) ->> key_columns[1];
            ELSE
                SELECT string_agg(coalesce(new_row, old_row) ->> k.name, '/' ORDER BY k.ord)
                  INTO row_key
                  FROM unnest(key_columns) WITH ORDINALITY AS k(name, ord);
            END IF;
        END IF;
        INSERT INTO audit.pending
            (actor_kind, actor_id, actor_name, table_name, op, row_key, old_row, new_row)
        VALUES (
            audit.actor_kind(),
            nullif(current_setting('app.actor_id', true), ''),
            nullif(current_setting('app.actor_name', true), ''),
            TG_TABLE_NAME, TG_OP, row_key, old_row, new_row
        );
        RETURN NULL;
    END
    $$
    """,
    # One summary record for rows a bulk load (the seed) wrote with per-row capture off.
    """
    CREATE FUNCTION audit.bulk_load(target regclass, summary jsonb) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
    BEGIN
        IF NOT audit.owns(target) THEN
            RAISE EXCEPTION 'only the owner of % may record a bulk load', target
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        INSERT INTO audit.pending
            (actor_kind, actor_id, actor_name, table_name, op, row_key, new_row)
        VALUES (
            audit.actor_kind(),
            nullif(current_setting('app.actor_id', true), ''),
            nullif(current_setting('app.actor_name', true), ''),
            (SELECT c.relname FROM pg_class AS c WHERE c.oid = target), 'BULK', '*', summary
        );
    END
    $$
    """,
    # At commit: append this transaction's captures to the chain, under the head's row lock.
    """
    CREATE FUNCTION audit.seal() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
        chain_id bigint;
        chain_hash bytea;
        sealed_at timestamptz;
        p audit.pending;
    BEGIN
        -- One firing per captured row; the first one of the transaction seals them all.
        PERFORM 1 FROM audit.pending WHERE pending_id = NEW.pending_id;
        IF NOT FOUND THEN
            RETURN NULL;
        END IF;
        SELECT h.last_id, h.last_hash INTO chain_id, chain_hash FROM audit.head AS h FOR UPDATE;
        sealed_at := clock_timestamp();
        FOR p IN SELECT * FROM audit.pending ORDER BY pending_id LOOP
            chain_id := chain_id + 1;
            INSERT INTO audit.record
                (id, at, txid, actor_kind, actor_id, actor_name, db_role, table_name, op,
                 row_key, old_row, new_row, prev_hash, hash)
            VALUES (
                chain_id, sealed_at, p.txid, p.actor_kind, p.actor_id, p.actor_name, p.db_role,
                p.table_name, p.op, p.row_key, p.old_row, p.new_row, chain_hash,
                sha256(chain_hash || convert_to(audit.canonical_text(
                    chain_id, sealed_at, p.txid, p.actor_kind, p.actor_id, p.actor_name,
                    p.db_role, p.table_name, p.op, p.row_key, p.old_row, p.new_row
                ), 'UTF8'))
            )
            RETURNING hash INTO chain_hash;
        END LOOP;
        DELETE FROM audit.pending;
        UPDATE audit.head SET last_id = chain_id, last_hash = chain_hash;
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE CONSTRAINT TRIGGER seal AFTER INSERT ON audit.pending
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION audit.seal()
    """,
    """
    CREATE FUNCTION audit.refuse_change() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
    BEGIN
        RAISE EXCEPTION 'audit.% is append-only: % refused', TG_TABLE_NAME, TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END
    $$
    """,
    "CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON audit.record "
    "FOR EACH ROW EXECUTE FUNCTION audit.refuse_change()",
    "CREATE TRIGGER append_only_truncate BEFORE TRUNCATE ON audit.record "
    "FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_change()",
    "CREATE TRIGGER keep_head BEFORE DELETE ON audit.head "
    "FOR EACH ROW EXECUTE FUNCTION audit.refuse_change()",
    "CREATE TRIGGER keep_head_truncate BEFORE TRUNCATE ON audit.head "
    "FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_change()",
    # Nobody but the owner: no role gets a privilege here, whatever defaults said.
    "REVOKE ALL ON ALL TABLES IN SCHEMA audit FROM PUBLIC",
    "REVOKE UPDATE, DELETE, TRUNCATE ON audit.record FROM PUBLIC",
    "REVOKE ALL ON ALL FUNCTIONS IN SCHEMA audit FROM PUBLIC",
)

#: Triggers on the audited tables (one row trigger, one TRUNCATE trigger each).
CAPTURE = tuple(
    statement
    for table, (key, hidden) in AUDITED.items()
    for statement in (
        f"CREATE TRIGGER audit_capture AFTER INSERT OR UPDATE OR DELETE ON {table} "
        f"FOR EACH ROW EXECUTE FUNCTION audit.capture('{key}', '{hidden}')",
        f"CREATE TRIGGER audit_capture_truncate AFTER TRUNCATE ON {table} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION audit.capture('{key}', '{hidden}')",
    )
)

#: Each object by name (no CASCADE: an object someone else added stops the drop).
DOWNGRADE = (
    *(
        statement
        for table in reversed(AUDITED)
        for statement in (
            f"DROP TRIGGER audit_capture_truncate ON {table}",
            f"DROP TRIGGER audit_capture ON {table}",
        )
    ),
    "DROP TRIGGER keep_head_truncate ON audit.head",
    "DROP TRIGGER keep_head ON audit.head",
    "DROP TRIGGER append_only_truncate ON audit.record",
    "DROP TRIGGER append_only ON audit.record",
    "DROP FUNCTION audit.refuse_change()",
    "DROP TRIGGER seal ON audit.pending",
    "DROP FUNCTION audit.seal()",
    "DROP FUNCTION audit.bulk_load(regclass, jsonb)",
    "DROP FUNCTION audit.capture()",
    "DROP FUNCTION audit.owns(oid)",
    "DROP FUNCTION audit.actor_kind()",
    "DROP FUNCTION audit.canonical_text("
    "bigint, timestamptz, xid8, text, text, text, text, text, text, text, jsonb, jsonb)",
    "DROP TABLE audit.head",
    "DROP TABLE audit.pending",
    "DROP TABLE audit.record",
    "DROP SCHEMA audit",
)


def upgrade() -> None:
    for statement in (*UPGRADE, *CAPTURE):
        op.execute(statement)


def downgrade() -> None:
    for statement in DOWNGRADE:
        op.execute(statement)
