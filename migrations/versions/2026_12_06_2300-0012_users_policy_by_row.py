"""A user row's visibility decided by the row, not by the actor's whole world; exact e-mails.

0008's read policy on ``users`` compared every row with ``rls_actor_user_ids()``: the actor and
all their teammates as one array, built for each statement that reads ``users``. Its cost grows
with the actor's teams: for a member of a 3,712-member team every statement that touches
``users`` (an e-mail lookup, the role check's join, a team read's membership test) spent
2-9 ms building and scanning it (bench/bench_rls.py, docs/benchmarks.md). Now:

- ``users.tenant_select``: the row is the actor, or a membership of that user exists in one of
  the actor's teams: ``EXISTS`` over ``team_members`` keyed by the row's own id
  (``ix_team_members_user_id``), with the actor's teams (``rls_actor_team_ids()``, a few ids)
  computed once per statement. The cost per row is one index probe, whatever the team sizes.
  The same rule as before (the actor and everyone sharing one of their teams, soft-deleted
  teams included); ``rls_actor_user_ids()`` is dropped.
- A per-row policy cannot drive a scan, so a lookup by e-mail needs an index its own condition
  may use under RLS: ``lower(email) = $1`` may not (``lower()`` is not LEAKPROOF, so the planner
  evaluates it only after the policy, on every row). E-mails are stored lowercase (every
  writer normalizes them: ``dbops.services.schemas.normalize_email``); the CHECK
  ``ck_users_email_lowercase`` makes that a rule, and ``uq_users_email_live`` becomes a plain
  unique index on ``email`` among live users, which ``email = $1`` (``texteq``: LEAKPROOF) uses
  under RLS. Uniqueness stays case-insensitive: with every e-mail lowercase, ``email`` and
  ``lower(email)`` are the same key.

``users`` exists and takes writes, so the schema steps run first, in one autocommit block, each
rerun-safe (docs/decisions/0003-migration-safety.md): lowercase any e-mail that is not (a row
each, by the primary key; none when every writer went through dbops), the CHECK added ``NOT
VALID`` (no scan under the ``ACCESS EXCLUSIVE`` lock) and validated in its own statement (a scan
under ``SHARE UPDATE EXCLUSIVE``: writes go on), the new index built ``CONCURRENTLY`` under a
temporary name, the old one dropped ``CONCURRENTLY``, the new one renamed (``SHARE UPDATE
EXCLUSIVE``). Then the policy swap, a catalog change in the revision's transaction. The
downgrade puts the expression index, 0008's policy and its function back.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 23:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from dbops.ops.migrate import create_index_concurrently, drop_index_concurrently

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Rules squawk may skip for this revision's SQL (scripts/lint_migrations.py), with the reason.
SQUAWK_IGNORE = {
    "prefer-robust-stmts": (
        "create_index_concurrently is rerun-safe without IF NOT EXISTS (it keeps a valid index "
        "and drops an INVALID one); the constraint is added by a DO block only when missing; "
        "the rename runs only while the temporary name exists (a DO block)"
    ),
    "require-statement-timeout": (
        "a statement_timeout would abort a CONCURRENTLY build or the validation scan on a big "
        "table halfway; waits are bounded by the run's lock_timeout (decision 0003)"
    ),
    "ban-drop-function": (
        "rls_actor_user_ids() served only the users policy this revision replaces in the same "
        "transaction: a policy's helper, not an interface of clients (decision 0007)"
    ),
}

INDEX = "uq_users_email_live"
BUILDING = "uq_users_email_live_building"
CONSTRAINT = "ck_users_email_lowercase"

#: One row at a time by primary key: no long lock on the table, and none to do normally.
LOWERCASE_EMAILS = """
DO $$
DECLARE
    target uuid;
BEGIN
    FOR target IN SELECT id FROM users WHERE email <> lower(email) LOOP
        UPDATE users SET email = lower(email) WHERE id = target;
        COMMIT;
    END LOOP;
END
$$
"""
ADD_CONSTRAINT = f"""
DO $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM pg_constraint WHERE conname = '{CONSTRAINT}' AND conrelid = 'users'::regclass
    ) THEN
        ALTER TABLE users ADD CONSTRAINT {CONSTRAINT} CHECK (email = lower(email)) NOT VALID;
    END IF;
END
$$
"""
VALIDATE_CONSTRAINT = f"ALTER TABLE users VALIDATE CONSTRAINT {CONSTRAINT}"
DROP_CONSTRAINT = f"ALTER TABLE users DROP CONSTRAINT IF EXISTS {CONSTRAINT}"


#: The temporary index gets its final name once the old one is gone (rerun-safe).
RENAME_BUILT = f"""
DO $$
BEGIN
    IF to_regclass('public.{BUILDING}') IS NOT NULL THEN
        ALTER INDEX {BUILDING} RENAME TO {INDEX};
    END IF;
END
$$
"""


ACTOR_ID = "NULLIF(current_setting('app.actor_id', true), '')::uuid"
MY_TEAMS = "(SELECT rls_actor_team_ids())::uuid[]"

#: The actor, or a user with a membership in one of the actor's teams (one index probe a row).
NEW_POLICY = f"""
CREATE POLICY tenant_select ON users AS PERMISSIVE FOR SELECT TO PUBLIC
USING (
    id = {ACTOR_ID}
    OR EXISTS (
        SELECT 1 FROM public.team_members AS m
        WHERE m.user_id = users.id AND m.team_id = ANY ({MY_TEAMS})
    )
)
"""
OLD_POLICY = """
CREATE POLICY tenant_select ON users AS PERMISSIVE FOR SELECT TO PUBLIC
USING (id = ANY ((SELECT rls_actor_user_ids())::uuid[]))
"""
DROP_POLICY = "DROP POLICY tenant_select ON users"

#: 0008's teammates function, for the downgrade: byte for byte 0008's text (the downgrade must
#: give back the very schema 0011 had: tests/migrations' stairway compares pg_dump output).
OLD_FUNCTION = (
    "\n"
    "    CREATE FUNCTION rls_actor_user_ids() RETURNS uuid[]\n"
    "    LANGUAGE plpgsql STABLE SECURITY DEFINER\n"
    "    SET search_path = pg_catalog, public\n"
    "    AS $$\n"
    "    \n"
    "    DECLARE\n"
    "      caller text := coalesce(current_setting('app.actor_kind', true), '');\n"
    "      found uuid[];\n"
    "    BEGIN\n"
    "      PERFORM set_config('app.actor_kind', 'system', true);\n"
    "      \n"
    "      SELECT array_agg(DISTINCT other.user_id) || NULLIF(current_setting('app.actor_id', true), '')::uuid\n"  # noqa: E501
    "      FROM public.team_members AS mine\n"
    "      JOIN public.team_members AS other ON other.team_id = mine.team_id\n"
    "      WHERE mine.user_id = NULLIF(current_setting('app.actor_id', true), '')::uuid\n"
    " INTO found;\n"
    "      PERFORM set_config('app.actor_kind', caller, true);\n"
    "      RETURN coalesce(found, '{}');\n"
    "    END\n"
    "\n"
    "    $$\n"
    "    "
)
OLD_FUNCTION_COMMENT = (
    "COMMENT ON FUNCTION rls_actor_user_ids() IS "
    "'dbops RLS: app.actor_id and the users sharing a team with it (decision 0007)'"
)


def _swap_index(columns: list[str | sa.TextClause]) -> None:
    create_index_concurrently(
        BUILDING,
        "users",
        columns,
        unique=True,
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    drop_index_concurrently(INDEX, "users")
    op.execute(RENAME_BUILT)


def upgrade() -> None:
    with op.get_context().autocommit_block():
        op.execute(LOWERCASE_EMAILS)
        op.execute(ADD_CONSTRAINT)
        op.execute(VALIDATE_CONSTRAINT)
        _swap_index(["email"])
    op.execute(DROP_POLICY)
    op.execute(NEW_POLICY)
    op.execute("DROP FUNCTION rls_actor_user_ids()")


def downgrade() -> None:
    op.execute(OLD_FUNCTION)
    op.execute(OLD_FUNCTION_COMMENT)
    op.execute(DROP_POLICY)
    op.execute(OLD_POLICY)
    with op.get_context().autocommit_block():
        _swap_index([sa.text("lower(email)")])
        op.execute(DROP_CONSTRAINT)
