"""Dashboard test helpers: run the app with AppTest over a snapshot file or a live database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dbops.monitoring import Snapshot

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "dashboard" / "app.py"

#: Every page of the navigation, by its script path relative to app.py.
PAGES = (
    "views/overview.py",
    "views/queries.py",
    "views/indexes.py",
    "views/tables.py",
    "views/activity.py",
    "views/pool.py",
    "views/teams.py",
    "views/backups.py",
)


def reset_caches() -> None:
    """Forget cached settings, database handles and snapshots (closing the pools)."""
    from dashboard import data

    data.close_all()


@pytest.fixture(autouse=True)
def _fresh_dashboard_caches() -> Iterator[None]:
    reset_caches()
    yield
    reset_caches()


def write_snapshot(path: Path, snap: Snapshot) -> Path:
    """Write ``snap`` as JSON to ``path``."""
    path.write_text(snap.to_json(), encoding="utf-8")
    return path


def app() -> AppTest:
    """A fresh AppTest of the dashboard."""
    return AppTest.from_file(str(APP), default_timeout=60)


def texts(at: AppTest) -> str:
    """Every text the page rendered (markdown, captions, notes, metrics, code, tables)."""
    parts: list[str] = []
    for kind in (
        "markdown",
        "caption",
        "title",
        "subheader",
        "info",
        "warning",
        "error",
        "success",
    ):
        parts.extend(str(e.value) for e in getattr(at, kind))
    parts.extend(f"{m.label} {m.value}" for m in at.metric)
    parts.extend(str(e.value) for e in at.code)
    for df in at.dataframe:
        parts.append(df.value.to_string())
    return "\n".join(parts)
