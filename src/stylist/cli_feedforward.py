"""``stylist train``, ``apply``, ``export``, ``info`` and ``models``: feed-forward networks from the command line.

A thin adapter over :mod:`stylist.feedforward`: it checks every path before any work,
turns the training callback into a progress bar, previews, a loss curve and checkpoints,
and writes every file atomically. Under ``torchrun`` only the first process writes.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import fields
from pathlib import Path

import torch

from .checkpoint import default_path as default_checkpoint_path
from .checkpoint import load_checkpoint, save_checkpoint
from .errors import ConfigError, StylistError
from .feedforward import (
    CHECKPOINT_KIND,
    NORMS,
    TRAIN_PRESETS,
    FeedForwardConfig,
    Interrupted,
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
from .image import WRITE_FORMATS, check_output_path, read_picture, resize_long_side, save_image
from .training import TRAIN_PRECISIONS, any_across, check_checkpoint, close_distributed, is_main


def add_parsers(sub: argparse._SubParsersAction) -> None:
    from .cli import add_config_arguments

    t = sub.add_parser(
        "train",
        help="train a feed-forward network for one painting (Johnson et al.)",
        description="Train a network that paints any photo in the style of --style, on the photos under --data.",
    )
    t.add_argument("-o", "--output", required=True, metavar="MODEL", help="the trained network (.safetensors)")
    t.add_argument(
        "--overwrite", action="store_true", help="replace MODEL, its checkpoint, preview and loss curve if they exist"
    )
    t.add_argument(
        "--preset",
        choices=list(TRAIN_PRESETS),
        help="johnson2016: the paper's VGG-16 layers (needs the torchvision weights); options given override it",
    )
    t.add_argument(
        "--checkpoint-every",
        type=int,
        default=500,
        metavar="N",
        help="save the run's state every N steps to resume it [default: 500; 0: only at the end and on Ctrl-C]",
    )
    t.add_argument("--checkpoint", metavar="FILE", help="the checkpoint file [default: MODEL.ckpt]")
    t.add_argument("--resume", metavar="CHECKPOINT", help="carry on the run saved in CHECKPOINT to --steps in all")
    t.add_argument(
        "--preview-every",
        type=int,
        default=500,
        metavar="N",
        help="every N steps write MODEL_preview.png and the loss curve MODEL_losses.csv/.png [default: 500; 0: off]",
    )
    t.add_argument("--preview", metavar="IMAGE", help="the photo the previews show [default: the first training photo]")
    t.add_argument(
        "--half",
        action="store_true",
        help="store the network in float16 (half the file size; what the built-in styles use)",
    )
    t.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    add_config_arguments(t, FeedForwardConfig, choices={"norm": NORMS, "precision": TRAIN_PRECISIONS})
    t.set_defaults(run=cmd_train)

    a = sub.add_parser(
        "apply",
        help="stylise photos with a trained network, in milliseconds each",
        description="Stylise images and folders with a trained network: a built-in style (stylist models), a .safetensors file or an exported .onnx file.",
    )
    a.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="[MODEL] INPUT...: the model (unless --model is given), then images or folders (searched recursively)",
    )
    a.add_argument("--model", metavar="NAME", help="a built-in style name or a model file; then every PATH is an input")
    a.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="OUT",
        help="an output folder (created if missing), or a file name for a single input image",
    )
    a.add_argument(
        "--size",
        type=int,
        metavar="PX",
        help="scale each input to this long side first [default: the input's own size]",
    )
    a.add_argument("--device", default="auto", help="auto (cuda, mps, cpu), or e.g. cpu, cuda:1 [default: auto]")
    a.add_argument(
        "--preserve-color",
        "--preserve-colour",
        choices=("none", "luminance"),
        default="none",
        help="luminance: keep the photo's colours [default: none]",
    )
    a.add_argument(
        "--batch-size", type=int, default=4, metavar="N", help="images of the same size stylised together [default: 4]"
    )
    a.add_argument(
        "--format",
        choices=sorted({s.lstrip(".") for s in WRITE_FORMATS}),
        help="output format in a folder [default: the input's, or png]",
    )
    a.add_argument("--overwrite", action="store_true", help="replace outputs that exist")
    a.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    a.set_defaults(run=cmd_apply)

    e = sub.add_parser(
        "export",
        help="export a trained network to ONNX",
        description="Export a trained network to ONNX (dynamic batch, height and width), checked against PyTorch.",
    )
    e.add_argument("model", metavar="MODEL", help="a built-in style name or a .safetensors model file")
    e.add_argument("-o", "--output", required=True, metavar="FILE.onnx")
    e.add_argument("--overwrite", action="store_true")
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
    return resume_config(recorded, given)  # the core's resume rules (stylist.feedforward.RESUME_MAY_CHANGE)


def cmd_train(args: argparse.Namespace) -> int:
    from .cli import _StopSignals

    resume = _load_resume(args.resume) if args.resume else None
    cfg = config_from_args(args, resume)
    cfg.validate()
    out = _check_model_output(Path(args.output), args.overwrite)
    ckpt = Path(args.checkpoint) if args.checkpoint else default_checkpoint_path(out)
    resuming_here = resume is not None and ckpt.resolve() == Path(args.resume).resolve()
    side = [out.with_name(out.stem + s) for s in ("_preview.png", "_losses.csv", "_losses.png")]
    for path in [ckpt, *side] if args.preview_every else [ckpt]:
        if path.exists() and not args.overwrite and not (path == ckpt and resuming_here):
            raise StylistError(f"{path}: already exists; pass --overwrite to replace it or choose another -o")
    preview_photo = _preview_photo(args, cfg)
    stop, bar = _StopSignals(), _TrainBar(args.quiet or not is_main())

    def callback(p: TrainProgress) -> bool | None:
        bar.update(p)
        if is_main() and args.checkpoint_every and p.step % args.checkpoint_every == 0:
            save_checkpoint(ckpt, p.checkpoint())
        if is_main() and args.preview_every and p.step % args.preview_every == 0:
            _write_previews(p.preview, p.history, preview_photo, side)
        stop.iterating = True
        if any_across(stop.signum is not None):  # every process stops at the same step
            raise KeyboardInterrupt
        return None

    try:
        with stop:
            result = train(cfg, callback, resume=resume)
    except Interrupted as interrupted:
        bar.close()
        if is_main():
            save_checkpoint(ckpt, interrupted.state)
            print(
                f"stylist: interrupted at step {interrupted.state['step']}; carry on with: stylist train --resume {ckpt} -o {out} --overwrite",
                file=sys.stderr,
            )
        close_distributed()
        return stop.exit_code
    finally:
        bar.close()
    if is_main():
        save_model(result, out, half=args.half)
        if args.preview_every:  # the last preview and the whole loss curve, however the run ended

            def final(photo: torch.Tensor) -> torch.Tensor:
                with torch.no_grad():
                    return result.model(photo)

            _write_previews(final, result.history, preview_photo, side)
        save_checkpoint(ckpt, result.state)
        m = result.metadata
        print(
            f"wrote {out} ({m['steps']} steps on {m['images']} photos, {m['skipped']} unreadable files skipped, final losses {m['final_losses']})",
            file=sys.stderr,
        )
    close_distributed()
    return 0


def _load_resume(path: str) -> dict:
    state = load_checkpoint(path)
    try:
        return check_checkpoint(state, CHECKPOINT_KIND, "stylist train")
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None


def _check_model_output(out: Path, overwrite: bool) -> Path:
    if out.suffix.lower() != ".safetensors":
        raise StylistError(f"{out}: the model file must end in .safetensors")
    if out.is_dir():
        raise StylistError(f"{out}: is a directory; give a file name such as starry.safetensors")
    if out.exists() and not overwrite:
        raise StylistError(f"{out}: already exists; pass --overwrite to replace it or choose another name")
    if not out.parent.exists():
        raise StylistError(f"{out}: folder {out.parent} does not exist")
    return out


def _preview_photo(args: argparse.Namespace, cfg: FeedForwardConfig) -> torch.Tensor | None:
    if not args.preview_every:
        return None
    if args.preview:
        return resize_long_side(read_picture(args.preview, "--preview").flat(), 2 * cfg.image_size)
    from .training import find_images

    files, _ = find_images(cfg.data)
    return resize_long_side(read_picture(files[0], "preview").flat(), 2 * cfg.image_size)


def _write_previews(stylise, history: list[dict], photo: torch.Tensor | None, paths: list[Path]) -> None:
    """MODEL_preview.png (the photo and its stylised version side by side) and the loss curve."""
    from .cli import write_history

    if photo is not None:
        save_image(torch.cat([photo, stylise(photo)], dim=-1), paths[0], overwrite=True)
    rows = [{"step": r["step"], **{k: r[k] for k in ("total", "content", "style", "tv")}} for r in history]
    write_history(rows, paths[1], xlabel="training step", smooth=max(1, len(rows) // 50))


class _TrainBar:
    def __init__(self, quiet: bool) -> None:
        self.quiet, self.bar = quiet, None

    def update(self, p: TrainProgress) -> None:
        if self.quiet:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=p.total, initial=p.step - 1, unit="step", dynamic_ncols=True, file=sys.stderr)
        self.bar.set_description(f"epoch {p.epoch + 1}")
        terms = p.losses
        self.bar.set_postfix_str(
            f"content {terms['content']:.3g} style {terms['style']:.3g} tv {terms['tv']:.3g} {p.images_per_s:.1f} img/s skipped {p.skipped}"
        )
        self.bar.update(p.step - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


# --- apply ---------------------------------------------------------------------------------------------


def _load_any(model: str, device: str):
    if str(model).lower().endswith(".onnx"):
        from .export import OnnxStyleModel

        if not Path(model).is_file():
            raise StylistError(f"{model}: ONNX model file not found")
        return OnnxStyleModel(model)
    return load_model(model, device=device)


def _inputs(paths: list[str]) -> list[tuple[Path, Path]]:
    """(file, its path relative to the folder it was found in) for every input image."""
    from .training import find_images

    found = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            files, skipped = find_images(path, "input")
            if skipped:
                import warnings

                from .errors import StylistWarning

                warnings.warn(
                    f"{path}: {skipped} file(s) with an image suffix are not readable images and are skipped",
                    StylistWarning,
                )
            found += [(f, f.relative_to(path)) for f in files]
        elif path.exists() and not path.is_file():
            raise StylistError(f"{path}: is not a file or folder")
        else:
            found.append((path, Path(path.name)))
    return found


def _targets(inputs: list[tuple[Path, Path]], out: Path, fmt: str | None) -> list[Path]:
    single = len(inputs) == 1 and out.suffix.lower() in WRITE_FORMATS and not out.is_dir()
    if single:
        return [out]
    if out.suffix.lower() in WRITE_FORMATS and not out.is_dir():
        raise StylistError(f"{out}: several inputs need an output folder, not a file name")
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


def cmd_apply(args: argparse.Namespace) -> int:
    names = list(args.paths)
    model_name = args.model or names.pop(0)
    if not names:
        raise StylistError("give at least one input image or folder after the model")
    if args.size is not None and args.size < 16:
        raise ConfigError(f"--size must be at least 16 pixels; got {args.size}")
    if args.batch_size <= 0:
        raise ConfigError(f"--batch-size must be a positive whole number; got {args.batch_size}")
    model = _load_any(model_name, args.device)
    inputs = _inputs(names)
    out = Path(args.output)
    targets = _targets(inputs, out, args.format)
    for (src, _), target in zip(inputs, targets):
        if target.parent.exists():  # a folder still to be made holds nothing to overwrite
            check_output_path(target, [src], args.overwrite)
    pictures = [
        (i, read_picture(src, "input")) for i, (src, _) in enumerate(inputs)
    ]  # every input read before any output
    jobs = [(i, resize_long_side(p.rgb, args.size) if args.size else p.rgb) for i, p in pictures]
    bar = None if args.quiet else _apply_bar(len(jobs))
    for group in batches_by_size(jobs, args.batch_size):
        images = model.stylize(torch.cat([x for _, x in group]), args.preserve_color)
        for (i, _), y in zip(group, images):
            target = targets[i]
            target.parent.mkdir(parents=True, exist_ok=True)
            alpha = pictures[i][1].alpha_at(tuple(y.shape[-2:]))
            save_image(y.unsqueeze(0), target, overwrite=args.overwrite, alpha=alpha)
        if bar is not None:
            bar.update(len(group))
    if bar is not None:
        bar.close()
    where = targets[0] if len(targets) == 1 else out
    print(f"wrote {len(targets)} image(s) to {where} with {model.name}", file=sys.stderr)
    return 0


def _apply_bar(total: int):
    from tqdm import tqdm

    return tqdm(total=total, unit="img", dynamic_ncols=True, file=sys.stderr)


# --- export, info, models ----------------------------------------------------------------------------------


def cmd_export(args: argparse.Namespace) -> int:
    from .export import export_onnx

    out = Path(args.output)
    if out.suffix.lower() != ".onnx":
        raise StylistError(f"{out}: the exported file must end in .onnx")
    if out.exists() and not args.overwrite:
        raise StylistError(f"{out}: already exists; pass --overwrite to replace it or choose another name")
    if not out.parent.exists():
        raise StylistError(f"{out}: folder {out.parent} does not exist")
    model = load_model(args.model, device="cpu", precision="fp32")
    worst = export_onnx(model, out)
    print(
        f"wrote {out}: onnxruntime matches PyTorch to {worst:.2e} (largest absolute difference, values in [0, 1])",
        file=sys.stderr,
    )
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from .export import model_info

    path = args.model if str(args.model).lower().endswith(".onnx") else resolve_model_path(args.model)
    for key, value in model_info(path).items():
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
        print(f"{name:20s} {meta.get('style_name', ''):32s} {meta.get('steps', '?'):>6s} steps  {size:.1f} MB")
    return 0
