"""No phone number and no key in SQL text, the server log, pg_stat_statements or dbops' logs.

A database of its own in the test cluster with ``log_statement = 'all'`` (every statement and
its bound parameters go to the server log), migrated, then the phone is set, read, looked up and
rotated. Afterwards the statement texts of that database in pg_stat_statements, the part of the
server log written meanwhile, and every record dbops logged (DEBUG and up) are searched for
every form of the number and of the keys.
"""

from __future__ import annotations

import base64
import logging
import secrets
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from dbops.config import to_libpq_url
from dbops.crypto import Keyring, generate_key
from dbops.db import Database, EmbeddedCluster, open_database
from dbops.errors import InvalidInput
from dbops.ops.keys import rotate
from dbops.ops.migrate import upgrade
from dbops.services.users import UserService
from tests.fixtures.db import make_settings
from tests.services._helpers import FAST_HASHER, PASSWORD, SYSTEM

STATEMENTS_OF_DB = """
SELECT query FROM pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
"""

pytestmark = pytest.mark.slow


@pytest.fixture
def logged_db(empty_database: str, pg_cluster: EmbeddedCluster) -> Iterator[Database]:
    """A migrated database of its own whose every statement the server logs."""
    with psycopg.connect(to_libpq_url(empty_database), autocommit=True) as conn:
        row = conn.execute("SELECT current_database()").fetchone()
        assert row is not None
        name = sql.Identifier(row[0])
        conn.execute(sql.SQL("ALTER DATABASE {} SET log_statement = 'all'").format(name))
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    settings = make_settings(empty_database)
    upgrade(empty_database, settings)
    db = open_database(settings, empty_database)
    yield db
    db.close()


def forms_of(phone: str, *keys: bytes) -> list[str]:
    """Every spelling a leak could take: the number as typed and normalized, keys in 3 codings."""
    digits = phone.lstrip("+")
    out = [phone, digits, digits[1:], phone.encode().hex()]
    for key in keys:
        out += [base64.b64encode(key).decode(), key.hex(), key.hex().upper()]
    return out


def test_phone_and_keys_never_reach_sql_logs_or_statement_stats(
    logged_db: Database, pg_cluster: EmbeddedCluster, caplog: pytest.LogCaptureFixture
) -> None:
    v1, v2, blind = generate_key(), generate_key(), generate_key()
    number = "+1415" + "".join(secrets.choice("0123456789") for _ in range(7))
    typed = f"{number[:2]} ({number[2:5]}) {number[5:8]}-{number[8:]}"
    canary = f"canary-{uuid.uuid4().hex}"  # proves the log check sees bound parameters
    log_start = pg_cluster.logfile.stat().st_size

    with caplog.at_level(logging.DEBUG):
        users = UserService(logged_db, hasher=FAST_HASHER, keyring=Keyring({1: v1}, blind))
        user = users.create(
            SYSTEM, email="secret@example.com", password=PASSWORD, display_name="Secret"
        )
        users.set_phone(SYSTEM, user.id, typed)
        assert users.get_phone(SYSTEM, user.id) == number
        assert [u.id for u in users.find_by_phone(SYSTEM, number)] == [user.id]
        with pytest.raises(InvalidInput):
            users.set_phone(SYSTEM, user.id, number + "99999")  # too long: refused before SQL
        rotated = rotate(logged_db, Keyring({1: v1, 2: v2}, blind), batch_size=1)
        assert rotated.rotated == 1
        users_v2 = UserService(logged_db, keyring=Keyring({2: v2}, blind))
        assert users_v2.get_phone(SYSTEM, user.id) == number
        assert [u.id for u in users_v2.find_by_phone(SYSTEM, typed)] == [user.id]
        with logged_db.read() as conn:
            conn.execute("SELECT %s::text", (canary,))

    forms = forms_of(number, v1, v2, blind)

    with logged_db.read() as conn:
        texts = [row[0] for row in conn.execute(STATEMENTS_OF_DB).fetchall()]
    assert any("phone_blind_index" in t for t in texts), "the phone statements were tracked"
    for form in forms:
        assert not [t for t in texts if form in t], "a phone number or key in pg_stat_statements"

    with pg_cluster.logfile.open("rb") as handle:
        handle.seek(log_start)
        server_log = handle.read().decode("utf-8", "replace")
    assert canary in server_log, "log_statement=all is not in effect: the check would see nothing"
    assert "phone_blind_index" in server_log
    for form in forms:
        assert form not in server_log, "a phone number or key in the server log"

    ours = "\n".join(
        f"{r.name} {r.getMessage()}" for r in caplog.records if r.name.startswith("dbops")
    )
    assert "keys rotate" in ours, "dbops logged the rotation (the check looked at real records)"
    everything = caplog.text + "\n" + ours
    for form in forms:
        assert form not in everything, "a phone number or key in dbops' logs"
