"""The README's picture of the web app: docs/images/web.png, taken by Playwright after a finished run.

    python docs/web_screenshot.py            # a 256 px, 100-iteration run: about a minute on 2 cores

Starts the app on a free loopback port, picks the bundled lighthouse photo and The Starry Night by
clicking the examples, runs an optimisation and photographs the page (Debian's Chromium, headless).
"""

from __future__ import annotations

import argparse
import socket
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from playwright.sync_api import sync_playwright  # noqa: E402

from stylist.web import start, stop_server  # noqa: E402

ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def set_number(page, elem: str, value: float) -> None:
    box = page.locator(f"#{elem} input[type=number]")
    box.fill(str(value))
    box.press("Enter")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--iterations", type=int, default=100)
    ap.add_argument("--out", default=str(ROOT / "docs" / "images" / "web.png"))
    args = ap.parse_args()
    demo, url, root = start("127.0.0.1", free_port())
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(url)
            page.wait_for_selector("#run")
            page.locator("#content-examples .thumbnail-item").nth(2).click()  # the lighthouse
            page.locator("#style-examples .thumbnail-item").nth(2).click()  # The Starry Night
            page.wait_for_selector("#content-view img")
            page.wait_for_selector("#style-view img")
            set_number(page, "size", args.size)
            set_number(page, "iterations", args.iterations)
            page.click("#run")
            end = time.monotonic() + 900
            while not page.locator("#status").inner_text().startswith(("Done", "Stopped")) and time.monotonic() < end:
                time.sleep(0.5)
            time.sleep(1.5)  # the compare view and the plot settle
            page.screenshot(path=args.out, full_page=True)
            browser.close()
    finally:
        stop_server(demo, root)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
