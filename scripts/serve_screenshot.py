"""Draw docs/serve.png: the search page on the demo's model, in Debian's Chromium.

Builds the demo's model first when ``asif-demo/model`` is missing (``asif-qdrant demo``), serves
it in a thread, types a query, opens the explanation of the first hit, and saves the page::

    python scripts/serve_screenshot.py                       # query "A cat."
    python scripts/serve_screenshot.py --query "Something to eat." --out /tmp/page.png
    python scripts/serve_screenshot.py --model /tmp/bench-model --name bench  # serve.py --keep
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--query", default="A cat.")
    parser.add_argument("--model", type=Path, default=ROOT / "asif-demo" / "model")
    parser.add_argument("--name", default="tuxpaint", help="the model's name (the demo's)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "serve.png")
    args = parser.parse_args()
    if not (args.model / "collections").is_dir():
        subprocess.run(
            [sys.executable, "-m", "asif_qdrant", "demo", "--quiet"], cwd=ROOT, check=True
        )

    from playwright.sync_api import sync_playwright

    from asif_qdrant import ASIF
    from asif_qdrant.service import create_app, serve_in_thread
    from asif_qdrant.service.server import HEADLESS_CHROMIUM_ARGS

    with (
        ASIF(path=args.model, name=args.name, device="cpu", show_progress_bar=False) as asif,
        serve_in_thread(create_app(asif), wait_ready=600) as url,
        sync_playwright() as p,
    ):
        browser = p.chromium.launch(
            executable_path=shutil.which("chromium"), args=list(HEADLESS_CHROMIUM_ARGS)
        )
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(url + "/")
        page.wait_for_selector("#catalog option", state="attached")
        page.fill("#query", args.query)
        page.click("#search-button")
        page.wait_for_selector(".hit img.thumb[src^='blob:']")
        page.locator(".hit").first.click()
        page.wait_for_selector("#explain .anchor img[src^='blob:']")
        page.wait_for_timeout(500)  # the last thumbnails
        page.screenshot(path=str(args.out))
        browser.close()
    print(args.out)


if __name__ == "__main__":
    main()
