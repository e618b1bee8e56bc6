"""``stylist study`` and ``stylist metrics``: the classic experiments and the numbers behind them.

A thin adapter over :mod:`stylist.study` and :mod:`stylist.metrics`: it turns the study's
callback into one progress bar over the whole sweep (with its ETA) and prints the metrics.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import typing
from dataclasses import fields
from pathlib import Path

from ..errors import ConfigError, StylistError
from ..image import load_tensor
from ..manifest import read_manifest
from ..metrics import METRIC_NAMES, MetricsConfig, measure
from ..optimize import TransferConfig
from ..study import STUDIES, StudyConfig, StudyProgress, check_named_inputs, make_plan, run_study
from ._common import (
    ProgressBar,
    add_config_arguments,
    add_device,
    add_output,
    add_quiet,
    check_output_folder,
    final_line,
    finite_float,
    given_fields,
    required_group,
)

STUDY_HELPS = {
    "size": "long side of every result, px [default: 256]",
    "model": "methods study: a feed-forward model (a built-in style name or a file) [default: the built-in style "
    "named like the painting]",
    "decoder": "methods study: an AdaIN decoder file [default: the decoder shipped with Stylist]",
}


def add_parsers(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser(
        "study",
        help="run a classic experiment (a sweep) with figures, metrics and a report",
        description=f"Run one classic experiment on a photo and a painting: {', '.join(STUDIES)}.\n"
        "Writes every image, a grid figure, loss plots, metrics.csv and report.html into DIR; a re-run skips "
        "finished cells.\n\n  stylist study ratio --content photo.jpg --style painting.jpg -o study/",
    )
    s.add_argument("name", metavar="NAME", help=f"the study: {', '.join(STUDIES)}")
    required = required_group(s)
    required.add_argument("--content", required=True, metavar="CONTENT", help="the photograph")
    required.add_argument("--style", required=True, metavar="STYLE", help="the painting")
    add_output(s, "DIR", "the output folder (created if its parent exists)")
    s.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a stylist transfer option for every cell, named without its leading dashes, e.g. --set init=noise "
        "--set style-layers=relu1_1,relu2_1 (the swept option wins)",
    )
    add_quiet(s)
    add_config_arguments(
        s,
        StudyConfig,
        {"precision": ("auto", "fp32", "bf16")},
        helps=STUDY_HELPS,
        metavars={"model": "NAME", "decoder": "FILE", "values": "X"},
    )
    s.set_defaults(run=cmd_study)

    m = sub.add_parser(
        "metrics",
        help="measure a result against its photo and painting",
        description="Distances of RESULT to the photo (VGG content features, SSIM of luminance) and to the painting "
        "(Gram and mean/std of VGG features, colour histograms). No single number judges style transfer: see "
        "docs/studies.md.\n\n  stylist metrics out.png --content photo.jpg --style painting.jpg",
    )
    m.add_argument("result", metavar="RESULT", help="the stylised image")
    required = required_group(m)
    required.add_argument("--content", required=True, metavar="CONTENT", help="the photograph")
    required.add_argument("--style", required=True, metavar="STYLE", help="the painting")
    m.add_argument("--json", action="store_true", help="print JSON on stdout instead of a table")
    add_device(m)
    m.set_defaults(run=cmd_metrics)


def parse_set(items: list[str]) -> dict:
    """``KEY=VALUE`` strings -> TransferConfig options, each converted to its field's type."""
    hints = typing.get_type_hints(TransferConfig)
    names = {f.name for f in fields(TransferConfig)}
    out: dict = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in names:
            raise ConfigError(
                f"--set {item}: give KEY=VALUE with KEY a stylist transfer option ({', '.join(sorted(names))})"
            )
        out[key] = _convert(text.strip(), hints[key], item)
    return out


def _convert(text: str, kind: object, item: str) -> object:
    args = [a for a in typing.get_args(kind) if a is not type(None)]
    if text.lower() == "none" and type(None) in typing.get_args(kind):
        return None
    base = args[0] if args and typing.get_origin(kind) is not tuple else kind
    try:
        if typing.get_origin(base) is tuple:
            inner = typing.get_args(base)[0]
            return tuple(_scalar(inner, v) for v in text.split(",") if v)
        if base is bool:
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(text)
            return text.lower() in ("true", "1", "yes")
        return _scalar(base, text)
    except (TypeError, ValueError, argparse.ArgumentTypeError):
        raise ConfigError(f"--set {item}: '{text}' is not a valid value") from None


def _scalar(kind: typing.Any, text: str) -> object:
    """One value of a field's type; floats as the shared float options read them (nan and inf refused)."""
    return finite_float(text) if kind is float else kind(text)


class _SweepBar:
    """One progress bar over the iterations of every cell; finished and skipped cells jump ahead."""

    def __init__(self, total: int, quiet: bool) -> None:
        self.total, self.bar, self.done = total, ProgressBar(quiet), 0

    def __call__(self, p: StudyProgress) -> None:
        where = f"cell {p.index + 1}/{p.cells} {p.label}"
        if p.event == "step":
            self.bar.update(self.done + min(p.step, p.steps), self.total, where)
        elif p.event in ("done", "cached", "skipped"):
            self.done += p.steps
            self.bar.update(self.done, self.total, where, "" if p.event == "done" else p.event)

    def close(self) -> None:
        self.bar.close()


def cmd_study(args: argparse.Namespace) -> int:
    given = given_fields(args, StudyConfig)
    cfg = StudyConfig(**given)
    cfg.validate()
    base = parse_set(args.set)
    plan = make_plan(args.name, cfg, Path(args.style), base)  # an unknown study: one line, before any work
    for path, what in ((args.content, "content"), (args.style, "style")):
        load_tensor(path, what)  # a missing or unreadable input: one line, before any folder is made
    check_named_inputs(cfg)  # a named model or decoder that is wrong: an error, not a skipped cell
    out = check_output_folder(args.output)
    bar = _SweepBar(sum(c.steps for c in plan.cells), args.quiet)
    command = _command(args, given)
    try:
        result = run_study(args.name, args.content, args.style, out, cfg, bar, base, command)
    finally:
        bar.close()
    counts = {s: sum(1 for c in result.cells if c.status == s) for s in ("done", "cached", "skipped")}
    for c in result.cells:
        if c.status == "skipped":
            print(f"stylist: note: skipped {c.cell.col}: {c.note}", file=sys.stderr)
    final_line(
        f"wrote {out / 'report.html'} ({len(result.cells)} cells: {counts['done']} computed, {counts['cached']} "
        f"loaded, {counts['skipped']} skipped; {result.seconds:.1f} s on {result.device})"
    )
    return 0


def _command(args: argparse.Namespace, given: dict) -> str:
    """The command as given (options in a fixed order), for the report."""
    words = ["stylist", "study", args.name, "--content", args.content, "--style", args.style, "-o", args.output]
    for key, value in given.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            words += [flag] if value else [f"--no-{key.replace('_', '-')}"]
        else:
            words += [flag, *(map(str, value) if isinstance(value, tuple) else [str(value)])]
    for item in args.set:
        words += ["--set", item]
    return " ".join(shlex.quote(w) for w in words)


def cmd_metrics(args: argparse.Namespace) -> int:
    values: dict[str, object] = dict(measure(args.result, args.content, args.style, MetricsConfig(device=args.device)))
    try:
        manifest = read_manifest(args.result)
    except StylistError:
        manifest = None  # not made by stylist transfer: no record of the run's time
    if manifest and "elapsed" in manifest:
        values["seconds"] = manifest["elapsed"]
    if args.json:
        print(json.dumps(values, indent=2))
        return 0
    notes = {
        "content": "VGG relu4_2 features vs photo (0 = same)",
        "style_gram": "Gram matrices relu1_1..relu5_1 vs painting (0 = same)",
        "style_meanstd": "feature means and std devs vs painting (0 = same)",
        "ssim": "structure of the luminance vs photo (1 = same)",
        "structure": "edges and layout kept from the photo (1 = same, 0 = none)",
        "copying": "edges and layout taken from the painting (at or above structure: a copy)",
        "color": "colour histogram distance to painting (0 = same)",
        "seconds": "time of the run (from the result's manifest)",
    }
    for key in (*METRIC_NAMES, "seconds"):
        if key in values:
            print(f"{key:<14} {values[key]:>12.5g}  {notes[key]}")
    return 0
