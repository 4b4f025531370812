"""Encryption keys of the encrypted columns: rows per key version, rotation to the current key.

Rotation walks ``users`` in primary-key order in batches; each batch is one transaction that
locks its rows with ``FOR UPDATE SKIP LOCKED`` (a row a user is changing right now is skipped,
not waited for), decrypts each value with its own key version, encrypts it with the current
key and writes ciphertext and version back in one ``UPDATE ... FROM unnest(...)``. A batch
commits or not as a whole, so an interrupted run leaves every row readable, and a rerun only
finds the rows still on an old version. After the walk, rows skipped because they were locked
(or written meanwhile by a process holding an older keyring) are picked up by further passes.

Only ciphertext and key versions cross the wire (bound parameters); plain values live in this
process for the length of one batch and are never logged. The blind index is keyed separately
and is not rotated here (it would need every value re-indexed and lookups on two indexes during
the change).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from psycopg.rows import class_row

from dbops.crypto import Keyring, load_keyring
from dbops.db.engine import Database
from dbops.errors import DecryptionError, InvalidInput

__all__ = ["KeyStatus", "RotationResult", "VersionCount", "fill_phones", "key_status", "rotate"]

_log = logging.getLogger(__name__)

TABLE, COLUMN = "users", "phone"
#: Where encrypted phones live: the live table and the archive of old soft-deleted users
#: (migration 0005). Archived rows keep the AAD of ``users`` (archiving moves the ciphertext
#: verbatim, and a restored row must decrypt), and rotation re-encrypts them too, so retiring an
#: old key never strands an archived value.
RELATIONS = ("users", "archive.users")
#: Passes over the table after the first, for rows that were locked (skipped) during it.
MAX_EXTRA_PASSES = 5
_FIRST_ID = uuid.UUID(int=0)

COUNT_BY_VERSION_SQL = """
SELECT version, sum(rows)::bigint AS rows FROM (
    SELECT phone_key_version AS version, count(*) AS rows
    FROM users WHERE phone_key_version IS NOT NULL GROUP BY 1
    UNION ALL
    SELECT phone_key_version, count(*)
    FROM archive.users WHERE phone_key_version IS NOT NULL GROUP BY 1
) AS per_relation
GROUP BY version
ORDER BY version
"""
COUNT_OLD_SQL = """
SELECT (SELECT count(*) FROM users WHERE phone_key_version <> %(current)s)
     + (SELECT count(*) FROM archive.users WHERE phone_key_version <> %(current)s)
"""
#: Keyset on the primary key: each batch starts where the last one ended (no rescans).
SELECT_BATCH_SQL = """
SELECT id, phone_ciphertext, phone_key_version
FROM {relation}
WHERE id > %(after)s AND phone_key_version <> %(current)s
ORDER BY id
LIMIT %(limit)s
FOR UPDATE SKIP LOCKED
"""
UPDATE_BATCH_SQL = """
UPDATE {relation} AS u
SET phone_ciphertext = v.ciphertext, phone_key_version = %(version)s
FROM unnest(%(ids)s::uuid[], %(ciphertexts)s::bytea[]) AS v(id, ciphertext)
WHERE u.id = v.id
"""
SET_PHONES_SQL = """
UPDATE users AS u
SET phone_ciphertext = v.ciphertext, phone_key_version = %(version)s,
    phone_blind_index = v.blind_index
FROM unnest(%(ids)s::uuid[], %(ciphertexts)s::bytea[], %(blind_indexes)s::bytea[])
    AS v(id, ciphertext, blind_index)
WHERE u.id = v.id
"""


@dataclass(frozen=True)
class VersionCount:
    """Rows whose value is encrypted with one key version."""

    version: int
    rows: int


@dataclass(frozen=True)
class KeyStatus:
    """What ``dbops keys status`` shows: the keyring and the rows per key version."""

    current: int
    versions: tuple[int, ...]
    source: str
    counts: tuple[VersionCount, ...]

    @property
    def rows_on_old_versions(self) -> int:
        """Rows a rotation still has to re-encrypt."""
        return sum(c.rows for c in self.counts if c.version != self.current)

    @property
    def missing_versions(self) -> tuple[int, ...]:
        """Versions rows use that the keyring lacks (those rows cannot be read)."""
        return tuple(c.version for c in self.counts if c.version not in self.versions)


@dataclass(frozen=True)
class RotationResult:
    """The outcome of one :func:`rotate` run."""

    current: int
    rotated: int
    batches: int
    remaining: int
    seconds: float

    @property
    def rows_per_s(self) -> float:
        """Re-encrypted rows per second of the run."""
        return self.rotated / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class _Row:
    id: uuid.UUID
    phone_ciphertext: bytes
    phone_key_version: int


_ROW = class_row(_Row)
_COUNT = class_row(VersionCount)


def key_status(db: Database, keyring: Keyring | None = None) -> KeyStatus:
    """Rows per key version of ``users.phone``, with the keyring's versions (default: settings)."""
    keys = keyring or load_keyring(db.settings)
    with db.read() as conn, conn.cursor(row_factory=_COUNT) as cur:
        counts = tuple(cur.execute(COUNT_BY_VERSION_SQL).fetchall())
    return KeyStatus(
        current=keys.current, versions=keys.versions, source=keys.source, counts=counts
    )


def rotate(
    db: Database,
    keyring: Keyring | None = None,
    *,
    batch_size: int | None = None,
    on_batch: Callable[[int, int], None] | None = None,
) -> RotationResult:
    """Re-encrypt every ``users.phone`` not on the current key version; resumable.

    Args:
        db: the database.
        keyring: the keys (default: from ``db.settings``); it must hold every version in use.
        batch_size: rows per transaction (default: ``keys_rotate_batch_size``).
        on_batch: called after each committed batch with (rows in it, rows so far).

    Returns:
        How many rows were re-encrypted and how many are left on old versions (0 unless rows
        stayed locked through every pass, or an old-keyring process kept writing).

    Raises:
        DecryptionError: a value that does not decrypt (its batch is rolled back; the batches
            before it stay committed). The message names the row, never the value.
    """
    keys = keyring or load_keyring(db.settings)
    size = batch_size if batch_size is not None else db.settings.crypto.keys_rotate_batch_size
    if size < 1:
        raise InvalidInput("batch_size must be at least 1", field="batch_size")
    started = time.perf_counter()
    rotated = batches = 0
    remaining = 0
    for _ in range(1 + MAX_EXTRA_PASSES):
        for relation in RELATIONS:
            after = _FIRST_ID
            while True:
                done, last = _rotate_batch(db, keys, relation, after=after, limit=size)
                if not done:
                    break
                rotated += done
                batches += 1
                after = last
                _log.info("keys rotate: batch %d: %d rows (%d so far)", batches, done, rotated)
                if on_batch is not None:
                    on_batch(done, rotated)
        with db.read() as conn:
            row = conn.execute(COUNT_OLD_SQL, {"current": keys.current}).fetchone()
        remaining = int(row[0]) if row else 0
        if remaining == 0:
            break
        _log.info("keys rotate: %d rows were locked or changed meanwhile; another pass", remaining)
        time.sleep(0.05)
    seconds = time.perf_counter() - started
    _log.info("keys rotate: %d rows to v%d in %.2f s", rotated, keys.current, seconds)
    return RotationResult(
        current=keys.current,
        rotated=rotated,
        batches=batches,
        remaining=remaining,
        seconds=seconds,
    )


def fill_phones(
    db: Database,
    phones: Mapping[uuid.UUID, str],
    keyring: Keyring | None = None,
    *,
    batch_size: int = 5_000,
) -> int:
    """Set many users' phones at once (demo data, benchmarks); returns rows updated.

    Each number is normalized, encrypted and indexed in Python as ``UserService.set_phone``
    does, then written ``batch_size`` rows per ``UPDATE ... FROM unnest(...)`` (one round trip
    per batch, one transaction for all). Not for user input: no actor, no per-row checks.
    """
    from dbops.crypto import normalize_phone

    keys = keyring or load_keyring(db.settings)
    items = list(phones.items())
    updated = 0
    with db.connection() as conn:
        for start in range(0, len(items), batch_size):
            chunk = items[start : start + batch_size]
            ids, ciphertexts, indexes = [], [], []
            for user_id, phone in chunk:
                number = normalize_phone(phone)
                ids.append(user_id)
                ciphertexts.append(keys.encrypt(number, table=TABLE, column=COLUMN, row_id=user_id))
                indexes.append(keys.blind_index(number, table=TABLE, column=COLUMN))
            cur = conn.execute(
                SET_PHONES_SQL,
                {
                    "version": keys.current,
                    "ids": ids,
                    "ciphertexts": ciphertexts,
                    "blind_indexes": indexes,
                },
            )
            updated += cur.rowcount
    return updated


def _rotate_batch(
    db: Database, keys: Keyring, relation: str, *, after: uuid.UUID, limit: int
) -> tuple[int, uuid.UUID]:
    """One transaction: lock up to ``limit`` old rows after ``after``, re-encrypt, write back."""
    current = keys.current
    with db.connection() as conn:
        with conn.cursor(row_factory=_ROW) as cur:
            rows = cur.execute(
                SELECT_BATCH_SQL.format(relation=relation),
                {"after": after, "current": current, "limit": limit},
            ).fetchall()
        if not rows:
            return 0, after
        ids: list[uuid.UUID] = []
        ciphertexts: list[bytes] = []
        for row in rows:
            blob = bytes(row.phone_ciphertext)
            written = keys.version_of(blob, table=TABLE, column=COLUMN, row_id=row.id)
            if written != row.phone_key_version:
                raise DecryptionError(
                    f"cannot rotate {TABLE}.{COLUMN} of row {row.id}: the ciphertext is of key "
                    f"version {written} but phone_key_version says {row.phone_key_version}"
                )
            plain = keys.decrypt(blob, table=TABLE, column=COLUMN, row_id=row.id)
            ids.append(row.id)
            ciphertexts.append(keys.encrypt(plain, table=TABLE, column=COLUMN, row_id=row.id))
        conn.execute(
            UPDATE_BATCH_SQL.format(relation=relation),
            {"version": current, "ids": ids, "ciphertexts": ciphertexts},
        )
    return len(rows), rows[-1].id
