"""The web app (stylist web) in a real browser: Debian's Chromium, headless, driven by Playwright,
and through its HTTP API (gradio_client, or raw requests where a script sends what a page cannot).

One server for the module, on a free loopback port, with small limits; each test opens its own
browser context or client, which Gradio treats as its own session. The server runs in this
process, so a test can see its run threads and folders. Screenshots go to tmp_path.
"""

from __future__ import annotations

import io
import json
import os
import re
import socket
import threading
import time
import urllib.error
import urllib.request
import uuid
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
SHIPPED = ROOT / "src" / "stylist" / "examples"  # the examples shipped in the package (small copies)
CONTENT = SHIPPED / "content" / "kodak_lighthouse_coast.jpg"
STYLE = SHIPPED / "style" / "starry_night.jpg"
OPTIMISATION = "Optimisation (Gatys et al.)"
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
        "stylist: error: the web app needs Gradio: "
        'pip install "stylist-nst[web]" (from a clone: pip install -e ".[web]")'
    ]


def test_web_limits_are_checked(capsys):
    pytest.importorskip("gradio", reason='the web app needs gradio (pip install -e ".[web]")')
    assert cli.main(["web", "--max-size", "32"]) == 2
    assert "--max-size must be at least 64" in capsys.readouterr().err
    assert cli.main(["web", "--port", "99999"]) == 2
    assert "--port must be between 1 and 65535" in capsys.readouterr().err
    assert cli.main(["web", "--session-hours", "nan"]) == 2
    assert "--session-hours: 'nan' is not a finite number" in capsys.readouterr().err  # refused as it is read
    assert cli.main(["web", "--max-sessions", "0"]) == 2
    assert "--max-sessions must be at least 1" in capsys.readouterr().err


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


def run_threads() -> list[threading.Thread]:
    """The server's optimisation threads now alive (the server runs in this process)."""
    return [t for t in threading.enumerate() if t.name == "stylist-run" and t.is_alive()]


def wait_for(condition, seconds: float, what: str) -> float:
    """Seconds until ``condition()`` holds; AssertionError naming ``what`` after ``seconds``."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > seconds:
            raise AssertionError(f"{what} did not happen within {seconds} s")
        time.sleep(0.02)
    return time.monotonic() - start


def client(url: str):
    from gradio_client import Client

    return Client(url, verbose=False)


def run_args(size: int = 64, iterations: int = 20, method: str = OPTIMISATION, content: Path = CONTENT) -> list:
    """The /run endpoint's inputs for gradio_client, in the page's order."""
    from gradio_client import handle_file

    return [handle_file(str(content)), handle_file(str(STYLE)), method, "composition-vii", size, 1.5, 0, iterations]


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
    from stylist.web import examples_dir

    url = server[0].rstrip("/")
    example = examples_dir() / "content" / CONTENT.name
    assert fetch(f"{url}/gradio_api/file={example}")[0] == 200  # a bundled example
    # Gradio serves its examples cache, by default .gradio/cached_examples in the working directory:
    # a file another app (or anyone) put there must not be served by this one.
    cache = Path.cwd() / ".gradio" / "cached_examples"
    made = [p for p in (cache.parent, cache) if not p.exists()]
    cache.mkdir(parents=True, exist_ok=True)
    secret = cache / f"secret-{uuid.uuid4().hex}.txt"
    secret.write_text("not for visitors\n")
    try:
        for path in (
            "/etc/passwd",
            ROOT / "pyproject.toml",
            ROOT / "src" / "stylist" / "web.py",
            Path(server[1]) / "sessions",
            secret,
            secret.relative_to(Path.cwd()),  # as Gradio's own relative default names it
        ):
            assert fetch(f"{url}/gradio_api/file={path}")[0] == 403, path
    finally:
        secret.unlink()
        for folder in reversed(made):
            folder.rmdir()


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


# --- failures, cancellation, numbers, session folders --------------------------------------------------


@needs_browser
def test_a_failed_run_shows_its_reason_in_the_page(page, tmp_path):
    thin = tmp_path / "thin.png"  # readable, but 64x1 px at the smallest size: too small for relu5_1
    Image.new("RGB", (600, 6), "gray").save(thin)
    choose_images(page, content=thin)
    set_number(page, "size", 64)
    page.click("#run")
    page.get_by_text("The run failed").wait_for()
    page.screenshot(path=str(tmp_path / "failed.png"), full_page=True)
    text = status(page)
    assert text.startswith("The run failed:") and "too small" in text and "\n" not in text.strip(), text
    assert "RuntimeError" not in page.content() and "Traceback" not in page.content()
    assert "server's log" not in text  # a Stylist error says its own reason


def test_an_unexpected_error_gives_a_short_line_and_is_logged(server, monkeypatch, caplog):
    # Fault injection: the core's entry point raises as a bug would (no real input does so on purpose).
    import stylist.web

    def broken(*args, **kwargs):
        raise RuntimeError("CUDA error at /srv/secret/path")

    monkeypatch.setattr(stylist.web, "stylize", broken)
    outputs = client(server[0]).predict(*run_args(), api_name="/run")
    text = outputs[1]
    assert text.startswith("**The run failed:** something went wrong on the server"), text
    assert "/srv/secret" not in text and "RuntimeError" not in text
    logged = [r for r in caplog.records if r.name == "stylist.web" and r.exc_info]
    assert logged and "CUDA error at /srv/secret/path" in str(logged[0].exc_info[1])


@pytest.mark.parametrize("bad", ["NaN", "Infinity", "-Infinity", "null", '"ten"', "1e9"])
def test_numbers_a_script_sends_are_checked(server, bad):
    """What no page sends but a script can: NaN, infinities, null, text, out of range."""
    import httpx

    url = server[0].rstrip("/")
    api = f"{url}/gradio_api"
    with httpx.Client(timeout=30) as h:
        run = next(d for d in h.get(f"{url}/config").json()["dependencies"] if d.get("api_name") == "run")
        files = []
        for f in (CONTENT, STYLE):
            files.append(h.post(f"{api}/upload", files={"files": (f.name, f.read_bytes(), "image/jpeg")}).json()[0])
        data = [None, *[{"path": p, "meta": {"_type": "gradio.FileData"}} for p in files], OPTIMISATION, None]
        session = uuid.uuid4().hex[:11]
        # The size is the odd one out; json cannot write NaN and the rest, so it is put in as text.
        text = json.dumps(data)[:-1] + f', {bad}, 1.5, 0, 20, "none", 1.0]'
        body = f'{{"data": {text}, "fn_index": {run["id"]}, "session_hash": "{session}"}}'
        assert h.post(f"{api}/queue/join", content=body, headers={"content-type": "application/json"}).is_success
        with h.stream("GET", f"{api}/queue/data", params={"session_hash": session}) as stream:
            for line in stream.iter_lines():
                message = json.loads(line[5:]) if line.startswith("data:") else {}
                if message.get("msg") == "process_completed":
                    break
    assert message["success"] is False
    error = message["output"]["error"]
    if bad == "1e9":
        assert "greater than maximum" in error  # Gradio's own range check
    else:
        assert error.startswith("The result size must be a number from 64 to "), error


def test_a_cancelled_job_stops_and_frees_its_place(server):
    """--concurrency 1: a cancelled run stops at its next step, and the next job computes only after it."""
    first = client(server[0]).submit(*run_args(size=128, iterations=1000), api_name="/run")
    wait_for(lambda: len(first.outputs()) >= 3, 120, "the first job's progress")
    [running] = run_threads()
    first.cancel()
    second = client(server[0]).submit(*run_args(iterations=20), api_name="/run")
    # 1000 steps at 128 px take a minute or more here: ending within seconds is ending at the next step.
    stopped_in = wait_for(lambda: not running.is_alive(), 10, "the cancelled run ending")
    ended = time.monotonic()
    wait_for(lambda: any(str(o[1]).startswith("**Step") for o in second.outputs()), 60, "the next job's first step")
    first_step = time.monotonic()
    outputs = second.result(timeout=120)
    assert outputs[1].startswith("**Done: 20 steps"), outputs[1]
    assert first_step >= ended, "the next job computed beside the cancelled one"
    assert stopped_in < 10
    wait_for(lambda: not run_threads(), 10, "every run thread ending")


@needs_browser
def test_closing_the_tab_stops_its_run(server, browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(30_000)
    pg.goto(server[0])
    pg.wait_for_selector("#run")
    choose_images(pg)
    set_number(pg, "size", 128)
    set_number(pg, "iterations", 1000)
    pg.click("#run")
    pg.wait_for_function("document.querySelector('#status').innerText.startsWith('Step')")
    [running] = run_threads()
    context.close()
    wait_for(lambda: not running.is_alive(), 20, "the run of a closed tab ending")
    # Its place is free: a new visitor's run goes through at once.
    outputs = client(server[0]).predict(*run_args(iterations=20), api_name="/run")
    assert outputs[1].startswith("**Done: 20 steps"), outputs[1]


def test_session_folders_are_bounded_and_expire(tmp_path):
    pytest.importorskip("gradio", reason="the web app needs gradio (pip install stylist[web])")
    from stylist.web import FEEDFORWARD, start, stop_server
    from stylist.web_limits import WebLimits

    saved = {k: os.environ.get(k) for k in ("GRADIO_TEMP_DIR", "GRADIO_EXAMPLES_CACHE")}
    limits = WebLimits(max_sessions=2, keep_results=1, session_hours=8 / 3600)  # 8 s
    demo, url, root = start("127.0.0.1", free_port(), limits, arbitrary=[])
    sessions = Path(root) / "sessions"
    try:
        visitors = [client(url) for _ in range(3)]
        visitors[0].predict(api_name="/stop")  # a session with no result has no folder
        assert list(sessions.iterdir()) == []
        made = []
        for v in visitors:  # well within the 8 s: what goes, goes to make room
            v.predict(*run_args(method=FEEDFORWARD), api_name="/run")
            made += [f for f in sessions.iterdir() if f not in made]
        assert len(made) == 3 and sorted(sessions.iterdir()) == sorted(made[1:])  # the oldest tab's made room
        visitors[2].predict(*run_args(method=FEEDFORWARD), api_name="/run")
        assert sorted(p.name[:4] for p in made[2].iterdir()) == ["002_", "002_"]  # keep_results=1: PNG, JSON
        wait_for(lambda: not list(sessions.iterdir()), 20, "the session folders expiring")
    finally:
        stop_server(demo, root)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def test_examples_ship_inside_the_package(monkeypatch, tmp_path):
    """The galleries come from package data, not from the source tree's examples/ folder."""
    pytest.importorskip("gradio", reason="the web app needs gradio (pip install stylist[web])")
    from fnmatch import fnmatch

    tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11")

    import stylist
    from stylist.web import example_images

    monkeypatch.delenv("STYLIST_EXAMPLES", raising=False)
    monkeypatch.chdir(tmp_path)  # no ./examples to fall back on
    package = Path(stylist.__file__).parent
    for kind in ("content", "style"):
        found = example_images(kind)
        assert len(found) >= 3, kind
        assert all(p.is_relative_to(package / "examples" / kind) for p in found), found
    # Every shipped file is named by the wheel's package data (what a wheel carries beyond .py files).
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["stylist"]
    shipped = [p.relative_to(SHIPPED.parent).as_posix() for p in SHIPPED.rglob("*") if p.is_file()]
    assert "examples/SOURCES.md" in shipped
    for name in shipped:
        assert any(fnmatch(name, pattern) for pattern in patterns), name
