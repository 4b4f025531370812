"""Encrypted phone number on users: ciphertext, key version and blind index.

The value is encrypted in the application (``dbops.crypto``: AES-256-GCM bound to the row, a
versioned key); the database stores ``phone_ciphertext``, the ``phone_key_version`` that made it
(so ``dbops keys rotate`` finds old rows without decrypting) and ``phone_blind_index`` (HMAC of
the normalized number) for equality lookups. A CHECK keeps the three all set or all null.

``users`` exists and takes writes, so everything runs in one autocommit block, first in the
revision (docs/decisions/0003-migration-safety.md), each step rerun-safe: the columns are added
with ``IF NOT EXISTS`` (nullable, no default: a catalog change only), the CHECK is added
``NOT VALID`` (no scan under the ``ACCESS EXCLUSIVE`` lock) and validated in its own statement
(a scan under ``SHARE UPDATE EXCLUSIVE``, writes go on), and the index is built
``CONCURRENTLY``. The downgrade drops the index concurrently first, then the constraint and the
columns together with the version stamp.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26 14:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from dbops.ops.migrate import create_index_concurrently, drop_index_concurrently

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Rules squawk may skip for this revision's SQL (scripts/lint_migrations.py), with the reason.
SQUAWK_IGNORE = {
    "prefer-robust-stmts": (
        "create_index_concurrently is rerun-safe without IF NOT EXISTS: online it keeps a valid "
        "index and drops an INVALID one (pg_index), offline it drops the name first; the "
        "constraint is added by a DO block only when missing"
    ),
    "require-statement-timeout": (
        "a statement_timeout would abort a CONCURRENTLY build or the validation scan on a big "
        "table halfway; waits are bounded by the run's lock_timeout (decision 0003)"
    ),
    "prefer-bigint-over-smallint": (
        "phone_key_version holds a key version (a handful over the life of the system, at most "
        "32767 by dbops.crypto), not an identifier that grows with the rows"
    ),
}

CONSTRAINT = "ck_users_phone_all_or_none"
INDEX = "ix_users_phone_blind_index"

ADD_COLUMNS = """
ALTER TABLE users
    ADD COLUMN IF NOT EXISTS phone_ciphertext bytea,
    ADD COLUMN IF NOT EXISTS phone_key_version smallint,
    ADD COLUMN IF NOT EXISTS phone_blind_index bytea
"""
#: NOT VALID: taking the constraint costs no scan under the table's ACCESS EXCLUSIVE lock.
ADD_CONSTRAINT = """
DO $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM pg_constraint
        WHERE conname = 'ck_users_phone_all_or_none' AND conrelid = 'users'::regclass
    ) THEN
        ALTER TABLE users ADD CONSTRAINT ck_users_phone_all_or_none CHECK (
            (phone_ciphertext IS NULL) = (phone_key_version IS NULL)
            AND (phone_key_version IS NULL) = (phone_blind_index IS NULL)
        ) NOT VALID;
    END IF;
END
$$
"""
#: The archive of old soft-deleted users (0005) keeps their phone as it was: same ciphertext,
#: same AAD (``users``), so a restored user decrypts and rotation covers archived rows too.
ADD_ARCHIVE_COLUMNS = """
ALTER TABLE archive.users
    ADD COLUMN IF NOT EXISTS phone_ciphertext bytea,
    ADD COLUMN IF NOT EXISTS phone_key_version smallint,
    ADD COLUMN IF NOT EXISTS phone_blind_index bytea
"""
DROP_ARCHIVE_COLUMNS = """
ALTER TABLE archive.users
    DROP COLUMN IF EXISTS phone_blind_index,
    DROP COLUMN IF EXISTS phone_key_version,
    DROP COLUMN IF EXISTS phone_ciphertext
"""
VALIDATE_CONSTRAINT = "ALTER TABLE users VALIDATE CONSTRAINT ck_users_phone_all_or_none"
DROP_COLUMNS = """
ALTER TABLE users
    DROP CONSTRAINT IF EXISTS ck_users_phone_all_or_none,
    DROP COLUMN IF EXISTS phone_blind_index,
    DROP COLUMN IF EXISTS phone_key_version,
    DROP COLUMN IF EXISTS phone_ciphertext
"""


def upgrade() -> None:
    with op.get_context().autocommit_block():
        op.execute(ADD_COLUMNS)
        op.execute(ADD_ARCHIVE_COLUMNS)
        op.execute(ADD_CONSTRAINT)
        op.execute(VALIDATE_CONSTRAINT)
        create_index_concurrently(
            INDEX,
            "users",
            ["phone_blind_index"],
            postgresql_where=sa.text("phone_blind_index IS NOT NULL"),
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        drop_index_concurrently(INDEX, "users")
    op.execute(DROP_ARCHIVE_COLUMNS)
    op.execute(DROP_COLUMNS)
