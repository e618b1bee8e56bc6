"""``stylist arbitrary`` and ``stylist train-decoder``: thin adapters over :mod:`stylist.arbitrary`.

``add_parsers(sub)`` adds both subcommands to the ``stylist`` parser (cli.py calls it); the module
also runs alone (``python -m stylist.cli_arbitrary train-decoder ...``) with the same behaviour.
Every user error prints one line on stderr and exits with status 2; nothing is written before
every input has been read and every output path checked.
"""

from __future__ import annotations

import argparse
import signal
import sys
import typing
from dataclasses import MISSING, asdict, fields
from pathlib import Path

from .errors import ConfigError, ImageError, StylistError

METHOD_CHOICES = ("adain", "wct")


# --- parsers ----------------------------------------------------------------------------------------------


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Add ``arbitrary`` and ``train-decoder`` to the subparsers ``sub`` of the stylist parser."""
    from .arbitrary import ArbitraryConfig, DecoderTrainConfig

    a = sub.add_parser(
        "arbitrary",
        help="any painting in one pass (AdaIN or WCT), with a trained decoder",
        description="Render CONTENT (files or folders) in the style of any painting in one pass (AdaIN, Huang and Belongie 2017; WCT, Li et al. 2017).",
    )
    a.add_argument(
        "content", metavar="CONTENT", nargs="+", help="photographs: image files and/or folders (searched recursively)"
    )
    a.add_argument(
        "--style",
        nargs="+",
        required=True,
        metavar="STYLE",
        help="the painting(s); several are blended (--style-weights) or placed by --mask",
    )
    a.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="OUT",
        help="result file (one photo), or a folder for several (results keep the photos' names and formats)",
    )
    a.add_argument(
        "--mask",
        nargs="+",
        metavar="MASK",
        help="one grey-level mask per STYLE: white = that painting, black = not; where all are black the photo is kept",
    )
    a.add_argument("--overwrite", action="store_true", help="replace results that exist")
    a.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    _add_fields(
        a,
        ArbitraryConfig,
        {
            "method": METHOD_CHOICES,
            "preserve_color": ("none", "luminance", "histogram"),
            "precision": ("auto", "fp32", "bf16"),
        },
    )
    a.set_defaults(run=cmd_arbitrary)

    t = sub.add_parser(
        "train-decoder",
        help="train an AdaIN decoder or the WCT decoders",
        description="Train the decoder of stylist arbitrary: --method adain on photos and paintings, --method wct on photos only.",
    )
    t.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="DECODER.safetensors",
        help="the trained decoder (fp16 safetensors), for stylist arbitrary --decoder",
    )
    t.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the decoder, checkpoint, previews and loss files if they exist",
    )
    t.add_argument("--resume", metavar="CHECKPOINT", help="carry on the training saved in CHECKPOINT up to --steps")
    t.add_argument("--checkpoint", metavar="FILE", help="the checkpoint file [default: OUT.ckpt]")
    t.add_argument(
        "--checkpoint-every",
        type=int,
        default=1000,
        metavar="N",
        help="save the training state every N steps and at the end (0: never) [default: 1000]",
    )
    t.add_argument(
        "--preview-every",
        type=int,
        default=1000,
        metavar="N",
        help="write OUT_preview_STEP.png and the loss curve OUT_losses.png every N steps (0: only the curve, at the end) [default: 1000]",
    )
    t.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    _add_fields(t, DecoderTrainConfig, {"method": METHOD_CHOICES, "precision": ("auto", "fp32", "bf16", "fp16")})
    t.set_defaults(run=cmd_train_decoder)


def _add_fields(parser: argparse.ArgumentParser, cls: type, choices: dict[str, tuple]) -> None:
    """One flag per dataclass field, help from the comment above it (as ``stylist transfer`` does)."""
    from .cli import field_help

    helps, hints = field_help(cls), typing.get_type_hints(cls)
    for f in fields(cls):
        default = f.default if f.default is not MISSING else None
        kind = hints[f.name]
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        base = args[0] if args and type(None) in typing.get_args(kind) else kind
        shown = (
            " ".join(map(str, default)) if isinstance(default, tuple) else ("none" if default is None else str(default))
        )
        kw: dict = {
            "dest": f.name,
            "default": argparse.SUPPRESS,
            "help": f"{helps.get(f.name, '')} [default: {shown or 'none'}]",
        }
        if base is bool:
            kw["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(base) is tuple:
            kw["nargs"], kw["type"] = "+", typing.get_args(base)[0]
            kw["metavar"] = {"levels": "LEVEL", "exclude_styles": "NAME"}.get(
                f.name, "W" if kw["type"] is float else "X"
            )
        else:
            kw["type"] = base
        if f.name in choices:
            kw["choices"] = choices[f.name]
        parser.add_argument("--" + f.name.replace("_", "-"), **kw)


def _given(args: argparse.Namespace, cls: type) -> dict:
    out = {}
    for f in fields(cls):
        if hasattr(args, f.name):
            value = getattr(args, f.name)
            out[f.name] = tuple(value) if isinstance(value, list) else value
    return out


# --- stylist arbitrary ---------------------------------------------------------------------------------------


def cmd_arbitrary(args: argparse.Namespace) -> int:
    from .arbitrary import ArbitraryConfig, load_decoder, shared_encoder, stylize_arbitrary
    from .image import load_tensor, read_picture, save_image
    from .optimize import resolve_device

    cfg = ArbitraryConfig(**_given(args, ArbitraryConfig))
    cfg.validate()
    jobs = plan_outputs(args.content, args.output, args.overwrite, [*args.style, *(args.mask or [])])
    if cfg.style_weights is not None and len(cfg.style_weights) != len(args.style):
        raise ConfigError(f"--style-weights has {len(cfg.style_weights)} values for {len(args.style)} style image(s)")
    if args.mask and len(args.mask) != len(args.style):
        raise ConfigError(
            f"{len(args.mask)} mask(s) for {len(args.style)} style image(s): give one --mask per style image, in the same order"
        )
    # Every input is read before any work or file: a bad one stops the run with nothing written.
    styles = [load_tensor(s, "style", cfg.max_pixels) for s in args.style]
    for m in args.mask or []:
        load_tensor(m, "mask", cfg.max_pixels)
    for src, _ in jobs:
        read_picture(src, "content", cfg.max_pixels)
    device = resolve_device(cfg.device)
    decoder, encoder = load_decoder(cfg.method, cfg.decoder, device), shared_encoder(device)
    if len(jobs) > 1 or not Path(args.output).suffix:
        Path(args.output).mkdir(exist_ok=True)
    cache: dict = {}  # the paintings' features, encoded once for all the photos
    for i, (src, out) in enumerate(jobs):
        picture = read_picture(src, "content", cfg.max_pixels)
        result = stylize_arbitrary(
            picture, styles, cfg, masks=args.mask, decoder=decoder, encoder=encoder, style_cache=cache
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        save_image(result, out, overwrite=args.overwrite, alpha=picture.alpha_at(tuple(result.shape[-2:])))
        if not args.quiet:
            h, w = result.shape[-2:]
            print(
                f"wrote {out} ({w}x{h}, {cfg.method}){f' [{i + 1}/{len(jobs)}]' if len(jobs) > 1 else ''}",
                file=sys.stderr,
            )
    return 0


def plan_outputs(contents: list[str], output: str, overwrite: bool, other_inputs: list[str]) -> list[tuple[Path, Path]]:
    """[(photo, result path)]: one file to a file, or many (files and folders) into a folder.

    Refused in one line, before any work: a missing input, an empty folder, a folder for an
    output file, two photos with the same result, a result replacing an input, or a result that
    exists without ``overwrite``.
    """
    from .image import WRITE_FORMATS, output_format

    out = Path(output)
    sources: list[tuple[Path, Path]] = []  # (photo, path relative to the output folder)
    for item in contents:
        sources += _expand(Path(item))
    single = len(contents) == 1 and Path(contents[0]).is_file() and out.suffix != "" and not out.is_dir()
    if single:
        output_format(out)
        jobs = [(sources[0][0], out)]
    else:
        if out.suffix.lower() in WRITE_FORMATS or out.is_file():
            raise ConfigError(f"{out}: several photos (or a folder) need -o to be a folder, not an image file")
        if not out.parent.exists():
            raise ImageError(f"{out}: folder {out.parent} does not exist")
        jobs = [(src, out / rel) for src, rel in sources]
    _check_jobs(jobs, overwrite, [*[s for s, _ in jobs], *map(Path, other_inputs)])
    return jobs


def _expand(item: Path) -> list[tuple[Path, Path]]:
    from .training import IMAGE_SUFFIXES

    if not item.exists():
        raise ImageError(f"{item}: content file not found")
    if item.is_file():
        return [(item, Path(item.name))]
    found = sorted(p for p in item.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not found:
        raise ImageError(f"{item}: no images (.jpg .png .webp .tif .bmp) in this folder or below it")
    return [(p, p.relative_to(item)) for p in found]


def _check_jobs(jobs: list[tuple[Path, Path]], overwrite: bool, inputs: list[Path]) -> None:
    seen: dict[Path, Path] = {}
    resolved_inputs = {p.resolve() for p in inputs}
    for src, out in jobs:
        key = out.resolve()
        if key in seen:
            raise ConfigError(
                f"{out}: both {seen[key]} and {src} would be written here; give them separate runs or folders"
            )
        seen[key] = src
        if key in resolved_inputs:
            raise ImageError(f"{out}: the output would replace an input image; choose another output path")
        if out.is_dir():
            raise ImageError(f"{out}: is a directory; give an output file name such as result.png")
        if out.exists() and not overwrite:
            raise ImageError(f"{out}: already exists; pass --overwrite to replace it or choose another name")


# --- stylist train-decoder --------------------------------------------------------------------------------


class _Stop:
    """Ctrl-C or SIGTERM: finish the step under way, then save and stop; a second one stops at once."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict = {}

    def __enter__(self) -> _Stop:
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        except ValueError:  # not the main thread
            pass
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, frame: object) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum


def train_paths(out: Path, checkpoint: str | None) -> dict[str, Path]:
    stem = out.with_suffix("")
    return {
        "decoder": out,
        "checkpoint": Path(checkpoint) if checkpoint else out.with_name(out.name + ".ckpt"),
        "csv": Path(f"{stem}_losses.csv"),
        "curve": Path(f"{stem}_losses.png"),
    }


def _check_train_outputs(paths: dict[str, Path], args: argparse.Namespace) -> None:
    out = paths["decoder"]
    if out.suffix != ".safetensors":
        raise ConfigError(f"{out}: the decoder is written as safetensors; name it DECODER.safetensors")
    if not out.parent.exists():
        raise ImageError(f"{out}: folder {out.parent} does not exist")
    if args.checkpoint_every < 0 or args.preview_every < 0:
        raise ConfigError("--checkpoint-every and --preview-every must be 0 or positive")
    previews = sorted(out.parent.glob(f"{out.with_suffix('').name}_preview_*.png"))
    for _key, path in [*paths.items(), *(("preview", p) for p in previews[:1])]:
        # A resumed run carries on its own files (same -o): replacing them is the point.
        if path.exists() and not args.overwrite and not args.resume:
            raise ImageError(f"{path}: already exists; pass --overwrite to replace it or choose another -o")


def cmd_train_decoder(args: argparse.Namespace) -> int:
    from .arbitrary import DecoderTrainConfig, resume_config, train_decoder
    from .checkpoint import load_checkpoint
    from .training import close_distributed, is_main

    given = _given(args, DecoderTrainConfig)
    saved = load_checkpoint(args.resume) if args.resume else None
    cfg = resume_config(saved, given) if saved else DecoderTrainConfig(**given)
    cfg.validate()
    paths = train_paths(Path(args.output), args.checkpoint)
    _check_train_outputs(paths, args)
    history: list[dict] = list(saved.get("history", [])) if saved else []
    writer = _TrainWriter(cfg, paths, args, history)
    try:
        with _Stop() as stop:
            result = train_decoder(cfg, writer.callback(stop), resume=saved)
        if is_main():
            writer.finish(result)
    finally:
        writer.close()
        close_distributed()
    return 128 + stop.signum if stop.signum else 0


class _TrainWriter:
    """Turns training progress into a progress bar, checkpoints, previews and loss curves (rank 0 only)."""

    def __init__(self, cfg, paths: dict[str, Path], args: argparse.Namespace, history: list[dict]) -> None:
        from .training import is_main

        self.cfg, self.paths, self.args, self.history = cfg, paths, args, history
        self.main = is_main()
        self.bar = None
        self.last_losses: dict | None = None

    def callback(self, stop: _Stop):
        def on_step(p) -> bool:
            if p.losses is not None:
                self.history.append({"step": p.step, "seconds": round(p.elapsed, 2), "lr": p.lr, **p.losses})
                self.last_losses = p.losses
            if self.main:
                self._bar(p)
                if self.args.checkpoint_every and p.step % self.args.checkpoint_every == 0:
                    self._save_checkpoint(p.checkpoint())
                if self.args.preview_every and p.step % self.args.preview_every == 0:
                    self._preview(p)
            return stop.signum is not None

        return on_step

    def _bar(self, p) -> None:
        if self.args.quiet:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(
                total=p.total,
                initial=p.step - 1,
                unit="step",
                dynamic_ncols=True,
                file=sys.stderr,
                desc=f"train {self.cfg.method}",
            )
        if p.losses is not None:
            self.bar.set_postfix_str(
                " ".join(f"{k} {v:.3g}" for k, v in p.losses.items())
                + (f" bad files {p.bad_files}" if p.bad_files else "")
            )
        self.bar.update(p.step - self.bar.n)

    def _save_checkpoint(self, state: dict) -> None:
        from .checkpoint import save_checkpoint

        save_checkpoint(self.paths["checkpoint"], {**state, "history": self.history})

    def _saved_state(self, result) -> str:
        ckpt = self.paths["checkpoint"]
        try:
            self._save_checkpoint(result.checkpoint())
            return f"the trained state is saved in {ckpt}: carry on from it with stylist train-decoder --resume {ckpt} --steps MORE"
        except StylistError:
            if ckpt.exists():
                return f"the last checkpoint is {ckpt}: carry on from it with stylist train-decoder --resume {ckpt} --steps MORE"
            return "no checkpoint could be saved either"

    def _preview(self, p) -> None:
        from .image import save_image

        path = Path(f"{self.paths['decoder'].with_suffix('')}_preview_{p.step:06d}.png")
        save_image(p.preview(), path, overwrite=True)
        write_loss_curve(self.history, self.paths["csv"], self.paths["curve"], self.cfg.method)

    def finish(self, result) -> None:
        self.close()
        try:
            write_decoder(result, self.cfg, self.paths["decoder"], self.history)
        except StylistError as err:  # issue 19: a decoder that cannot be written must not lose the training
            raise StylistError(f"{err}; {self._saved_state(result)}") from None
        if self.args.checkpoint_every:
            self._save_checkpoint(result.checkpoint())
        if self.history:
            write_loss_curve(self.history, self.paths["csv"], self.paths["curve"], self.cfg.method)
        why = {"time": f", stopped by --time-limit {self.cfg.time_limit} s", "callback": ", interrupted"}.get(
            result.stopped, ""
        )
        loss = f", loss {self.last_losses['total']:.4g}" if self.last_losses else ""
        print(
            f"wrote {self.paths['decoder']} (step {result.step} of {self.cfg.steps}, {result.elapsed:.0f} s on {result.device}, {result.precision}{loss}{why})",
            file=sys.stderr,
        )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def write_decoder(result, cfg, path: Path, history: list[dict]) -> None:
    """The decoder as fp16 safetensors with its training recorded in the metadata, atomically."""
    from safetensors.torch import save_file

    from . import __version__
    from .arbitrary import decoder_file

    extra = {
        "stylist_version": __version__,
        "steps": result.step,
        "stopped": result.stopped,
        "train_seconds": round(result.elapsed, 1),
        "train_device": result.device,
        "train_precision": result.precision,
        "train_config": asdict(cfg),
        "final_losses": history[-1] if history else {},
    }
    tensors, meta = decoder_file(result.model, extra)
    _atomic(path, lambda tmp: save_file(tensors, tmp, metadata=meta))


def _atomic(path: Path, write) -> None:
    from .image import write_atomic

    write_atomic(path, write)


def write_loss_curve(history: list[dict], csv_path: Path, png_path: Path, method: str) -> None:
    """The logged losses as CSV and a log-scale plot (``png_path`` is ``csv_path`` with .png)."""
    from .cli import write_history

    if not history:
        return
    assert png_path == csv_path.with_suffix(".png")
    keys = [k for k in dict.fromkeys(k for row in history for k in row) if k not in ("step", "seconds", "lr")]
    write_history(history, csv_path, xlabel="step", title=f"stylist train-decoder --method {method}", keys=keys)


# --- running alone ----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """``python -m stylist.cli_arbitrary ...``: these two subcommands, as ``stylist`` runs them."""
    from .cli import OneLineParser, _one_line_warnings

    parser = OneLineParser(prog="stylist", description="Arbitrary style in one pass: AdaIN and WCT.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    add_parsers(sub)
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        with _one_line_warnings():
            return args.run(args)
    except StylistError as err:
        print(f"stylist: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("stylist: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
