"""``stylist video``: a film (or a folder of frames) stylised by any method, without flicker, its sound kept.

A thin adapter over :func:`stylist.films.stylize_video`: the options come from
:class:`stylist.films.VideoConfig`; every input is checked and the output path is refused or accepted
before any work; Ctrl-C (or SIGTERM) writes a playable film of the frames done so far and exits 130
(143); the last line gives the frames per second and Lai et al.'s warping error (the flicker measure).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..color import COLOR_CHOICES
from ..errors import ConfigError, StylistError
from ..films import CODECS, CONTAINERS, VIDEO_METHODS, VideoConfig, check_codec, is_frame_folder, stylize_video
from ..flow import FLOW_METHODS
from ..image import load_tensor
from ._common import (
    STYLE_STRENGTH_ALIASES,
    STYLE_STRENGTH_FLAGS,
    STYLE_STRENGTH_HELP,
    VIDEO_EXIT_CODES,
    ProgressBar,
    StopSignals,
    add_config_arguments,
    add_output,
    add_overwrite,
    add_quiet,
    check_output_file,
    check_output_folder,
    final_line,
    given_fields,
)

HELPS = {
    "alpha": STYLE_STRENGTH_HELP,
    "size": "long side of the result, px [default: the film's own size]",
    "method": "with --style: adain or wct (any painting in one pass, as stylist arbitrary), or optimize (Gatys et "
    "al. per frame with Ruder et al.'s temporal loss: slow) [default: adain]",
    "temporal": "strength of temporal consistency from 0 (each frame on its own: flickers) to 1 [default: 0.7]",
    "preserve_color": f"keep the film's colours: {', '.join(COLOR_CHOICES)} (a --model takes none or luminance) "
    "[default: none]",
}


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Add ``video`` to the subparsers ``sub`` of the stylist parser."""
    v = sub.add_parser(
        "video",
        help="stylise a film (or a folder of frames) without flicker, its sound kept",
        description="Stylise the film IN frame by frame with a feed-forward network (--model) or any painting "
        "(--style, with --method adain, wct or optimize). Optical flow between the frames keeps the strokes on "
        "the moving objects (--temporal; restarts at scene cuts); audio streams are copied untouched. Ctrl-C "
        "writes a playable film of the frames done so far.\n\n"
        "  stylist video clip.mp4 --model starry-night -o out.mp4\n"
        "  stylist video clip.mp4 --style painting.jpg --size 512 --start 10 --duration 3 -o try.mp4\n"
        "  stylist video frames/ --style painting.jpg --fps 24 -o stylised_frames/",
        epilog=VIDEO_EXIT_CODES,
    )
    v.add_argument("input", metavar="IN", help="a film (.mp4 .mov .mkv .webm ...) or a folder of frames (name order)")
    add_output(v, "OUT", "the film (.mp4 .mov .mkv; H.264 yuv420p), or a folder for PNG frames")
    v.add_argument(
        "--model", metavar="NAME|FILE", help="a built-in style (stylist models), or a .safetensors or .onnx file"
    )
    v.add_argument(
        "--style",
        nargs="+",
        metavar="STYLE",
        help="the painting(s), for --method adain, wct or optimize; several are blended (--style-weights)",
    )
    add_overwrite(v, "the film or frames")
    v.add_argument(
        "--resume",
        action="store_true",
        help="carry on the film OUT that Ctrl-C stopped (it left OUT.partial.json beside it), with the same options",
    )
    add_quiet(v)
    add_config_arguments(
        v,
        VideoConfig,
        {
            "method": VIDEO_METHODS,
            "precision": ("auto", "fp32", "bf16"),
            "codec": tuple(CODECS),
            "flow": FLOW_METHODS,
        },
        flags=STYLE_STRENGTH_FLAGS,
        aliases=STYLE_STRENGTH_ALIASES,
        helps=HELPS,
        metavars={"start": "SECONDS", "duration": "SECONDS"},
    )
    v.set_defaults(run=cmd_video)


def _check_output(args: argparse.Namespace, cfg: VideoConfig, inputs: list[str]) -> Path:
    out = Path(args.output)
    if str(args.output).endswith(("/", os.sep)) and out.exists() and not out.is_dir():
        raise StylistError(f"{out}: is a file, not a folder; name a folder for the frames, or a film (.mp4)")
    if is_frame_folder(out):
        check_output_folder(out)
        if out.is_dir() and any(out.glob("frame_*.png")) and not args.overwrite:
            raise StylistError(
                f"{out}: already holds frames; pass --overwrite to replace them or choose another folder"
            )
        if Path(args.input).resolve() == out.resolve():
            raise StylistError(f"{out}: the output would replace the input frames; choose another folder")
        return out
    check_output_file(out, inputs, args.overwrite or args.resume, tuple(CONTAINERS), "video")
    check_codec(cfg.codec)
    return out


def cmd_video(args: argparse.Namespace) -> int:
    cfg = VideoConfig(**given_fields(args, VideoConfig))
    cfg.validate()
    if bool(args.model) == bool(args.style):
        what = "not both" if args.model else "one of them is needed"
        raise ConfigError(f"give either --model NAME|FILE (a feed-forward network) or --style PAINTING...; {what}")
    src = Path(args.input)
    if not src.exists():
        raise StylistError(f"{src}: video file not found (no such file or folder)")
    out = _check_output(args, cfg, [args.input, *(args.style or [])])
    for painting in args.style or []:  # every named input read before any work
        load_tensor(painting, "style", cfg.max_pixels)
    bar = ProgressBar(args.quiet, "frame")

    def on_frame(p) -> bool:
        error = f"warping error {p.warping_error:.4f}" if p.warping_error is not None else ""
        bar.update(p.frame, p.total, "video", error)
        return stop.requested

    with StopSignals() as stop:
        result = stylize_video(src, out, cfg, model=args.model, style=args.style, callback=on_frame, resume=args.resume)
    bar.close()
    h, w = result.size
    flicker = f", warping error {result.warping_error:.5f}" if result.warping_error is not None else ""
    cuts = f", {result.cuts} scene cut{'' if result.cuts == 1 else 's'}" if result.cuts else ""
    audio = f", {result.audio_streams} audio stream{'' if result.audio_streams == 1 else 's'} copied"
    method = Path(str(args.model)).stem if args.model else cfg.method
    folder = is_frame_folder(out)
    carry_on = "the frames so far are in the folder" if folder else "the frames so far; carry on with --resume"
    stopped = f", interrupted: {carry_on}" if result.stopped else ""
    final_line(
        f"wrote {out} ({result.frames} frames {w}x{h}, {method}, temporal {cfg.temporal}{flicker}{cuts}"
        f"{audio if result.audio_streams else ''}, {result.fps:.2f} frames/s{stopped})"
    )
    return stop.exit_code if stop.signum else 0
