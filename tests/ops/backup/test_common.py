"""Pure helpers of the backup tools: the child's environment, names that fit, spans."""

from __future__ import annotations

import pytest

from dbops.db.dsn import Dsn
from dbops.ops.audit import _span
from dbops.ops.backup._common import client_env
from dbops.ops.backup.restore import suffixed_name


def test_the_password_goes_to_the_child_environment_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGPASSWORD", "ambient-secret")
    monkeypatch.setenv("DBOPS_TEST_MARKER", "kept")
    conninfo, env = client_env(Dsn.parse("postgresql://app:s3cret@db.example:5433/dbops"))
    assert "s3cret" not in conninfo
    assert "password" not in conninfo
    assert "host=db.example" in conninfo
    assert "port=5433" in conninfo
    assert env["PGPASSWORD"] == "s3cret"
    assert env["DBOPS_TEST_MARKER"] == "kept"  # the rest of the environment (PATH, locale)


def test_an_ambient_password_is_not_passed_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGPASSWORD", "ambient-secret")
    _, env = client_env(Dsn.parse("postgresql://app@db.example/dbops"))
    assert "PGPASSWORD" not in env
    assert "PATH" in env


@pytest.mark.parametrize(
    ("name", "suffix", "expected"),
    [
        ("dbops", "_restore_0a1b2c3d", "dbops_restore_0a1b2c3d"),
        ("n" * 63, "_restore_0a1b2c3d", "n" * 46 + "_restore_0a1b2c3d"),
        ("n" * 46, "_restore_0a1b2c3d", "n" * 46 + "_restore_0a1b2c3d"),
        ("n" * 47, "_restore_0a1b2c3d", "n" * 46 + "_restore_0a1b2c3d"),
        # 63 bytes, not characters: a two-byte letter is never cut in half
        ("é" * 40, "_x", "é" * 30 + "_x"),
        ("aé" * 20, "_x", "aé" * 20 + "_x"),
        ("a" + "é" * 40, "_x", "a" + "é" * 30 + "_x"),
    ],
)
def test_a_suffixed_name_fits_postgresql_and_keeps_its_suffix(
    name: str, suffix: str, expected: str
) -> None:
    got = suffixed_name(name, suffix)
    assert got == expected
    assert len(got.encode()) <= 63


@pytest.mark.parametrize(
    ("first", "last", "text"),
    [
        (4, 4, "record 4"),
        (4, 9, "records 4-9"),
        # equal ids that are distinct objects (ids above 256 are not cached by CPython)
        (1_000, int("1000"), "record 1000"),
        (2**40, int(str(2**40)), f"record {2**40}"),
    ],
)
def test_a_span_of_records_reads_as_one_or_a_range(first: int, last: int, text: str) -> None:
    assert _span(first, last) == text
