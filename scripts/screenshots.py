"""Screenshot every dashboard page of a running `make run` (README images) and print page times.

    uv run python scripts/screenshots.py [--url http://127.0.0.1:8501] [--out docs/img]

Uses Debian's chromium through Playwright (never `playwright install`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from playwright.sync_api import sync_playwright

from bench.bench_dashboard import open_page
from tests.dashboard.test_browser import CHROMIUM, CHROMIUM_ARGS, PAGES


def main() -> None:
    """Load every page twice (cold, warm), screenshot the warm one."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default="http://127.0.0.1:8501")
    parser.add_argument("--out", type=Path, default=Path("docs/img"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1200})
        for rounds in ("cold", "warm"):
            for path, title, name in PAGES:
                # Refuses a page with an exception or a failed collector, like the bench.
                elapsed = open_page(page, f"{args.url}/{path}", title)
                print(f"{rounds:5} {name:10} {elapsed:6.2f} s")
                if rounds == "warm":
                    page.wait_for_timeout(1500)  # charts draw after the script finished
                    page.screenshot(path=str(args.out / f"dashboard-{name}.png"), full_page=True)
        browser.close()


if __name__ == "__main__":
    main()
