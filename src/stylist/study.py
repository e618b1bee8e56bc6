"""Studies: the classic experiments of neural style transfer, one call each.

A study is a plan of *cells* (one result each, laid out in labelled rows and columns) run on
one photo and one painting. :func:`run_study` runs the cells, measures each result
(:mod:`stylist.metrics`), and writes into one folder: every image, a grid figure, loss plots,
``metrics.csv`` and ``report.html``. It prints nothing: it reports through ``callback``.

Studies write files, unlike the rest of the core, because a sweep is resumable: each finished
cell leaves ``cells/KEY.png`` and ``cells/KEY.json`` (its settings, history and metrics). A
re-run loads a cell whose record has the same settings and the same input files instead of
computing it again. Every file is written atomically, the record last, so an interrupted
sweep never leaves a cell that looks finished but is not.
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, cast

import torch

from . import __version__
from .arbitrary import ArbitraryConfig, stylize_arbitrary
from .color import luminance
from .devices import resolve_device, resolve_precision
from .errors import ConfigError, ImageError, StylistError
from .feedforward import builtin_models, load_model
from .image import check_min_side, fit_size, load_tensor, resize_long_side, save_image, to_pil, write_atomic_bytes
from .metrics import MetricsConfig, PeakMemory, Scorer
from .optimize import Progress, TransferConfig, stylize
from .plots import png_bytes, pyplot, runs_plot
from .weights import SOURCES, sha256_file

# Content reconstructions (Gatys et al. 2016, Figure 1): the paper's convN_2 is taken after its
# ReLU, which Stylist names reluN_2 (see stylist.optimize).
CONTENT_LAYERS = ("relu1_2", "relu2_2", "relu3_2", "relu4_2", "relu5_2")
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
# A loss weight the objective needs to be positive but that should play no part: reconstructions
# of content alone or of style alone.
NEGLIGIBLE = 1e-12
DEFAULT_VALUES = {
    "ratio": (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0),  # alpha / beta
    "style-weight": (3.0, 10.0, 30.0, 100.0, 300.0, 1000.0),  # beta, alpha = 1
    # Under the default 'mean' normalisation the TV term is a mean |difference| per pixel
    # (about 0.1 on a photo), so gamma 10 already weighs like the content term; 1000 flattens.
    "tv": (0.0, 10.0, 100.0, 1000.0),
}
# TransferConfig fields set by StudyConfig's own options, not by --set.
STUDY_OWNED = ("size", "iterations", "device", "precision", "seed")
TIMING_REPEATS = 3  # feed-forward and arbitrary: median of this many passes, after a warm-up


@dataclass
class StudyConfig:
    """The options every study shares; the CLI builds its flags from these fields."""

    # Longest side of every result, px.
    size: int = 256
    # Optimiser iterations per result.
    iterations: int = 200
    # auto (cuda, then mps, then cpu), or an explicit torch device such as cpu or cuda:1.
    device: str = "auto"
    # auto (bf16 where the hardware is fast at it), fp32 or bf16.
    precision: str = "auto"
    # Seed for noise starts.
    seed: int = 0
    # The swept values of ratio (alpha/beta), style-weight (beta) and tv (gamma); None = the study's own list.
    values: tuple[float, ...] | None = None
    # methods: a feed-forward model (built-in style name or file); None = the built-in style named like the painting.
    model: str | None = None
    # methods: an AdaIN decoder file; None = the decoder shipped with Stylist (if any).
    decoder: str | None = None
    # Recompute every cell, even those finished with the same settings.
    force: bool = False

    def validate(self) -> None:
        if self.size < 32:
            raise ConfigError(f"--size must be at least 32 pixels for a study; got {self.size}")
        if self.iterations <= 0:
            raise ConfigError(f"--iterations must be a positive whole number; got {self.iterations}")
        if self.values is not None and (not self.values or any(not (math.isfinite(v) and v >= 0) for v in self.values)):
            raise ConfigError("--values must be zero or positive numbers")


@dataclass
class Cell:
    """One result of a study: what to run and where it goes in the grid."""

    key: str  # file stem under cells/
    row: str
    col: str
    method: str = "transfer"  # transfer | feedforward | arbitrary
    config: TransferConfig | None = None
    options: dict = field(default_factory=dict)  # feedforward: model; arbitrary: ArbitraryConfig fields
    skip: str | None = None  # a reason known before running (no model for this painting ...)

    @property
    def steps(self) -> int:
        return self.config.iterations if self.config is not None else 1


@dataclass
class Plan:
    name: str
    title: str
    about: str  # one paragraph for the report: what the study shows
    cells: list[Cell]
    spectra: bool = False  # a row of amplitude spectra under the results


@dataclass
class CellResult:
    cell: Cell
    status: str  # done | cached | skipped
    note: str = ""
    image: torch.Tensor | None = None
    history: list[dict] = field(default_factory=list)
    record: dict = field(default_factory=dict)  # seconds, peak memory, metrics ...


@dataclass
class StudyProgress:
    """What the callback receives: ``event`` is start, step, cached, skipped or done (of a cell)."""

    event: str
    index: int  # 0-based cell index
    cells: int
    label: str  # "row / col"
    step: int = 0  # iterations done in this cell
    steps: int = 1  # iterations planned for this cell
    losses: dict[str, float] | None = None


@dataclass
class StudyResult:
    name: str
    folder: Path
    cells: list[CellResult]
    files: list[Path]
    seconds: float
    device: str


StudyCallback = Callable[[StudyProgress], None]


# --- the plans ----------------------------------------------------------------------------------------------


def _base(cfg: StudyConfig, **options: Any) -> TransferConfig:  # Any: TransferConfig's fields
    return TransferConfig(
        size=cfg.size, iterations=cfg.iterations, device=cfg.device, precision=cfg.precision, seed=cfg.seed, **options
    )


def _num(v: float) -> str:
    """A value as a short label and file-name part: 1e-04, 0.1, 30, 1e+03."""
    if v == 0:
        return "0"
    if 1e-2 <= abs(v) < 1e3:
        return f"{v:g}"
    return f"{v:.0e}"


def plan_ratio(cfg: StudyConfig, base: dict, style: Path) -> Plan:
    values = cfg.values or DEFAULT_VALUES["ratio"]
    cells = [
        Cell(
            f"ratio_{_num(r)}",
            "result",
            f"alpha/beta = {_num(r)}",
            config=_base(cfg, **{**base, "content_weight": 1.0, "style_weight": 1.0 / r}),
        )
        for r in values
    ]
    return Plan(
        "ratio",
        "Content/style ratio",
        "alpha (content) over beta (style), one decade per column: "
        "small ratios give the painting's texture, large ones the photograph.",
        cells,
    )


def plan_style_weight(cfg: StudyConfig, base: dict, style: Path) -> Plan:
    values = cfg.values or DEFAULT_VALUES["style-weight"]
    cells = [
        Cell(
            f"beta_{_num(b)}",
            "result",
            f"beta = {_num(b)}",
            config=_base(cfg, **{**base, "content_weight": 1.0, "style_weight": b}),
        )
        for b in values
    ]
    return Plan(
        "style-weight", "Style weight", "beta over a list with alpha = 1 (Stylist's default is beta = 30).", cells
    )


def plan_tv(cfg: StudyConfig, base: dict, style: Path) -> Plan:
    values = cfg.values if cfg.values is not None else DEFAULT_VALUES["tv"]
    cells = [
        Cell(f"tv_{_num(g)}", "result", f"tv weight = {_num(g)}", config=_base(cfg, **{**base, "tv_weight": g}))
        for g in values
    ]
    about = (
        "Total-variation weight gamma; under each result its amplitude spectrum (log |FFT| of the luminance, "
        "centre = low frequencies, one colour scale for all): TV removes the high frequencies at the edges."
    )
    return Plan("tv", "Total variation", about, cells, spectra=True)


def plan_layers(cfg: StudyConfig, base: dict, style: Path) -> Plan:
    # Reconstructions from noise at one scale, as in the paper; the other term is kept negligible.
    common = {**base, "init": "noise", "multiscale": False}
    cells = []
    for layer in CONTENT_LAYERS:
        name = layer.replace("relu", "conv")
        c = _base(
            cfg, **{**common, "content_layers": (layer,), "style_layers": ("relu1_1",), "style_weight": NEGLIGIBLE}
        )
        cells.append(Cell(f"content_{name}", "content", name, config=c))
    for i in range(1, len(STYLE_LAYERS) + 1):
        layers = STYLE_LAYERS[:i]
        label = layers[0].replace("relu", "conv") + ("" if i == 1 else ".." + layers[-1].replace("relu", "conv"))
        c = _base(
            cfg,
            **{
                **common,
                "content_layers": ("relu1_1",),
                "content_weight": NEGLIGIBLE,
                "style_layers": layers,
                "style_weight": 1.0,
            },
        )
        cells.append(Cell(f"style_{i}", "style", label, config=c))
    about = (
        "Gatys et al. 2016, Figure 1: images reconstructed from white noise "
        "to match the photograph's features at one layer "
        "(top; convN_2 is taken after its ReLU) or the painting's Gram matrices at a growing set of layers (bottom)."
    )
    return Plan("layers", "Layer reconstructions", about, cells)


def plan_optimizers(cfg: StudyConfig, base: dict, style: Path) -> Plan:
    # No early stop: every optimiser runs the same number of iterations, for the curves.
    cells = [
        Cell(f"opt_{o}", "result", o, config=_base(cfg, **{**base, "optimizer": o, "early_stop_patience": 0}))
        for o in ("lbfgs", "adam", "sgd")
    ]
    return Plan(
        "optimizers",
        "Optimisers",
        "L-BFGS, Adam and SGD at their default step sizes, the same iterations each; "
        "see the loss plots against iterations and seconds.",
        cells,
    )


def plan_init(cfg: StudyConfig, base: dict, style: Path) -> Plan:
    cells = [
        Cell(f"init_{i}", "result", f"init = {i}", config=_base(cfg, **{**base, "init": i}))
        for i in ("noise", "content", "style")
    ]
    return Plan(
        "init",
        "Initialisation",
        "The starting image: white noise (the paper), the photograph (Stylist's default) or the painting.",
        cells,
    )


def plan_pooling(cfg: StudyConfig, base: dict, style: Path) -> Plan:
    cells = [
        Cell(f"pool_{p}", "result", f"{p} pooling", config=_base(cfg, **{**base, "pooling": p})) for p in ("max", "avg")
    ]
    return Plan(
        "pooling",
        "Pooling",
        "VGG's own max pooling against average pooling (Gatys et al.'s choice for synthesis).",
        cells,
    )


def plan_backbones(cfg: StudyConfig, base: dict, style: Path) -> Plan:
    names = [n for n in ("vgg19-caffe", "vgg19-torchvision", "vgg16-torchvision") if n in SOURCES]
    cells = [Cell(f"weights_{n}", "result", n, config=_base(cfg, **{**base, "weights": n})) for n in names]
    return Plan(
        "backbones",
        "Backbones",
        "The same settings on three sets of VGG weights; those that cannot be loaded here (no network) are skipped.",
        cells,
    )


def plan_methods(cfg: StudyConfig, base: dict, style: Path) -> Plan:
    cells = [Cell("method_optimisation", "result", "optimisation", config=_base(cfg, **base))]
    model = cfg.model or _builtin_for(style)
    skip = (
        None
        if model
        else f"no built-in feed-forward network for {style.name} "
        f"(built-in: {', '.join(builtin_models()) or 'none'}); pass --model"
    )
    cells.append(
        Cell(
            "method_feedforward",
            "result",
            f"feed-forward ({Path(model).stem if model else '-'})",
            method="feedforward",
            options={"model": model},
            skip=skip,
        )
    )
    for m in ("adain", "wct"):
        options = {"method": m, "decoder": cfg.decoder if m == "adain" else None}
        cells.append(Cell(f"method_{m}", "result", f"arbitrary ({m})", method="arbitrary", options=options))
    about = (
        "Optimisation against one forward pass: a feed-forward network trained for this painting, and arbitrary-style "
        "transfer (AdaIN, WCT) with any painting. Time per image measured here; networks loaded and warmed up first."
    )
    return Plan("methods", "Methods", about, cells)


def _builtin_for(style: Path) -> str | None:
    """The built-in feed-forward style named like the painting file (starry_night.jpg -> starry-night)."""
    name = style.stem.lower().replace("_", "-").replace(" ", "-")
    return name if name in builtin_models() else None


PLANS: dict[str, Callable[[StudyConfig, dict, Path], Plan]] = {
    "ratio": plan_ratio,
    "style-weight": plan_style_weight,
    "tv": plan_tv,
    "layers": plan_layers,
    "optimizers": plan_optimizers,
    "init": plan_init,
    "pooling": plan_pooling,
    "backbones": plan_backbones,
    "methods": plan_methods,
}
STUDIES = tuple(PLANS)


def make_plan(name: str, cfg: StudyConfig, style: Path, base: dict | None = None) -> Plan:
    """The cells of study ``name``; ``base`` are TransferConfig options for every cell (the swept one wins)."""
    if name not in PLANS:
        raise ConfigError(f"unknown study '{name}': use one of {', '.join(STUDIES)}")
    base = dict(base or {})
    unknown = set(base) - {f.name for f in fields(TransferConfig)}
    if unknown:
        raise ConfigError(
            f"unknown option {', '.join(sorted(unknown))} in --set: "
            "use TransferConfig fields (see stylist transfer --help)"
        )
    own = sorted(set(base) & set(STUDY_OWNED))
    if own:
        raise ConfigError(f"--set {own[0]}: the study has its own option for that; use --{own[0].replace('_', '-')}")
    plan = PLANS[name](cfg, base, style)
    for cell in plan.cells:
        if cell.config is not None:
            cell.config.validate()
    return plan


# --- running -------------------------------------------------------------------------------------------------


def run_study(
    name: str,
    content: str | Path,
    style: str | Path,
    folder: str | Path,
    cfg: StudyConfig | None = None,
    callback: StudyCallback | None = None,
    base: dict | None = None,
    command: str = "",
) -> StudyResult:
    """Run study ``name`` on ``content`` and ``style`` (image files) into ``folder``; see the module notes.

    ``base`` holds TransferConfig options for every cell; ``command`` is recorded in the report.
    """
    cfg = cfg or StudyConfig()
    cfg.validate()
    content, style, folder = Path(content), Path(style), Path(folder)
    plan = make_plan(name, cfg, style, base)
    check_named_inputs(cfg)
    content_t, style_t = load_tensor(content, "content"), load_tensor(style, "style")
    # issue 19: results too small for the network are refused before any folder is made
    check_min_side(
        fit_size(content_t.shape[-2], content_t.shape[-1], cfg.size),
        16,
        f"{content} (at --size {cfg.size})",
        "raise --size",
    )
    device = resolve_device(cfg.device)
    _make_folder(folder / "cells")
    inputs = {
        "content": {"path": str(content), "sha256": sha256_file(content)},
        "style": {"path": str(style), "sha256": sha256_file(style)},
    }
    final_hw = fit_size(content_t.shape[-2], content_t.shape[-1], cfg.size)
    scorer = Scorer(content_t, style_t, final_hw, MetricsConfig(device=str(device)))
    t0 = time.perf_counter()
    results = []
    for i, cell in enumerate(plan.cells):
        results.append(_run_cell(cell, i, len(plan.cells), folder, content_t, style_t, inputs, cfg, scorer, callback))
    seconds = time.perf_counter() - t0
    files = write_outputs(
        plan, results, folder, content_t, style_t, final_hw, cfg, base or {}, inputs, command, str(device), seconds
    )
    return StudyResult(name, folder, results, files, seconds, str(device))


def check_named_inputs(cfg: StudyConfig) -> None:
    """Load the model and decoder the options name, if any: a named input that is wrong is an
    error (StylistError, one line) before any work, not a cell skipped in the report."""
    if cfg.model is not None:
        load_model(cfg.model, "cpu")
    if cfg.decoder is not None:
        from .arbitrary import load_decoder

        load_decoder("adain", cfg.decoder, "cpu")


def _make_folder(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ImageError(f"{path}: cannot create the output folder ({err.strerror or err})") from None


def cell_settings(cell: Cell, cfg: StudyConfig, inputs: dict) -> dict:
    """Everything a cell's result depends on, as plain JSON values (compared on re-runs)."""
    settings = {
        "method": cell.method,
        "config": asdict(cell.config) if cell.config is not None else None,
        "options": cell.options,
        "size": cfg.size,
        "device": cfg.device,
        "precision": cfg.precision,
        "inputs": {k: v["sha256"] for k, v in inputs.items()},
        "version": __version__,
    }
    return json.loads(json.dumps(settings))  # tuples become lists, as they come back from the file


def _run_cell(
    cell: Cell,
    index: int,
    count: int,
    folder: Path,
    content: torch.Tensor,
    style: torch.Tensor,
    inputs: dict,
    cfg: StudyConfig,
    scorer: Scorer,
    callback: StudyCallback | None,
) -> CellResult:
    tell = callback or (lambda p: None)
    label = f"{cell.row} / {cell.col}"
    settings = cell_settings(cell, cfg, inputs)
    png, record_path = folder / "cells" / f"{cell.key}.png", folder / "cells" / f"{cell.key}.json"
    if not cfg.force:
        cached = _load_cell(cell, png, record_path, settings)
        if cached is not None:
            tell(StudyProgress("cached", index, count, label, cell.steps, cell.steps))
            return cached
    tell(StudyProgress("start", index, count, label, 0, cell.steps))
    try:
        if cell.skip:
            raise StylistError(cell.skip)
        image, history, record = _compute(
            cell, content, style, cfg, lambda p: tell(replace(p, index=index, cells=count, label=label))
        )
    except StylistError as err:  # weights that cannot be loaded offline, a missing decoder ...
        # Not recorded: the next run tries again (the weights may be downloadable by then); failing is quick.
        tell(StudyProgress("skipped", index, count, label, cell.steps, cell.steps))
        return CellResult(cell, "skipped", note=str(err), record={"status": "skipped", "note": str(err)})
    record.update(scorer(image) if tuple(image.shape[-2:]) == scorer.size else {})
    record.update(settings=settings, status="done", history=history)
    save_image(image, png, overwrite=True)
    write_atomic_bytes(
        record_path, (json.dumps(record, allow_nan=True) + "\n").encode()
    )  # last: it marks the cell finished
    tell(StudyProgress("done", index, count, label, cell.steps, cell.steps))
    return CellResult(cell, "done", record.get("note", ""), image, history, record)


def _load_cell(cell: Cell, png: Path, record_path: Path, settings: dict) -> CellResult | None:
    """The finished cell from its files, or None when they are missing or were made with other settings."""
    try:
        record = json.loads(record_path.read_text())
    except (OSError, ValueError):
        return None
    if record.get("settings") != settings or record.get("status") != "done" or not png.is_file():
        return None
    try:
        image = load_tensor(png, "cell image")
    except StylistError:
        return None
    return CellResult(cell, "cached", record.get("note", ""), image, record.get("history", []), record)


def _compute(
    cell: Cell, content: torch.Tensor, style: torch.Tensor, cfg: StudyConfig, tell: StudyCallback
) -> tuple[torch.Tensor, list[dict], dict]:
    """(image, loss history, record) of one cell."""
    if cell.method == "transfer":
        return _transfer(cell, content, style, tell)
    if cell.method == "feedforward":
        return _feedforward(cell, content, cfg)
    return _arbitrary(cell, content, style, cfg)


def _transfer(
    cell: Cell, content: torch.Tensor, style: torch.Tensor, tell: StudyCallback
) -> tuple[torch.Tensor, list[dict], dict]:
    cfg = cast(TransferConfig, cell.config)  # a transfer cell always has its config
    meter = PeakMemory(resolve_device(cfg.device))

    def on_step(p: Progress) -> None:
        meter.sample()
        tell(StudyProgress("step", 0, 0, "", p.step, p.total, p.losses))

    with meter:
        result = stylize(content, style, cfg, on_step)
    record = {
        **meter.record(),
        "seconds": result.elapsed,
        "iterations": len(result.history),
        "device": result.device,
        "precision": result.precision,
    }
    last = result.history[-1] if result.history else {}
    record.update({f"loss_{k}": last[k] for k in ("content", "style", "tv", "total") if k in last})
    return result.image, result.history, record


def _timed(run: Callable[[], torch.Tensor], device: torch.device) -> tuple[torch.Tensor, dict]:
    """Run once to warm up, then ``TIMING_REPEATS`` times; the median time of those."""
    meter = PeakMemory(device)
    with meter:
        out = run()
        times = []
        for _ in range(TIMING_REPEATS):
            t = time.perf_counter()
            out = run()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - t)
    record = {
        **meter.record(),
        "seconds": sorted(times)[len(times) // 2],
        "note": f"median of {TIMING_REPEATS} passes after a warm-up",
    }
    return out, record


def _feedforward(cell: Cell, content: torch.Tensor, cfg: StudyConfig) -> tuple[torch.Tensor, list[dict], dict]:
    model = load_model(cell.options["model"], cfg.device)
    x = resize_long_side(content, cfg.size)
    image, record = _timed(lambda: model.stylize(x), model.device)
    return image, [], {**record, "device": str(model.device)}


def _arbitrary(
    cell: Cell, content: torch.Tensor, style: torch.Tensor, cfg: StudyConfig
) -> tuple[torch.Tensor, list[dict], dict]:
    acfg = ArbitraryConfig(size=cfg.size, device=cfg.device, precision=cfg.precision, **cell.options)
    device = resolve_device(cfg.device)
    image, record = _timed(lambda: stylize_arbitrary(content, style, acfg), device)
    return image, [], {**record, "device": str(device), "precision": resolve_precision(cfg.precision, device)}


# --- figures and the report ------------------------------------------------------------------------------------


def spectrum(image: torch.Tensor) -> torch.Tensor:
    """log(1 + |FFT|) of the luminance of (1, 3, H, W), zero frequency in the centre: (H, W)."""
    y = luminance(image.float())[0, 0].double()
    return torch.log1p(torch.fft.fftshift(torch.fft.fft2(y - y.mean())).abs()).float()


def high_frequency_share(image: torch.Tensor) -> float:
    """Share of the luminance's spectral energy above half the Nyquist frequency (radially)."""
    y = luminance(image.float())[0, 0].double()
    power = torch.fft.fft2(y - y.mean()).abs() ** 2
    fy = torch.fft.fftfreq(y.shape[0], dtype=torch.float64).view(-1, 1)
    fx = torch.fft.fftfreq(y.shape[1], dtype=torch.float64).view(1, -1)
    high = (fx**2 + fy**2).sqrt() > 0.25  # Nyquist is 0.5 cycles per pixel
    return float(power[high].sum() / power.sum().clamp_min(1e-30))


def radial_profile(image: torch.Tensor, bins: int = 32) -> tuple[list[float], list[float]]:
    """(frequency, mean log amplitude) of the luminance's spectrum in rings from 0 to Nyquist (0.5 cycles/px)."""
    y = luminance(image.float())[0, 0].double()
    amp = torch.log1p(torch.fft.fft2(y - y.mean()).abs())
    fy = torch.fft.fftfreq(y.shape[0], dtype=torch.float64).view(-1, 1)
    fx = torch.fft.fftfreq(y.shape[1], dtype=torch.float64).view(1, -1)
    radius = (fx**2 + fy**2).sqrt().expand_as(amp)
    ring = (radius / 0.5 * bins).long()
    freqs, means = [], []
    for b in range(1, bins):  # ring 0 holds the (removed) mean
        inside = ring == b
        if inside.any():
            freqs.append((b + 0.5) * 0.5 / bins)
            means.append(float(amp[inside].mean()))
    return freqs, means


def spectra_figure(plan: Plan, results: list[CellResult], content: torch.Tensor, final_hw: tuple[int, int]) -> bytes:
    """The radially averaged amplitude spectrum of each result and of the photo (PNG)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    ax.plot(*radial_profile(resize_long_side(content, max(final_hw))), color="black", linestyle="--", label="photo")
    for r in results:
        if r.image is not None:
            ax.plot(*radial_profile(r.image), label=r.cell.col)
    ax.set_xlabel("spatial frequency (cycles per pixel; 0.5 = Nyquist)")
    ax.set_ylabel("mean log(1 + |FFT|) of luminance")
    ax.set_title(f"{plan.title}: amplitude spectra, radially averaged")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return png_bytes(fig)


def _seconds(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"


def grid_figure(
    plan: Plan, results: list[CellResult], content: torch.Tensor, style: torch.Tensor, final_hw: tuple[int, int]
) -> bytes:
    """The results in labelled rows and columns (PNG), the photo and painting first."""
    plt = pyplot()
    rows = list(dict.fromkeys(r.cell.row for r in results))
    inputs = [("photo", resize_long_side(content, max(final_hw))), ("painting", resize_long_side(style, max(final_hw)))]
    # Each line: (row label, [(title, kind, image, caption)]), kind = image | spectrum | skipped | blank.
    lines: list[tuple[str, list[tuple[str, str, torch.Tensor | None, str]]]] = []
    for i, row in enumerate(rows):
        lead = [(t, "image", im, "") for t, im in inputs] if i == 0 else [("", "blank", None, "")] * 2
        body = [
            (r.cell.col, "image" if r.image is not None else "skipped", r.image, _caption(r))
            for r in results
            if r.cell.row == row
        ]
        lines.append((row, lead + body))
        if plan.spectra:
            lines.append(
                (
                    "log |FFT| of luminance",
                    [("", "spectrum" if k == "image" else "blank", im, "") for _, k, im, _ in lead + body],
                )
            )
    ncols = max(len(items) for _, items in lines)
    h, w = final_hw
    cw = 2.3
    fig, axes = plt.subplots(
        len(lines), ncols, figsize=(cw * ncols, (cw * h / w + 0.6) * len(lines) + 0.4), dpi=100, squeeze=False
    )
    # An "image" or "spectrum" item always has its image (None only in blank and skipped ones).
    spectra = {
        id(im): spectrum(cast(torch.Tensor, im)) for _, items in lines for _, k, im, _ in items if k == "spectrum"
    }
    vmin = min((float(s.min()) for s in spectra.values()), default=0.0)
    vmax = max((float(s.max()) for s in spectra.values()), default=1.0)
    for r, (label, items) in enumerate(lines):
        for c in range(ncols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            title, kind, im, caption = items[c] if c < len(items) else ("", "blank", None, "")
            if kind == "blank":
                ax.axis("off")
                continue
            if kind == "spectrum":
                ax.imshow(spectra[id(im)].numpy(), cmap="magma", vmin=vmin, vmax=vmax)
            elif kind == "image":
                ax.imshow(to_pil(cast(torch.Tensor, im)))
            else:
                ax.set_facecolor("#dddddd")
                ax.text(0.5, 0.5, "skipped\n(see report)", ha="center", va="center", fontsize=9, transform=ax.transAxes)
            ax.set_title(title, fontsize=9)
            ax.set_xlabel(caption, fontsize=8)
            if c == 2:
                ax.set_ylabel(label, fontsize=10)
    fig.suptitle(f"{plan.title} ({w}x{h} px)", fontsize=12)
    fig.tight_layout()
    return png_bytes(fig)


def _caption(r: CellResult) -> str:
    if r.status == "skipped":
        return "skipped"
    return _seconds(r.record.get("seconds"))


def loss_figure(plan: Plan, results: list[CellResult]) -> bytes | None:
    """Total loss against iterations and against seconds, one line per optimised cell (PNG)."""
    runs = [r for r in results if r.history]
    if not runs:
        return None
    several_rows = len({x.cell.row for x in runs}) > 1
    labelled = [(f"{r.cell.row}: {r.cell.col}" if several_rows else r.cell.col, r.history) for r in runs]
    return runs_plot(labelled, f"{plan.title}: loss (each cell's own objective)")


METRIC_COLUMNS = (
    "key",
    "row",
    "col",
    "status",
    "seconds",
    "peak_rss_mb",
    "cuda_peak_mb",
    "iterations",
    "loss_total",
    "content",
    "style_gram",
    "style_meanstd",
    "ssim",
    "color",
    "high_freq",
    "image",
    "note",
)


def metric_rows(results: list[CellResult]) -> list[dict]:
    rows = []
    for r in results:
        rec = r.record
        row = {k: rec.get(k, "") for k in METRIC_COLUMNS}
        row.update(key=r.cell.key, row=r.cell.row, col=r.cell.col, status=r.status, note=r.note)
        row["image"] = f"cells/{r.cell.key}.png" if r.image is not None else ""
        row["high_freq"] = high_frequency_share(r.image) if r.image is not None else ""
        rows.append(row)
    return rows


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def write_outputs(
    plan: Plan,
    results: list[CellResult],
    folder: Path,
    content: torch.Tensor,
    style: torch.Tensor,
    final_hw: tuple[int, int],
    cfg: StudyConfig,
    base: dict,
    inputs: dict,
    command: str,
    device: str,
    seconds: float,
) -> list[Path]:
    """grid.png, losses.png, metrics.csv and report.html in ``folder``; returns their paths."""
    files = [write_atomic_bytes(folder / "grid.png", grid_figure(plan, results, content, style, final_hw))]
    losses = loss_figure(plan, results)
    if losses is not None:
        files.append(write_atomic_bytes(folder / "losses.png", losses))
    if plan.spectra:
        files.append(write_atomic_bytes(folder / "spectra.png", spectra_figure(plan, results, content, final_hw)))
    rows = metric_rows(results)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=METRIC_COLUMNS)
    writer.writeheader()
    writer.writerows({k: _fmt(v) if isinstance(v, float) else v for k, v in row.items()} for row in rows)
    files.append(write_atomic_bytes(folder / "metrics.csv", buf.getvalue().encode()))
    report = report_html(plan, rows, cfg, base, inputs, command, device, seconds, [f.name for f in files])
    files.append(write_atomic_bytes(folder / "report.html", report.encode()))
    return files


def report_html(
    plan: Plan,
    rows: list[dict],
    cfg: StudyConfig,
    base: dict,
    inputs: dict,
    command: str,
    device: str,
    seconds: float,
    figures: list[str],
) -> str:
    e = html.escape
    settings = {**asdict(cfg), **{f"set {k}": v for k, v in base.items()}}
    settings_rows = "".join(f"<tr><th>{e(k)}</th><td>{e(str(v))}</td></tr>" for k, v in settings.items())
    computed = sum(1 for r in rows if r["status"] == "done")
    head = "".join(f"<th>{e(c)}</th>" for c in METRIC_COLUMNS if c not in ("image", "key"))
    body = []
    for r in rows:
        cells = []
        for c in METRIC_COLUMNS:
            if c in ("image", "key"):
                continue
            v = r[c]
            text = e(_fmt(v)) if v != "" else ""
            if c == "col" and r["image"]:
                text = f'<a href="{e(r["image"])}">{text}</a>'
            cells.append(f"<td>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    notes = "".join(f"<li><b>{e(r['col'])}</b>: {e(r['note'])}</li>" for r in rows if r["note"])
    spectra_html = (
        '<h2>Spectra</h2><p><img src="spectra.png" alt="radially averaged spectra"></p>'
        if "spectra.png" in figures
        else ""
    )
    losses_html = '<h2>Loss</h2><p><img src="losses.png" alt="loss curves"></p>' if "losses.png" in figures else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Stylist study: {e(plan.title)}</title>
<style>body{{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}}img{{max-width:100%}}
table{{border-collapse:collapse;font-size:90%}}\
td,th{{border:1px solid #ccc;padding:3px 6px;text-align:left}}code{{background:#f4f4f4}}</style>
</head><body>
<h1>{e(plan.title)}</h1>
<p>{e(plan.about)}</p>
<p>Command: <code>{e(command or "(from Python)")}</code></p>
<p>Device: {e(device)}. Finished {e(datetime.now(timezone.utc).isoformat(timespec="seconds"))}; \
this run took {seconds:.1f} s
({computed} cells computed, {len(rows) - computed} loaded or skipped). \
Stylist {e(__version__)}, PyTorch {e(torch.__version__)}.</p>
<p>Photo: <code>{e(inputs["content"]["path"])}</code>; \
painting: <code>{e(inputs["style"]["path"])}</code>.</p>
<h2>Results</h2><p><a href="grid.png"><img src="grid.png" alt="grid of results"></a></p>
{spectra_html}
{losses_html}
<h2>Metrics</h2>
<p>Distances to the photo (<i>content</i>: VGG relu4_2 features; \
<i>ssim</i>: structure of the luminance, 1 = same) and to the painting
(<i>style_gram</i>, <i>style_meanstd</i>: VGG statistics at relu1_1..relu5_1; \
<i>color</i>: earth mover's distance of the colour
histograms); <i>high_freq</i>: share of spectral energy above half the Nyquist frequency; \
<i>seconds</i>: time per image;
<i>peak_rss_mb</i>: the process's resident memory, sampled. \
No single number judges style transfer: see <code>docs/studies.md</code>.
Full table: <a href="metrics.csv">metrics.csv</a>.</p>
<table><tr>{head}</tr>{"".join(body)}</table>
{f"<h2>Notes</h2><ul>{notes}</ul>" if notes else ""}
<h2>Settings</h2><table>{settings_rows}</table>
</body></html>
"""
