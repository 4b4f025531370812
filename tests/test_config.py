"""Settings from the environment and `.env`, their defaults and validation, DSN redaction."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from dbops.config import (
    Settings,
    default_home,
    load_settings,
    redact_dsn,
    to_libpq_url,
    to_sqlalchemy_url,
)
from dbops.db import connection_kwargs

SECRET = "s3cr3t-Pa55"


def _settings(**overrides: Any) -> Settings:
    """Settings from the (test-controlled) environment only, never a `.env` of the checkout."""
    return Settings(_env_file=None, **overrides)


# ------------------------------------------------------------------- sources
def test_database_url_from_the_conventional_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://app:pw@db.internal:5433/app")
    settings = _settings()
    assert settings.database_url is not None
    assert settings.database_url.get_secret_value() == "postgresql://app:pw@db.internal:5433/app"
    assert settings.embedded is False


def test_database_url_from_the_prefixed_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DBOPS_DATABASE_URL", "postgresql://other@h/db")
    settings = _settings()
    assert settings.database_url is not None
    assert settings.database_url.get_secret_value() == "postgresql://other@h/db"


def test_database_url_wins_over_the_prefixed_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://first@h/db")
    monkeypatch.setenv("DBOPS_DATABASE_URL", "postgresql://second@h/db")
    settings = _settings()
    assert settings.database_url is not None
    assert settings.database_url.get_secret_value() == "postgresql://first@h/db"


@pytest.mark.parametrize("value", ["", "   "])
def test_empty_database_url_means_embedded(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("DATABASE_URL", value)
    settings = _settings()
    assert settings.database_url is None
    assert settings.embedded is True


def test_prefixed_numbers_and_flags_are_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DBOPS_POOL_MAX_SIZE", "7")
    monkeypatch.setenv("DBOPS_POOL_TIMEOUT_S", "0.5")
    monkeypatch.setenv("DBOPS_PREPARED_STATEMENTS", "false")
    monkeypatch.setenv("DBOPS_HOME", "/srv/dbops")
    settings = _settings()
    assert settings.pool_max_size == 7
    assert settings.pool_timeout_s == 0.5
    assert settings.prepared_statements is False
    assert settings.home == Path("/srv/dbops")


def test_dotenv_in_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text(
        f"DATABASE_URL=postgresql://app:{SECRET}@h/app\n"
        "DBOPS_POOL_MAX_SIZE=9\n"
        "DBOPS_APPLICATION_NAME=from-dotenv\n"
        "UNRELATED=ignored\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DBOPS_APPLICATION_NAME", "from-env")  # the environment wins over .env
    settings = Settings()
    assert settings.database_url is not None
    assert settings.database_url.get_secret_value() == f"postgresql://app:{SECRET}@h/app"
    assert settings.pool_max_size == 9
    assert settings.application_name == "from-env"


def test_load_settings_reads_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    load_settings.cache_clear()
    try:
        monkeypatch.setenv("DBOPS_POOL_MAX_SIZE", "3")
        first = load_settings()
        monkeypatch.setenv("DBOPS_POOL_MAX_SIZE", "4")
        assert load_settings() is first
        assert first.pool_max_size == 3
    finally:
        load_settings.cache_clear()


# ------------------------------------------------------------------ defaults
def test_defaults_are_the_seed_pool_numbers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env here
    settings = Settings()
    assert settings.pool_max_size == 20
    assert settings.pool_max_idle_s == 30.0
    assert settings.pool_timeout_s == 2.0
    assert settings.pool_pre_ping is True
    assert settings.prepared_statements is True
    assert settings.database_url is None
    assert settings.embedded is True
    assert settings.home == default_home(tmp_path)
    assert (settings.statement_timeout_ms, settings.lock_timeout_ms) == (30_000, 5_000)
    assert settings.idle_in_transaction_timeout_ms == 60_000
    assert settings.application_name == "dbops"


# ---------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DBOPS_POOL_MAX_SIZE", "0"),
        ("DBOPS_POOL_MAX_SIZE", "many"),
        ("DBOPS_POOL_MIN_SIZE", "-1"),
        ("DBOPS_POOL_TIMEOUT_S", "0"),
        ("DBOPS_POOL_MAX_IDLE_S", "-5"),
        ("DBOPS_STATEMENT_TIMEOUT_MS", "-1"),
        ("DBOPS_PREPARE_THRESHOLD", "1.5"),
        ("DBOPS_PREPARED_STATEMENTS", "maybe"),
        ("DBOPS_APPLICATION_NAME", "caf\u00e9"),
        ("DBOPS_APPLICATION_NAME", "x" * 64),
        ("DBOPS_CONNECT_TIMEOUT_S", "0"),
    ],
)
def test_invalid_values_are_rejected(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as info:
        _settings()
    assert name.removeprefix("DBOPS_").lower() in str(info.value).lower()


def test_validation_error_does_not_echo_the_url_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_URL", f"postgresql://u:{SECRET}@h/db")
    monkeypatch.setenv("DBOPS_POOL_MAX_SIZE", "0")
    with pytest.raises(ValidationError) as info:
        _settings()
    assert SECRET not in str(info.value)


def test_settings_are_frozen() -> None:
    settings = _settings()
    with pytest.raises(ValidationError):
        settings.pool_max_size = 5  # type: ignore[misc]


# ---------------------------------------------------------------- redaction
@pytest.mark.parametrize(
    ("dsn", "expected"),
    [
        ("postgresql://u:pw@h/db", "postgresql://u:***@h/db"),
        (
            "postgresql+psycopg://u:p%40ss@h:5/db?sslmode=require",
            "postgresql+psycopg://u:***@h:5/db?sslmode=require",
        ),
        ("postgres://u:pw@h:5432/db", "postgres://u:***@h:5432/db"),
        ("postgresql://u@h/db?password=x", "postgresql://u@h/db?password=***"),
        pytest.param(
            "postgresql://h/db?user=u&password=x&sslmode=require",
            "postgresql://h/db?user=u&password=***&sslmode=require",
            marks=(),
        ),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        ("postgresql://h/db", "postgresql://h/db"),
        ("host=h password='a b' user=u", "host=h password=*** user=u"),
        ("host=h password=pw user=u", "host=h password=*** user=u"),
        ("host=h user=u", "host=h user=u"),
    ],
)
def test_redact_dsn(dsn: str, expected: str) -> None:
    assert redact_dsn(dsn) == expected


@pytest.mark.parametrize(
    "dsn",
    [
        f"postgresql://u:{SECRET}@h/db",
        f"postgresql+psycopg://app_user:{SECRET}@db.example.com:6432/app?sslmode=verify-full",
        f"postgresql://u@h/db?sslmode=require&password={SECRET}",
        f"host=h port=5 password={SECRET} dbname=app",
        f"host=h password = '{SECRET} with spaces' dbname=app",
        f"host=h PASSWORD={SECRET}",
        f"POSTGRESQL://U:{SECRET}@H/DB",
        # Not percent-encoded, as people paste them: still never shown.
        pytest.param(f"postgresql://u:{SECRET}/x@h/db", marks=()),
        pytest.param(f"postgresql://u:{SECRET}?x@h/db", marks=()),
        pytest.param(f"postgresql://u:{SECRET}#x@h/db", marks=()),
        pytest.param(f"postgresql://u:x@{SECRET}@h/db", marks=()),
    ],
)
def test_redacted_dsn_never_contains_the_password(dsn: str) -> None:
    redacted = redact_dsn(dsn)
    assert SECRET not in redacted
    assert "***" in redacted


def test_settings_repr_and_str_hide_the_password() -> None:
    settings = _settings(database_url=f"postgresql://u:{SECRET}@h/db")
    for shown in (
        repr(settings),
        str(settings),
        settings.model_dump_json(),
        str(settings.model_dump()),
    ):
        assert SECRET not in shown
    assert settings.database_url is not None
    assert settings.database_url.get_secret_value().endswith(f"{SECRET}@h/db")


# ---------------------------------------------------------- derived values
def test_connection_options_carry_the_session_timeouts() -> None:
    assert _settings().connection_options() == (
        "-c role=none -c row_security=on "
        "-c statement_timeout=30000 -c lock_timeout=5000 "
        "-c idle_in_transaction_session_timeout=60000 -c TimeZone=UTC"
    )
    custom = _settings(
        statement_timeout_ms=1234, lock_timeout_ms=0, idle_in_transaction_timeout_ms=7
    )
    assert custom.connection_options().split() == [
        "-c",
        "role=none",
        "-c",
        "row_security=on",
        "-c",
        "statement_timeout=1234",
        "-c",
        "lock_timeout=0",
        "-c",
        "idle_in_transaction_session_timeout=7",
        "-c",
        "TimeZone=UTC",
    ]


def test_connection_kwargs_from_settings() -> None:
    kwargs = connection_kwargs(_settings(application_name="worker", connect_timeout_s=3))
    assert kwargs == {
        "application_name": "worker",
        "connect_timeout": 3,
        "options": _settings().connection_options(),
        "prepare_threshold": 2,
    }
    assert connection_kwargs(_settings(prepared_statements=False))["prepare_threshold"] is None


@pytest.mark.parametrize(
    ("url", "libpq", "sqlalchemy"),
    [
        ("postgres://u@h/db", "postgresql://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgresql://u@h/db", "postgresql://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgresql+psycopg://u@h/db", "postgresql://u@h/db", "postgresql+psycopg://u@h/db"),
    ],
)
def test_url_dialect_conversions(url: str, libpq: str, sqlalchemy: str) -> None:
    assert to_libpq_url(url) == libpq
    assert to_sqlalchemy_url(url) == sqlalchemy


# ------------------------------------------------------------ secrets from *_FILE
FILE_URL = f"postgresql://app:{SECRET}@db.internal:5433/app"


def _secret_file(tmp_path: Path, content: str, name: str = "secret") -> Path:
    path = tmp_path / name
    path.write_text(content)
    return path


@pytest.mark.parametrize("variable", ["DATABASE_URL_FILE", "DBOPS_DATABASE_URL_FILE"])
def test_database_url_from_a_file(
    variable: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, str(_secret_file(tmp_path, f"  {FILE_URL}\n\n")))
    settings = _settings()
    assert settings.database_url is not None
    assert settings.database_url.get_secret_value() == FILE_URL
    assert settings.embedded is False
    assert SECRET not in repr(settings)


def test_dashboard_database_url_from_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "DBOPS_DASHBOARD_DATABASE_URL_FILE", str(_secret_file(tmp_path, FILE_URL + "\n"))
    )
    settings = _settings()
    assert settings.dashboard_database_url is not None
    assert settings.dashboard_database_url.get_secret_value() == FILE_URL
    assert settings.database_url is None


def test_every_secret_setting_accepts_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Any SecretStr field, present or future, can be read from ``DBOPS_<NAME>_FILE``
    (through its own ``<name>_file`` setting when it has one)."""
    from pydantic import SecretStr

    from dbops.config import SecretFilesSource

    secret_fields = [
        name
        for name, field in Settings.model_fields.items()
        if SecretStr in (field.annotation, *getattr(field.annotation, "__args__", ()))
        and f"{name}_file" not in Settings.model_fields  # those read their own file setting
    ]
    assert {"database_url", "dashboard_database_url"} <= set(secret_fields)
    source = SecretFilesSource(Settings)
    for name in secret_fields:
        monkeypatch.setenv(f"DBOPS_{name.upper()}_FILE", str(_secret_file(tmp_path, name, name)))
    values = source()
    assert sorted(values.values()) == sorted(secret_fields)


def test_a_missing_secret_file_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dbops.config import SecretFileError
    from dbops.errors import ConfigError, translate_exception

    missing = tmp_path / "nope"
    monkeypatch.setenv("DATABASE_URL_FILE", str(missing))
    with pytest.raises(SecretFileError) as info:
        _settings()
    message = str(info.value)
    assert message == f"DATABASE_URL_FILE: cannot read {missing} (No such file or directory)"
    translated = translate_exception(info.value)
    assert isinstance(translated, ConfigError)
    assert translated.exit_code == 2


def test_an_unreadable_secret_file_does_not_leak_its_content(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dbops.config import SecretFileError

    binary = _secret_file(tmp_path, "")
    binary.write_bytes(SECRET.encode() + b"\xff\xfe")  # not UTF-8
    monkeypatch.setenv("DBOPS_DASHBOARD_DATABASE_URL_FILE", str(binary))
    with pytest.raises(
        SecretFileError, match="DBOPS_DASHBOARD_DATABASE_URL_FILE: cannot read"
    ) as info:
        _settings()
    assert SECRET not in str(info.value)
    monkeypatch.setenv("DBOPS_DASHBOARD_DATABASE_URL_FILE", str(tmp_path))  # a directory
    with pytest.raises(SecretFileError, match="Is a directory"):
        _settings()


def test_a_variable_and_its_file_together_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dbops.config import SecretFileError

    monkeypatch.setenv("DATABASE_URL", "postgresql://a@h/d")
    monkeypatch.setenv("DATABASE_URL_FILE", str(_secret_file(tmp_path, FILE_URL)))
    with pytest.raises(SecretFileError, match="DATABASE_URL and DATABASE_URL_FILE are both set"):
        _settings()


def test_a_secret_file_beats_dotenv_and_loses_to_arguments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("DATABASE_URL=postgresql://from-dotenv@h/d\n")
    monkeypatch.setenv("DATABASE_URL_FILE", str(_secret_file(tmp_path, FILE_URL)))
    from_file = Settings(_env_file=env_file)
    assert from_file.database_url is not None
    assert from_file.database_url.get_secret_value() == FILE_URL
    explicit = Settings(_env_file=env_file, database_url="postgresql://explicit@h/d")
    assert explicit.database_url is not None
    assert explicit.database_url.get_secret_value() == "postgresql://explicit@h/d"


def test_a_secret_with_its_own_file_setting_is_left_to_that_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DBOPS_ENCRYPTION_KEYS_FILE is the `encryption_keys_file` setting, not a `_FILE` secret."""
    keys = tmp_path / "enc.keys"
    keys.write_text("v1:AAAA\n")
    monkeypatch.setenv("DBOPS_ENCRYPTION_KEYS_FILE", str(keys))
    settings = Settings(_env_file=None)
    assert settings.encryption_keys_file == keys
    assert settings.encryption_keys is None


def test_home_is_the_nearest_dbops_folder_like_git(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From any folder of a project, the project's .dbops; never a new one in the subfolder."""
    project = tmp_path / "project"
    (project / ".dbops").mkdir(parents=True)
    (project / "notebooks" / "deep").mkdir(parents=True)
    assert default_home(project / "notebooks") == project / ".dbops"
    assert default_home(project / "notebooks" / "deep") == project / ".dbops"
    assert default_home(project) == project / ".dbops"
    # nothing above: here, where `dbops up` creates it (never a guess outside the project)
    assert default_home(tmp_path / "x") == tmp_path / "x" / ".dbops"
    # Settings use it when DBOPS_HOME is unset, and DBOPS_HOME wins when set
    monkeypatch.chdir(project / "notebooks")
    assert Settings(_env_file=None).home == project / ".dbops"
    monkeypatch.setenv("DBOPS_HOME", str(tmp_path / "explicit"))
    assert Settings(_env_file=None).home == tmp_path / "explicit"


def test_the_monitor_section_reads_the_same_environment_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``Settings.monitor`` is what the collectors get: every value from its flat variable."""
    env = {
        "DBOPS_MONITOR_COLLECTOR_TIMEOUT_MS": "1234",
        "DBOPS_MONITOR_TOP_STATEMENTS": "7",
        "DBOPS_MONITOR_QUERY_TEXT_CHARS": "321",
        "DBOPS_MONITOR_MAX_SESSIONS": "11",
        "DBOPS_MONITOR_MAX_TABLES": "13",
        "DBOPS_MONITOR_SLOW_COLLECTOR_TIMEOUT_MS": "4321",
        "DBOPS_MONITOR_EXPLAIN_MAX_CHARS": "5000",
        "DBOPS_MONITOR_ACCESS_WINDOW_S": "90",
        "DBOPS_MONITOR_PGBOUNCER_URL": "postgresql://dbops_monitor:pw@127.0.0.1:6432/pgbouncer",
        "DBOPS_MONITOR_PATRONI_URL": "http://127.0.0.1:8008",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    section = Settings(_env_file=None).monitor
    assert dataclasses.asdict(section) == {
        "collector_timeout_ms": 1234,
        "top_statements": 7,
        "query_text_chars": 321,
        "max_sessions": 11,
        "max_tables": 13,
        "slow_collector_timeout_ms": 4321,
        "explain_max_chars": 5000,
        "access_window_s": 90.0,
        "pgbouncer_url": SecretStr("postgresql://dbops_monitor:pw@127.0.0.1:6432/pgbouncer"),
        "patroni_url": "http://127.0.0.1:8008",
    }
    fields = {f.name for f in dataclasses.fields(section)}
    assert {f"DBOPS_MONITOR_{name.upper()}" for name in fields} == set(env)
