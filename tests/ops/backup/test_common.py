"""Pure helpers of the backup tools: the child's environment, names that fit, spans."""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path

import pytest

from dbops.db.dsn import Dsn
from dbops.errors import BackupError
from dbops.ops.audit import _span
from dbops.ops.backup._common import Step, client_env, make_private, pipe_tools, tool_version
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


# -- pipe_tools with stand-in programs (the pipe, not PostgreSQL, is under test) -------------

PY = sys.executable


def _producer(body: str) -> list[str]:
    return [PY, "-c", "import sys\n" + body]


def _consumer(tmp_path: Path, *, fail_after: int | None = None, known: str = "") -> list[str]:
    """Copies stdin to ``got``; with ``fail_after``, stops after that many bytes with an error."""
    out = tmp_path / "got"
    if fail_after is None:
        body = f"open({str(out)!r}, 'wb').write(sys.stdin.buffer.read())"
    else:
        body = (
            f"sys.stdin.buffer.read({fail_after})\n"
            f"print('psql:<stdin>:7: NOTICE:  fine', file=sys.stderr)\n"
            'print(\'psql:<stdin>:9: ERROR:  relation "t" does not exist'
            f"{known}', file=sys.stderr)\n"
            "sys.exit(3)"
        )
    return [PY, "-c", "import sys\n" + body]


def test_a_pipe_delivers_every_byte_then_the_trailer_and_counts_tables(tmp_path: Path) -> None:
    producer = _producer(
        "sys.stderr.write('pg_restore: processing data for table \"public.a\"\\n')\n"
        "sys.stdout.buffer.write(b'x' * 3_000_000)\n"
        "sys.stderr.write('pg_restore: processing data for table \"public.b\"\\n')\n"
        "sys.stdout.buffer.write(b'y')"
    )
    steps: list[Step] = []
    pipe_tools(
        producer,
        _consumer(tmp_path),
        dict(os.environ),
        trailer=b"\\echo done\n",
        phase="restore",
        total=2,
        progress=steps.append,
    )
    assert (tmp_path / "got").read_bytes() == b"x" * 3_000_000 + b"y" + b"\\echo done\n"
    assert steps == [
        Step("restore", "restore: public.a", 1, 2),
        Step("restore", "restore: public.b", 2, 2),
    ]


def test_a_consumer_that_stops_at_an_error_stops_the_producer_and_names_the_error(
    tmp_path: Path,
) -> None:
    endless = _producer("while True:\n    sys.stdout.buffer.write(b'z' * 65536)")
    started = time.monotonic()
    with pytest.raises(BackupError) as info:
        pipe_tools(endless, _consumer(tmp_path, fail_after=10), {}, trailer=b"", phase="restore")
    assert time.monotonic() - started < 10  # the producer was stopped, not waited for
    assert str(info.value) == f'{Path(PY).name} failed (exit code 3): relation "t" does not exist'


def test_a_known_error_of_the_consumer_is_its_own_message(tmp_path: Path) -> None:
    producer = _producer("sys.stdout.buffer.write(b'q' * 100)")
    consumer = _consumer(tmp_path, fail_after=100, known=" -- DBOPS: 3 rows differ --")
    with pytest.raises(BackupError) as info:
        pipe_tools(
            producer,
            consumer,
            {},
            trailer=b"",
            phase="restore",
            known_error=re.compile(r"DBOPS: (.*?) --"),
        )
    assert str(info.value) == "3 rows differ"


def test_a_failing_producer_gets_no_trailer_and_names_its_error(tmp_path: Path) -> None:
    producer = _producer(
        "sys.stdout.buffer.write(b'partial')\n"
        "sys.stderr.write('pg_restore: error: could not read input file: end of file\\n')\n"
        "sys.stderr.write('pg_restore: warning: errors ignored on restore: 1\\n')\n"
        "sys.exit(1)"
    )
    with pytest.raises(BackupError) as info:
        pipe_tools(producer, _consumer(tmp_path), {}, trailer=b"CHECK", phase="restore")
    assert str(info.value) == (
        f"{Path(PY).name} failed (exit code 1): could not read input file: end of file"
    )
    assert (tmp_path / "got").read_bytes() == b"partial"  # never the check after a partial script


def test_a_tool_version_is_its_number_and_a_failing_tool_has_none(tmp_path: Path) -> None:
    fake = tmp_path / "pg_dump"
    fake.write_text("#!/bin/sh\necho 'pg_dump (PostgreSQL) 15.8 (Debian 15.8-1.pgdg120+1)'\n")
    fake.chmod(0o755)
    assert tool_version(str(fake)) == "15.8"
    broken = tmp_path / "pg_restore"
    broken.write_text("#!/bin/sh\necho 'no such library' >&2\nexit 127\n")
    broken.chmod(0o755)
    assert tool_version(str(broken)) == ""
    odd = tmp_path / "psql"
    odd.write_text("#!/bin/sh\necho 'psql 16'\n")
    odd.chmod(0o755)
    assert tool_version(str(odd)) == "psql 16"  # no "(PostgreSQL) ": the whole line


def test_make_private_counts_what_it_tightened(tmp_path: Path) -> None:
    root = tmp_path / "backups"
    (root / "a").mkdir(parents=True, mode=0o755)
    root.chmod(0o700)
    (root / "a" / "dump.pgdump").write_bytes(b"x")
    (root / "a" / "dump.pgdump").chmod(0o644)
    (root / "a" / "manifest.json").write_bytes(b"{}")
    (root / "a" / "manifest.json").chmod(0o600)
    assert make_private(root) == 2  # the folder and the dump; root and manifest were private
    assert make_private(root) == 0
    assert (root / "a").stat().st_mode & 0o777 == 0o700
    assert (root / "a" / "dump.pgdump").stat().st_mode & 0o777 == 0o600


def test_a_backup_id_is_its_utc_second_and_six_hex_digits() -> None:
    from datetime import UTC, datetime, timedelta, timezone

    from dbops.ops.backup.create import new_backup_id

    at = datetime(2026, 11, 26, 2, 50, 7, tzinfo=timezone(timedelta(hours=1)))
    ids = {new_backup_id(at) for _ in range(200)}
    assert all(re.fullmatch(r"20261126T015007Z-[0-9a-f]{6}", i) for i in ids), ids
    assert len(ids) > 190  # the suffix is random: two runs in one second differ
    assert new_backup_id(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)).startswith("20260102T030405Z-")


def test_a_tool_s_progress_counts_its_tables_and_its_error_is_one_line(tmp_path: Path) -> None:
    from dbops.ops.backup._common import run_tool

    verbose = (
        "import sys\n"
        "for t in ('public.a', 'public.b', 'public.c'):\n"
        "    print(f'pg_restore: processing data for table \\\"{t}\\\"', file=sys.stderr)\n"
    )
    steps: list[Step] = []
    run_tool([PY, "-c", verbose], dict(os.environ), phase="restore", total=3, progress=steps.append)
    assert steps == [
        Step("restore", "restore: public.a", 1, 3),
        Step("restore", "restore: public.b", 2, 3),
        Step("restore", "restore: public.c", 3, 3),
    ]
    failing = (
        "import sys\nprint('pg_dump: error: connection refused', file=sys.stderr)\nsys.exit(1)"
    )
    with pytest.raises(BackupError) as info:
        run_tool([PY, "-c", failing], dict(os.environ), phase="dump")
    assert str(info.value) == f"{Path(PY).name} failed (exit code 1): connection refused"


def test_a_consumer_killed_by_a_signal_is_an_error(tmp_path: Path) -> None:
    """A negative exit code (killed, e.g. by the OOM killer) is a failure too."""
    producer = _producer("sys.stdout.buffer.write(b'q' * 10)")
    killed = [PY, "-c", "import os, signal, sys\nsys.stdin.read()\nos.kill(os.getpid(), 9)"]
    with pytest.raises(BackupError, match=r"failed \(exit code -9\)"):
        pipe_tools(producer, killed, {}, trailer=b"", phase="restore")
