"""`Dsn`: one URL validated once, in libpq, SQLAlchemy and redacted form; no password leaks."""

from __future__ import annotations

import pytest

from dbops.db import Dsn, open_database
from dbops.errors import ConfigError
from tests.fixtures.db import make_settings


def test_the_three_forms_of_one_url() -> None:
    dsn = Dsn.parse("postgres://app:hunter2@db.example:6432/app?sslmode=require")
    assert dsn.libpq == "postgresql://app:hunter2@db.example:6432/app?sslmode=require"
    assert dsn.sqlalchemy == "postgresql+psycopg://app:hunter2@db.example:6432/app?sslmode=require"
    assert dsn.redacted == "postgresql://app:***@db.example:6432/app?sslmode=require"


def test_sqlalchemy_style_input_and_socket_urls() -> None:
    dsn = Dsn.parse("postgresql+psycopg://postgres@/db?host=/tmp/run&port=5433")
    assert dsn.libpq == "postgresql://postgres@/db?host=/tmp/run&port=5433"
    assert dsn.sqlalchemy == "postgresql+psycopg://postgres@/db?host=/tmp/run&port=5433"
    assert Dsn.parse("postgresql://a@h1:5432,h2/db").libpq == "postgresql://a@h1:5432,h2/db"


def test_repr_and_str_show_only_the_redacted_form() -> None:
    dsn = Dsn.parse("postgresql://app:hunter2@db/app")
    assert "hunter2" not in repr(dsn)
    assert "hunter2" not in str(dsn)
    assert str(dsn) == "postgresql://app:***@db/app"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        # libpq's own message quotes the password: "invalid percent-encoded token: "p%zzSECRET""
        ("postgresql://u:p%zzSECRET@host/db", "invalid percent-encoded token"),
        # ... or the whole URL, password included.
        ("postgresql://u:SECRET@[::1/db", "IPv6 host address"),
        ("postgresql://u:SECRET@host/db?nosuchoption=1", "invalid URI query parameter"),
        ('postgresql://u:SE"CR ET@host/db', "unexpected spaces found"),
        ('postgresql://u:x:"SECRET%zz@host/db', "invalid percent-encoded token"),
        ("postgresql://u:SECRET@host/db?sslmode=bogus", "invalid sslmode"),
        ("postgresql://u:SECRET@host:99999/db", "invalid port"),
        ("postgresql://u:SECRET@host:0/db", "invalid port"),
        ("postgresql://u:SECRET@host:abc/db", "invalid port"),
        ("postgresql://u:SECRET@h1:5432,h2:70000/db", "invalid port"),
        ("postgresql://u:SECRET@host/db?connect_timeout=soon", "invalid connect_timeout"),
        ("postgresql://u:SECRET@host/db?target_session_attrs=fast", "invalid target_session"),
        ("mysql://u:SECRET@host/db", "must be a postgresql:// URL (a mysql:// URL)"),
        ("u:SECRET@host/db", "must be a postgresql:// URL (not)"),
    ],
)
def test_invalid_urls_are_config_errors_that_never_quote_the_url(url: str, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Dsn.parse(url)
    message = str(caught.value)
    assert message.startswith("DATABASE_URL")
    assert reason in message
    assert "SECRET" not in message
    assert "u:" not in message
    assert caught.value.exit_code == 2
    # The driver error (which quotes the URL) is not chained for a --verbose traceback to show.
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None or caught.value.__suppress_context__


def test_a_bad_sslmode_is_caught_before_any_connection_attempt() -> None:
    settings = make_settings("postgresql://u:SECRET@127.0.0.1:1/db?sslmode=bogus")
    with pytest.raises(ConfigError, match="invalid sslmode"):
        open_database(settings)


def test_open_database_holds_one_dsn(migrated: str) -> None:
    with open_database(make_settings(migrated), migrated) as db:
        assert db.dsn == Dsn.parse(migrated)
        assert db.url == db.dsn.sqlalchemy
        assert db.safe_url == db.dsn.redacted
        with db.read() as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
