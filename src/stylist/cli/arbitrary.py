"""``stylist arbitrary`` and ``stylist train-decoder``: thin adapters over :mod:`stylist.arbitrary`.

Nothing is written before every named input has been read and every output path checked; damaged
files found in a folder are skipped, each named in a warning. The core is called in one place per
command (``stylize_arbitrary`` with ``load_decoder``, ``train_decoder``).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict, replace
from pathlib import Path

from ..arbitrary import (
    LEVEL_BLENDS,
    WCT_LEVEL_ALPHA,
    WCT_ONLY_OPTIONS,
    WCT_TRANSFORMS,
    ArbitraryConfig,
    default_level_alphas,
    shared_encoder,
    stylize_arbitrary,
    wct_only_error,
)
from ..checkpoint import load_checkpoint, save_checkpoint
from ..decoders import decoder_file, load_decoder
from ..devices import resolve_device
from ..errors import ConfigError, StylistError, check_one_each
from ..image import (
    WRITE_FORMATS,
    check_output_target,
    load_tensor,
    output_format,
    read_picture,
    same_file,
    save_image,
    write_atomic,
)
from ..manifest import embed_params, input_records, one_pass_manifest
from ..masks import check_mask_count
from ..train_decoders import DecoderTrainConfig, resume_config, train_decoder
from ..training import close_distributed, is_main
from ._common import (
    ProgressBar,
    StopSignals,
    add_checkpoint,
    add_checkpoint_every,
    add_config_arguments,
    add_mask,
    add_output,
    add_overwrite,
    add_preview_every,
    add_quiet,
    add_resume,
    all_checked,
    all_done,
    cadence,
    check_output_file,
    check_output_folder,
    final_line,
    first_line,
    given_fields,
    one_of,
    process_device,
    process_note,
    process_share,
    rate_note,
    required_group,
    scan_inputs,
    skipped_note,
    state_note,
    warn_skipped,
    write_history,
)

METHOD_CHOICES = ("adain", "wct")
# "alpha" is the content weight in stylist transfer: here the style strength has its own name.
ARBITRARY_FLAGS = {"alpha": "--style-strength"}
ARBITRARY_ALIASES = {"alpha": ["--alpha"]}
ARBITRARY_HELPS = {
    "alpha": "style strength: 0 is the photo as the decoders rebuild it from its own features (not the photo "
    "itself: about 21 dB PSNR for AdaIN, 42 dB for WCT's defaults; see docs/models/adain.md and wct.md), "
    "1 the full style [default: 1.0]",
    "size": "long side of the result, px [default: the photo's own size]",
    "level_alphas": "WCT only: strength of each level of --levels (coarse to fine), multiplied by "
    f"--style-strength [default: {WCT_LEVEL_ALPHA} at every level, 1 at relu1_1]",
    "style_size": "long side the paintings are resized to before their statistics are taken (bigger: finer "
    "strokes), px [default: 512]",
    "decoder": "a decoder file from stylist train-decoder [default: the decoder shipped with Stylist]",
}
# "scale" in the config is a zoom range of the training crops, not a size ratio as in stylist transfer.
DECODER_FLAGS: dict[str, str] = {}
DECODER_ALIASES = {"content_zoom": ["--content-scale"], "style_zoom": ["--style-scale"]}
DECODER_HELPS = {
    "content": "folders of photographs, searched recursively; damaged files are skipped (with --resume: the "
    "recorded ones)",
    "style": "adain: folders of paintings, searched recursively [default: none]",
    "style_csv": "adain: CSV saying how often each painting is drawn: columns file (path relative to the CSV, or "
    "file name) and artist (every artist equally often) or weight (in proportion) [default: all alike]",
    "exclude_styles": "paintings left out of training (to judge the decoder on styles it never saw): file names, "
    "or CSV files whose file column lists them [default: none]",
    "content_zoom": "zoom range MIN MAX of the photo crops: the short side is resized to --image-size times a "
    "factor drawn from it, then cropped [default: 1.0 1.5]",
    "style_zoom": "zoom range MIN MAX of the painting crops, as --content-zoom [default: 1.0 3.0]",
    "lr_decay": "the learning rate at step s is lr / (1 + decay * s) (Huang and Belongie's schedule) [default: 5e-05]",
}
CADENCE = {"checkpoint_every": 1000, "preview_every": 1000}


# --- parsers ----------------------------------------------------------------------------------------------


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Add ``arbitrary`` and ``train-decoder`` to the subparsers ``sub`` of the stylist parser."""
    a = sub.add_parser(
        "arbitrary",
        help="any painting in one pass (AdaIN or WCT), with a trained decoder",
        description="Render CONTENT (files or folders) in the style of any painting in one pass (AdaIN, Huang "
        "and Belongie 2017; WCT, Li et al. 2017). Damaged files in a folder are skipped, each named in a "
        "warning; a damaged file named on the command line is an error.\n\n"
        "  stylist arbitrary photo.jpg --style painting.jpg -o out.png\n"
        "  stylist arbitrary photos/ --style painting.jpg -o results/",
    )
    a.add_argument(
        "content", metavar="CONTENT", nargs="*", help="photographs: image files and/or folders (searched recursively)"
    )
    a.add_argument("--content", dest="content_option", nargs="+", metavar="CONTENT", help="the photos, as an option")
    required = required_group(a)
    required.add_argument(
        "--style",
        nargs="+",
        required=True,
        metavar="STYLE",
        help="the painting(s); several are blended (--style-weights) or placed by --mask",
    )
    add_output(
        a, "OUT", "result file (one photo), or a folder for several (results keep the photos' names and formats)"
    )
    add_mask(a)
    add_overwrite(a, "results")
    add_quiet(a)
    add_config_arguments(
        a,
        ArbitraryConfig,
        {
            "method": METHOD_CHOICES,
            "precision": ("auto", "fp32", "bf16"),
            "wct_transform": WCT_TRANSFORMS,
            "level_blend": LEVEL_BLENDS,
        },
        flags=ARBITRARY_FLAGS,
        aliases=ARBITRARY_ALIASES,
        helps=ARBITRARY_HELPS,
        metavars={"levels": "LEVEL"},
    )
    a.set_defaults(run=cmd_arbitrary)

    t = sub.add_parser(
        "train-decoder",
        help="train an AdaIN decoder or the WCT decoders",
        description="Train the decoder of stylist arbitrary: --method adain on photos and paintings, --method wct "
        "on photos only. Several folders may follow --content and --style; --style-csv draws the paintings per "
        "artist. The progress line shows images per second and the time left.\n\n"
        "  stylist train-decoder --method adain --content photos/ more/ --style paintings/ "
        "--style-csv paintings.csv -o adain.safetensors",
    )
    add_output(t, "DECODER.safetensors", "the trained decoder (fp16 safetensors), for stylist arbitrary --decoder")
    add_overwrite(t, "the decoder, checkpoint, previews and loss files")
    add_resume(t, "training (up to --steps)")
    add_checkpoint(t)
    add_checkpoint_every(t, CADENCE["checkpoint_every"], "steps")
    add_preview_every(t, CADENCE["preview_every"], "OUT_preview_STEP.png and the loss curve OUT_losses.png")
    add_quiet(t)
    add_config_arguments(
        t,
        DecoderTrainConfig,
        {"method": METHOD_CHOICES, "precision": ("auto", "fp32", "bf16", "fp16")},
        flags=DECODER_FLAGS,
        aliases=DECODER_ALIASES,
        helps=DECODER_HELPS,
        required=("content",),
        metavars={
            "levels": "LEVEL",
            "exclude_styles": "NAME",
            "style_csv": "CSV",
            "content_zoom": "ZOOM",
            "style_zoom": "ZOOM",
            "content": "FOLDER",
            "style": "FOLDER",
        },
    )
    t.set_defaults(run=cmd_train_decoder)


# --- stylist arbitrary ---------------------------------------------------------------------------------------


def cmd_arbitrary(args: argparse.Namespace) -> int:
    given = given_fields(args, ArbitraryConfig)
    cfg = ArbitraryConfig(**given)
    if cfg.method != "wct" and any(name in given for name in WCT_ONLY_OPTIONS):
        raise wct_only_error()  # validate() sees only values that differ from the defaults
    cfg.device = process_device(cfg.device)  # one GPU per process under torchrun
    cfg.validate()
    if cfg.method == "wct" and cfg.level_alphas is None:
        cfg = replace(cfg, level_alphas=default_level_alphas(cfg.levels))  # the manifest records the strengths
    contents = one_of(args, "content", "content_option", "--content")
    if not contents:
        raise StylistError("give the photo(s): CONTENT... or --content")
    if cfg.style_weights is not None:
        check_one_each("--style-weights", cfg.style_weights, len(args.style), "style image")
    if args.mask:
        check_mask_count(len(args.mask), len(args.style))
    jobs, skipped = plan_outputs(contents, args.output, args.overwrite, [*args.style, *(args.mask or [])])
    all_checked()
    jobs = process_share(jobs)  # under torchrun, this process's share of the photos (checked as one run above)
    if not jobs:
        all_done()
        final_line(f"no photos left for this process{process_note()}")
        return 0
    # Every named input is read before any work or file: a bad one stops the run with nothing written.
    styles = [read_picture(s, "style", cfg.max_pixels) for s in args.style]  # Pictures: messages name the file
    for m in args.mask or []:
        load_tensor(m, "mask", cfg.max_pixels)
    named = set(map(Path, contents))
    readable = []
    for src, out in jobs:
        try:
            read_picture(src, "content", cfg.max_pixels)
            readable.append((src, out))
        except StylistError as err:
            if src in named:
                raise
            skipped.append((str(src), str(err)))
    if not readable:
        raise StylistError(f"no readable photos in {' '.join(contents)}")
    device = resolve_device(cfg.device)
    decoder, encoder = load_decoder(cfg.method, cfg.decoder, device), shared_encoder(device)
    for path, why in skipped:  # every check passed: the skipped files are named now
        warn_skipped(path, why)
    cache: dict = {}  # the paintings' features, encoded once for all the photos
    bar = ProgressBar(args.quiet or len(readable) == 1, "img")
    bar.update(0, len(readable), cfg.method)  # made before the work, so that its rate is the real one
    seconds = 0.0
    for i, (src, out) in enumerate(readable):
        picture = read_picture(src, "content", cfg.max_pixels)
        start = time.perf_counter()
        result = stylize_arbitrary(
            picture, styles, cfg, masks=args.mask, decoder=decoder, encoder=encoder, style_cache=cache
        )
        elapsed = time.perf_counter() - start
        seconds += elapsed
        out.parent.mkdir(parents=True, exist_ok=True)
        manifest = _manifest(cfg, src, args, out, result, str(device), elapsed)
        params = embed_params(output_format(out), manifest)
        save_image(
            result,
            out,
            overwrite=args.overwrite,
            alpha=picture.alpha_at((result.shape[-2], result.shape[-1])),
            **params,
        )
        bar.update(i + 1, len(readable), cfg.method)
    bar.close()
    all_done()
    h, w = result.shape[-2:]
    what = f"{readable[0][1]} ({w}x{h}, " if len(readable) == 1 else f"{len(readable)} image(s) to {args.output} ("
    final_line(f"wrote {what}{cfg.method}, {seconds:.1f} s on {device}{skipped_note(skipped)}){process_note()}")
    return 0


def _manifest(
    cfg: ArbitraryConfig, src: Path, args: argparse.Namespace, out: Path, result, device: str, elapsed: float
):
    """The manifest of one result, as stylist web writes it: the options, the photo, paintings and masks."""
    h, w = result.shape[-2:]
    output = {"file": out.name, "depth": 8, "width": w, "height": h}
    inputs = input_records(src, list(args.style), list(args.mask) if args.mask else None)
    return one_pass_manifest("arbitrary", asdict(cfg), inputs, device, elapsed, output)


def plan_outputs(
    contents: list[str], output: str, overwrite: bool, other_inputs: list[str]
) -> tuple[list[tuple[Path, Path]], list[tuple[str, str]]]:
    """([(photo, result path)], [(damaged file skipped, why)]): one file to a file, or many (files and folders)
    into a folder.

    Refused in one line, before any work: a missing input, an empty folder, a folder for an output
    file, two photos with the same result, a result replacing an input, or a result that exists
    without ``overwrite``.
    """
    out = Path(output)
    sources, skipped = scan_inputs(contents, "content")
    single = len(contents) == 1 and Path(contents[0]).is_file() and out.suffix.lower() in WRITE_FORMATS
    if single and not out.is_dir():
        jobs = [(sources[0][0], check_output_file(out, [*contents, *other_inputs], overwrite))]
    else:
        if out.suffix.lower() in WRITE_FORMATS and not out.is_dir():
            raise ConfigError(f"{out}: several photos (or a folder) need -o to be a folder, not an image file")
        check_output_folder(out)
        jobs = [(src, out / rel) for src, rel in sources]
    _check_jobs(jobs, overwrite, [*[s for s, _ in jobs], *map(Path, other_inputs)])
    return jobs, skipped


def _check_jobs(jobs: list[tuple[Path, Path]], overwrite: bool, inputs: list[Path]) -> None:
    seen: dict[Path, Path] = {}
    for src, out in jobs:
        key = out.resolve()
        if key in seen:
            raise ConfigError(
                f"{out}: both {seen[key]} and {src} would be written here; give them separate runs or folders"
            )
        seen[key] = src
        if out.parent.exists():  # a folder still to be made holds nothing to overwrite
            check_output_file(out, inputs, overwrite)


# --- stylist train-decoder --------------------------------------------------------------------------------


def train_paths(out: Path, checkpoint: str | None) -> dict[str, Path]:
    stem = out.with_suffix("")
    return {
        "decoder": out,
        "checkpoint": Path(checkpoint) if checkpoint else out.with_name(out.name + ".ckpt"),
        "csv": Path(f"{stem}_losses.csv"),
        "curve": Path(f"{stem}_losses.png"),
    }


def _check_train_outputs(paths: dict[str, Path], args: argparse.Namespace, cfg: DecoderTrainConfig) -> None:
    # A run resumed from the checkpoint beside -o carries on its own files: replacing them is the point.
    # Another -o is a new set of files, refused where they exist as in a fresh run.
    own = args.overwrite or bool(args.resume and same_file(paths["checkpoint"], args.resume))
    out = check_output_file(
        paths["decoder"],
        [*cfg.content, *cfg.style, *([cfg.style_csv] if cfg.style_csv else [])],
        own,
        (".safetensors",),
        "decoder",
    )
    previews = sorted(out.parent.glob(f"{out.with_suffix('').name}_preview_*.png"))
    for path in [*paths.values(), *previews[:1]]:
        check_output_target(path, own, out.name)


def cmd_train_decoder(args: argparse.Namespace) -> int:
    given = given_fields(args, DecoderTrainConfig)
    saved = load_checkpoint(args.resume) if args.resume else None
    cfg = resume_config(saved, given) if saved else DecoderTrainConfig(**given)
    cfg.validate()
    every = cadence(args, (saved or {}).get("cli"), CADENCE)
    paths = train_paths(Path(args.output), args.checkpoint)
    _check_train_outputs(paths, args, cfg)
    # The damaged files training will skip, each named in a warning once training is under way (a setup
    # error stays the only line); the core words the errors of folders that are missing.
    folders = [f for f in (*cfg.content, *cfg.style) if Path(f).is_dir()]
    damaged = scan_inputs(folders, "training image")[1] if is_main() and folders else []
    history: list[dict] = list(saved.get("history", [])) if saved else []
    writer = _TrainWriter(cfg, paths, args, history, every, damaged)
    try:
        with StopSignals() as stop:
            result = train_decoder(cfg, writer.callback(stop), resume=saved)
        if is_main():
            writer.finish(result)
    finally:
        writer.close()
        close_distributed()
    return stop.exit_code if stop.signum else 0


class _TrainWriter:
    """Turns training progress into a progress bar, checkpoints, previews and loss curves (rank 0 only)."""

    def __init__(
        self,
        cfg,
        paths: dict[str, Path],
        args: argparse.Namespace,
        history: list[dict],
        every: dict[str, int],
        damaged: list[tuple[str, str]],
    ) -> None:
        self.cfg, self.paths, self.args, self.history, self.every = cfg, paths, args, history, every
        self.damaged = damaged
        self.main = is_main()
        self.bar = ProgressBar(args.quiet or not self.main, "step")
        self.last_losses: dict | None = None
        self.bad_files = 0

    def callback(self, stop: StopSignals):
        def on_step(p) -> bool:
            while self.damaged:
                warn_skipped(*self.damaged.pop(0))
            if p.losses is not None:
                self.history.append({"step": p.step, "seconds": round(p.elapsed, 2), "lr": p.lr, **p.losses})
                self.last_losses = p.losses
            self.bad_files = p.bad_files
            if self.main:
                terms = " ".join(f"{k} {v:.3g}" for k, v in (p.losses or {}).items())
                bad = f" bad files {p.bad_files}" if p.bad_files else ""
                line = f"{terms}, {rate_note(p)}{bad}" if terms else ""  # off logging steps: the last line stays
                self.bar.update(p.step, p.total, f"train {self.cfg.method}", line)
                if self.every["checkpoint_every"] and p.step % self.every["checkpoint_every"] == 0:
                    self._save_checkpoint(p.checkpoint())
                if self.every["preview_every"] and p.step % self.every["preview_every"] == 0:
                    self._preview(p)
            return stop.requested

        return on_step

    def _save_checkpoint(self, state: dict) -> None:
        save_checkpoint(self.paths["checkpoint"], {**state, "history": self.history, "cli": self.every})

    def _preview(self, p) -> None:
        path = Path(f"{self.paths['decoder'].with_suffix('')}_preview_{p.step:06d}.png")
        save_image(p.preview(), path, overwrite=True)
        write_loss_curve(self.history, self.paths["csv"], self.cfg.method)

    def finish(self, result) -> None:
        self.close()
        try:
            write_decoder(result, self.cfg, self.paths["decoder"], self.history)
        except StylistError as err:  # the run is not lost: its state goes to the checkpoint
            ckpt = self.paths["checkpoint"]
            carry_on = f"carry on from it with stylist train-decoder --resume {ckpt} --steps MORE"
            note = state_note(lambda: self._save_checkpoint(result.checkpoint()), ckpt, carry_on)
            raise StylistError(f"{err}; {note}") from None
        if self.every["checkpoint_every"]:
            self._save_checkpoint(result.checkpoint())
        if self.history:
            write_loss_curve(self.history, self.paths["csv"], self.cfg.method)
        why = {"time": f", stopped by --time-limit {self.cfg.time_limit} s", "callback": ", interrupted"}.get(
            result.stopped, ""
        )
        loss = f", loss {self.last_losses['total']:.4g}" if self.last_losses else ""
        carry_on = ""
        if result.step < self.cfg.steps and self.every["checkpoint_every"]:  # stopped early, its state saved
            ckpt, out = self.paths["checkpoint"], self.paths["decoder"]
            carry_on = f"; carry on with: stylist train-decoder --resume {ckpt} -o {out}"
        final_line(
            f"wrote {self.paths['decoder']} (step {result.step} of {self.cfg.steps}, {result.elapsed:.0f} s on "
            f"{result.device}, {result.precision}{loss}{why}{skipped_note(['?'] * self.bad_files)}){carry_on}"
        )

    def close(self) -> None:
        self.bar.close()


def write_decoder(result, cfg, path: Path, history: list[dict]) -> None:
    """The decoder as fp16 safetensors with its training recorded in the metadata, atomically."""
    from safetensors.torch import save_file

    from .. import __version__

    extra = {
        "stylist_version": __version__,
        "steps": result.step,
        "stopped": result.stopped,
        "train_seconds": round(result.train_seconds, 1),
        "train_device": result.device,
        "train_precision": result.precision,
        "train_config": asdict(cfg),
        "final_losses": history[-1] if history else {},
    }
    tensors, meta = decoder_file(result.model, extra)
    try:
        write_atomic(path, lambda tmp: save_file(tensors, tmp, metadata=meta))
    except StylistError:
        raise
    except Exception as err:  # noqa: BLE001 (safetensors reports a full disk as its own error, not OSError)
        raise StylistError(f"{path}: cannot write the decoder ({first_line(err)})") from None


def write_loss_curve(history: list[dict], csv_path: Path, method: str) -> None:
    """The logged losses as CSV and a log-scale plot beside it (same name, .png)."""
    if not history:
        return
    keys = [k for k in dict.fromkeys(k for row in history for k in row) if k not in ("step", "seconds", "lr")]
    write_history(history, csv_path, xlabel="step", title=f"stylist train-decoder --method {method}", keys=keys)
