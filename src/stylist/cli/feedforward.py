"""``stylist train``, ``apply``, ``export``, ``info`` and ``models``: feed-forward networks from the command line.

A thin adapter over :mod:`stylist.feedforward`: it checks every path before any work, turns the
training callback into a progress bar, previews, a loss curve and checkpoints, and writes every
file atomically. Under ``torchrun`` only the first process writes. The core is called in one
place per command (``train``, ``load_model``, ``save_model``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import fields
from pathlib import Path
from typing import cast

import torch

from ..checkpoint import default_path as default_checkpoint_path
from ..checkpoint import load_checkpoint, save_checkpoint
from ..color import match_color
from ..errors import ConfigError, StylistError
from ..feedforward import (
    CHECKPOINT_KIND,
    NORMS,
    TRAIN_PRESETS,
    FeedForwardConfig,
    Interrupted,
    StyleModel,
    TrainProgress,
    batches_by_size,
    builtin_models,
    load_model,
    read_metadata,
    resolve_model_path,
    resume_config,
    save_model,
    train,
    train_preset,
)
from ..image import WRITE_FORMATS, check_output_target, output_format, read_picture, resize_long_side, save_image
from ..manifest import embed_params, input_records, one_pass_manifest
from ..training import TRAIN_PRECISIONS, any_across, check_checkpoint, close_distributed, is_main
from ._common import (
    APPLY_COLOR_HELP,
    ProgressBar,
    StopSignals,
    add_checkpoint,
    add_checkpoint_every,
    add_config_arguments,
    add_device,
    add_max_pixels,
    add_output,
    add_overwrite,
    add_precision,
    add_preserve_color,
    add_preview_every,
    add_quiet,
    add_resume,
    add_size,
    add_tile_size,
    all_checked,
    all_done,
    cadence,
    check_output_file,
    check_output_folder,
    final_line,
    install_hint,
    process_device,
    process_note,
    process_share,
    rate_note,
    scan_inputs,
    skipped_note,
    state_note,
    warn_skipped,
    whole_number,
    write_history,
)

# The cadence a checkpoint records, so that a resumed run checkpoints and previews as the original did.
CADENCE = {"checkpoint_every": 500, "preview_every": 500}
TRAIN_FLAGS = {"data": "--content"}
TRAIN_ALIASES = {"data": ["--data"]}
TRAIN_HELPS = {
    "style": "the painting whose style the network learns (with --resume: the recorded one)",
    "data": "folders of training photographs, searched recursively; damaged files are skipped (with --resume: "
    "the recorded ones)",
    "weights": "the loss network's weights: a name from 'stylist weights' or a weights file [default: vgg19-caffe]",
}


def add_parsers(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser(
        "train",
        help="train a feed-forward network for one painting (Johnson et al.)",
        description="Train a network that paints any photo in the style of --style, on the photos under the "
        "--content folders (Johnson, Alahi and Fei-Fei 2016). The progress line shows images per second and the "
        "time left.\n\n"
        "  stylist train --style painting.jpg --content photos/ more_photos/ -o starry.safetensors",
    )
    add_output(t, "MODEL", "the trained network (.safetensors)")
    add_overwrite(t, "MODEL, its checkpoint, preview and loss curve")
    t.add_argument(
        "--preset",
        choices=list(TRAIN_PRESETS),
        help="johnson2016: the paper's VGG-16 layers (needs the torchvision weights); options given override it",
    )
    add_checkpoint_every(t, CADENCE["checkpoint_every"], "steps")
    add_checkpoint(t)
    add_resume(t, "training run (to --steps in all)")
    add_preview_every(t, CADENCE["preview_every"], "MODEL_preview.png and the loss curve MODEL_losses.csv/.png")
    t.add_argument(
        "--preview",
        metavar="IMAGE",
        help="the photo the previews show (a resumed run keeps it) [default: the first training photo]",
    )
    t.add_argument(
        "--half",
        action="store_true",
        help="store the network in float16 (half the file size; what the built-in styles use; a resumed run keeps it)",
    )
    add_quiet(t)
    add_config_arguments(
        t,
        FeedForwardConfig,
        choices={"norm": NORMS, "precision": TRAIN_PRECISIONS},
        flags=TRAIN_FLAGS,
        aliases=TRAIN_ALIASES,
        helps=TRAIN_HELPS,
        required=("style", "data"),
        metavars={"data": "FOLDER", "init": "MODEL"},
    )
    t.set_defaults(run=cmd_train)

    a = sub.add_parser(
        "apply",
        help="stylise photos with a trained network, in milliseconds each",
        description="Stylise images and folders with a trained network: a built-in style (stylist models), a "
        ".safetensors file or an exported .onnx file. Damaged files in a folder are skipped, each named in a "
        "warning; a damaged file named on the command line is an error.\n\n"
        "  stylist apply starry-night photo.jpg -o out.png\n"
        "  stylist apply --model starry-night photos/ -o results/",
    )
    a.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help="[MODEL] CONTENT...: the model (unless --model is given), then images or folders (searched recursively)",
    )
    a.add_argument("--model", metavar="NAME", help="a built-in style name or a model file; then every PATH is an input")
    a.add_argument("--content", nargs="+", metavar="CONTENT", help="the photos (files or folders), as an option")
    add_output(a, "OUT", "a result file for one input image, or a folder (created if its parent exists)")
    add_size(a, "scale each input to this long side first, px", shown_default="the input's own size")
    add_max_pixels(a)
    add_device(a)
    add_precision(a, TRAIN_PRECISIONS, "auto (as the network is stored), fp32, bf16 or fp16 (not for .onnx)")
    add_preserve_color(a, text=APPLY_COLOR_HELP)
    add_tile_size(a)
    a.add_argument(
        "--batch-size",
        type=whole_number,
        default=4,
        metavar="N",
        help="images of the same size stylised together [default: 4]",
    )
    a.add_argument(
        "--format",
        choices=sorted({s.lstrip(".") for s in WRITE_FORMATS}),
        help="output format in a folder [default: the input's, or png]",
    )
    add_overwrite(a)
    add_quiet(a)
    a.set_defaults(run=cmd_apply)

    e = sub.add_parser(
        "export",
        help="export a trained network to ONNX",
        description="Export a trained network to ONNX (dynamic batch, height and width), checked against PyTorch "
        f"(needs {install_hint('onnx')}).",
    )
    e.add_argument("model", metavar="MODEL", help="a built-in style name or a .safetensors model file")
    add_output(e, "FILE.onnx", "the ONNX file")
    add_overwrite(e, "FILE.onnx")
    e.set_defaults(run=cmd_export)

    i = sub.add_parser(
        "info",
        help="print what a model file records",
        description="Print a model file's metadata: style, training settings, losses, version.",
    )
    i.add_argument("model", metavar="MODEL", help="a built-in style name, a .safetensors or an .onnx model file")
    i.set_defaults(run=cmd_info)

    m = sub.add_parser(
        "models", help="list the built-in styles", description="List the feed-forward networks shipped with Stylist."
    )
    m.set_defaults(run=cmd_models)


# --- train ---------------------------------------------------------------------------------------------


def config_from_args(args: argparse.Namespace, recorded: dict | None) -> FeedForwardConfig:
    given = {
        f.name: (tuple(v) if isinstance(v := getattr(args, f.name), list) else v)
        for f in fields(FeedForwardConfig)
        if hasattr(args, f.name)
    }
    if recorded is None:
        return train_preset(args.preset, **given)
    if args.preset:
        raise ConfigError(f"{args.resume}: --preset cannot change on resume; start a new run instead")
    try:
        return resume_config(recorded, given)  # the core's one resume rule (feedforward.RESUME_MAY_CHANGE)
    except ConfigError as err:
        raise ConfigError(f"{args.resume}: {err}") from None


def cmd_train(args: argparse.Namespace) -> int:
    resume = _load_resume(args.resume) if args.resume else None
    cfg = config_from_args(args, resume)
    cfg.validate()
    every = cadence(args, (resume or {}).get("cli"), CADENCE)
    # A resumed run keeps the file format and preview photo it was started with unless given again.
    recorded_cli = (resume or {}).get("cli") or {}
    args.half = args.half or bool(recorded_cli.get("half"))
    args.preview = str(Path(args.preview).resolve()) if args.preview else recorded_cli.get("preview")
    out = check_output_file(args.output, [cfg.style], args.overwrite, (".safetensors",), "model")
    ckpt = Path(args.checkpoint) if args.checkpoint else default_checkpoint_path(out)
    resuming_here = resume is not None and ckpt.resolve() == Path(args.resume).resolve()
    side = [out.with_name(out.stem + s) for s in ("_preview.png", "_losses.csv", "_losses.png")]
    for path in [ckpt, *side] if every["preview_every"] else [ckpt]:
        check_output_target(path, args.overwrite or (path == ckpt and resuming_here), out.name)
    # The damaged files training will skip, each named in a warning once training is under way (a setup
    # error stays the only line).
    folders = [d for d in cfg.data if Path(d).is_dir()]
    damaged = scan_inputs(folders, "--content")[1] if is_main() and folders else []
    preview_photo = _preview_photo(args, cfg, every["preview_every"])
    stop, bar = StopSignals(), ProgressBar(args.quiet or not is_main(), "step")

    def save_state(state: dict) -> None:
        save_checkpoint(ckpt, {**state, "cli": {**every, "half": args.half, "preview": args.preview}})

    def callback(p: TrainProgress) -> bool | None:
        while damaged:
            warn_skipped(*damaged.pop(0))
        terms = cast("dict[str, float]", p.losses)  # set at every step: feed-forward training logs each one
        bar.update(
            p.step,
            p.total,
            f"epoch {p.epoch + 1}",
            " ".join(f"{k} {v:.3g}" for k, v in terms.items() if k != "total") + ", "
            f"{rate_note(p)}, skipped {p.skipped}",
        )
        if is_main() and every["checkpoint_every"] and p.step % every["checkpoint_every"] == 0:
            save_state(p.checkpoint())
        if is_main() and every["preview_every"] and p.step % every["preview_every"] == 0:
            _write_previews(p.preview, p.history, preview_photo, side)
        if any_across(stop.requested):  # every process stops at the same step
            raise KeyboardInterrupt
        return None

    try:
        with stop:
            result = train(cfg, callback, resume=resume)
    except Interrupted as interrupted:
        bar.close()
        if is_main():
            save_state(interrupted.state)
            print(
                f"stylist: interrupted at step {interrupted.state['step']}; carry on with: "
                f"stylist train --resume {ckpt} -o {out} --overwrite",
                file=sys.stderr,
            )
        close_distributed()
        return stop.exit_code
    finally:
        bar.close()
    if is_main():
        try:
            save_model(result, out, half=args.half)
        except StylistError as err:  # every failed write is a WriteError (image.write_atomic)
            carry_on = f"write it with stylist train --resume {ckpt} -o MODEL"
            raise StylistError(f"{err}; {state_note(lambda: save_state(result.state), ckpt, carry_on)}") from None
        if every["preview_every"]:  # the last preview and the whole loss curve, however the run ended

            def final(photo: torch.Tensor) -> torch.Tensor:
                with torch.no_grad():
                    return result.model(photo)

            _write_previews(final, result.history, preview_photo, side)
        save_state(result.state)
        m = result.metadata
        final_line(
            f"wrote {out} ({m['steps']} steps on {m['images']} photos, final losses {m['final_losses']}"
            f"{skipped_note(['?'] * int(m['skipped']))})"
        )
    close_distributed()
    return 0


def _load_resume(path: str) -> dict:
    state = load_checkpoint(path)
    try:
        return check_checkpoint(state, CHECKPOINT_KIND, "stylist train")
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None


def _preview_photo(args: argparse.Namespace, cfg: FeedForwardConfig, every: int) -> torch.Tensor | None:
    if not every:
        return None
    if args.preview:
        return resize_long_side(read_picture(args.preview, "--preview").flat(), 2 * cfg.image_size)
    files, _ = scan_inputs(list(cfg.data), "--content")
    return resize_long_side(read_picture(files[0][0], "preview").flat(), 2 * cfg.image_size)


def _write_previews(stylise, history: list[dict], photo: torch.Tensor | None, paths: list[Path]) -> None:
    """MODEL_preview.png (the photo and its stylised version side by side) and the loss curve."""
    if photo is not None:
        save_image(torch.cat([photo, stylise(photo)], dim=-1), paths[0], overwrite=True)
    terms = ("total", "content", "style", "tv", "grid")
    rows = [{"step": r["step"], **{k: r[k] for k in terms if k in r}} for r in history]
    write_history(rows, paths[1], xlabel="training step", smooth=max(1, len(rows) // 50))


# --- apply ---------------------------------------------------------------------------------------------


def _load_any(model: str, device: str, precision: str):
    if str(model).lower().endswith(".onnx"):
        from ..export import OnnxStyleModel

        if not Path(model).is_file():
            raise StylistError(f"{model}: ONNX model file not found")
        return OnnxStyleModel(model)
    return load_model(model, device=device, precision=precision)


def _targets(inputs: list[tuple[Path, Path]], out: Path, fmt: str | None, single: bool) -> list[Path]:
    if single:
        return [out]
    targets = []
    for _, rel in inputs:
        suffix = "." + fmt if fmt else (rel.suffix.lower() if rel.suffix.lower() in WRITE_FORMATS else ".png")
        targets.append(out / rel.with_suffix(suffix))
    if len(set(targets)) != len(targets):
        dup = next(t for t in targets if targets.count(t) > 1)
        raise StylistError(
            f"{dup}: two inputs would be written to the same file; give them different names or use --format"
        )
    return targets


def _apply_inputs(args: argparse.Namespace) -> tuple[str, list[str]]:
    names = list(args.paths)
    if args.content and names and not args.model:
        model_name, extra = names[0], names[1:]
    else:
        model_name, extra = (args.model, names) if args.model else (names.pop(0) if names else None, names)
    if not model_name:
        raise StylistError("give the model: stylist apply MODEL CONTENT... or --model NAME")
    inputs = [*extra, *(args.content or [])]
    if not inputs:
        raise StylistError("give at least one input image or folder after the model")
    return model_name, inputs


def cmd_apply(args: argparse.Namespace) -> int:
    model_name, names = _apply_inputs(args)
    if args.size is not None and args.size < 16:
        raise ConfigError(f"--size must be at least 16 pixels; got {args.size}")
    if args.batch_size <= 0:
        raise ConfigError(f"--batch-size must be a positive whole number; got {args.batch_size}")
    if args.max_pixels is not None and args.max_pixels <= 0:
        raise ConfigError(f"--max-pixels must be a positive whole number; got {args.max_pixels}")
    inputs, skipped = scan_inputs(names, "input")
    out = Path(args.output)
    single = len(inputs) == 1 and not skipped and not Path(names[0]).is_dir() and not out.is_dir()
    single = single and out.suffix.lower() in WRITE_FORMATS
    if single:
        check_output_file(out, [inputs[0][0]], args.overwrite)
    elif out.suffix.lower() in WRITE_FORMATS and not out.is_dir():
        raise StylistError(f"{out}: several inputs (or a folder) need -o to be a folder, not an image file name")
    else:
        check_output_folder(out)
    targets = _targets(inputs, out, args.format, single)
    for (src, _), target in zip(inputs, targets):
        if target.parent.exists():  # a folder still to be made holds nothing to overwrite
            check_output_file(target, [src], args.overwrite)
    # Under torchrun each process takes its share of the files (checked above as a whole, as one run would).
    all_checked()
    shared = process_share(list(zip(inputs, targets)))
    inputs, targets = [i for i, _ in shared], [t for _, t in shared]
    if not inputs:
        all_done()
        final_line(f"no files left for this process{process_note()}")
        return 0
    if args.tile_size is not None and args.tile_size < 0:
        raise ConfigError(f"--tile-size must be 0 (no tiles) or a positive number of pixels; got {args.tile_size}")
    if args.tile_size and str(model_name).lower().endswith(".onnx"):
        raise ConfigError(
            f"{model_name}: --tile-size needs a .safetensors model or a built-in style, not an .onnx file"
        )
    model = _load_any(model_name, process_device(args.device), args.precision)
    # Every input read before any output: a damaged file named here stops the run, one found in a folder is skipped.
    pictures, kept = [], []
    for i, (src, _rel) in enumerate(inputs):
        try:
            pictures.append(read_picture(src, "input", args.max_pixels))
            kept.append(i)
        except StylistError as err:
            if src in map(Path, names):  # named on the command line: an error, not a skip
                raise
            skipped.append((str(src), str(err)))
    if not kept:
        raise StylistError(f"no readable input images in {' '.join(names)}")
    for path, why in skipped:  # every check passed: the skipped files are named now
        warn_skipped(path, why)
    jobs = [(j, resize_long_side(p.rgb, args.size) if args.size else p.rgb) for j, p in enumerate(pictures)]
    # One file has its final line; a bar would jump from 0 to 100 %. Made before the work, so that its rate is real.
    bar = ProgressBar(args.quiet or len(jobs) == 1, "img")
    bar.update(0, len(jobs))
    done, seconds = 0, 0.0
    for group in batches_by_size(jobs, args.batch_size):
        start = time.perf_counter()
        photos = torch.cat([x for _, x in group])
        images = _stylize(model, photos, args.preserve_color, args.tile_size)
        seconds_each = (time.perf_counter() - start) / len(group)
        seconds += seconds_each * len(group)
        for (j, _), y in zip(group, images):
            src, target = inputs[kept[j]][0], targets[kept[j]]
            target.parent.mkdir(parents=True, exist_ok=True)
            alpha = pictures[j].alpha_at((y.shape[-2], y.shape[-1]))
            manifest = _apply_manifest(model, src, args, target, y, seconds_each)
            params = embed_params(output_format(target), manifest)
            save_image(y.unsqueeze(0), target, overwrite=args.overwrite, alpha=alpha, **params)
        done += len(group)
        bar.update(done, len(jobs))
    bar.close()
    all_done()
    where = targets[kept[0]] if len(kept) == 1 else out  # one result: its file, also in a folder
    final_line(
        f"wrote {len(kept)} image(s) to {where} with {model.name} ({seconds:.1f} s on "
        f"{getattr(model, 'device', 'cpu')}{skipped_note(skipped)}){process_note()}"
    )
    return 0


def _stylize(model, photos: torch.Tensor, preserve_color: str, tile_size: int | None = None) -> torch.Tensor:
    """The network's results for ``photos`` (B, 3, H, W); mean-covariance recolours each to its photo's colours.
    An .onnx model runs whole images (its instance norms cannot take outside statistics)."""
    tiles = {"tile_size": tile_size} if isinstance(model, StyleModel) else {}
    if preserve_color != "mean-covariance":
        return model.stylize(photos, preserve_color, **tiles)
    images = model.stylize(photos, "none", **tiles)
    return torch.cat([match_color(y[None], x[None]) for x, y in zip(photos, images)])


def _apply_manifest(model, src: Path, args: argparse.Namespace, target: Path, y: torch.Tensor, seconds: float) -> dict:
    """The manifest of one result of a trained network, as stylist web writes it."""
    h, w = y.shape[-2:]
    options = {"model": model.name, "size": args.size, "preserve_color": args.preserve_color}
    output = {"file": target.name, "depth": 8, "width": w, "height": h}
    return one_pass_manifest(
        "feedforward", options, input_records(src, []), str(getattr(model, "device", "cpu")), seconds, output
    )


# --- export, info, models ----------------------------------------------------------------------------------


def cmd_export(args: argparse.Namespace) -> int:
    from ..export import export_onnx

    out = check_output_file(args.output, [], args.overwrite, (".onnx",), "ONNX")
    model = load_model(args.model, device="cpu", precision="fp32")
    worst = export_onnx(model, out)
    final_line(f"wrote {out} (onnxruntime matches PyTorch to {worst:.2e}, largest absolute difference in [0, 1])")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from ..export import model_info

    path = args.model if str(args.model).lower().endswith(".onnx") else resolve_model_path(args.model)
    for key, value in sorted(model_info(path).items()):  # safetensors keeps no order: sort for a stable listing
        print(f"{key:16s} {value}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    models = builtin_models()
    if not models:
        print("no built-in styles are installed", file=sys.stderr)
        return 0
    for name, path in models.items():
        meta = read_metadata(path)
        size = os.path.getsize(path) / 1e6
        init = json.loads(meta.get("config", "{}")).get("init")
        start = ""
        if init:  # the steps are the last run's: say what it started from
            start = f"  (fine-tuned from the previous {init})" if init == name else f"  (started from {init}'s network)"
        print(f"{name:20s} {meta.get('style_name', ''):32s} {meta.get('steps', '?'):>6s} steps  {size:.1f} MB{start}")
    return 0
