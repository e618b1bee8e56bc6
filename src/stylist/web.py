"""The web app (``stylist web``): a thin Gradio adapter over the public API.

The page takes a photo and a painting (uploaded or from the bundled examples), runs one of the
three methods through :func:`stylist.stylize`, :func:`stylist.load_model` or
:func:`stylist.api.arbitrary`, shows the optimisation as it goes (the image every few steps, a
growing loss plot, the time left), stops it on request keeping the image so far, offers the
result with its manifest for download, and keeps the last results side by side.

Safety, by design rather than by convention:

* every visitor has a :class:`Session` (Gradio state, one per browser tab) with its own folder
  for results, made at its first result; at most ``max_sessions`` folders exist (the least
  recently used goes first), each deleted ``session_hours`` after its last use, and each holds
  at most ``keep_results`` results; nothing a visitor makes is kept in module globals;
* the server serves only the bundled examples (``allowed_paths``) and the files it made or was
  sent (Gradio's upload and example-cache folders, both made private to this server), never the
  rest of the disk (the ``.gradio`` folder of the working directory is blocked outright);
* one run at a time per session, and at most ``concurrency`` computing at once on the server
  (a semaphore held by the computation itself, not by Gradio's queue): runs beyond it wait in a
  bounded queue, and Gradio tells each visitor their place in it. A run whose job is cancelled
  or whose tab is closed is told to stop at its next step, and holds its place until it has;
* uploads are limited in bytes (``max_file_size``) and pixels; every number is checked (NaN,
  infinity, out of range); a bad file or setting gives a one-line message in the page
  (``gr.Error``), and a failed run its one-line reason in the status line, never a stack trace.
"""

from __future__ import annotations

import html
import importlib.resources
import logging
import math
import os
import queue
import shutil
import tempfile
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd
import torch
from PIL import Image

from . import __version__
from .api import arbitrary as arbitrary_transfer
from .arbitrary import METHODS as ARBITRARY_METHODS
from .arbitrary import ArbitraryConfig, load_decoder
from .devices import resolve_device
from .errors import StylistError
from .feedforward import builtin_models, load_model
from .films import VideoConfig, VideoProgress, VideoResult, stylize_video
from .image import WRITE_FORMATS, read_picture, resize_long_side, save_image, to_pil, write_atomic_bytes
from .manifest import build_manifest, embed_params, input_records, one_pass_manifest, to_json
from .optimize import Progress, TransferConfig, TransferResult, stylize
from .web_limits import WebLimits

log = logging.getLogger("stylist.web")

OPTIMISATION = "Optimisation (Gatys et al.)"
FEEDFORWARD = "Feed-forward (built-in style)"
ARBITRARY = {"adain": "Arbitrary style (AdaIN)", "wct": "Arbitrary style (WCT)"}
COLOURS = {
    "none": "none",
    "luminance": "keep the photo's colours (luminance)",
    "mean-covariance": "recolour the painting (mean and covariance)",
}
IMAGE_SUFFIXES = sorted(WRITE_FORMATS) + [".gif"]
FILM_SUFFIXES = [".mp4", ".mov", ".mkv", ".webm", ".m4v", ".avi"]
# The video tab's methods: the one-pass ones (the optimisation takes minutes a frame on a server's CPU).
VIDEO_ARBITRARY = {"adain": "AdaIN (any painting)", "wct": "WCT (any painting)"}


# --- where things are --------------------------------------------------------------------------------


def examples_dir() -> Path | None:
    """The example images the page offers (content/ and style/): $STYLIST_EXAMPLES when set, else
    the ``examples`` package data shipped inside stylist (small copies of the source tree's
    examples/, see its SOURCES.md); None when neither is a folder on disk (a zipped install)."""
    chosen = os.environ.get("STYLIST_EXAMPLES")
    if chosen:
        root = Path(chosen)
    else:
        # Package data, found the way an installed wheel has it; it must be a real folder, since
        # the server serves the examples by path (allowed_paths).
        shipped = importlib.resources.files("stylist") / "examples"
        if not isinstance(shipped, Path):
            return None
        root = shipped
    if (root / "content").is_dir() and (root / "style").is_dir():
        return root.resolve()
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


class Folders:
    """The sessions' result folders under one root, bounded in number and in age.

    A folder is made when a session saves its first result (a visit, or a request with a new
    session id, costs no disk); at most ``limit`` exist, the least recently used deleted to make
    room for a new one; a folder unused for ``ttl`` seconds is deleted by :meth:`expire`, which
    every new folder and the server's sweeper call."""

    def __init__(self, root: Path, limit: int, ttl: float) -> None:
        self.root, self.limit, self.ttl = root, limit, ttl
        self.lock = threading.Lock()
        self.used: OrderedDict[Path, float] = OrderedDict()  # folder -> time of last use, oldest first

    def make(self) -> Path:
        with self.lock:
            self._expire()
            while len(self.used) >= self.limit:
                oldest, _ = self.used.popitem(last=False)
                shutil.rmtree(oldest, ignore_errors=True)
            path = Path(tempfile.mkdtemp(prefix="session-", dir=self.root))
            self.used[path] = time.monotonic()
            return path

    def touch(self, path: Path) -> bool:
        """Mark ``path`` used now; False when it was deleted (expired or given up for newer ones)."""
        with self.lock:
            if path not in self.used:
                return False
            self.used[path] = time.monotonic()
            self.used.move_to_end(path)
            return True

    def drop(self, path: Path) -> None:
        with self.lock:
            self.used.pop(path, None)
        shutil.rmtree(path, ignore_errors=True)

    def expire(self) -> None:
        with self.lock:
            self._expire()

    def _expire(self) -> None:
        now = time.monotonic()
        while self.used:
            oldest, last = next(iter(self.used.items()))
            if now - last <= self.ttl:
                break
            del self.used[oldest]
            shutil.rmtree(oldest, ignore_errors=True)

    def __len__(self) -> int:
        return len(self.used)


class Session:
    """One browser tab's state: its results folder, its stop flag, whether a run is under way."""

    def __init__(self, folders: Folders, keep: int) -> None:
        self.folders = folders
        self.dir: Path | None = None  # made at the first result
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.busy = False
        self.count = 0
        self.keep = keep
        self.results: deque[Record] = deque()

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

    def folder(self) -> Path:
        """The session's results folder, made (again) when it has none or it has expired."""
        if self.dir is None or not self.folders.touch(self.dir):
            self.results.clear()  # their files went with the old folder
            self.dir = self.folders.make()
        return self.dir

    def next_name(self, stem: str) -> Path:
        self.count += 1
        return self.folder() / f"{self.count:03d}_{stem}"

    def add(self, record: Record) -> None:
        """Keep ``record`` in the compare view; the oldest beyond ``keep`` is deleted with its files."""
        self.results.append(record)
        while len(self.results) > self.keep:
            old = self.results.popleft()
            for path in (old.image, old.image.with_name(old.image.name + ".json")):
                path.unlink(missing_ok=True)

    def close(self) -> None:
        """The tab is gone: end its run at the next step and delete its results."""
        self.stop.set()
        if self.dir is not None:
            self.folders.drop(self.dir)


# --- inputs ----------------------------------------------------------------------------------------


def display_name(path: str | None) -> str:
    # Gradio keeps an upload's own file name as the last part of its cached path.
    return Path(path).name if path else ""


def user_message(err: Exception, paths: list[str | None]) -> str:
    """A Stylist error as the page shows it: file names instead of the server's paths, no CLI hints."""
    lines = str(err).strip().splitlines()
    text = lines[0] if lines else type(err).__name__
    for p in paths:
        if p:
            text = text.replace(str(Path(p).resolve()), display_name(p)).replace(str(p), display_name(p))
    # Gradio renders messages as HTML, and file names come from the visitor.
    text = text.split("; if you trust the file")[0].replace(" (see --help)", "")
    return html.escape(text.replace("raise --size", "choose a larger result size"))


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


# --- numbers ---------------------------------------------------------------------------------------

# The sliders' ranges; a number sent by a script rather than the page is checked against them too.
SIZE_MIN = 64
RATIO_RANGE = (-1.0, 5.0)
TV_RANGE = (0.0, 10.0)
ITERATIONS_MIN = 10
ALPHA_RANGE = (0.0, 1.0)


def Slider(*args, **kwargs) -> gr.Slider:  # noqa: N802 (stands in for gr.Slider)
    """A gr.Slider that hands the app whatever its number box holds, for :func:`number` to check.

    Gradio's own check raises a bare TypeError for an empty box (sent as null) and lets NaN
    through. Wrapped on the instance: a subclass of a Gradio component makes Gradio write a
    .pyi file beside this module."""
    slider = gr.Slider(*args, **kwargs)
    gradio_check = slider.preprocess

    def preprocess(payload: float | None) -> float | None:
        if isinstance(payload, (int, float)) and math.isfinite(payload):
            return gradio_check(payload)
        return payload

    slider.preprocess = preprocess  # type: ignore[assignment]
    return slider


def number(value: object, name: str, low: float, high: float) -> float:
    """A number from the page, finite and within [low, high]; gr.Error in one line otherwise.

    Gradio checks a slider's range, but NaN passes every comparison, so it is refused here."""
    try:
        x = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        x = math.nan
    if not (math.isfinite(x) and low <= x <= high):
        raise gr.Error(
            f"{name} must be a number from {low:g} to {high:g}; "
            f"got {'nothing' if value is None else html.escape(str(value))[:40]}.",
            print_exception=False,
        )
    return x


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


def take_slot(slots: threading.Semaphore, stop: threading.Event) -> bool:
    """Wait for one of the server's computing places; False when ``stop`` is set meanwhile."""
    while not slots.acquire(timeout=0.1):
        if stop.is_set():
            return False
    return True


def compute_in_slot(run: OptimisationRun | VideoRun, compute: Callable[[], Any]) -> None:
    """The body of a run's worker thread: wait for a computing place, set ``run.result`` (or
    ``run.error``, which the page's thread reports), give the place back, and end the session's claim.
    A run stopped before it got a place has no result."""
    try:
        if not take_slot(run.slots, run.stop):
            return
        try:
            run.result = compute()
        finally:
            run.slots.release()
    except BaseException as err:
        run.error = err
    finally:
        run.session.release()


class OptimisationRun:
    """One optimisation in a worker thread; the page's generator polls it for progress.

    The thread holds one of the server's computing places (``slots``) while it computes and
    ends the session's claim when it is done: a run whose page went away keeps both until it
    has stopped, at its next step, so a waiting run never computes beside it."""

    def __init__(
        self, s: Settings, content: torch.Tensor, style: torch.Tensor, session: Session, slots: threading.Semaphore
    ) -> None:
        self.events: queue.Queue[Progress] = queue.Queue()
        self.rows: list[dict] = []  # every step's loss terms, for the plot
        self.session, self.slots = session, slots
        self.stop = session.stop
        self.result: TransferResult | None = None
        self.error: BaseException | None = None
        self.cfg = transfer_config(s)
        self.thread = threading.Thread(target=self._work, args=(content, style), daemon=True, name="stylist-run")

    def _callback(self, p: Progress) -> bool:
        self.events.put(p)
        return self.stop.is_set()  # True ends the run: the image so far is the result

    def _work(self, content: torch.Tensor, style: torch.Tensor) -> None:
        compute_in_slot(self, lambda: stylize(content, style, self.cfg, self._callback))

    def _take(self, p: Progress) -> Progress:
        self.rows.append({"step": p.step, **p.losses, "seconds": p.elapsed})
        return p

    def updates(self, every: float = 0.3):
        """Yield the latest Progress at most every ``every`` seconds while the run lasts; the history so far."""
        return newest_events(self.thread, self.events, every, self._take)  # every step's losses, the newest image


def newest_events(thread: threading.Thread, events: queue.Queue, every: float, take=None):
    """Yield the newest event of ``events`` at most every ``every`` seconds while ``thread`` runs (and
    until the queue is empty); ``take``, when given, sees every event (and returns it) as it comes."""
    last, latest = 0.0, None
    take = take or (lambda e: e)
    while thread.is_alive() or not events.empty():
        try:
            latest = take(events.get(timeout=0.1))
            while not events.empty():
                latest = take(events.get_nowait())
        except queue.Empty:
            pass
        if latest is not None and time.monotonic() - last >= every:
            last = time.monotonic()
            yield latest
            latest = None


class VideoRun:
    """One film in a worker thread (as :class:`OptimisationRun`): it holds a computing place while it
    computes, ends the session's claim when done, and stops at the next frame when the page asks."""

    def __init__(self, source: str, out: Path, cfg: VideoConfig, session: Session, slots, **method) -> None:
        self.events: queue.Queue[VideoProgress] = queue.Queue()
        self.session, self.slots, self.stop = session, slots, session.stop
        self.source, self.out, self.cfg, self.method = source, out, cfg, method
        self.result: VideoResult | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._work, daemon=True, name="stylist-run")

    def _callback(self, p: VideoProgress) -> bool:
        self.events.put(p)
        return self.stop.is_set()  # True: the film is written with the frames so far

    def _work(self) -> None:
        compute_in_slot(
            self, lambda: stylize_video(self.source, self.out, self.cfg, callback=self._callback, **self.method)
        )

    def updates(self, every: float = 0.5):
        """The newest VideoProgress at most every ``every`` seconds while the film is made."""
        return newest_events(self.thread, self.events, every)


def video_status(p: VideoProgress) -> str:
    """Frame n of N, frames per second and the time left."""
    fps = p.frame / p.elapsed if p.elapsed > 0 else 0.0
    of = f" of {p.total}" if p.total else ""
    left = f" · about {(p.total - p.frame) / fps:.0f} s left" if p.total and fps > 0 else ""
    return f"Frame {p.frame}{of} · {fps:.1f} frames/s{left}"


class App:
    """The page's handlers, bound to one server's limits and folders."""

    def __init__(self, limits: WebLimits, root: Path, arbitrary: list[str]) -> None:
        self.limits, self.root, self.arbitrary = limits, root, arbitrary
        self.folders = Folders(root, limits.max_sessions, limits.session_hours * 3600)
        # The computing places: held by the computation itself, so a run that was cancelled
        # keeps its place until it has stopped, whatever Gradio's queue believes.
        self.slots = threading.BoundedSemaphore(limits.concurrency)
        self.models = sorted(builtin_models())
        self.device = str(resolve_device("auto"))
        self.sweeping = threading.Event()  # set: the sweeper ends

    def new_session(self) -> Session:
        return Session(self.folders, self.limits.keep_results)

    def sweep(self) -> None:
        """Delete expired session folders until :attr:`sweeping` is set (the server's sweeper thread)."""
        every = min(60.0, max(0.5, self.folders.ttl / 4))
        while not self.sweeping.wait(every):
            self.folders.expire()

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
            round(number(size, "The result size", SIZE_MIN, self.limits.max_size)),
            number(log_ratio, "The style / content weight", *RATIO_RANGE),
            number(tv_weight, "The smoothness weight", *TV_RANGE),
            round(number(iterations, "The number of iterations", ITERATIONS_MIN, self.limits.max_iterations)),
            colour_key(colour),
            number(alpha, "The style strength", *ALPHA_RANGE),
        )
        photo, painting = self.check(s)
        job = None
        if s.method == OPTIMISATION:  # made before the claim, which its thread releases when it ends
            assert painting is not None  # check() reads the painting for every method but feed-forward
            job = OptimisationRun(s, photo, painting, session, self.slots)
        if not session.claim():
            raise gr.Error("A run is already under way in this tab: wait for it or press Stop.", print_exception=False)
        if job is not None:
            yield from self._optimise(session, s, job)
            return
        try:
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
            if s.colour == "mean-covariance":
                raise gr.Error(
                    "The feed-forward styles keep the photo's colours by luminance only: choose none or luminance.",
                    print_exception=False,
                )
            return photo, None
        return photo, check_image(s.style, "style", self.limits)

    def _optimise(self, session: Session, s: Settings, run: OptimisationRun):
        run.thread.start()
        ended = False
        try:
            yield (gr.skip(), "Starting: loading the network and the images…", *[gr.skip()] * 4)
            for p in run.updates():
                yield (to_pil(p.image), status_line(p, run.rows[0]), loss_frame(run.rows), *[gr.skip()] * 3)
            run.thread.join()
            ended = True
        finally:
            if not ended:
                # Gradio closes this generator when the job is cancelled or its tab has gone
                # (at the next yield): the run stops at its next step. No join here: close()
                # runs on the server's event loop, which must not wait for a step.
                session.stop.set()
        if run.error is not None:
            yield self.failed(run.error, s)
            return
        result = run.result
        if result is None:
            yield (gr.skip(), "**Stopped** before it began", *[gr.skip()] * 4)
            return
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
        """A feed-forward or arbitrary-style result: one pass, which no Stop can cut short.

        It holds a computing place like an optimisation; a cancelled one ends with its pass."""
        if not take_slot(self.slots, session.stop):
            return (gr.skip(), "**Stopped** before it began", *[gr.skip()] * 4)
        start = time.perf_counter()
        try:
            if s.method == FEEDFORWARD:
                assert s.model is not None  # the settings check asks for a model with this method
                model = cached_model(s.model)
                image = model(photo, size=s.size, preserve_color=s.colour)
                image, options = to_pil(image), {"model": s.model, "size": s.size, "preserve_color": s.colour}
                kind, device = "apply", str(model.device)
            else:
                assert painting is not None  # the settings check asks for a painting with this method
                method = next(m for m, label in ARBITRARY.items() if label == s.method)
                cfg = ArbitraryConfig(method=method, alpha=s.alpha, size=s.size, preserve_color=s.colour)
                image, options, kind, device = (
                    arbitrary_transfer(photo, painting, cfg),
                    asdict(cfg),
                    "arbitrary",
                    self.device,
                )
        except Exception as err:  # noqa: BLE001 (reported in the page, in one line)
            return self.failed(err, s)
        finally:
            self.slots.release()
        elapsed = time.perf_counter() - start
        manifest = self.one_pass_manifest(kind, options, s, device, elapsed)
        files = self.save(session, s, image, manifest)
        return (image, f"**Done** in {elapsed:.2f} s on {device}", loss_frame([]), files, *self.compare(session))

    def video_methods(self) -> list[str]:
        return ([FEEDFORWARD] if self.models else []) + [VIDEO_ARBITRARY[m] for m in self.arbitrary]

    def run_video(
        self, session: Session, film: str | None, style: str | None, method: str, model: str | None, size, temporal
    ):
        """The video tab's Stylise button: yields (preview frame, status, download) as the film is made."""
        if method not in self.video_methods():
            raise gr.Error(f"Choose a method: {', '.join(self.video_methods())}.", print_exception=False)
        if not film:
            raise gr.Error("Choose a film: upload a short clip.", print_exception=False)
        cfg = VideoConfig(
            method=next((m for m, label in VIDEO_ARBITRARY.items() if label == method), "adain"),
            temporal=number(temporal, "The temporal consistency", 0.0, 1.0),
            size=round(number(size, "The result size", SIZE_MIN, min(self.limits.max_size, 512))),
            duration=self.limits.max_video_seconds,
            max_pixels=self.limits.max_pixels,
        )
        if method == FEEDFORWARD:
            if model not in self.models:
                raise gr.Error(f"Choose a built-in style: {', '.join(self.models)}.", print_exception=False)
            chosen: dict = {"model": cached_model(model)}
            name = model
        else:
            check_image(style, "style", self.limits)
            chosen, name = {"style": style}, Path(display_name(style)).stem
        try:  # read before any work: a damaged file or one without video is refused in one line
            from .films import FilmReader

            FilmReader(film).close()
        except StylistError as err:
            raise gr.Error(user_message(err, [film]), print_exception=False) from None
        if not session.claim():
            raise gr.Error("A run is already under way in this tab: wait for it or press Stop.", print_exception=False)
        out = session.next_name(f"{Path(display_name(film)).stem}_{name}.mp4")
        # One film per tab on the server's disk: a new one replaces the last.
        previous: Path | None = getattr(session, "film", None)
        if previous is not None:
            previous.unlink(missing_ok=True)
        session.film = out  # type: ignore[attr-defined]
        job = VideoRun(film, out, cfg, session, self.slots, **chosen)
        job.thread.start()
        ended = False
        try:
            yield (gr.skip(), "Starting: loading the network and the film…", gr.skip())
            for p in job.updates():
                yield (to_pil(p.image), video_status(p), gr.skip())
            job.thread.join()
            ended = True
        finally:
            if not ended:
                session.stop.set()  # the page went away: the film stops at its next frame
        if job.error is not None:
            text = failure_message(job.error, Settings(method, film, style, model, 0, 0, 0, 0, "none", 1.0))
            yield (None, f"**The run failed:** {text}", None)
            return
        result = job.result
        if result is None:
            yield (gr.skip(), "**Stopped** before it began", gr.skip())
            return
        how = "Stopped: the film has the frames so far" if result.stopped else "Done"
        flicker = f" · warping error {result.warping_error:.5f}" if result.warping_error is not None else ""
        text = f"**{how}** · {result.frames} frames in {result.elapsed:.1f} s{flicker}"
        yield (gr.skip(), text, str(out))

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
        session.add(Record(png, caption, {"#": session.count, **s.summary()}))
        return [str(png), str(sidecar)]

    def compare(self, session: Session) -> tuple[list, pd.DataFrame]:
        """The compare view: the session's last results, newest first, with their settings."""
        records = [r for r in reversed(session.results) if r.image.exists()]
        table = pd.DataFrame([r.settings for r in records])
        return [(str(r.image), r.caption) for r in records], table

    def failed(self, err: BaseException, s: Settings) -> tuple:
        """The page's outputs after a failed run: its reason in the status line (and a notice)."""
        text = failure_message(err, s)
        gr.Warning(text, duration=None, title="The run failed")
        return (None, f"**The run failed:** {text}", *[gr.skip()] * 4)


def failure_message(err: BaseException, s: Settings) -> str:
    """Why a run failed, in one line: a Stylist error says it; anything else, which is a bug or a
    fault of the server, gets a short generic line in the page and its traceback in the log."""
    if isinstance(err, StylistError):
        return user_message(err, [s.content, s.style])
    log.error("run failed", exc_info=(type(err), err, err.__traceback__))
    return "something went wrong on the server; its operator will find the details in its log."


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
        # A function, not the bound method: Gradio deep-copies the value, and the App holds locks.
        session = gr.State(lambda: app.new_session(), time_to_live=keep_s, delete_callback=Session.close)
        gr.Markdown(
            "# Stylist\nA photograph rendered in the style of a painting. "
            "Choose a photo and a painting, a method, and press **Stylise**."
        )
        with gr.Tabs():
            with gr.Tab("Image", id="image-tab", elem_id="image-tab"):
                image_page(app, limits, session)
            with gr.Tab("Video", id="video-tab", elem_id="video-tab"):
                video_page(app, limits, session)
    # start() runs the app's sweeper and stop_server() ends it, so the Blocks carry the app.
    demo.stylist_app = app  # type: ignore[attr-defined]
    return demo


def image_page(app: App, limits: WebLimits, session: gr.State) -> None:
    """The image tab: inputs, the result and its progress, the compare view."""
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


def video_page(app: App, limits: WebLimits, session: gr.State) -> None:
    """The video tab: a short clip in, a method, progress with a preview frame, the film to download."""
    seconds = f"{limits.max_video_seconds:g}"
    gr.Markdown(
        f"Upload a short clip (its first {seconds} s are stylised; the sound is kept). Optical flow keeps the "
        "strokes on the moving things: **temporal consistency** 0 stylises each frame on its own (it flickers)."
    )
    with gr.Row():
        with gr.Column(scale=5):
            film = gr.File(
                label="Film: upload", file_types=FILM_SUFFIXES, type="filepath", elem_id="video-upload", height=90
            )
            methods = app.video_methods()
            method = gr.Radio(methods, value=methods[0] if methods else None, label="Method", elem_id="video-method")
            model = gr.Dropdown(
                app.models, value=app.models[0] if app.models else None, label="Built-in style", elem_id="video-model"
            )
            with gr.Column(visible=False) as style_column:
                style = gr.File(
                    label="Painting: upload", file_types=IMAGE_SUFFIXES, type="filepath", elem_id="video-style-upload"
                )
                view = gr.Image(label="Painting", interactive=False, height=160, elem_id="video-style-view", buttons=[])
                examples = [(str(p), p.stem.replace("_", " ")) for p in example_images("style")]
                gallery = gr.Gallery(
                    examples,
                    label="…or click an example",
                    columns=4,
                    height=110,
                    allow_preview=False,
                    elem_id="video-style-examples",
                    visible=bool(examples),
                    buttons=[],
                )
            size = Slider(
                SIZE_MIN,
                min(limits.max_size, 512),
                step=32,
                value=256,
                label="Size (longest side, px)",
                elem_id="video-size",
            )
            temporal = Slider(0.0, 1.0, step=0.05, value=0.7, label="Temporal consistency", elem_id="video-temporal")
            with gr.Row():
                run = gr.Button("Stylise the film", variant="primary", elem_id="video-run")
                stop = gr.Button("Stop", variant="stop", elem_id="video-stop")
        with gr.Column(scale=6):
            frame = gr.Image(label="Latest frame", interactive=False, elem_id="video-frame", height=360)
            status = gr.Markdown(elem_id="video-status")
            download = gr.File(label="Download the film (MP4)", interactive=False, elem_id="video-download")
    light: dict[str, Any] = {"concurrency_limit": None, "concurrency_id": "light", "show_progress": "hidden"}
    style.change(lambda path: shown(path, "style", limits), style, [view, style], **light)
    gallery.select(pick_example("style"), None, style, **light)
    method.change(
        lambda m: (gr.update(visible=m == FEEDFORWARD), gr.update(visible=m != FEEDFORWARD)),
        method,
        [model, style_column],
        **light,
    )
    run.click(
        app.run_video,
        [session, film, style, method, model, size, temporal],
        [frame, status, download],
        concurrency_limit=limits.concurrency,
        concurrency_id="run",
        show_progress="minimal",
        api_name="video",
    )
    stop.click(lambda s: s.stop.set(), session, None, queue=False, api_name="stop_video")


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
    size = Slider(
        SIZE_MIN, limits.max_size, step=32, value=default_size, label="Result size (longest side, px)", elem_id="size"
    )
    ratio = Slider(
        *RATIO_RANGE,
        step=0.1,
        value=1.5,
        label="Style / content weight, log₁₀(β/α)",
        info=ratio_info(1.5),
        elem_id="ratio",
    )
    tv = Slider(*TV_RANGE, step=0.1, value=0, label="Smoothness: total-variation weight γ", elem_id="tv")
    iterations = Slider(
        ITERATIONS_MIN, limits.max_iterations, step=10, value=100, label="Iterations", elem_id="iterations"
    )
    colour = gr.Radio(list(COLOURS.values()), value=COLOURS["none"], label="Colour", elem_id="colour")
    alpha = Slider(
        *ALPHA_RANGE,
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
    light: dict[str, Any] = {"concurrency_limit": None, "concurrency_id": "light", "show_progress": "hidden"}
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
        api_name="run",
    )
    # Not queued: a Stop must reach the run it ends, however long the queue.
    ui.stop.click(lambda s: s.stop.set(), session, None, queue=False, api_name="stop")


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

    Gradio's upload/cache folder and its examples cache (by default ``.gradio/cached_examples``
    in the working directory, which Gradio serves) are set to fresh folders of this server (a
    shared one would let the server serve other apps' files); the app serves those and the
    bundled examples only, and blocks the working directory's ``.gradio`` folder outright.
    """
    limits = limits or WebLimits()
    root = Path(tempfile.mkdtemp(prefix="stylist-web-"))
    # Gradio reads both at each request; they hold for every app of this process.
    os.environ["GRADIO_TEMP_DIR"] = str(root / "files")
    os.environ["GRADIO_EXAMPLES_CACHE"] = str(root / "cached_examples")
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
        blocked_paths=[str(Path.cwd() / ".gradio")],
        max_file_size=f"{limits.max_upload_mb}mb",
        footer_links=["api"],
        run_history=False,
        enable_monitoring=False,
        ssr_mode=False,
        mcp_server=False,
        theme=theme(),
        css=CSS,
    )
    app: App = demo.stylist_app  # type: ignore[attr-defined]
    threading.Thread(target=app.sweep, daemon=True, name="stylist-sweeper").start()
    return demo, url, root


def stop_server(demo: gr.Blocks, root: Path) -> None:
    """Close the server and delete its folder (uploads, results)."""
    demo.stylist_app.sweeping.set()  # type: ignore[attr-defined]
    demo.close()
    shutil.rmtree(root, ignore_errors=True)
