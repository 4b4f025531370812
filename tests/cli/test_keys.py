"""`dbops keys status|rotate|generate` against the private test cluster."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from dbops.cli import app
from dbops.crypto import Keyring, generate_key, parse_keys
from dbops.db import Database
from dbops.services.users import UserService
from tests.services._helpers import FAST_HASHER, PASSWORD, SYSTEM

runner = CliRunner()


def invoke(*args: str) -> Result:
    return runner.invoke(app, list(args), env={"COLUMNS": "240"})


def row_of(table: str, key: str) -> str:
    """The value next to ``key`` in a key/value table of ``print_kv``."""
    for line in table.splitlines():
        cells = [c.strip() for c in line.replace("│", "|").split("|") if c.strip()]
        if cells and cells[0] == key:
            return cells[-1]
    raise AssertionError(f"{key!r} not in:\n{table}")


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No `.env` or `.dbops/` of the checkout is ever read by the CLI under test."""
    monkeypatch.chdir(tmp_path)


def test_generate_writes_a_0600_file_and_prints_no_key(tmp_path: Path) -> None:
    path = tmp_path / "secrets" / "enc.keys"
    result = invoke("keys", "generate", "--file", str(path))
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    keys = parse_keys(path.read_text())
    assert list(keys) == [1]
    assert f"wrote encryption key v1 to {path} (mode 0600)" in result.stdout
    assert base64.b64encode(keys[1]).decode() not in result.output

    result = invoke("keys", "generate", "--file", str(path), "--show")
    assert result.exit_code == 0, result.output
    keys = parse_keys(path.read_text())
    assert list(keys) == [1, 2]  # appended: the old version still decrypts old rows
    assert result.stdout.strip() == f"v2:{base64.b64encode(keys[2]).decode()}"
    assert "wrote encryption key v2" in result.stderr


def test_generate_blind_index_key_once(tmp_path: Path) -> None:
    path = tmp_path / "blind.key"
    assert invoke("keys", "generate", "--blind-index", "--file", str(path)).exit_code == 0
    assert len(base64.b64decode(path.read_text())) == 32
    result = invoke("keys", "generate", "--blind-index", "--file", str(path))
    assert result.exit_code == 1
    assert "the blind index key is not rotated" in result.stderr


def test_status_and_rotate_with_key_files(
    clean_db: Database, migrated: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    v1, blind = generate_key(), generate_key()
    keys_file, blind_file = tmp_path / "enc.keys", tmp_path / "blind.key"
    keys_file.write_text(f"v1:{base64.b64encode(v1).decode()}\n")
    keys_file.chmod(0o600)
    blind_file.write_text(base64.b64encode(blind).decode())
    blind_file.chmod(0o600)
    users = UserService(clean_db, hasher=FAST_HASHER, keyring=Keyring({1: v1}, blind))
    for i in range(5):
        user = users.create(
            SYSTEM, email=f"cli{i}@example.com", password=PASSWORD, display_name="C"
        )
        users.set_phone(SYSTEM, user.id, f"+4420794609{i:02d}")

    monkeypatch.setenv("DATABASE_URL", migrated)
    monkeypatch.setenv("DBOPS_ENCRYPTION_KEYS_FILE", str(keys_file))
    monkeypatch.setenv("DBOPS_BLIND_INDEX_KEY_FILE", str(blind_file))

    result = invoke("keys", "status")
    assert result.exit_code == 0, result.output
    assert row_of(result.stdout, "rows on v1") == "5"
    assert row_of(result.stdout, "rows on old versions") == "0"

    assert invoke("keys", "generate").exit_code == 0  # v2 into DBOPS_ENCRYPTION_KEYS_FILE
    status = invoke("keys", "status").stdout
    assert row_of(status, "current version") == "v2"
    assert row_of(status, "key source") == "file"
    assert row_of(status, "rows on old versions") == "5"
    result = invoke("keys", "rotate", "--batch-size", "2")
    assert result.exit_code == 0, result.output
    assert "re-encrypted 5 rows to key v2 in 3 batches" in result.stdout
    assert "0 rows left on old versions" in result.stdout
    for key in (v1, blind, *parse_keys(keys_file.read_text()).values()):
        assert base64.b64encode(key).decode() not in result.output


def test_without_keys_on_a_real_database_it_is_a_config_error(
    migrated: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", migrated)
    result = invoke("keys", "rotate")
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: users.phone is encrypted and no keys are configured")
