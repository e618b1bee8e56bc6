"""The web app (``stylist web``): a thin Gradio adapter over the public API.

The page takes a photo and a painting (uploaded or from the bundled examples), runs one of the
three methods through :func:`stylist.stylize`, :func:`stylist.load_model` or
:func:`stylist.api.arbitrary`, shows the optimisation as it goes (the image every few steps, a
growing loss plot, the time left), stops it on request keeping the image so far, offers the
result with its manifest for download, and keeps the last results side by side.

Safety, by design rather than by convention:

* every visitor has a :class:`Session` (Gradio state, one per browser tab) with its own folder
  for results; nothing a visitor makes is kept in module globals;
* the server serves only the bundled examples (``allowed_paths``) and the files it made or was
  sent (Gradio's upload/cache folder, made private to this server), never the rest of the disk;
* one run at a time per session; runs beyond ``concurrency`` wait in a bounded queue, and
  Gradio tells each visitor their place in it;
* uploads are limited in bytes (``max_file_size``) and pixels; a bad file or setting gives a
  one-line message in the page (``gr.Error``), never a stack trace.
"""

from __future__ import annotations

import html
import logging
import math
import os
import queue
import shutil
import tempfile
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path

import gradio as gr
import pandas as pd
import torch
from PIL import Image

from . import __version__
from .api import arbitrary as arbitrary_transfer
from .arbitrary import METHODS as ARBITRARY_METHODS
from .arbitrary import ArbitraryConfig, load_decoder
from .errors import StylistError
from .feedforward import builtin_models, load_model
from .image import WRITE_FORMATS, read_picture, resize_long_side, save_image, to_pil, write_atomic_bytes
from .manifest import build_manifest, embed_params, input_records, one_pass_manifest, to_json
from .optimize import Progress, TransferConfig, TransferResult, resolve_device, stylize
from .web_limits import WebLimits

log = logging.getLogger("stylist.web")

OPTIMISATION = "Optimisation (Gatys et al.)"
FEEDFORWARD = "Feed-forward (built-in style)"
ARBITRARY = {"adain": "Arbitrary style (AdaIN)", "wct": "Arbitrary style (WCT)"}
COLOURS = {
    "none": "none",
    "luminance": "keep the photo's colours (luminance)",
    "histogram": "recolour the painting (histogram)",
}
IMAGE_SUFFIXES = sorted(WRITE_FORMATS) + [".gif"]


# --- where things are --------------------------------------------------------------------------------


def examples_dir() -> Path | None:
    """The bundled ``examples`` folder (content/ and style/): $STYLIST_EXAMPLES, the source tree
    this package sits in, or ./examples; None when none is found (an installed wheel has none)."""
    here = Path(__file__).resolve()
    candidates = [os.environ.get("STYLIST_EXAMPLES"), here.parents[2] / "examples", Path.cwd() / "examples"]
    for c in candidates:
        if c and (Path(c) / "content").is_dir() and (Path(c) / "style").is_dir():
            return Path(c).resolve()
    return None


def example_images(kind: str) -> list[Path]:
    """The bundled example images of ``kind`` (content or style), sorted by name."""
    root = examples_dir()
    if root is None:
        return []
    return sorted(p for p in (root / kind).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def arbitrary_methods() -> list[str]:
    """The arbitrary-style methods whose shipped decoder loads here (checked once, at start)."""
    found = []
    for method in ARBITRARY_METHODS:
        try:
            load_decoder(method)
        except StylistError:
            continue
        found.append(method)
    return found


# --- per-visitor state -----------------------------------------------------------------------------


@dataclass
class Record:
    """One finished result in the compare view."""

    image: Path
    caption: str
    settings: dict


class Session:
    """One browser tab's state: its results folder, its stop flag, whether a run is under way."""

    def __init__(self, root: Path, keep: int) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="session-", dir=root))
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.busy = False
        self.count = 0
        self.results: deque[Record] = deque(maxlen=keep)

    def __deepcopy__(self, memo: dict) -> Session:
        # Gradio deep-copies a state's initial value; each Session is already fresh (made by the
        # factory for one tab), and its Event cannot be copied.
        return self

    def claim(self) -> bool:
        """Mark a run as under way; False when one already is (one run per session)."""
        with self.lock:
            if self.busy:
                return False
            self.busy = True
            self.stop.clear()  # a Stop pressed before this run began is not meant for it
            return True

    def release(self) -> None:
        with self.lock:
            self.busy = False

    def next_name(self, stem: str) -> Path:
        self.count += 1
        return self.dir / f"{self.count:03d}_{stem}"

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


# --- inputs ----------------------------------------------------------------------------------------


def display_name(path: str | None) -> str:
    # Gradio keeps an upload's own file name as the last part of its cached path.
    return Path(path).name if path else ""


def user_message(err: Exception, paths: list[str | None]) -> str:
    """A Stylist error as the page shows it: file names instead of the server's paths, no CLI hints."""
    text = str(err)
    for p in paths:
        if p:
            text = text.replace(str(Path(p).resolve()), display_name(p)).replace(str(p), display_name(p))
    # Gradio renders messages as HTML, and file names come from the visitor.
    return html.escape(text.split("; if you trust the file")[0].replace(" (see --help)", ""))


def check_image(path: str | None, what: str, limits: WebLimits) -> torch.Tensor:
    """Read an input image (``what``: content or style) as stylist reads it; gr.Error in one line otherwise."""
    if not path:
        raise gr.Error(f"Choose a {what} image: upload one or click a bundled example.", print_exception=False)
    try:
        return read_picture(path, what, limits.max_pixels).flat()
    except StylistError as err:
        raise gr.Error(user_message(err, [path]), print_exception=False) from None


def preview(path: str | None, what: str, limits: WebLimits) -> Image.Image | None:
    """What the page shows for a chosen input: the image upright in sRGB, at most 512 px."""
    if not path:
        return None
    picture = check_image(path, what, limits)
    return to_pil(resize_long_side(picture, min(512, max(picture.shape[-2:]))))


# --- runs ------------------------------------------------------------------------------------------


@dataclass
class Settings:
    """The page's knobs for one run."""

    method: str
    content: str
    style: str | None
    model: str | None
    size: int
    log_ratio: float  # log10 of style weight / content weight
    tv_weight: float
    iterations: int
    colour: str
    alpha: float

    @property
    def ratio(self) -> float:
        return 10.0**self.log_ratio

    def summary(self) -> dict:
        """The settings as the compare table shows them."""
        row = {"method": self.method, "content": display_name(self.content), "size": self.size, "colour": self.colour}
        if self.method == FEEDFORWARD:
            return {**row, "style": self.model}
        row["style"] = display_name(self.style)
        if self.method == OPTIMISATION:
            return {**row, "style/content": f"{self.ratio:.3g}", "TV": self.tv_weight, "iterations": self.iterations}
        return {**row, "alpha": self.alpha}


def transfer_config(s: Settings) -> TransferConfig:
    """The optimisation's config: the content weight stays 1, the style weight carries the ratio."""
    return TransferConfig(
        size=s.size, iterations=s.iterations, style_weight=s.ratio, tv_weight=s.tv_weight, preserve_color=s.colour
    )


def eta(p: Progress, first: dict | None) -> float:
    """Seconds left at the pace since the first step (which also loads the network and the images).

    Coarse scales run faster than the final one, so early in a multi-scale run this is low."""
    if first is None or p.step <= first["step"]:
        return math.nan
    return (p.elapsed - first["seconds"]) / (p.step - first["step"]) * (p.total - p.step)


def status_line(p: Progress, first: dict | None = None) -> str:
    left = eta(p, first)
    when = f"about {left:.0f} s left" if math.isfinite(left) else "estimating the time left…"
    h, w = p.size
    return (
        f"**Step {p.step}/{p.total}** · scale {p.level + 1}/{p.levels} ({w}×{h} px) · "
        f"loss {p.losses['total']:.4g} · {p.elapsed:.1f} s · {when}"
    )


TERMS = {"total": "#222222", "content": "#1f77b4", "style": "#ff7f0e", "tv": "#2ca02c"}  # plot colours


def loss_frame(rows: list[dict]) -> pd.DataFrame:
    """The loss history in long form for the plot: log10 of each weighted term per step.

    Every term has a row at every step (NaN, not drawn, where it is zero: the content loss at the
    start, TV when off): the page fixes the plot's colours from the terms of its first value."""
    data = [
        {"step": r["step"], "term": key, "log10 loss": math.log10(r[key]) if r.get(key, 0) > 0 else math.nan}
        for r in rows or [{"step": 0}]
        for key in TERMS
    ]
    return pd.DataFrame(data, columns=["step", "term", "log10 loss"])


class OptimisationRun:
    """One optimisation in a worker thread; the page's generator polls it for progress."""

    def __init__(self, s: Settings, content: torch.Tensor, style: torch.Tensor, stop: threading.Event) -> None:
        self.events: queue.Queue[Progress] = queue.Queue()
        self.rows: list[dict] = []  # every step's loss terms, for the plot
        self.stop = stop
        self.result: TransferResult | None = None
        self.error: BaseException | None = None
        self.cfg = transfer_config(s)
        self.thread = threading.Thread(target=self._work, args=(content, style), daemon=True, name="stylist-run")

    def _callback(self, p: Progress) -> bool:
        self.events.put(p)
        return self.stop.is_set()  # True ends the run: the image so far is the result

    def _work(self, content: torch.Tensor, style: torch.Tensor) -> None:
        try:
            self.result = stylize(content, style, self.cfg, self._callback)
        except BaseException as err:  # handed to the page's thread, which reports it
            self.error = err

    def _take(self, p: Progress) -> Progress:
        self.rows.append({"step": p.step, **p.losses, "seconds": p.elapsed})
        return p

    def updates(self, every: float = 0.3):
        """Yield the latest Progress at most every ``every`` seconds while the run lasts; the history so far."""
        last = 0.0
        latest: Progress | None = None
        while self.thread.is_alive() or not self.events.empty():
            try:
                latest = self._take(self.events.get(timeout=0.1))
                while not self.events.empty():  # every step's losses, but only the newest image
                    latest = self._take(self.events.get_nowait())
            except queue.Empty:
                pass
            if latest is not None and time.monotonic() - last >= every:
                last = time.monotonic()
                yield latest
                latest = None


class App:
    """The page's handlers, bound to one server's limits and folders."""

    def __init__(self, limits: WebLimits, root: Path, arbitrary: list[str]) -> None:
        self.limits, self.root, self.arbitrary = limits, root, arbitrary
        self.models = sorted(builtin_models())
        self.device = str(resolve_device("auto"))

    def new_session(self) -> Session:
        return Session(self.root, self.limits.keep_results)

    def methods(self) -> list[str]:
        found = [OPTIMISATION] + ([FEEDFORWARD] if self.models else [])
        return found + [ARBITRARY[m] for m in self.arbitrary]

    # -- the run -------------------------------------------------------------------------------------

    def run(
        self,
        session: Session,
        content: str | None,
        style: str | None,
        method: str,
        model: str | None,
        size: float,
        log_ratio: float,
        tv_weight: float,
        iterations: float,
        colour: str,
        alpha: float,
    ):
        """The Run button: yields (preview, status, plot, downloads, gallery, table) as the run goes."""
        model = model if method == FEEDFORWARD else None
        s = Settings(
            method,
            content or "",
            style,
            model,
            int(size),
            float(log_ratio),
            float(tv_weight),
            int(iterations),
            colour_key(colour),
            float(alpha),
        )
        photo, painting = self.check(s)
        if not session.claim():
            raise gr.Error("A run is already under way in this tab: wait for it or press Stop.", print_exception=False)
        try:
            if s.method == OPTIMISATION:
                yield from self._optimise(session, s, photo, painting)
            else:
                yield self._one_pass(session, s, photo, painting)
        finally:
            session.release()

    def check(self, s: Settings) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Every input read and every setting checked before any work."""
        if s.method not in self.methods():
            raise gr.Error(
                f"Unknown method '{html.escape(s.method)}': choose one of {', '.join(self.methods())}.",
                print_exception=False,
            )
        photo = check_image(s.content, "content", self.limits)
        if s.method == FEEDFORWARD:
            if s.model not in self.models:
                raise gr.Error(f"Choose a built-in style: {', '.join(self.models)}.", print_exception=False)
            if s.colour == "histogram":
                raise gr.Error(
                    "The feed-forward styles keep the photo's colours by luminance only: choose none or luminance.",
                    print_exception=False,
                )
            return photo, None
        return photo, check_image(s.style, "style", self.limits)

    def _optimise(self, session: Session, s: Settings, photo: torch.Tensor, painting: torch.Tensor):
        run = OptimisationRun(s, photo, painting, session.stop)
        run.thread.start()
        yield (gr.skip(), "Starting: loading the network and the images…", gr.skip(), gr.skip(), gr.skip(), gr.skip())
        for p in run.updates():
            yield (to_pil(p.image), status_line(p, run.rows[0]), loss_frame(run.rows), gr.skip(), gr.skip(), gr.skip())
        run.thread.join()
        if run.error is not None:
            raise self.failure(run.error, s)
        result = run.result
        image = to_pil(result.image, result.alpha)
        manifest = build_manifest(
            run.cfg, result, self.inputs(s), {"file": "result.png"}, app=f"stylist web {__version__}"
        )
        files = self.save(session, s, image, manifest)
        n = len(result.history)
        how = {
            "callback": f"Stopped at step {n}: the image so far is the result",
            "early": f"Done: stopped early at step {n}, the loss had stopped improving",
        }
        text = f"**{how.get(result.stopped, f'Done: {n} steps')}** · {result.elapsed:.1f} s on {result.device}"
        yield (image, text, loss_frame(result.history), files, *self.compare(session))

    def _one_pass(self, session: Session, s: Settings, photo: torch.Tensor, painting: torch.Tensor | None) -> tuple:
        start = time.perf_counter()
        try:
            if s.method == FEEDFORWARD:
                model = cached_model(s.model)
                image = model(photo, size=s.size, preserve_color=s.colour)
                image, options = to_pil(image), {"model": s.model, "size": s.size, "preserve_color": s.colour}
                kind, device = "apply", str(model.device)
            else:
                method = next(m for m, label in ARBITRARY.items() if label == s.method)
                cfg = ArbitraryConfig(method=method, alpha=s.alpha, size=s.size, preserve_color=s.colour)
                image, options, kind, device = (
                    arbitrary_transfer(photo, painting, cfg),
                    asdict(cfg),
                    "arbitrary",
                    self.device,
                )
        except Exception as err:  # noqa: BLE001 (reported in the page, in one line)
            raise self.failure(err, s) from None
        elapsed = time.perf_counter() - start
        manifest = self.one_pass_manifest(kind, options, s, device, elapsed)
        files = self.save(session, s, image, manifest)
        return (image, f"**Done** in {elapsed:.2f} s on {device}", loss_frame([]), files, *self.compare(session))

    # -- results -------------------------------------------------------------------------------------

    def inputs(self, s: Settings) -> dict:
        """The input records of a manifest, with file names rather than the server's paths."""
        styles = [s.style] if s.style and s.method != FEEDFORWARD else []
        records = input_records(s.content, styles)
        for record, path in zip([records["content"], *records["styles"]], [s.content, *styles]):
            record["path"] = display_name(path)
        return records

    def one_pass_manifest(self, kind: str, options: dict, s: Settings, device: str, elapsed: float) -> dict:
        """The manifest of a feed-forward or arbitrary result."""
        return one_pass_manifest(
            kind, options, self.inputs(s), device, elapsed, {"file": "result.png"}, app=f"stylist web {__version__}"
        )

    def save(self, session: Session, s: Settings, image: Image.Image, manifest: dict) -> list[str]:
        """The result as PNG with its manifest inside, and the manifest beside it as JSON."""
        stem = f"{Path(display_name(s.content)).stem}_{s.model or Path(display_name(s.style)).stem}"
        png = session.next_name(f"{stem}.png")
        manifest["output"] = {"file": png.name, "width": image.width, "height": image.height}
        save_image(image, png, **embed_params("PNG", manifest))
        sidecar = write_atomic_bytes(png.with_name(png.name + ".json"), (to_json(manifest, indent=2) + "\n").encode())
        short = {
            OPTIMISATION: "optimisation",
            FEEDFORWARD: "feed-forward",
            **{v: k.upper() if k == "wct" else "AdaIN" for k, v in ARBITRARY.items()},
        }
        caption = f"#{session.count} {s.summary()['style']} · {s.size} px · {short.get(s.method, s.method)}"
        session.results.append(Record(png, caption, {"#": session.count, **s.summary()}))
        return [str(png), str(sidecar)]

    def compare(self, session: Session) -> tuple[list, pd.DataFrame]:
        """The compare view: the session's last results, newest first, with their settings."""
        records = list(reversed(session.results))
        table = pd.DataFrame([r.settings for r in records])
        return [(str(r.image), r.caption) for r in records], table

    def failure(self, err: BaseException, s: Settings) -> gr.Error:
        """An exception as one line in the page; anything unexpected goes to the server log in full."""
        if isinstance(err, StylistError):
            return gr.Error(user_message(err, [s.content, s.style]), print_exception=False)
        log.error("run failed", exc_info=(type(err), err, err.__traceback__))
        return gr.Error(
            f"The run failed on the server ({type(err).__name__}); the details are in the server's log.",
            print_exception=False,
        )


def colour_key(label: str) -> str:
    return next((k for k, v in COLOURS.items() if v == label or k == label), label)


_MODELS: dict[str, object] = {}
_MODELS_LOCK = threading.Lock()


def cached_model(name: str):
    """A built-in style network, loaded once per server (shared read-only by every session)."""
    with _MODELS_LOCK:
        if name not in _MODELS:
            _MODELS[name] = load_model(name)
        return _MODELS[name]


# --- the page --------------------------------------------------------------------------------------

CSS = """
#status { min-height: 2.5em; }
#result img { width: 100%; height: 100%; object-fit: contain; }
/* Results side by side at a readable size, however few there are (Gradio widens a lone one). */
#compare .grid-container { grid-template-columns: repeat(auto-fill, minmax(260px, 1fr)) !important; }
#compare .thumbnail-item { height: 240px; }
"""


def build(limits: WebLimits, root: Path, arbitrary: list[str] | None = None) -> gr.Blocks:
    """The page (not launched). ``root`` holds the sessions' folders; ``arbitrary`` the arbitrary
    methods to offer (default: those whose decoder loads here)."""
    app = App(limits, root, arbitrary_methods() if arbitrary is None else arbitrary)
    keep_s = int(limits.session_hours * 3600)
    with gr.Blocks(title="Stylist", analytics_enabled=False, delete_cache=(600, keep_s)) as demo:
        session = gr.State(app.new_session, time_to_live=keep_s, delete_callback=Session.close)
        gr.Markdown(
            "# Stylist\nA photograph rendered in the style of a painting. Choose a photo and a painting, a method, and press **Stylise**."
        )
        with gr.Row():
            with gr.Column(scale=5):
                inputs = input_panel(limits, app)
            with gr.Column(scale=6):
                result = gr.Image(label="Result", format="png", interactive=False, elem_id="result", height=420)
                status = gr.Markdown(elem_id="status")
                plot = gr.LinePlot(
                    loss_frame([]),
                    x="step",
                    y="log10 loss",
                    color="term",
                    color_map=TERMS,
                    x_axis_format="d",
                    label="Loss, log10 of each weighted term (black: total, orange: style, blue: content, green: TV)",
                    elem_id="loss-plot",
                    height=300,
                )
                files = gr.File(
                    label="Download: the result (PNG, manifest inside) and its manifest (JSON)",
                    file_count="multiple",
                    interactive=False,
                    elem_id="downloads",
                )
        gr.Markdown(
            "## Compare\nYour last results in this tab, newest first, with their settings. Other visitors never see them."
        )
        gallery = gr.Gallery(
            label="Your last results", columns=3, height=320, object_fit="contain", elem_id="compare", preview=False
        )
        table = gr.Dataframe(label="Settings", interactive=False, elem_id="compare-table")
        wire(app, limits, session, inputs, [result, status, plot, files, gallery, table])
    return demo


@dataclass
class Inputs:
    """The input panel's components, for wiring."""

    content: gr.File
    style: gr.File
    content_view: gr.Image
    style_view: gr.Image
    content_examples: gr.Gallery
    style_examples: gr.Gallery
    style_column: gr.Column
    method: gr.Radio
    model: gr.Dropdown
    size: gr.Slider
    ratio: gr.Slider
    tv: gr.Slider
    iterations: gr.Slider
    colour: gr.Radio
    alpha: gr.Slider
    run: gr.Button
    stop: gr.Button
    knobs: list = field(default_factory=list)


def image_picker(kind: str, label: str) -> tuple[gr.File, gr.Image, gr.Gallery]:
    """An upload box, a preview of the chosen image, and the bundled examples to click."""
    upload = gr.File(
        label=f"{label}: upload", file_types=IMAGE_SUFFIXES, type="filepath", elem_id=f"{kind}-upload", height=90
    )
    view = gr.Image(label=label, interactive=False, height=200, elem_id=f"{kind}-view", buttons=[])
    examples = [(str(p), p.stem.replace("_", " ")) for p in example_images(kind)]
    gallery = gr.Gallery(
        examples,
        label="…or click an example",
        columns=4,
        height=110,
        allow_preview=False,
        elem_id=f"{kind}-examples",
        visible=bool(examples),
        buttons=[],
    )
    return upload, view, gallery


def input_panel(limits: WebLimits, app: App) -> Inputs:
    with gr.Row():
        with gr.Column(min_width=200):
            content, content_view, content_examples = image_picker("content", "Photo")
        with gr.Column(min_width=200) as style_column:
            style, style_view, style_examples = image_picker("style", "Painting")
    method = gr.Radio(app.methods(), value=OPTIMISATION, label="Method", elem_id="method")
    model = gr.Dropdown(
        app.models, value=app.models[0] if app.models else None, label="Built-in style", visible=False, elem_id="model"
    )
    default_size = min(limits.max_size, 256 if app.device == "cpu" else 512)
    size = gr.Slider(
        64, limits.max_size, step=32, value=default_size, label="Result size (longest side, px)", elem_id="size"
    )
    ratio = gr.Slider(
        -1, 5, step=0.1, value=1.5, label="Style / content weight, log₁₀(β/α)", info=ratio_info(1.5), elem_id="ratio"
    )
    tv = gr.Slider(0, 10, step=0.1, value=0, label="Smoothness: total-variation weight γ", elem_id="tv")
    iterations = gr.Slider(10, limits.max_iterations, step=10, value=100, label="Iterations", elem_id="iterations")
    colour = gr.Radio(list(COLOURS.values()), value=COLOURS["none"], label="Colour", elem_id="colour")
    alpha = gr.Slider(
        0,
        1,
        step=0.05,
        value=1.0,
        label="Style strength α (0: the photo, 1: full style)",
        visible=False,
        elem_id="alpha",
    )
    with gr.Row():
        run = gr.Button("Stylise", variant="primary", elem_id="run")
        stop = gr.Button("Stop", variant="stop", elem_id="stop")
    return Inputs(
        content,
        style,
        content_view,
        style_view,
        content_examples,
        style_examples,
        style_column,
        method,
        model,
        size,
        ratio,
        tv,
        iterations,
        colour,
        alpha,
        run,
        stop,
    )


def ratio_info(log_ratio: float) -> str:
    return f"β/α = {10 ** float(log_ratio):.3g} (the content weight α is 1); higher: more painting, less photo"


def method_view(method: str) -> tuple:
    """What each method uses: (style column, built-in style, ratio, tv, iterations, alpha, colour)."""
    optimising, feedforward = method == OPTIMISATION, method == FEEDFORWARD
    colours = [COLOURS["none"], COLOURS["luminance"]] if feedforward else list(COLOURS.values())
    return (
        gr.update(visible=not feedforward),
        gr.update(visible=feedforward),
        gr.update(visible=optimising),
        gr.update(visible=optimising),
        gr.update(visible=optimising),
        gr.update(visible=not (optimising or feedforward)),
        gr.update(choices=colours, value=COLOURS["none"]),
    )


def wire(app: App, limits: WebLimits, session: gr.State, ui: Inputs, outputs: list) -> None:
    """The events. Light ones run outside the run queue's limit, so they answer while runs go on."""
    light = {"concurrency_limit": None, "concurrency_id": "light", "show_progress": "hidden"}
    for upload, view, examples, kind in (
        (ui.content, ui.content_view, ui.content_examples, "content"),
        (ui.style, ui.style_view, ui.style_examples, "style"),
    ):
        upload.change(lambda path, kind=kind: shown(path, kind, limits), upload, [view, upload], **light)
        examples.select(pick_example(kind), None, upload, **light)
    ui.method.change(
        method_view,
        ui.method,
        [ui.style_column, ui.model, ui.ratio, ui.tv, ui.iterations, ui.alpha, ui.colour],
        **light,
    )
    ui.ratio.change(lambda v: gr.update(info=ratio_info(v)), ui.ratio, ui.ratio, **light)
    knobs = [ui.content, ui.style, ui.method, ui.model, ui.size, ui.ratio, ui.tv, ui.iterations, ui.colour, ui.alpha]
    ui.run.click(
        app.run,
        [session, *knobs],
        outputs,
        concurrency_limit=limits.concurrency,
        concurrency_id="run",
        show_progress="minimal",
    )
    # Not queued: a Stop must reach the run it ends, however long the queue.
    ui.stop.click(lambda s: s.stop.set(), session, None, queue=False)


def shown(path: str | None, kind: str, limits: WebLimits) -> tuple:
    """(preview, upload) for a newly chosen image; a bad file is cleared with a message."""
    try:
        return preview(path, kind, limits), gr.skip()
    except gr.Error as err:
        gr.Warning(err.message, duration=None)
        return None, None


def pick_example(kind: str):
    names = example_images(kind)

    def pick(evt: gr.SelectData) -> str:
        return str(names[evt.index])

    return pick


# --- the server ----------------------------------------------------------------------------------------


def theme() -> gr.themes.Base:
    # System fonts: the default theme would fetch web fonts, and Stylist works offline.
    return gr.themes.Soft(font=["system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])


def start(
    host: str = "127.0.0.1",
    port: int | None = 7860,
    limits: WebLimits | None = None,
    arbitrary: list[str] | None = None,
) -> tuple[gr.Blocks, str, Path]:
    """Build and launch the app without blocking; returns (app, its address, its private folder).

    Gradio's upload/cache folder is set to a fresh folder of this server (a shared one would let
    the server serve other apps' files); the app serves that folder and the bundled examples only.
    """
    limits = limits or WebLimits()
    root = Path(tempfile.mkdtemp(prefix="stylist-web-"))
    os.environ["GRADIO_TEMP_DIR"] = str(root / "files")
    (root / "sessions").mkdir()
    demo = build(limits, root / "sessions", arbitrary)
    demo.queue(max_size=limits.queue_size, default_concurrency_limit=limits.concurrency)
    examples = examples_dir()
    _, url, _ = demo.launch(
        server_name=host,
        server_port=port,
        prevent_thread_lock=True,
        quiet=True,
        show_error=False,
        allowed_paths=[str(examples)] if examples else [],
        max_file_size=f"{limits.max_upload_mb}mb",
        footer_links=["api"],
        run_history=False,
        enable_monitoring=False,
        ssr_mode=False,
        mcp_server=False,
        theme=theme(),
        css=CSS,
    )
    return demo, url, root


def stop_server(demo: gr.Blocks, root: Path) -> None:
    """Close the server and delete its folder (uploads, results)."""
    demo.close()
    shutil.rmtree(root, ignore_errors=True)
