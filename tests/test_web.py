"""The web app (stylist web) in a real browser: Debian's Chromium, headless, driven by Playwright.

One server for the module, on a free loopback port, with small limits; each test opens its own
browser context, which Gradio treats as its own session. Screenshots go to tmp_path.
"""

from __future__ import annotations

import io
import json
import os
import re
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from PIL import Image

from stylist import cli

CHROMIUM = Path("/usr/bin/chromium")
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
ROOT = Path(__file__).resolve().parent.parent
CONTENT = ROOT / "examples" / "content" / "kodak_lighthouse_coast.jpg"
STYLE = ROOT / "examples" / "style" / "starry_night.jpg"
MAX_PIXELS = 2_000_000  # the test server's pixel limit, so that a refused image stays small

needs_browser = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="browser tests need Debian's chromium at /usr/bin/chromium (apt-get install chromium)"
)


def test_web_without_gradio_says_how_to_install(monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gradio" else real(name, *a))
    assert cli.main(["web"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        'stylist: error: the web app needs Gradio: pip install "stylist-nst[web]" (from a clone: pip install -e ".[web]")'
    ]


def test_web_limits_are_checked(capsys):
    pytest.importorskip("gradio", reason='the web app needs gradio (pip install -e ".[web]")')
    assert cli.main(["web", "--max-size", "32"]) == 2
    assert "--max-size must be at least 64" in capsys.readouterr().err
    assert cli.main(["web", "--port", "99999"]) == 2
    assert "--port must be between 1 and 65535" in capsys.readouterr().err


# --- the server and the browser ------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    pytest.importorskip("gradio", reason='the web app needs gradio (pip install -e ".[web]")')
    from stylist.web import start, stop_server
    from stylist.web_limits import WebLimits

    saved = os.environ.get("GRADIO_TEMP_DIR")
    demo, url, root = start("127.0.0.1", free_port(), WebLimits(max_pixels=MAX_PIXELS, max_upload_mb=5))
    yield url, root
    stop_server(demo, root)
    if saved is None:
        os.environ.pop("GRADIO_TEMP_DIR", None)
    else:
        os.environ["GRADIO_TEMP_DIR"] = saved


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip("browser tests need Debian's chromium at /usr/bin/chromium (apt-get install chromium)")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="browser tests need playwright (pip install playwright)"
    )
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(server, browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(30_000)
    pg.goto(server[0])
    pg.wait_for_selector("#run")
    yield pg
    context.close()


def set_number(page, elem: str, value: float) -> None:
    box = page.locator(f"#{elem} input[type=number]")
    box.fill(str(value))
    box.press("Enter")


def choose_images(page, content: Path = CONTENT, style: Path = STYLE) -> None:
    page.locator("#content-upload input[type=file]").set_input_files(str(content))
    page.locator("#style-upload input[type=file]").set_input_files(str(style))
    page.wait_for_selector("#content-view img")
    page.wait_for_selector("#style-view img")


def status(page) -> str:
    return page.locator("#status").inner_text()


def result_src(page) -> str | None:
    img = page.locator("#result img")
    return img.first.get_attribute("src") if img.count() else None


def watch_run(page, seconds: float = 90, stop_after_previews: int | None = None) -> list[str]:
    """Poll the result image until the status says the run ended; the distinct images seen while it ran."""
    seen: list[str] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        text, src = status(page), result_src(page)
        if text.startswith(("Done", "Stopped")):
            return seen
        if src and text.startswith("Step") and (not seen or seen[-1] != src):
            seen.append(src)
            if stop_after_previews is not None and len(seen) == stop_after_previews:
                page.click("#stop")
        time.sleep(0.03)
    raise AssertionError(f"the run did not end in {seconds} s; status: {status(page)!r}")


def fetch(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as err:
        return err.code, b""


# --- the page ------------------------------------------------------------------------------------------


@needs_browser
def test_optimisation_shows_progress_and_gives_result_with_manifest(page, server, browser, tmp_path):
    choose_images(page)
    set_number(page, "size", 64)
    set_number(page, "iterations", 20)
    page.click("#run")
    previews = watch_run(page)
    page.screenshot(path=str(tmp_path / "done.png"), full_page=True)
    assert len(previews) >= 2, f"the preview changed {len(previews)} times while running"
    assert status(page).startswith("Done"), status(page)
    final = result_src(page)
    assert final and final not in previews[:1]
    # The plot has one point per step and term (pandas rows drawn by Vega: check its data via the axis title).
    assert "step" in page.locator("#loss-plot").inner_text()

    # The downloads: the result PNG with its manifest inside, and the manifest as JSON.
    links = page.locator("#downloads a")
    hrefs = [links.nth(i).get_attribute("href") for i in range(links.count())]
    names = sorted(Path(h.split("file=")[-1]).name for h in hrefs)
    assert len(names) == 2 and names[0].endswith(".png") and names[1].endswith(".png.json"), names
    png_url = next(h for h in hrefs if h.endswith(".png"))
    code, body = fetch(png_url if png_url.startswith("http") else server[0].rstrip("/") + png_url)
    assert code == 200
    image = Image.open(io.BytesIO(body))
    assert max(image.size) == 64
    manifest = json.loads(image.info["stylist"])
    assert manifest["kind"] == "transfer" and manifest["config"]["iterations"] == 20 and manifest["iterations"] == 20
    assert manifest["inputs"]["content"]["path"] == CONTENT.name  # a file name, not the server's path
    assert abs(manifest["config"]["style_weight"] - 10**1.5) < 1e-6

    # The compare view lists this run; another visitor (another browser context) sees nothing of it.
    assert "starry_night.jpg" in page.locator("#compare-table").inner_text()
    other = browser.new_context().new_page()
    other.goto(server[0])
    other.wait_for_selector("#run")
    assert "starry_night" not in other.locator("#compare-table").inner_text()
    assert other.locator("#compare img").count() == 0
    other.context.close()


@needs_browser
def test_stop_keeps_the_image_so_far(page, tmp_path):
    choose_images(page)
    set_number(page, "size", 64)
    set_number(page, "iterations", 1000)
    page.click("#run")
    watch_run(page, stop_after_previews=2)
    page.screenshot(path=str(tmp_path / "stopped.png"), full_page=True)
    m = re.match(r"Stopped at step (\d+)", status(page))
    assert m, status(page)
    assert int(m.group(1)) < 1000
    assert result_src(page)
    assert page.locator("#downloads a").count() == 2


@needs_browser
def test_bad_uploads_are_refused_with_a_message(page, tmp_path):
    text = tmp_path / "notes.png"  # a text file passing for an image
    text.write_text("these are my notes, not a picture\n")
    page.locator("#content-upload input[type=file]").set_input_files(str(text))
    page.get_by_text("not an image Stylist can read").wait_for()
    page.screenshot(path=str(tmp_path / "not_an_image.png"), full_page=True)
    assert page.locator("#content-view img").count() == 0
    assert "Traceback" not in page.content()

    big = tmp_path / "big.png"  # over the test server's pixel limit
    Image.new("RGB", (2000, 1100), "white").save(big)
    page.locator("#style-upload input[type=file]").set_input_files(str(big))
    page.get_by_text(f"over the limit of {MAX_PIXELS:,}").wait_for()

    heavy = tmp_path / "heavy.bmp"  # over the test server's 5 MB upload limit, before any decoding
    heavy.write_bytes(b"BM" + bytes(6 * 1024 * 1024))
    page.locator("#style-upload input[type=file]").set_input_files(str(heavy))
    page.get_by_text("exceed the maximum allowed size of 5.0 Mb").wait_for()  # said by Gradio
    page.screenshot(path=str(tmp_path / "too_large.png"), full_page=True)

    page.click("#run")  # nothing chosen any more
    page.get_by_text("Choose a content image").wait_for()
    page.screenshot(path=str(tmp_path / "refused.png"), full_page=True)


def test_only_examples_and_results_are_served(server):
    url = server[0].rstrip("/")
    assert fetch(f"{url}/gradio_api/file={CONTENT}")[0] == 200  # a bundled example
    for path in (
        "/etc/passwd",
        ROOT / "pyproject.toml",
        ROOT / "src" / "stylist" / "web.py",
        Path(server[1]) / "sessions",
    ):
        assert fetch(f"{url}/gradio_api/file={path}")[0] == 403, path


@needs_browser
def test_feedforward_style_in_one_pass(page, tmp_path):
    page.locator("#content-upload input[type=file]").set_input_files(str(CONTENT))
    page.wait_for_selector("#content-view img")
    page.get_by_label("Feed-forward (built-in style)").check()
    page.wait_for_selector("#style-upload", state="hidden")  # a built-in style needs no painting
    set_number(page, "size", 64)
    page.click("#run")
    page.get_by_text("Done in").wait_for()
    page.screenshot(path=str(tmp_path / "feedforward.png"), full_page=True)
    table = page.locator("#compare-table").inner_text()
    assert "Feed-forward" in table and "composition-vii" in table  # the first built-in style
    assert page.locator("#downloads a").count() == 2


@needs_browser
def test_arbitrary_style_in_one_pass(page, tmp_path):
    from stylist.web import arbitrary_methods

    if "adain" not in arbitrary_methods():
        pytest.skip("no AdaIN decoder in this installation")
    choose_images(page)
    page.get_by_label("Arbitrary style (AdaIN)").check()
    set_number(page, "size", 64)
    page.click("#run")
    page.get_by_text("Done in").wait_for()
    page.screenshot(path=str(tmp_path / "arbitrary.png"), full_page=True)
    assert "AdaIN" in page.locator("#compare-table").inner_text()
    assert result_src(page) and page.locator("#downloads a").count() == 2
