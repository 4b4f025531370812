"""A real browser (Debian's chromium through Playwright) loads every page of `streamlit run`.

With ``DBOPS_SCREENSHOTS=1`` each page is saved to docs/img/dashboard-<page>.png (the README's
screenshots); otherwise nothing in the repository is written.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from playwright.sync_api import Page

from dbops.config import to_libpq_url
from dbops.db import Database
from dbops.ops.seed import seed
from dbops.services import Actor, MembershipService, TeamService
from tests.dashboard.conftest import APP, ROOT

CHROMIUM = "/usr/bin/chromium"
#: Read at import: the autouse fixture that hides DBOPS_* settings from tests runs later.
SCREENSHOTS = os.environ.get("DBOPS_SCREENSHOTS") == "1"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

#: URL path, the title the page shows, and the screenshot name. The first is a deep link: a
#: bookmark opened first after the server started (Streamlit then served a pages/ folder's
#: script bare, without the app's frame).
PAGES = (
    ("pool", "Pool and app", "pool"),
    ("", "Overview", "overview"),
    ("queries", "Queries", "queries"),
    ("indexes", "Indexes", "indexes"),
    ("tables", "Tables and space", "tables"),
    ("activity", "Activity", "activity"),
    ("teams", "Teams and users", "teams"),
    ("backups", "Backups", "backups"),
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium"),
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"streamlit exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise AssertionError("streamlit did not answer in time")


@pytest.fixture
def demo_data(clean_db: Database, migrated: str) -> None:
    """A few users and teams, and some statements, so every page has something to show."""
    admin = Actor.system("dashboard-browser-test")
    seed(clean_db, users=2_000, teams=300, replace=True)
    teams, members = TeamService(clean_db), MembershipService(clean_db)
    listed = teams.list_teams(admin, limit=50).items
    for word in ("labs", "data", "cloud", "studio", "team"):
        teams.search_teams(admin, word)
    for team in listed:
        teams.get(admin, team.id)
        members.members(admin, team.id)
    with psycopg.connect(to_libpq_url(migrated), autocommit=True) as conn:
        conn.execute("SELECT pg_sleep(0.05)")
        conn.execute("ANALYZE")


@pytest.fixture
def server(demo_data: None, migrated: str, tmp_path: Path) -> Iterator[str]:
    """`streamlit run dashboard/app.py` on a free loopback port; its base URL."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DBOPS_")}
    env.update({"DATABASE_URL": migrated, "DBOPS_DASHBOARD_CACHE_TTL_S": "2"})
    log = (tmp_path / "streamlit.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(APP),
            "--server.address",
            "127.0.0.1",
            "--server.port",
            str(port),
            "--server.headless",
            "true",
            "--browser.gatherUsageStats",
            "false",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def test_every_page_loads_in_chromium(server: str, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    out = ROOT / "docs" / "img" if SCREENSHOTS else tmp_path
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1200})
            for path, title, name in PAGES:
                started = time.perf_counter()
                page.goto(f"{server}/{path}")
                page.get_by_role("heading", name=title, exact=True).first.wait_for(timeout=60_000)
                page.wait_for_function(
                    '!document.querySelector(\'[data-testid="stStatusWidget"] img, '
                    '[data-testid="stSpinner"]\')',
                    timeout=60_000,
                )
                page.wait_for_timeout(1500)  # charts draw after the script finished
                timings[name] = time.perf_counter() - started
                assert page.locator('[data-testid="stException"]').count() == 0, name
                # Opened by its own URL, the page is inside the app's frame: the navigation's
                # titles and the refresh control (a pages/ folder would serve it bare).
                sidebar = page.locator('[data-testid="stSidebar"]').inner_text()
                assert "Auto-refresh" in sidebar, (name, sidebar[:200])
                assert "Tables and space" in sidebar, (name, sidebar[:200])
                page.screenshot(path=str(out / f"dashboard-{name}.png"), full_page=True)
            _auto_refresh_reruns(page, server)
        finally:
            browser.close()
    assert all((out / f"dashboard-{name}.png").stat().st_size > 10_000 for *_, name in PAGES)
    print("page load s (incl. 1.5 s chart settle):", {k: round(v, 2) for k, v in timings.items()})


def _snapshot_caption(page: Page) -> str:
    return page.locator('[data-testid="stSidebar"]').get_by_text("Snapshot:").inner_text()


def _auto_refresh_reruns(page: Page, server: str) -> None:
    """Choosing "5 s" makes the page collect and show a newer snapshot without a click."""
    page.goto(f"{server}/")
    page.get_by_role("heading", name="Overview", exact=True).wait_for()
    page.locator('[data-testid="stSelectbox"]').first.click()
    page.get_by_role("option", name="5 s", exact=True).click()
    page.wait_for_timeout(2500)  # the rerun the choice itself causes (and its new snapshot)
    before = _snapshot_caption(page)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and _snapshot_caption(page) == before:
        page.wait_for_timeout(500)
    assert _snapshot_caption(page) != before
    assert page.locator('[data-testid="stException"]').count() == 0


def test_chromium_is_debians() -> None:
    assert shutil.which("chromium") == CHROMIUM
