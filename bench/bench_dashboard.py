"""How long each dashboard page takes in Chromium, with `make run`'s processes on a big demo.

    uv run python -m bench.bench_dashboard [--users 1000000] [--rounds 3] [--keep DIR]

Sets the demo up the way `make run` does (``dbops up --serve`` in an empty directory: the
embedded cluster, migrations, roles, ``--users`` users and ``--users / 10`` teams, then the
workload, the exporter, the scheduled jobs and the dashboard, all running), waits
``--settle`` seconds for the first scheduled backup and its restore check, and opens every
page in Debian's Chromium: once cold, then ``--rounds`` warm rounds. Each warm round opens
every page by its URL (a bookmark, a reload: Streamlit's frontend starts over) and then moves
through them by the sidebar (what a person clicking around does: one script run, no reload).
A page's time runs from the navigation until its heading is drawn and Streamlit's running
indicator and spinners are gone. The baseline, in the same rounds: a one-heading Streamlit app
served beside it, opened by URL (Streamlit's own floor on this machine at this moment).
Prints the medians and the worst per page, and writes the section "Dashboard page times" of
docs/benchmarks.md (unless ``--no-docs``). Target (issue 19): every page warm in ≤ 1 s at 1M
users.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

from bench._harness import free_port, machine, markdown_table, publish
from tests.dashboard.test_browser import CHROMIUM, CHROMIUM_ARGS, PAGES

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "benchmarks.md"
SECTION = "Dashboard page times"
TARGET_S = 1.0
#: Streamlit's running indicator and spinners: the page is done when none is left.
BUSY = '!document.querySelector(\'[data-testid="stStatusWidget"] img, [data-testid="stSpinner"]\')'
#: The baseline app: one heading, Streamlit's navigation, nothing else.
TRIVIAL_APP = """
import streamlit as st

def home() -> None:
    st.title("Baseline")

st.navigation([st.Page(home, title="Baseline")]).run()
"""


def _wait_healthy(url: str, server: subprocess.Popen[bytes], timeout_s: float) -> float:
    started = time.monotonic()
    while True:
        if server.poll() is not None:
            raise SystemExit(f"`dbops up --serve` exited {server.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as answer:
                if answer.status == 200:
                    return time.monotonic() - started
        except OSError:
            pass
        if time.monotonic() - started > timeout_s:
            raise SystemExit(f"the dashboard did not answer within {timeout_s:.0f} s")
        time.sleep(0.5)


def _done(page: Page, title: str, started: float) -> float:
    page.get_by_role("heading", name=title, exact=True).first.wait_for(timeout=120_000)
    page.wait_for_function(BUSY, timeout=120_000)
    elapsed = time.perf_counter() - started
    errors = page.locator('[data-testid="stException"]').count()
    if errors:
        raise SystemExit(f"{title}: {errors} exception(s) on the page")
    # A page whose collector failed draws a note instead of its charts: faster, and not the page.
    failed = page.locator('[data-testid="stAlert"]').filter(has_text="failed").all_inner_texts()
    if failed:
        raise SystemExit(f"{title}: {failed[0]}")
    return elapsed


def open_page(page: Page, url: str, title: str) -> float:
    """Seconds from opening ``url`` to the page's heading drawn and nothing left running."""
    started = time.perf_counter()
    page.goto(url)
    return _done(page, title, started)


def click_page(page: Page, title: str) -> float:
    """Seconds from clicking ``title`` in the sidebar to the page drawn and idle."""
    started = time.perf_counter()
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=title, exact=True).click()
    return _done(page, title, started)


def _serve_trivial(where: Path, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    app = where / "baseline_app.py"
    app.write_text(TRIVIAL_APP, encoding="utf-8")
    streamlit = str(Path(sys.executable).with_name("streamlit"))
    flags = ["--server.headless", "true", "--browser.gatherUsageStats", "false"]
    return subprocess.Popen(
        [streamlit, "run", str(app), "--server.port", str(port), *flags],
        cwd=where,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _stop(server: subprocess.Popen[bytes] | None) -> None:
    if server is None:
        return
    server.send_signal(signal.SIGINT)  # Ctrl-C, as a person stops `make run`
    try:
        server.wait(timeout=60)
    except subprocess.TimeoutExpired:
        server.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3, help="warm rounds after the cold one")
    parser.add_argument("--settle", type=float, default=90.0, help="seconds to wait after start")
    parser.add_argument("--keep", type=Path, default=None, help="demo directory to (re)use")
    parser.add_argument("--no-docs", action="store_true", help="print only, keep docs as is")
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DBOPS_", "DATABASE_URL"))}
    dashboard_port, exporter_port, baseline_port = free_port(), free_port(), free_port()
    env["DBOPS_SERVE_DASHBOARD_PORT"] = str(dashboard_port)
    env["DBOPS_SERVE_EXPORTER_PORT"] = str(exporter_port)
    env["DBOPS_SERVE_DASHBOARD_APP"] = str(ROOT / "dashboard" / "app.py")  # `make run`'s app
    where = args.keep or Path(tempfile.mkdtemp(dir="/var/tmp", prefix="dbops-dash-"))
    where.mkdir(parents=True, exist_ok=True)
    dbops = [str(Path(sys.executable).with_name("dbops"))]  # the console script a user runs
    teams = max(args.users // 10, 1)
    url = f"http://127.0.0.1:{dashboard_port}"
    baseline_url = f"http://127.0.0.1:{baseline_port}"
    cold: dict[str, float] = {}
    opened: dict[str, list[float]] = {name: [] for _, _, name in PAGES}
    clicked: dict[str, list[float]] = {name: [] for _, _, name in PAGES}
    baseline: list[float] = []
    server: subprocess.Popen[bytes] | None = None
    trivial: subprocess.Popen[bytes] | None = None
    try:
        print(f"setting the demo up in {where} ...", file=sys.stderr, flush=True)
        sizes = ["--users", str(args.users), "--teams", str(teams), "--no-progress", "--replace"]
        subprocess.run([*dbops, "up", *sizes], cwd=where, env=env, check=True)
        server = subprocess.Popen(
            [*dbops, "up", "--serve", *sizes], cwd=where, env=env, stdout=subprocess.DEVNULL
        )
        trivial = _serve_trivial(where, baseline_port, env)
        ready_s = _wait_healthy(url, server, timeout_s=300)
        print(f"dashboard healthy after {ready_s:.1f} s", file=sys.stderr, flush=True)
        time.sleep(args.settle)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1200})
            for path, title, name in PAGES:
                cold[name] = open_page(page, f"{url}/{path}", title)
            open_page(page, baseline_url, "Baseline")  # its cold start
            for r in range(args.rounds):
                for path, title, name in PAGES:
                    opened[name].append(open_page(page, f"{url}/{path}", title))
                    baseline.append(open_page(page, baseline_url, "Baseline"))
                open_page(page, url, "Overview")
                for _path, title, name in PAGES[::-1] if r % 2 else PAGES:
                    clicked[name].append(click_page(page, title))
                print(f"round {r + 1} of {args.rounds} done", file=sys.stderr, flush=True)
            browser.close()
    finally:
        _stop(trivial)
        _stop(server)
        if args.keep is None:
            subprocess.run([*dbops, "db", "stop"], cwd=where, env=env, check=False)
            shutil.rmtree(where, ignore_errors=True)
    floor = statistics.median(baseline)
    rows = [
        [
            "a one-heading Streamlit app (baseline)",
            "",
            f"{floor:.2f} s",
            f"{max(baseline):.2f} s",
            "",
            "",
            "",
        ]
    ]
    for _, title, name in PAGES:
        by_url, by_click = statistics.median(opened[name]), statistics.median(clicked[name])
        met = by_url <= TARGET_S and by_click <= TARGET_S
        rows.append(
            [
                title,
                f"{cold[name]:.2f} s",
                f"{by_url:.2f} s",
                f"{max(opened[name]):.2f} s",
                f"{by_click:.2f} s",
                f"{max(clicked[name]):.2f} s",
                "met" if met else "**MISSED**",
            ]
        )
    header = ["page", "cold (URL)", "URL median", "URL worst", "sidebar median", "sidebar worst"]
    table = markdown_table([*header, f"medians ≤ {TARGET_S:g} s"], rows)
    body = f"""Machine: {machine()}.
Command: `uv run python -m bench.bench_dashboard --users {args.users} --rounds {args.rounds}`
(`dbops up --serve --users {args.users} --teams {teams}` in an empty directory, as `make run`:
workload, exporter, scheduled jobs and dashboard running, measured {args.settle:.0f} s after the
dashboard answered; Debian's Chromium through Playwright; each page once cold by URL, then
{args.rounds} warm rounds, each opening every page by URL and then moving through all pages by
the sidebar; a page's time runs from the navigation until its heading is drawn and no running
indicator or spinner is left). Baseline: a one-heading Streamlit app served beside it, opened
by URL in the same rounds.

{table}
"""
    publish(body, DOCS, SECTION, write=not args.no_docs)


if __name__ == "__main__":
    main()
