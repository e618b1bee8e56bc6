"""``stylist transfer`` (optimisation, Gatys et al.) and ``stylist weights``.

Flags of ``stylist transfer`` are built from the fields of :class:`TransferConfig`, so defaults
live in one place. Ctrl-C and SIGTERM write the image so far and a checkpoint, and exit 130 or 143.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from ..checkpoint import default_path as default_checkpoint_path
from ..checkpoint import load_checkpoint, save_checkpoint
from ..devices import PRECISIONS, resolve_device
from ..errors import StylistError, StylistWarning
from ..films import Film, check_film_path, default_every
from ..image import (
    Picture,
    alpha_note,
    check_output_target,
    fit_size,
    open_image,
    output_format,
    read_picture,
    resize,
    same_file,
    save_image,
    write_atomic_bytes,
)
from ..losses import NORMALIZATIONS, TV_KINDS
from ..manifest import (
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
from ..masks import load_masks
from ..optimize import (
    INITS,
    OPTIMIZERS,
    Interrupted,
    Progress,
    TransferConfig,
    TransferResult,
    default_size,
    stylize,
)
from ..presets import PRESETS, preset_config
from ..vgg import POOLING
from ..weights import SOURCES
from ._common import (
    ProgressBar,
    StopSignals,
    add_checkpoint,
    add_checkpoint_every,
    add_config_arguments,
    add_mask,
    add_output,
    add_overwrite,
    add_quiet,
    add_resume,
    cadence,
    check_count,
    check_output_file,
    final_line,
    install_hint,
    one_of,
    whole_number,
    write_history,
)

CHOICES = {
    "optimizer": OPTIMIZERS,
    "pooling": POOLING,
    "normalization": NORMALIZATIONS,
    "tv": TV_KINDS,
    "precision": PRECISIONS,
}
# Flags whose name is not the field's: "alpha" means the style strength in stylist arbitrary, and
# "scale" names six things in the code; the old spellings stay as hidden aliases.
FLAGS: dict[str, str] = {}
ALIASES = {
    "content_weight": ["--alpha"],
    "style_weight": ["--beta"],
    "tv_weight": ["--gamma"],
    "style_size_ratio": ["--style-scale"],
    "min_level_size": ["--min-scale-size"],
}
HELPS = {
    "size": "long side of the result, px [default: 1024 on a GPU, 512 on a CPU with fast bfloat16 (AMX, "
    "AVX512-BF16), else 384]",
    "style_size_ratio": "size of the paintings relative to the result (long side to long side): 2 paints brush "
    "strokes twice as big, 0.5 half as big [default: 1.0]",
    "weights": "the VGG weights: a name from 'stylist weights' or a weights file [default: vgg19-caffe]",
    "lr": "step size [default: 1.0 for L-BFGS, 0.02 for Adam (pixels in [0, 1]), 3e-6 for SGD (momentum 0.9, "
    "on the gradient times the pixel count, so it holds at every size)]",
    "normalization": "mean (size-independent) or paper (Gatys et al.'s sums) [default: mean]",
    "layer_balance": "divide each layer's features by its mean activation over photographs (the weight "
    "source's table, or the photo for weights without one), standing in for the paper's normalised VGG; "
    "--no-layer-balance: raw activations "
    "[default: on]",
    "style_layers": "layers whose Gram matrices the result must match in the painting. The paper's fifth, "
    "relu5_1, is left out by default: at the coarse scales it painted the painting's figures over the photo "
    "(docs/quality.md); add it back, or use --preset gatys2016, for the paper's five [default: relu1_1 relu2_1 "
    "relu3_1 relu4_1]",
    "multiscale": "coarse-to-fine schedule (quarter, half, full size); --no-multiscale: one scale only [default: on]",
    "early_stop_patience": "stop a scale early when the loss improved by less than --early-stop-tol (relative) "
    "over this many iterations; 0: never [default: 30]",
    "early_stop_tol": "relative improvement below which --early-stop-patience stops a scale [default: 0.001]",
    "weights_preprocessing": "for a weights file without metadata: caffe or imagenet [default: none]",
}
# The cadence a checkpoint records, so that a resumed run checkpoints as the original did.
CADENCE = {"checkpoint_every": 0}


def add_parsers(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser(
        "transfer",
        help="optimise an image (Gatys et al.): best quality, any style",
        description="Render CONTENT in the style of STYLE by optimisation (Gatys, Ecker and Bethge 2016).\n\n"
        "  stylist transfer photo.jpg painting.jpg -o out.png\n"
        "  stylist transfer --content photo.jpg --style painting.jpg -o out.png",
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
    t.add_argument("--content", dest="content_option", metavar="CONTENT", help="the photograph, as an option")
    t.add_argument("--style", dest="style_option", nargs="+", metavar="STYLE", help="the painting(s), as an option")
    add_output(t, "OUT", "the result image (.png .jpg .webp .tif .bmp)")
    add_overwrite(t, "OUT, its checkpoint, history and numbered intermediates")
    t.add_argument(
        "--save-every",
        type=whole_number,
        default=0,
        metavar="N",
        help="also write OUT_stepNNNN.png every N iterations; 0: off [default: 0]",
    )
    t.add_argument("--history", metavar="FILE.csv", help="write the loss history as CSV and a plot FILE.png beside it")
    add_quiet(t)
    # An option of the file written, not of the optimisation: the core returns float tensors.
    t.add_argument(
        "--depth",
        type=int,
        choices=(8, 16),
        help="bits per channel of OUT: 16 for .png or .tif [default: 8, or the recorded depth]",
    )
    add_mask(t)
    t.add_argument(
        "--preset", choices=list(PRESETS), help="a classic recipe (see the README); options given override it"
    )
    add_run_arguments(t)
    add_config_arguments(t, TransferConfig, CHOICES, flags=FLAGS, aliases=ALIASES, helps=HELPS)
    t.set_defaults(run=cmd_transfer)

    w = sub.add_parser("weights", help="list the VGG weight sources", description="List the VGG weight sources.")
    w.set_defaults(run=cmd_weights)


def add_run_arguments(t: argparse.ArgumentParser) -> None:
    """Options of the files around a run (manifest, checkpoints, film): the core never writes files."""
    t.add_argument(
        "--from-manifest",
        metavar="RESULT",
        help="run again the run recorded in RESULT (a .png .tif .jpg .webp made by Stylist, or its .json sidecar): "
        "the same inputs (refused if one is missing or changed), options, seed, device and precision; inputs and "
        "options given here override them",
    )
    t.add_argument(
        "--manifest-json",
        action="store_true",
        help="also write the manifest as OUT.json beside OUT (it is always embedded in .png .tif .jpg .webp)",
    )
    add_checkpoint_every(t, CADENCE["checkpoint_every"], "iterations", "none (Ctrl-C still leaves one)")
    add_checkpoint(t)
    t.add_argument(
        "--light-checkpoint",
        action="store_true",
        default=None,
        help="leave the optimiser's memory out of checkpoints (L-BFGS keeps up to 200 image-sized vectors, "
        "~400 MB at 512 px); a resumed run then rebuilds it and no longer matches an unbroken run exactly",
    )
    add_resume(t, "run")
    t.add_argument(
        "--animation",
        metavar="FILM",
        help=f"record the optimisation as a film FILM.gif, or FILM.mp4 (needs {install_hint('video')})",
    )
    t.add_argument(
        "--animation-every",
        type=whole_number,
        metavar="N",
        help="one film frame every N iterations [default: about 100 frames in all]",
    )


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
    every: int  # --checkpoint-every (as given, else as the resumed run recorded)
    light: bool  # --light-checkpoint (as given, else as the resumed run recorded)
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
    stop, bar = StopSignals(), ProgressBar(args.quiet)
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
        _save_state(job, result.checkpoint(not job.light) if result.checkpoint else None)
    h, w = result.image.shape[-2:]
    note = {"early": ", stopped early: the loss had stopped improving", "callback": ""}.get(result.stopped, "")
    final_line(
        f"wrote {job.out} ({w}x{h}, {len(result.history)} iterations, {result.elapsed:.1f} s on {result.device}, "
        f"{result.precision}{note})"
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
    out = check_output_file(args.output, [content_path, *style_paths, *(mask_paths or [])], args.overwrite)
    output_format(out, depth)
    ckpt = Path(args.checkpoint) if args.checkpoint else default_checkpoint_path(out)
    # A resumed run checkpoints as the original did unless told otherwise here.
    saved_cli = (recorded or {}).get("cli") or {}
    every = cadence(args, saved_cli, CADENCE)["checkpoint_every"]
    light = bool(args.light_checkpoint if args.light_checkpoint is not None else saved_cli.get("light_checkpoint"))
    checkpointing = bool(every or args.checkpoint or saved_cli.get("checkpointing"))
    outputs = _check_outputs(
        args, out, ckpt if checkpointing else None, resumed_from, [content_path, *style_paths, *(mask_paths or [])]
    )
    # Read every image up front: a bad input is reported before any work or file.
    content = read_picture(content_path, "content", cfg.max_pixels)  # full precision, alpha set aside
    styles = [read_picture(path, "style", cfg.max_pixels) for path in style_paths]  # Pictures: messages name the file
    masks = load_masks(mask_paths, len(styles), content.size)
    if cfg.init not in INITS:
        open_image(cfg.init, "--init", cfg.max_pixels)
    dropped = alpha_note(out) if content.alpha is not None else None
    if dropped:  # said before the run rather than after it
        warnings.warn(dropped, StylistWarning)
    if output_format(out, depth) == "BMP" and not args.manifest_json:
        warnings.warn(
            f"{out}: BMP has no room for the run's manifest; "
            f"pass --manifest-json to keep it in {sidecar_path(out).name}",
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
        every,
        light,
        resume,
        resumed_from,
        film,
        final_hw,
    )


def _recorded(args: argparse.Namespace) -> tuple[dict | None, dict | None, Path | None]:
    """(recorded inputs and options, run state to resume, checkpoint path) from --from-manifest or --resume."""
    if args.from_manifest and args.resume:
        raise StylistError(
            "--from-manifest and --resume do not go together: "
            "a manifest starts a run afresh, a checkpoint carries one on"
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
        return {**saved["manifest"], "cli": saved.get("cli") or {}}, saved["run"], Path(args.resume)
    return None, None, None


def _input_paths(args: argparse.Namespace, recorded: dict | None) -> tuple[str, list[str], list[str] | None]:
    """The content, style and mask files: as given, else as recorded (checked against their sha256)."""
    given_content = one_of(args, "content", "content_option", "--content")
    given_styles = list(one_of(args, "style", "style_option", "--style") or [])
    if recorded is None:
        if not given_content or not given_styles:
            raise StylistError(
                "give CONTENT and STYLE images "
                "(or --content and --style; or --from-manifest RESULT, or --resume CHECKPOINT)"
            )
        return given_content, given_styles, args.mask
    inputs = recorded.get("inputs") or {}
    content = given_content or str(checked_file(inputs.get("content"), "content"))
    styles = given_styles or [
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
    check_count("--save-every", args.save_every)
    check_count("--animation-every", args.animation_every, 1)
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
    path: Path | None  # a named file below, then the sidecar or checkpoint (perhaps not asked for)
    for i, path in enumerate(named):
        if any(same_file(path, q) for q in named[i + 1 :]) or any(q and same_file(path, q) for q in inputs):
            raise StylistError(f"{path}: named for two files of this run; choose distinct names")
    for path in (sidecar, ckpt):
        # The checkpoint a run resumes from is its own to update.
        if path is not None:
            check_output_target(path, args.overwrite or same_file(path, resumed_from), "result.ckpt")
    if args.save_every and not args.overwrite:
        existing = sorted(out.parent.glob(f"{out.stem}_step[0-9][0-9][0-9][0-9]{out.suffix}"))
        if existing:
            raise StylistError(
                f"{existing[0]}: intermediate images from an earlier run are in the way; "
                "pass --overwrite or choose another -o"
            )
    return history, sidecar, film


def _callback(
    job: Job, args: argparse.Namespace, bar: ProgressBar, film: Film | None, stop: StopSignals
) -> Callable[[Progress], None]:
    """What the command does after each iteration: progress, intermediates, checkpoints, film frames, stops."""

    def callback(p: Progress) -> None:
        terms = f"content {p.losses['content']:.3g} style {p.losses['style']:.3g} tv {p.losses['tv']:.3g}"
        bar.update(p.step, p.total, f"{p.size[1]}x{p.size[0]} ({p.level + 1}/{p.levels})", terms)
        if args.save_every and p.step % args.save_every == 0:
            path = job.out.with_name(f"{job.out.stem}_step{p.step:04d}{job.out.suffix}")
            image = resize(p.image, job.final_hw)
            save_image(image, path, overwrite=True, depth=job.depth, alpha=job.content.alpha_at(job.final_hw))
        if job.every and p.step % job.every == 0 and p.checkpoint is not None:
            _save_state(job, p.checkpoint(not job.light))
        if film is not None and (film.frames == 0 or p.step % (args.animation_every or default_every(p.total)) == 0):
            film.add(p.image, p.step)
        stop.check()

    return callback


def _interrupted(
    result: TransferResult, job: Job, args: argparse.Namespace, film: Film | None, stop: StopSignals
) -> int:
    """Ctrl-C or SIGTERM: keep the image, film and history so far, and a checkpoint to resume from."""
    _finish(result, job, args, film, stopped="interrupted")
    free = (
        job.checkpointing
        or args.overwrite
        or not job.checkpoint.exists()
        or same_file(job.checkpoint, job.resumed_from)
    )
    saved = free and _save_state(job, result.checkpoint(not job.light) if result.checkpoint else None)
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
    # The command's own cadence, so that a resumed run checkpoints as this one does.
    cli = {"checkpoint_every": job.every, "light_checkpoint": job.light, "checkpointing": job.checkpointing}
    save_checkpoint(job.checkpoint, {"manifest": recorded, "run": state, "cli": cli})
    return True


def _check_history(history: str | None, out: Path, overwrite: bool) -> Path | None:
    if not history:
        return None
    path = Path(history)
    if path.suffix.lower() != ".csv":
        raise StylistError(f"{path}: --history needs a .csv file name")
    for p in (path, path.with_suffix(".png")):
        if same_file(out, p):
            raise StylistError(f"{p}: the history would replace the output image; choose another name")
        check_output_target(p, overwrite, "history.csv")
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


def cmd_weights(args: argparse.Namespace) -> int:
    for s in SOURCES.values():
        print(f"{s.name:20s} {s.arch}  {s.preprocessing:8s}  {s.note}")
    return 0
