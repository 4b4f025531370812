"""Key status and rotation of users.phone against real PostgreSQL: complete, resumable, safe."""

from __future__ import annotations

import logging
import math
import time
import uuid
from dataclasses import replace

import psycopg
import pytest

from dbops.crypto import Keyring, generate_key
from dbops.db import Database, EmbeddedCluster, open_database
from dbops.errors import DecryptionError
from dbops.ops.keys import RotationResult, fill_phones, key_status, rotate
from dbops.services.users import UserService
from tests.fixtures.db import make_settings
from tests.services._helpers import INSERT_USER, SYSTEM

V1, V2, V3, BLIND = (generate_key() for _ in range(4))
N = 47
BATCH = 10
AT = {"table": "users", "column": "phone"}
PHONES_AND_VERSIONS = "SELECT id, phone_ciphertext, phone_key_version FROM users ORDER BY id"


class Interrupted(Exception):
    pass


@pytest.fixture
def phones(clean_db: Database) -> dict[uuid.UUID, str]:
    """``N`` users with a phone encrypted under key v1 (and one user without a phone)."""
    users = UserService(clean_db, keyring=Keyring({1: V1}, BLIND))
    out: dict[uuid.UUID, str] = {}
    ids: list[uuid.UUID] = []
    with clean_db.connection() as conn:
        for i in range(N + 1):
            row = conn.execute(INSERT_USER, {"email": f"k{i}@example.com", "name": f"K {i}"})
            ids.append(row.fetchone()[0])  # type: ignore[index]
    for i, user_id in enumerate(ids[:N]):
        out[user_id] = users.set_phone(SYSTEM, user_id, f"+1415555{i:04d}")
    return out


def stored(db: Database) -> list[tuple[uuid.UUID, bytes, int]]:
    with db.read() as conn:
        return [
            (r[0], bytes(r[1]), r[2])
            for r in conn.execute(PHONES_AND_VERSIONS).fetchall()
            if r[1] is not None
        ]


def assert_all_decrypt(db: Database, keyring: Keyring, phones: dict[uuid.UUID, str]) -> None:
    rows = stored(db)
    assert len(rows) == len(phones)
    for user_id, blob, version in rows:
        assert keyring.version_of(blob, row_id=user_id, **AT) == version
        assert keyring.decrypt(blob, row_id=user_id, **AT) == phones[user_id]


def test_rotation_moves_every_row_to_the_current_key(
    clean_db: Database, phones: dict[uuid.UUID, str]
) -> None:
    keyring = Keyring({1: V1, 2: V2}, BLIND)
    before = key_status(clean_db, keyring)
    assert (before.current, before.versions) == (2, (1, 2))
    assert [(c.version, c.rows) for c in before.counts] == [(1, N)]
    assert before.rows_on_old_versions == N

    seen: list[tuple[int, int]] = []
    result = rotate(clean_db, keyring, batch_size=BATCH, on_batch=lambda n, t: seen.append((n, t)))

    assert (result.rotated, result.remaining, result.current) == (N, 0, 2)
    assert result.batches == math.ceil(N / BATCH) == len(seen)
    assert seen[-1] == (N % BATCH, N)
    assert result.rows_per_s > 0
    after = key_status(clean_db, keyring)
    assert [(c.version, c.rows) for c in after.counts] == [(2, N)]
    assert after.rows_on_old_versions == 0
    # v1 can go: every value decrypts with the current key alone.
    assert_all_decrypt(clean_db, Keyring({2: V2}, BLIND), phones)
    # The blind index is not rotated: lookups still work.
    users = UserService(clean_db, keyring=Keyring({2: V2}, BLIND))
    some_id, some_phone = next(iter(phones.items()))
    assert [u.id for u in users.find_by_phone(SYSTEM, some_phone)] == [some_id]
    # Nothing left to do: a rerun touches nothing.
    assert rotate(clean_db, keyring, batch_size=BATCH).rotated == 0


def test_an_interrupted_rotation_resumes_and_completes(
    clean_db: Database, phones: dict[uuid.UUID, str]
) -> None:
    keyring = Keyring({1: V1, 2: V2}, BLIND)

    def stop_after_two(_n: int, total: int) -> None:
        if total >= 2 * BATCH:
            raise Interrupted

    with pytest.raises(Interrupted):
        rotate(clean_db, keyring, batch_size=BATCH, on_batch=stop_after_two)

    half = {c.version: c.rows for c in key_status(clean_db, keyring).counts}
    assert half == {1: N - 2 * BATCH, 2: 2 * BATCH}  # two whole batches committed, no more
    assert_all_decrypt(clean_db, keyring, phones)  # every row readable mid-way

    result = rotate(clean_db, keyring, batch_size=BATCH)
    assert (result.rotated, result.remaining) == (N - 2 * BATCH, 0)
    assert_all_decrypt(clean_db, Keyring({2: V2}, BLIND), phones)


def test_a_locked_row_is_skipped_not_waited_for_and_the_rerun_takes_it(
    clean_db: Database, phones: dict[uuid.UUID, str], pg_cluster: EmbeddedCluster
) -> None:
    keyring = Keyring({1: V1, 2: V2}, BLIND)
    busy = next(iter(phones))
    with psycopg.connect(pg_cluster.libpq_url()) as holder:
        holder.execute("SELECT 1 FROM users WHERE id = %s FOR UPDATE", (busy,))
        result = rotate(clean_db, keyring, batch_size=BATCH)
        assert (result.rotated, result.remaining) == (N - 1, 1)
        holder.rollback()
    result = rotate(clean_db, keyring, batch_size=BATCH)
    assert (result.rotated, result.remaining) == (1, 0)
    assert_all_decrypt(clean_db, Keyring({2: V2}, BLIND), phones)


def test_a_value_that_does_not_decrypt_stops_the_run_and_keeps_earlier_batches(
    clean_db: Database, phones: dict[uuid.UUID, str]
) -> None:
    keyring = Keyring({1: V1, 2: V2}, BLIND)
    ordered = sorted(phones)
    victim, source = ordered[-1], ordered[0]  # the last row in rotation order
    with clean_db.connection() as conn:  # a ciphertext copied from another row
        conn.execute(
            "UPDATE users SET phone_ciphertext = "
            "(SELECT phone_ciphertext FROM users WHERE id = %s) WHERE id = %s",
            (source, victim),
        )
    with pytest.raises(DecryptionError, match=f"row {victim}") as caught:
        rotate(clean_db, keyring, batch_size=BATCH)
    assert phones[source] not in str(caught.value)
    counts = {c.version: c.rows for c in key_status(clean_db, keyring).counts}
    committed = (N - 1) // BATCH * BATCH  # every batch before the victim's
    assert counts == {2: committed, 1: N - committed}


def test_a_version_missing_from_the_keyring_is_a_clear_error(
    clean_db: Database, phones: dict[uuid.UUID, str]
) -> None:
    keyring = Keyring({2: V2, 3: V3}, BLIND)
    status = key_status(clean_db, keyring)
    assert status.missing_versions == (1,)
    with pytest.raises(DecryptionError, match="key version 1 is not in the keyring"):
        rotate(clean_db, keyring, batch_size=BATCH)
    assert {c.version: c.rows for c in key_status(clean_db, keyring).counts} == {1: N}


def test_fill_phones_writes_what_the_service_reads(clean_db: Database) -> None:
    keyring = Keyring({4: V1}, BLIND)
    with clean_db.connection() as conn:
        ids = [
            conn.execute(INSERT_USER, {"email": f"f{i}@example.com", "name": "F"}).fetchone()[0]  # type: ignore[index]
            for i in range(3)
        ]
    phones = {user_id: f"+44 20 7946 09{i:02d}" for i, user_id in enumerate(ids)}
    assert fill_phones(clean_db, phones, keyring, batch_size=2) == 3
    users = UserService(clean_db, keyring=keyring)
    for i, user_id in enumerate(ids):
        assert users.get_phone(SYSTEM, user_id) == f"+4420794609{i:02d}"
        assert [u.id for u in users.find_by_phone(SYSTEM, phones[user_id])] == [user_id]
    assert [(c.version, c.rows) for c in key_status(clean_db, keyring).counts] == [(4, 3)]


def test_the_rotation_rate_is_rows_over_seconds() -> None:
    result = RotationResult(current=2, rotated=10, batches=1, remaining=0, seconds=4.0)
    assert result.rows_per_s == 2.5
    assert replace(result, seconds=0.0).rows_per_s == 0.0


def test_rotation_reports_its_own_duration_and_the_settings_batch_size(
    clean_db: Database, phones: dict[uuid.UUID, str], database_url: str
) -> None:
    keyring = Keyring({1: V1, 2: V2}, BLIND)
    settings = make_settings(database_url, keys_rotate_batch_size=7)
    with open_database(settings, database_url) as db:
        started = time.perf_counter()
        result = rotate(db, keyring)
        took = time.perf_counter() - started
    assert (result.rotated, result.batches) == (N, math.ceil(N / 7))
    assert 0 < result.seconds <= took


def test_a_row_locked_throughout_gets_the_first_pass_and_five_more(
    clean_db: Database,
    phones: dict[uuid.UUID, str],
    pg_cluster: EmbeddedCluster,
    caplog: pytest.LogCaptureFixture,
) -> None:
    keyring = Keyring({1: V1, 2: V2}, BLIND)
    with psycopg.connect(pg_cluster.libpq_url()) as holder:
        holder.execute("SELECT 1 FROM users WHERE id = %s FOR UPDATE", (next(iter(phones)),))
        with caplog.at_level(logging.INFO, logger="dbops.ops.keys"):
            started = time.perf_counter()
            result = rotate(clean_db, keyring, batch_size=BATCH)
            took = time.perf_counter() - started
        holder.rollback()
    assert (result.rotated, result.remaining) == (N - 1, 1)
    again = [r for r in caplog.records if "another pass" in r.getMessage()]
    assert len(again) == 1 + 5
    assert took >= 6 * 0.05  # a short pause between passes, not a busy loop
