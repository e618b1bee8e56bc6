"""The ``stylist`` command: a thin adapter over the Python API.

Flags of ``stylist transfer`` are built from the fields of :class:`TransferConfig`, so
defaults and help texts live in one place. Every user error prints one line on stderr
and exits with status 2; Ctrl-C writes the image so far and exits with 130.
"""

from __future__ import annotations

import argparse
import csv
import inspect
import io
import re
import sys
import time
import typing
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import MISSING, fields
from pathlib import Path

from . import __version__
from .color import COLOR_MODES
from .errors import NonFiniteLossError, StylistError, StylistWarning
from .image import (
    alpha_note,
    check_output_path,
    load_tensor,
    open_image,
    read_picture,
    resize,
    save_image,
    write_atomic_bytes,
)
from .losses import NORMALIZATIONS, TV_KINDS
from .masks import load_masks
from .optimize import (
    INITS,
    OPTIMIZERS,
    PRECISIONS,
    Interrupted,
    Progress,
    TransferConfig,
    TransferResult,
    stylize,
)
from .presets import PRESETS, preset_config
from .vgg import POOLING
from .weights import SOURCES

CHOICES = {
    "optimizer": OPTIMIZERS,
    "pooling": POOLING,
    "normalization": NORMALIZATIONS,
    "tv": TV_KINDS,
    "precision": PRECISIONS,
    "preserve_color": COLOR_MODES,
}
# Short spellings people expect for the loss weights.
ALIASES = {"content_weight": ["--alpha"], "style_weight": ["--beta"], "tv_weight": ["--gamma"], "preserve_color": ["--preserve-colour"]}


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a usage error in one line (and exit code 2)."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def field_help(cls: type) -> dict[str, str]:
    """The comment lines written just above each dataclass field."""
    helps: dict[str, str] = {}
    pending: list[str] = []
    for line in inspect.getsource(cls).splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            pending.append(stripped.lstrip("# ").strip())
            continue
        m = re.match(r"(\w+)\s*:", stripped)
        if m and pending:
            helps[m.group(1)] = " ".join(pending)
        if not stripped.startswith('"""'):
            pending = [] if m or not stripped else pending
    return helps


def add_config_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    helps = field_help(cls)
    hints = typing.get_type_hints(cls)
    for f in fields(cls):
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not MISSING else None
        kind = hints[f.name]
        args = typing.get_args(kind)
        base = next((a for a in args if a is not type(None)), kind) if args and type(None) in args else kind
        text = helps.get(f.name, "")
        kw: dict = {"dest": f.name, "default": argparse.SUPPRESS, "help": f"{text} [default: {_show(default)}]"}
        if base is bool:
            kw["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(base) is tuple:
            kw["nargs"] = "+"
            kw["type"] = typing.get_args(base)[0]
            kw["metavar"] = "W" if kw["type"] is float else "LAYER"
        else:
            kw["type"] = base
            if f.name in CHOICES:
                kw["choices"] = CHOICES[f.name]
        parser.add_argument(flag, *ALIASES.get(f.name, []), **kw)


def _show(value: object) -> str:
    if isinstance(value, tuple):
        return " ".join(map(str, value))
    return "auto" if value is None else str(value)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="stylist", description="Neural style transfer: a photograph rendered in the style of a painting.")
    parser.add_argument("--version", action="version", version=f"stylist {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)

    t = sub.add_parser("transfer", help="optimise an image (Gatys et al.): best quality, any style", description="Render CONTENT in the style of STYLE by optimisation (Gatys et al. 2016).")
    t.add_argument("content", metavar="CONTENT", help="the photograph")
    t.add_argument("style", metavar="STYLE", nargs="+", help="the painting (several: a blend, see --style-weights, or one per --mask region)")
    t.add_argument("-o", "--output", required=True, metavar="OUT", help="result image (.png .jpg .webp .tif .bmp)")
    t.add_argument("--overwrite", action="store_true", help="replace OUT (and numbered intermediates) if they exist")
    t.add_argument("--save-every", type=int, default=0, metavar="N", help="also write OUT_stepNNNN.png every N iterations")
    t.add_argument("--history", metavar="FILE.csv", help="write the loss history as CSV and a plot FILE.png beside it")
    t.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    # An option of the file written, not of the optimisation: the core returns float tensors.
    t.add_argument("--depth", type=int, choices=(8, 16), default=8, help="bits per channel of OUT: 16 for .png or .tif [default: 8]")
    t.add_argument("--mask", nargs="+", metavar="MASK", help="one grey-level mask per STYLE, at the photo's size: white = that painting, black = not; where all are black the photo is kept")
    t.add_argument("--preset", choices=list(PRESETS), help="a classic recipe (see the README); explicit options override it")
    add_config_arguments(t, TransferConfig)
    t.set_defaults(run=cmd_transfer)

    w = sub.add_parser("weights", help="list the VGG weight sources", description="List the VGG weight sources.")
    w.set_defaults(run=cmd_weights)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        with _one_line_warnings():
            return args.run(args)
    except StylistError as err:
        print(f"stylist: error: {err}", file=sys.stderr)
        return 1 if isinstance(err, NonFiniteLossError) else 2
    except KeyboardInterrupt:
        print("stylist: interrupted", file=sys.stderr)
        return 130


@contextmanager
def _one_line_warnings() -> Iterator[None]:
    """Stylist's warnings as one line each on stderr ("stylist: warning: ..."), each message once."""
    shown: set[str] = set()

    with warnings.catch_warnings():
        original = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None) -> None:
            if not issubclass(category, StylistWarning):
                return original(message, category, filename, lineno, file, line)
            if str(message) not in shown:
                shown.add(str(message))
                print(f"stylist: warning: {message}", file=sys.stderr)

        warnings.simplefilter("always", StylistWarning)
        warnings.showwarning = show
        yield


def config_from_args(args: argparse.Namespace) -> TransferConfig:
    given = {f.name: getattr(args, f.name) for f in fields(TransferConfig) if hasattr(args, f.name)}
    for key, value in given.items():
        if isinstance(value, list):
            given[key] = tuple(value)
    return preset_config(getattr(args, "preset", None), **given)


def cmd_transfer(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    cfg.validate()
    if args.save_every < 0:
        raise StylistError(f"--save-every must be 0 or a positive number; got {args.save_every}")
    out = check_output_path(args.output, [args.content, *args.style, *(args.mask or [])], args.overwrite, depth=args.depth)
    history = _check_history(args.history, out, args.overwrite)
    # Read every image up front: a bad input is reported before any work or file.
    content = read_picture(args.content, "content", cfg.max_pixels)  # full precision, alpha set aside
    styles = [load_tensor(path, "style", cfg.max_pixels) for path in args.style]
    masks = load_masks(args.mask, len(styles), content.size)
    if cfg.init not in INITS:
        open_image(cfg.init, "--init", cfg.max_pixels)
    dropped = alpha_note(out) if content.alpha is not None else None
    if dropped:  # said before the run rather than after it
        warnings.warn(dropped, StylistWarning)
    if args.save_every and not args.overwrite:
        existing = sorted(out.parent.glob(f"{out.stem}_step[0-9][0-9][0-9][0-9]{out.suffix}"))
        if existing:
            raise StylistError(f"{existing[0]}: intermediate images from an earlier run are in the way; pass --overwrite or choose another -o")

    bar = None
    final_hw: list[tuple[int, int]] = []

    def callback(p: Progress) -> None:
        nonlocal bar
        if bar is None and not args.quiet:  # created late so that a setup error prints alone
            from tqdm import tqdm

            bar = tqdm(total=p.total, unit="it", dynamic_ncols=True, file=sys.stderr)
        if bar is not None:
            bar.total = p.total
            bar.set_description(f"{p.size[1]}x{p.size[0]} ({p.level + 1}/{p.levels})")
            bar.set_postfix_str(f"content {p.losses['content']:.3g} style {p.losses['style']:.3g} tv {p.losses['tv']:.3g}")
            bar.update(p.step - bar.n)
        if args.save_every and p.step % args.save_every == 0:
            path = out.with_name(f"{out.stem}_step{p.step:04d}{out.suffix}")
            image = resize(p.image, final_hw[0]) if final_hw else p.image
            save_image(image, path, overwrite=True, depth=args.depth, alpha=content.alpha_at(tuple(image.shape[-2:])))

    from .image import fit_size
    from .optimize import default_size, resolve_device

    final_hw.append(fit_size(*content.size, cfg.size or default_size(resolve_device(cfg.device))))
    start = time.perf_counter()
    try:
        result = stylize(content, styles, cfg, callback, masks=masks)
    except Interrupted as stop:
        if bar is not None:
            bar.close()
        _finish(stop.result, out, history, args)
        print(f"stylist: interrupted at iteration {len(stop.result.history)}: wrote {out}", file=sys.stderr)
        return 130
    finally:
        if bar is not None:
            bar.close()
    _finish(result, out, history, args)
    h, w = result.image.shape[-2:]
    note = {"early": ", stopped early: the loss had stopped improving", "callback": ""}.get(result.stopped, "")
    print(f"wrote {out} ({w}x{h}, {len(result.history)} iterations, {time.perf_counter() - start:.1f} s on {result.device}, {result.precision}{note})", file=sys.stderr)
    return 0


def _check_history(history: str | None, out: Path, overwrite: bool) -> Path | None:
    if not history:
        return None
    path = Path(history)
    if path.suffix.lower() != ".csv":
        raise StylistError(f"{path}: --history needs a .csv file name")
    for p in (path, path.with_suffix(".png")):
        if p.exists() and not overwrite:
            raise StylistError(f"{p}: already exists; pass --overwrite to replace it or choose another name")
        if p.resolve() == out.resolve():
            raise StylistError(f"{p}: the history would replace the output image; choose another name")
    if not path.parent.exists():
        raise StylistError(f"{path}: folder {path.parent} does not exist")
    return path


def _finish(result: TransferResult, out: Path, history: Path | None, args: argparse.Namespace) -> None:
    save_image(result.image, out, overwrite=args.overwrite, depth=args.depth, alpha=result.alpha)
    if history is not None and result.history:
        write_history(result.history, history)


def write_history(rows: list[dict], path: Path) -> None:
    """The loss history as CSV, and a log-scale plot of it as PNG beside it."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    write_atomic_bytes(path, buf.getvalue().encode())

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    steps = [r["step"] for r in rows]
    for key in ("total", "content", "style", "tv"):
        values = [r[key] for r in rows]
        if any(v > 0 for v in values):
            ax.plot(steps, values, label=key, linewidth=1.5 if key == "total" else 1)
    for r0, r1 in zip(rows, rows[1:]):
        if r1["level"] != r0["level"]:
            ax.axvline(r1["step"], color="grey", linestyle=":", linewidth=0.8)
    ax.set_yscale("log")
    ax.set_xlabel("iteration (dotted lines: next scale)")
    ax.set_ylabel("weighted loss")
    ax.set_title("Stylist loss history")
    ax.legend()
    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, format="png")
    plt.close(fig)
    write_atomic_bytes(path.with_suffix(".png"), png.getvalue())


def cmd_weights(args: argparse.Namespace) -> int:
    for s in SOURCES.values():
        print(f"{s.name:20s} {s.arch}  {s.preprocessing:8s}  {s.note}")
    return 0
