"""Take the screenshots in docs/viewer/ of `agentgym view` on a run (headless Chromium).

    .venv/bin/python docs/viewer/screenshots.py runs/train/<run> [--out docs/viewer]

Starts the viewer on the run, opens each page in Debian's chromium through Playwright and
saves ``run.png``, ``episodes.png``, ``episode.png`` (the first episode with sampled tokens
and a tool call, else the first one), ``lineage.png`` and ``compare.png``.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent)
    parser.add_argument("--width", type=int, default=1280)
    args = parser.parse_args()
    process = subprocess.Popen(
        [sys.executable, "-m", "agentgym.cli", "view", str(args.run), "--port", "0"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    address = next(m.group(1) for line in process.stdout
                   if (m := re.search(r"(http://\S+/)", line)))  # fmt: skip
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            page = browser.new_page(viewport={"width": args.width, "height": 900})

            def shot(name: str, full: bool = True) -> None:
                page.screenshot(path=str(args.out / f"{name}.png"), full_page=full)
                print(f"wrote {args.out / name}.png")

            page.goto(address)
            shot("run")
            page.goto(address + "episodes?per_page=25")
            shot("episodes", full=False)
            links = page.locator("tr[data-episode] td.id a")
            chosen = None
            for i in range(min(links.count(), 25)):
                page.goto(address + "episodes?per_page=25")
                page.locator("tr[data-episode] td.id a").nth(i).click()
                if page.locator(".heat span").count() and page.locator("pre.tool_call").count():
                    chosen = page.url
                    break
            page.goto(chosen or address + "episodes?per_page=25")
            if chosen is None:
                page.locator("tr[data-episode] td.id a").first.click()
            shot("episode")
            page.goto(address + "lineage")
            if page.locator("ul.tree li").count():
                shot("lineage", full=False)
            page.goto(chosen or page.url)
            if page.locator("a.compare").count():
                page.locator("a.compare").first.click()
                shot("compare", full=False)
            browser.close()
    finally:
        process.terminate()
        process.wait(timeout=30)


if __name__ == "__main__":
    main()
