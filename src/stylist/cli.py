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
import signal
import sys
import typing
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path

from . import __version__
from .checkpoint import default_path as default_checkpoint_path
from .checkpoint import load_checkpoint, save_checkpoint
from .color import COLOR_MODES
from .errors import NonFiniteLossError, StylistError, StylistWarning
from .image import (
    Picture,
    alpha_note,
    check_output_path,
    fit_size,
    load_tensor,
    open_image,
    output_format,
    read_picture,
    resize,
    save_image,
    write_atomic_bytes,
)
from .losses import NORMALIZATIONS, TV_KINDS
from .manifest import (
    build_manifest,
    check_weights,
    checked_file,
    differences,
    embed_params,
    input_records,
    read_manifest,
    sidecar_path,
    to_json,
)
from .masks import load_masks
from .optimize import (
    INITS,
    OPTIMIZERS,
    PRECISIONS,
    Interrupted,
    Progress,
    TransferConfig,
    TransferResult,
    default_size,
    resolve_device,
    stylize,
)
from .presets import PRESETS, preset_config
from .vgg import POOLING
from .video import Film, check_film_path, default_every
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
ALIASES = {
    "content_weight": ["--alpha"],
    "style_weight": ["--beta"],
    "tv_weight": ["--gamma"],
    "preserve_color": ["--preserve-colour"],
}


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


def add_config_arguments(
    parser: argparse.ArgumentParser, cls: type, choices: dict[str, tuple] | None = None, skip: tuple[str, ...] = ()
) -> None:
    """One flag per field of the config dataclass ``cls`` (help from the comment above it).

    ``choices`` adds or replaces allowed values by field name; ``skip`` leaves fields out."""
    choices = {**CHOICES, **(choices or {})}
    helps = field_help(cls)
    hints = typing.get_type_hints(cls)
    for f in fields(cls):
        if f.name in skip:
            continue
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
            if f.name in choices:
                kw["choices"] = choices[f.name]
        parser.add_argument(flag, *ALIASES.get(f.name, []), **kw)


def add_run_arguments(t: argparse.ArgumentParser) -> None:
    """Options of the files around a run (manifest, checkpoints, film): the core never writes files."""
    t.add_argument(
        "--from-manifest",
        metavar="RESULT",
        help="run again the run recorded in RESULT (a .png .tif .jpg .webp made by Stylist, or its .json sidecar): the same inputs "
        "(refused if one is missing or changed), options, seed, device and precision; inputs and options given here override them",
    )
    t.add_argument(
        "--manifest-json",
        action="store_true",
        help="also write the manifest as OUT.json beside OUT (it is always embedded in .png .tif .jpg .webp)",
    )
    t.add_argument(
        "--checkpoint-every",
        type=int,
        default=0,
        metavar="N",
        help="save the run's state every N iterations and at the end, to --resume it later",
    )
    t.add_argument(
        "--checkpoint",
        metavar="FILE",
        help="the checkpoint file [default: OUT.ckpt]; Ctrl-C and SIGTERM leave one there too",
    )
    t.add_argument(
        "--light-checkpoint",
        action="store_true",
        help="leave the optimiser's memory out of checkpoints (L-BFGS keeps up to 200 image-sized vectors, ~400 MB at 512 px); "
        "a resumed run then rebuilds it and no longer matches an unbroken run exactly",
    )
    t.add_argument(
        "--resume",
        metavar="CHECKPOINT",
        help="carry on the run saved in CHECKPOINT, at its scale and step, to --iterations in all (extra ones go to the final scale); "
        "inputs and options are the checkpoint's unless given here",
    )
    t.add_argument(
        "--animation",
        metavar="FILM",
        help="record the optimisation as a film FILM.gif, or FILM.mp4 (needs: pip install stylist[video])",
    )
    t.add_argument(
        "--animation-every",
        type=int,
        metavar="N",
        help="one film frame every N iterations [default: about 100 frames in all]",
    )


def _show(value: object) -> str:
    if isinstance(value, tuple):
        return " ".join(map(str, value))
    return "auto" if value is None else str(value)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="stylist", description="Neural style transfer: a photograph rendered in the style of a painting."
    )
    parser.add_argument("--version", action="version", version=f"stylist {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)

    t = sub.add_parser(
        "transfer",
        help="optimise an image (Gatys et al.): best quality, any style",
        description="Render CONTENT in the style of STYLE by optimisation (Gatys et al. 2016).",
    )
    t.add_argument(
        "content",
        metavar="CONTENT",
        nargs="?",
        help="the photograph (with --from-manifest or --resume: the recorded one unless given)",
    )
    t.add_argument(
        "style",
        metavar="STYLE",
        nargs="*",
        help="the painting (several: a blend, see --style-weights, or one per --mask region)",
    )
    t.add_argument("-o", "--output", required=True, metavar="OUT", help="result image (.png .jpg .webp .tif .bmp)")
    t.add_argument("--overwrite", action="store_true", help="replace OUT (and numbered intermediates) if they exist")
    t.add_argument(
        "--save-every", type=int, default=0, metavar="N", help="also write OUT_stepNNNN.png every N iterations"
    )
    t.add_argument("--history", metavar="FILE.csv", help="write the loss history as CSV and a plot FILE.png beside it")
    t.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    # An option of the file written, not of the optimisation: the core returns float tensors.
    t.add_argument(
        "--depth",
        type=int,
        choices=(8, 16),
        help="bits per channel of OUT: 16 for .png or .tif [default: 8, or the recorded depth]",
    )
    t.add_argument(
        "--mask",
        nargs="+",
        metavar="MASK",
        help="one grey-level mask per STYLE, at the photo's size: white = that painting, black = not; where all are black the photo is kept",
    )
    t.add_argument(
        "--preset", choices=list(PRESETS), help="a classic recipe (see the README); explicit options override it"
    )
    add_run_arguments(t)
    add_config_arguments(t, TransferConfig)
    t.set_defaults(run=cmd_transfer)

    w = sub.add_parser("weights", help="list the VGG weight sources", description="List the VGG weight sources.")
    w.set_defaults(run=cmd_weights)

    from . import (
        cli_arbitrary,
        cli_feedforward,
        cli_study,
        cli_web,
    )  # imported here: they build on this module's helpers

    cli_feedforward.add_parsers(sub)
    cli_arbitrary.add_parsers(sub)
    cli_study.add_parsers(sub)
    cli_web.add_parsers(sub)
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


def config_from_args(args: argparse.Namespace, recorded: dict | None = None) -> TransferConfig:
    """The run's options: ``recorded`` ones (a manifest's or checkpoint's), then the preset's, then those given."""
    given = {f.name: getattr(args, f.name) for f in fields(TransferConfig) if hasattr(args, f.name)}
    for key, value in given.items():
        if isinstance(value, list):
            given[key] = tuple(value)
    preset = getattr(args, "preset", None)
    if recorded is None:
        return preset_config(preset, **given)
    return preset_config(None, **{**recorded["config"], **(PRESETS[preset] if preset else {}), **given})


@dataclass
class Job:
    """A transfer as the command runs it: every input read and every output path checked."""

    cfg: TransferConfig
    out: Path
    depth: int
    content: Picture
    styles: list
    masks: list | None
    inputs: dict  # the input files' records (path, sha256) for the manifest
    history: Path | None
    sidecar: Path | None
    checkpoint: Path
    checkpointing: bool  # --checkpoint-every or --checkpoint given: checkpoints along the way and at the end
    resume: dict | None  # the checkpointed run state to carry on from
    resumed_from: Path | None
    film: Path | None
    final_hw: tuple[int, int]


def cmd_transfer(args: argparse.Namespace) -> int:
    job = prepare(args)
    film = Film(job.film, job.final_hw) if job.film else None
    try:
        return _transfer(job, args, film)
    finally:
        if film is not None:
            film.abort()  # leaves nothing behind after a failure; nothing to do once the film is written


def _transfer(job: Job, args: argparse.Namespace, film: Film | None) -> int:
    stop, bar = _StopSignals(), _Bar(args.quiet)
    try:
        with stop:
            result = stylize(
                job.content,
                job.styles,
                job.cfg,
                _callback(job, args, bar, film, stop),
                masks=job.masks,
                resume=job.resume,
            )
    except Interrupted as interrupted:
        bar.close()
        return _interrupted(interrupted.result, job, args, film, stop)
    finally:
        bar.close()
    _finish(result, job, args, film)
    if job.checkpointing:
        _save_state(job, result.checkpoint(not args.light_checkpoint) if result.checkpoint else None)
    h, w = result.image.shape[-2:]
    note = {"early": ", stopped early: the loss had stopped improving", "callback": ""}.get(result.stopped, "")
    print(
        f"wrote {job.out} ({w}x{h}, {len(result.history)} iterations, {result.elapsed:.1f} s on {result.device}, {result.precision}{note})",
        file=sys.stderr,
    )
    return 0


def prepare(args: argparse.Namespace) -> Job:
    """Check every option and output path and read every input, before any work or file."""
    recorded, resume, resumed_from = _recorded(args)
    content_path, style_paths, mask_paths = _input_paths(args, recorded)
    cfg = config_from_args(args, recorded)
    cfg.validate()
    _check_counts(args)
    if recorded is not None and cfg.init not in INITS and not hasattr(args, "init"):
        checked_file((recorded.get("inputs") or {}).get("init"), "--init image")
    depth = args.depth or (recorded or {}).get("output", {}).get("depth", 8)
    out = check_output_path(args.output, [content_path, *style_paths, *(mask_paths or [])], args.overwrite, depth=depth)
    ckpt = Path(args.checkpoint) if args.checkpoint else default_checkpoint_path(out)
    checkpointing = bool(args.checkpoint_every or args.checkpoint)
    outputs = _check_outputs(
        args, out, ckpt if checkpointing else None, resumed_from, [content_path, *style_paths, *(mask_paths or [])]
    )
    # Read every image up front: a bad input is reported before any work or file.
    content = read_picture(content_path, "content", cfg.max_pixels)  # full precision, alpha set aside
    styles = [load_tensor(path, "style", cfg.max_pixels) for path in style_paths]
    masks = load_masks(mask_paths, len(styles), content.size)
    if cfg.init not in INITS:
        open_image(cfg.init, "--init", cfg.max_pixels)
    dropped = alpha_note(out) if content.alpha is not None else None
    if dropped:  # said before the run rather than after it
        warnings.warn(dropped, StylistWarning)
    if output_format(out, depth) == "BMP" and not args.manifest_json:
        warnings.warn(
            f"{out}: BMP has no room for the run's manifest; pass --manifest-json to keep it in {sidecar_path(out).name}",
            StylistWarning,
        )
    inputs = input_records(content_path, style_paths, mask_paths, cfg.init if cfg.init not in INITS else None)
    final_hw = fit_size(*content.size, cfg.size or default_size(resolve_device(cfg.device)))
    history, sidecar, film = outputs
    return Job(
        cfg,
        out,
        depth,
        content,
        styles,
        masks,
        inputs,
        history,
        sidecar,
        ckpt,
        checkpointing,
        resume,
        resumed_from,
        film,
        final_hw,
    )


def _recorded(args: argparse.Namespace) -> tuple[dict | None, dict | None, Path | None]:
    """(recorded inputs and options, run state to resume, checkpoint path) from --from-manifest or --resume."""
    if args.from_manifest and args.resume:
        raise StylistError(
            "--from-manifest and --resume do not go together: a manifest starts a run afresh, a checkpoint carries one on"
        )
    if args.from_manifest:
        manifest = read_manifest(args.from_manifest)
        if not hasattr(args, "weights"):  # weights given here override the recorded ones, as any option does
            check_weights(manifest)
        for line in differences(manifest):
            warnings.warn(f"{args.from_manifest}: {line}", StylistWarning)
        # The resolved device and precision, not "auto": another machine's choice would give other pixels.
        config = {
            **manifest["config"],
            "device": manifest.get("device", "auto"),
            "precision": manifest.get("precision", "auto"),
        }
        return {**manifest, "config": config}, None, None
    if args.resume:
        saved = load_checkpoint(args.resume)
        if not isinstance(saved.get("manifest"), dict) or not isinstance(saved.get("run"), dict):
            raise StylistError(f"{args.resume}: not a checkpoint of stylist transfer")
        return saved["manifest"], saved["run"], Path(args.resume)
    return None, None, None


def _input_paths(args: argparse.Namespace, recorded: dict | None) -> tuple[str, list[str], list[str] | None]:
    """The content, style and mask files: as given, else as recorded (checked against their sha256)."""
    if recorded is None:
        if not args.content or not args.style:
            raise StylistError("give CONTENT and STYLE images (or --from-manifest RESULT, or --resume CHECKPOINT)")
        return args.content, list(args.style), args.mask
    inputs = recorded.get("inputs") or {}
    content = args.content or str(checked_file(inputs.get("content"), "content"))
    styles = list(args.style) or [
        str(checked_file(r, f"style image {i + 1}")) for i, r in enumerate(inputs.get("styles") or [])
    ]
    masks = (
        args.mask
        if args.mask is not None
        else [str(checked_file(r, f"mask {i + 1}")) for i, r in enumerate(inputs.get("masks") or [])]
    )
    if not styles:
        raise StylistError("the recorded run names no style image: give STYLE on the command line")
    return content, styles, masks or None


def _check_counts(args: argparse.Namespace) -> None:
    for flag, value in (("--save-every", args.save_every), ("--checkpoint-every", args.checkpoint_every)):
        if value < 0:
            raise StylistError(f"{flag} must be 0 or a positive number; got {value}")
    if args.animation_every is not None and args.animation_every <= 0:
        raise StylistError(f"--animation-every must be a positive number; got {args.animation_every}")
    if args.animation_every is not None and not args.animation:
        raise StylistError("--animation-every needs --animation FILM.gif or FILM.mp4")


def _check_outputs(
    args: argparse.Namespace, out: Path, ckpt: Path | None, resumed_from: Path | None, inputs: list[str]
) -> tuple[Path | None, Path | None, Path | None]:
    """(history, sidecar, film): each refused if it exists without --overwrite or clashes with another file."""
    history = _check_history(args.history, out, args.overwrite)
    sidecar = sidecar_path(out) if args.manifest_json else None
    film = check_film_path(args.animation, args.overwrite) if args.animation else None
    named = [p for p in (out, history, sidecar, ckpt, film) if p is not None]
    for i, path in enumerate(named):
        if any(_same(path, q) for q in named[i + 1 :]) or any(q and _same(path, Path(q)) for q in inputs):
            raise StylistError(f"{path}: named for two files of this run; choose distinct names")
    for path in (sidecar, ckpt):
        # The checkpoint a run resumes from is its own to update.
        if path is not None and path.exists() and not args.overwrite and not _same(path, resumed_from):
            raise StylistError(f"{path}: already exists; pass --overwrite to replace it or choose another name")
    if args.save_every and not args.overwrite:
        existing = sorted(out.parent.glob(f"{out.stem}_step[0-9][0-9][0-9][0-9]{out.suffix}"))
        if existing:
            raise StylistError(
                f"{existing[0]}: intermediate images from an earlier run are in the way; pass --overwrite or choose another -o"
            )
    return history, sidecar, film


def _same(a: Path, b: Path | None) -> bool:
    return b is not None and a.resolve() == b.resolve()


class _StopSignals:
    """Ctrl-C (SIGINT) and SIGTERM stop the run after the iteration under way, so that its
    checkpoint is whole; a second signal, or one before the first iteration, stops at once."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.iterating = False
        self._previous: dict = {}

    def __enter__(self) -> _StopSignals:
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        except ValueError:  # not the main thread: Python's own Ctrl-C handling stays
            pass
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, frame: object) -> None:
        first = self.signum is None
        self.signum = self.signum or signum
        if not (first and self.iterating):
            raise KeyboardInterrupt

    def check(self) -> None:
        """Called after each iteration: raise KeyboardInterrupt when a stop was asked for."""
        self.iterating = True
        if self.signum is not None:
            raise KeyboardInterrupt

    @property
    def exit_code(self) -> int:
        return 128 + (self.signum or signal.SIGINT)


class _Bar:
    """The progress bar, created at the first iteration so that a setup error prints alone."""

    def __init__(self, quiet: bool) -> None:
        self.quiet, self.bar = quiet, None

    def update(self, p: Progress) -> None:
        if self.quiet:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=p.total, unit="it", dynamic_ncols=True, file=sys.stderr)
        self.bar.total = p.total
        self.bar.set_description(f"{p.size[1]}x{p.size[0]} ({p.level + 1}/{p.levels})")
        self.bar.set_postfix_str(
            f"content {p.losses['content']:.3g} style {p.losses['style']:.3g} tv {p.losses['tv']:.3g}"
        )
        self.bar.update(p.step - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _callback(
    job: Job, args: argparse.Namespace, bar: _Bar, film: Film | None, stop: _StopSignals
) -> Callable[[Progress], None]:
    """What the command does after each iteration: progress, intermediates, checkpoints, film frames, stops."""

    def callback(p: Progress) -> None:
        bar.update(p)
        if args.save_every and p.step % args.save_every == 0:
            path = job.out.with_name(f"{job.out.stem}_step{p.step:04d}{job.out.suffix}")
            image = resize(p.image, job.final_hw)
            save_image(image, path, overwrite=True, depth=job.depth, alpha=job.content.alpha_at(job.final_hw))
        if args.checkpoint_every and p.step % args.checkpoint_every == 0 and p.checkpoint is not None:
            _save_state(job, p.checkpoint(not args.light_checkpoint))
        if film is not None and (film.frames == 0 or p.step % (args.animation_every or default_every(p.total)) == 0):
            film.add(p.image, p.step)
        stop.check()

    return callback


def _interrupted(
    result: TransferResult, job: Job, args: argparse.Namespace, film: Film | None, stop: _StopSignals
) -> int:
    """Ctrl-C or SIGTERM: keep the image, film and history so far, and a checkpoint to resume from."""
    _finish(result, job, args, film, stopped="interrupted")
    free = job.checkpointing or args.overwrite or not job.checkpoint.exists() or _same(job.checkpoint, job.resumed_from)
    saved = free and _save_state(job, result.checkpoint(not args.light_checkpoint) if result.checkpoint else None)
    steps = len(result.history)
    if saved:
        again = f"stylist transfer --resume {job.checkpoint} -o {job.out} --overwrite"
        print(f"stylist: interrupted at iteration {steps}: wrote {job.out}; carry on with: {again}", file=sys.stderr)
    else:
        why = "" if free else f" ({job.checkpoint} exists; pass --overwrite to let Ctrl-C replace it)"
        print(f"stylist: interrupted at iteration {steps}: wrote {job.out}, no checkpoint{why}", file=sys.stderr)
    return stop.exit_code


def _save_state(job: Job, state: dict | None) -> bool:
    """Write the run ``state`` with what a resume needs besides it (inputs, options); False when there is none yet."""
    if state is None:
        return False
    recorded = {"config": asdict(job.cfg), "inputs": job.inputs, "output": {"depth": job.depth}}
    save_checkpoint(job.checkpoint, {"manifest": recorded, "run": state})
    return True


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


def _finish(result: TransferResult, job: Job, args: argparse.Namespace, film: Film | None, **extra: object) -> None:
    """Write the result with its manifest embedded, and the sidecar, history and film."""
    h, w = result.image.shape[-2:]
    output = {"file": job.out.name, "depth": job.depth, "width": w, "height": h}
    manifest = build_manifest(job.cfg, result, job.inputs, output, preset=args.preset, **extra)
    params = embed_params(output_format(job.out, job.depth), manifest)
    save_image(result.image, job.out, overwrite=args.overwrite, depth=job.depth, alpha=result.alpha, **params)
    if job.sidecar is not None:
        write_atomic_bytes(job.sidecar, (to_json(manifest, indent=2) + "\n").encode())
    if job.history is not None and result.history:
        write_history(result.history, job.history)
    if film is not None:
        if film.last_step != len(result.history):  # the result itself ends the film
            film.add(result.image, len(result.history))
        film.close()


def write_history(
    rows: list[dict],
    path: Path,
    xlabel: str = "iteration (dotted lines: next scale)",
    smooth: int = 1,
    title: str = "Stylist loss history",
    keys: list[str] | None = None,
) -> None:
    """The loss history as CSV, and a log-scale plot of it as PNG beside it (same name, .png).

    ``keys`` are the columns plotted (default: total, content, style, tv, those present);
    ``smooth`` > 1 plots running means over that many rows (training losses jump from batch
    to batch); the CSV keeps every row as it was."""
    columns = list(dict.fromkeys(k for row in rows for k in row))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    write_atomic_bytes(path, buf.getvalue().encode())

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    steps = [r["step"] for r in rows]
    for key in keys or [k for k in ("total", "content", "style", "tv") if k in columns]:
        values = [r.get(key, float("nan")) for r in rows]
        if smooth > 1:
            values = [
                sum(values[max(0, i - smooth + 1) : i + 1]) / (i + 1 - max(0, i - smooth + 1))
                for i in range(len(values))
            ]
        if any(v > 0 for v in values):
            ax.plot(steps, values, label=key, linewidth=1.5 if key == "total" else 1)
    for r0, r1 in zip(rows, rows[1:]):
        if "level" in r1 and r1["level"] != r0["level"]:
            ax.axvline(r1["step"], color="grey", linestyle=":", linewidth=0.8)
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("weighted loss")
    ax.set_title(title)
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
