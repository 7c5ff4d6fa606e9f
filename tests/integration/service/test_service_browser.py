"""The search page in a real browser: Debian's Chromium driven by Playwright.

Type a query, see the thumbnails, open the explanation of a hit, save a screenshot.
Skipped at once (with how to install them) without Playwright or a ``chromium`` binary.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium")
if importlib.util.find_spec("playwright") is None or CHROMIUM is None:
    pytest.skip(
        "the browser test needs Playwright and Debian's Chromium: pip install playwright "
        "(pinned) and apt-get install -y chromium (scripts/setup.sh installs both)",
        allow_module_level=True,
    )

from playwright.sync_api import sync_playwright  # noqa: E402

from asif_qdrant.service.server import HEADLESS_CHROMIUM_ARGS  # noqa: E402


def test_page_search_and_explain(served, tmp_path: Path) -> None:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=list(HEADLESS_CHROMIUM_ARGS))
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 860})
            page.goto(served.url + "/")
            page.wait_for_selector("#catalog option[value='stamps']", state="attached")
            page.fill("#query", "A red apple.")
            page.click("#search-button")
            page.wait_for_selector(".hit img.thumb[src^='blob:']")
            hits = page.locator(".hit")
            wanted = served.asif.search("stamps", "A red apple.", limit=24)
            assert hits.count() == len(wanted)
            first_score = float(hits.first.locator(".score").inner_text())
            want = wanted[0]
            assert first_score == pytest.approx(want.score, abs=1e-3)
            hits.first.click()
            page.wait_for_selector("#explain .anchor img[src^='blob:']")
            shown = page.locator("#explain .anchor").count()
            why = served.asif.explain("A red apple.", want.id, "stamps")
            assert shown == min(8, why.shared)
            assert page.locator("#explain h2").inner_text().startswith("score")
            shot = tmp_path / "serve.png"
            page.screenshot(path=str(shot))
            assert shot.stat().st_size > 10_000
            if os.environ.get("ASIF_SERVE_SCREENSHOT"):  # docs/serve.png is made this way
                shutil.copy(shot, os.environ["ASIF_SERVE_SCREENSHOT"])
        finally:
            browser.close()
