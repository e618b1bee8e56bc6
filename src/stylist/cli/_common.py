"""What every ``stylist`` command shares, written once.

- **Options** that more than one command has (``-o``, ``--overwrite``, ``-q``, ``--device``,
  ``--precision``, ``--size``, ``--max-pixels``, ``--preserve-color``, ``--mask``, ``--resume``,
  ``--checkpoint``, ``--checkpoint-every``, ``--preview-every``) are declared by the ``add_*``
  functions below and by :func:`add_config_arguments`, which builds a command's flags from the
  fields of its config dataclass (help from the comment above each field, defaults from the
  field) and routes the shared fields through the same declarations.
- **Values**: every number is parsed by :func:`finite_float` or :func:`whole_number`, so nan and
  inf are refused at parse time, in one line.
- **Output paths**: :func:`check_output_file` and :func:`check_output_folder` (the one policy:
  an existing file is refused without ``--overwrite``; an output that is also an input is
  refused; a missing parent folder is refused, never created: a typo in ``-o`` must not build a
  tree; the folder ``-o`` names for many results, and its sub-folders that mirror the inputs, are
  created).
- **Signals**: :class:`StopSignals` (Ctrl-C or SIGTERM: stop after the step under way, keep the
  work, exit 130 or 143; a second one stops at once).
- **Progress**: :class:`ProgressBar` (tqdm on stderr, created at the first step so that a setup
  error prints alone; ``-q`` turns it off).
- **Exit codes**: :data:`EXIT_CODES` and :func:`run_command` (the one error-to-exit-code mapping).
"""

from __future__ import annotations

import argparse
import inspect
import math
import os
import re
import signal
import sys
import typing
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import MISSING, fields
from pathlib import Path

from ..color import COLOR_ALIASES, COLOR_CHOICES
from ..errors import StylistError, StylistWarning, first_line  # noqa: F401  (re-exported for the commands)
from ..image import WRITE_FORMATS, check_output_target, same_file, write_atomic_bytes
from ..plots import history_csv, history_plot

# --- exit codes ---------------------------------------------------------------------------------------------

EXIT_OK = 0  # done; also when some damaged files of a folder were skipped (each named in a warning)
EXIT_ERROR = 2  # a usage error, a bad input or option, a file that cannot be read or written, or nothing to do
EXIT_CODES = f"""exit status: {EXIT_OK} done (damaged files in a folder are skipped, each named in a warning,
and counted in the final line); {EXIT_ERROR} nothing done: a bad option or input, a file that cannot be
read or written, or no readable input at all; 130 (Ctrl-C) or 143 (SIGTERM) stopped, the work so far
kept."""
# stylist video: a film has no damaged files to skip, and a folder of frames with a broken one is refused
# (skipping a frame would change the film's timing).
VIDEO_EXIT_CODES = f"""exit status: {EXIT_OK} done; {EXIT_ERROR} nothing done: a bad option or input (a file without
video, a damaged film, a folder of frames with a broken one), a file that cannot be read or written;
130 (Ctrl-C) or 143 (SIGTERM) stopped, a playable film of the frames so far written."""

# The one name under which Stylist is published (the import name and the command stay `stylist`).
DIST = "stylist-nst"


def install_hint(extra: str) -> str:
    """``pip install "stylist-nst[web]"`` (from a clone: ``pip install -e ".[web]"``)."""
    return f'pip install "{DIST}[{extra}]" (from a clone: pip install -e ".[{extra}]")'


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a usage error in one line (and exit code 2), with an exit-status epilog."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> typing.NoReturn:
        self.exit(EXIT_ERROR, f"{self.prog}: error: {message} (see --help)\n")


def required_group(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """The "required" section of a command's help (argparse lists required options as optional)."""
    for group in parser._action_groups:
        if group.title == "required":
            return group
    group = parser.add_argument_group("required")
    # Shown first, under the positional arguments.
    parser._action_groups.insert(1, parser._action_groups.pop())
    return group


def shown(default: object) -> str:
    """A default as help texts show it, the same way everywhere: ``[default: X]``."""
    if isinstance(default, tuple):
        return "[default: " + " ".join(map(str, default)) + "]" if default else "[default: none]"
    if isinstance(default, bool):
        return f"[default: {'on' if default else 'off'}]"
    return f"[default: {'none' if default in (None, '') else default}]"


# --- values -------------------------------------------------------------------------------------------------


def finite_float(text: str) -> float:
    """A float option's value: nan and inf are refused when the command line is read."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"'{text}' is not a finite number")
    return value


def whole_number(text: str) -> int:
    """An integer option's value."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None


def color_mode(text: str) -> str:
    """A ``--preserve-color`` value; ``histogram`` (the old name) is ``mean-covariance``."""
    value = COLOR_ALIASES.get(text.lower(), text.lower())
    if value not in COLOR_CHOICES:
        raise argparse.ArgumentTypeError(f"invalid choice '{text}' (choose from {', '.join(COLOR_CHOICES)})")
    return value


def check_count(flag: str, value: int | None, minimum: int = 0) -> None:
    """A step count (``--checkpoint-every`` ...): ``minimum`` or more."""
    if value is not None and value < minimum:
        what = "0 or a positive whole number" if minimum == 0 else f"at least {minimum}"
        raise StylistError(f"{flag} must be {what}; got {value}")


# --- the shared options -------------------------------------------------------------------------------------

DEVICE_HELP = "auto (cuda, then mps, then cpu), or a device such as cpu, cuda:1 or mps"
SIZE_HELP = "long side of the result, px"
MAX_PIXELS_HELP = "refuse input images with more pixels than this (a guard against decompression bombs)"
COLOR_HELP = (
    "keep the photo's colours: luminance (style on luminance only, the photo's chroma kept) or "
    "mean-covariance (the painting recoloured to the photo's mean and covariance of RGB first; "
    "'histogram' is its old name)"
)
# A trained network has its painting built in: mean-covariance can only recolour its result.
APPLY_COLOR_HELP = (
    "keep the photo's colours: luminance (the result's luminance on the photo's chroma) or "
    "mean-covariance (the result recoloured to the photo's mean and covariance of RGB; "
    "'histogram' is its old name)"
)


# The one-pass style options under the names users type in every command that has them (video; arbitrary
# declares the same spellings): "alpha" is the content weight in stylist transfer, so the style strength
# has its own name.
STYLE_STRENGTH_FLAGS = {"alpha": "--style-strength"}
STYLE_STRENGTH_ALIASES = {"alpha": ["--alpha"]}
STYLE_STRENGTH_HELP = "style strength: 0 gives back the photo (through the decoder), 1 the full style [default: 1.0]"


def add_output(parser: argparse.ArgumentParser, metavar: str, help: str) -> None:
    required_group(parser).add_argument("-o", "--output", required=True, metavar=metavar, help=help)


def add_overwrite(parser: argparse.ArgumentParser, what: str = "the outputs") -> None:
    parser.add_argument("--overwrite", action="store_true", help=f"replace {what} if they exist")


def add_quiet(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress bar or per-file lines (warnings and the final line stay)",
    )


def add_device(parser: argparse.ArgumentParser, default: object = "auto", dest: str = "device") -> None:
    parser.add_argument("--device", dest=dest, default=default, metavar="DEVICE", help=f"{DEVICE_HELP} {shown('auto')}")


def add_precision(parser: argparse.ArgumentParser, choices: Sequence[str], help: str, default: object = "auto") -> None:
    parser.add_argument(
        "--precision", dest="precision", default=default, choices=tuple(choices), help=f"{help} {shown('auto')}"
    )


def add_size(parser: argparse.ArgumentParser, help: str, default: object = None, shown_default: str = "none") -> None:
    parser.add_argument(
        "--size",
        dest="size",
        type=whole_number,
        default=default,
        metavar="PX",
        help=f"{help} [default: {shown_default}]",
    )


def add_max_pixels(parser: argparse.ArgumentParser, default: object = None) -> None:
    parser.add_argument(
        "--max-pixels",
        dest="max_pixels",
        type=whole_number,
        default=default,
        metavar="N",
        help=f"{MAX_PIXELS_HELP} [default: Pillow's limit, about 89 million]",
    )


TILE_HELP = (
    "side of the tiles a large image is processed in, px (at least 32; a few hundred is usual): the "
    "whole-image result (normalisation statistics, and for transfer the loss and gradient, taken over the "
    "whole image) in memory that grows with the tile, not the image; 0 = never tile"
)


def add_tile_size(parser: argparse.ArgumentParser, default: object = None) -> None:
    parser.add_argument(
        "--tile-size",
        dest="tile_size",
        type=whole_number,
        default=default,
        metavar="PX",
        help=f"{TILE_HELP} [default: tiles only when the whole image would not fit the device's memory]",
    )


def add_preserve_color(parser: argparse.ArgumentParser, default: object = "none", text: str = COLOR_HELP) -> None:
    parser.add_argument(
        "--preserve-color",
        "--preserve-colour",
        dest="preserve_color",
        type=color_mode,
        default=default,
        metavar="{" + ",".join(COLOR_CHOICES) + "}",
        help=f"{text} {shown('none')}",
    )


def add_mask(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--mask",
        nargs="+",
        metavar="MASK",
        help="one grey-level mask per painting, in the same order: white = that painting, black = not; "
        "where all are black the photo is kept",
    )


def add_resume(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--resume", metavar="CHECKPOINT", help=f"carry on the {what} saved in CHECKPOINT")


def add_checkpoint(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint",
        metavar="FILE",
        help="the checkpoint file; Ctrl-C and SIGTERM leave one there too [default: OUT.ckpt]",
    )


def add_checkpoint_every(
    parser: argparse.ArgumentParser, default: int, unit: str, zero: str = "only at the end and on Ctrl-C"
) -> None:
    # None (not given) lets a resumed run keep the cadence its checkpoint recorded.
    parser.add_argument(
        "--checkpoint-every",
        type=whole_number,
        default=None,
        metavar="N",
        help=f"save the run's state every N {unit} and at the end, to --resume it later; 0: {zero}; "
        f"a resumed run keeps its own unless given [default: {default}]",
    )


def add_preview_every(parser: argparse.ArgumentParser, default: int, what: str) -> None:
    parser.add_argument(
        "--preview-every",
        type=whole_number,
        default=None,
        metavar="N",
        help=f"every N steps write {what}; 0: off; a resumed run keeps its own unless given [default: {default}]",
    )


def cadence(args: argparse.Namespace, recorded: dict | None, defaults: dict[str, int]) -> dict[str, int]:
    """The cadence options (``checkpoint_every`` ...): as given, else as the resumed run recorded, else the default."""
    recorded = recorded or {}
    out = {}
    for name, default in defaults.items():
        given = getattr(args, name, None)
        out[name] = given if given is not None else int(recorded.get(name, default))
        check_count("--" + name.replace("_", "-"), out[name])
    return out


# --- flags built from a config dataclass --------------------------------------------------------------------


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
    parser: argparse.ArgumentParser,
    cls: type,
    choices: Mapping[str, Sequence[str]] | None = None,
    skip: Sequence[str] = (),
    flags: Mapping[str, str] | None = None,
    aliases: Mapping[str, Sequence[str]] | None = None,
    helps: Mapping[str, str] | None = None,
    required: Sequence[str] = (),
    metavars: Mapping[str, str] | None = None,
) -> None:
    """One flag per field of the config dataclass ``cls``; its default is the field's.

    Each flag is ``--field-name`` unless ``flags`` names it otherwise; ``aliases`` are hidden
    spellings that keep working (old names). ``helps`` replaces a field's comment (a help text
    for users rather than for the code). Every flag's default is left out of the namespace
    (``argparse.SUPPRESS``), so a command can tell what was given from what was not (a resumed
    run keeps what its checkpoint says). The shared fields (device, precision, size, max_pixels,
    preserve_color) are declared by the functions above."""
    choices, flags, aliases = dict(choices or {}), dict(flags or {}), dict(aliases or {})
    metavars = dict(metavars or {})
    texts = {name: for_users(text) for name, text in field_help(cls).items()}
    texts.update(helps or {})
    hints = typing.get_type_hints(cls)
    group = required_group(parser) if required else parser
    for f in fields(cls):
        if f.name in skip:
            continue
        default = f.default if f.default is not MISSING else None
        if _shared_field(parser, f.name, choices, texts.get(f.name, "")):
            continue
        kind = hints[f.name]
        args = typing.get_args(kind)
        base = next((a for a in args if a is not type(None)), kind) if args and type(None) in args else kind
        text = texts.get(f.name, "")
        kw: dict = {"dest": f.name, "default": argparse.SUPPRESS}
        kw["help"] = text if f.name in required or "[default:" in text else f"{text} {shown(default)}"
        if base is bool:
            kw["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(base) is tuple:
            inner = typing.get_args(base)[0]
            kw["nargs"] = "+"
            kw["type"] = finite_float if inner is float else inner
            kw["metavar"] = metavars.get(f.name, "W" if inner is float else "NAME")
        else:
            kw["type"] = {float: finite_float, int: whole_number}.get(base, base)
            kw["metavar"] = {float: "X", int: "N"}.get(base, f.name.upper())
            if f.name in choices:
                kw["choices"] = tuple(choices[f.name])
                del kw["metavar"]
            if f.name in metavars:
                kw["metavar"] = metavars[f.name]
        flag = flags.get(f.name, "--" + f.name.replace("_", "-"))
        target = group if f.name in required else parser
        target.add_argument(flag, **kw)
        for alias in aliases.get(f.name, ()):
            parser.add_argument(alias, **{**kw, "help": argparse.SUPPRESS})


def for_users(text: str) -> str:
    """A field's comment as a help text: no Python spellings (None, False), no closing full stop,
    a lower-case start (as argparse's own texts)."""
    text = text.replace("None = ", "not given: ").replace("False = ", "--no-...: ").strip()
    text = text[:-1] if text.endswith(".") else text
    proper = text.split(" ")[0].rstrip("'s,:") in ("Adam", "AdaIN", "Gatys", "Huang", "Johnson", "Li", "L-BFGS")
    if len(text) > 1 and text[0].isupper() and not text[1].isupper() and not proper:
        text = text[0].lower() + text[1:]
    return text


def _shared_field(parser: argparse.ArgumentParser, name: str, choices: dict, text: str) -> bool:
    """Declare a shared field (default left out of the namespace, as every config flag); False if not one."""
    if name == "device":
        add_device(parser, default=argparse.SUPPRESS)
    elif name == "precision":
        add_precision(parser, choices["precision"], text or "precision", argparse.SUPPRESS)
    elif name == "max_pixels":
        add_max_pixels(parser, default=argparse.SUPPRESS)
    elif name == "preserve_color":
        add_preserve_color(parser, default=argparse.SUPPRESS)
    elif name == "tile_size":
        add_tile_size(parser, default=argparse.SUPPRESS)
    else:
        return False
    return True


def given_fields(args: argparse.Namespace, cls: type) -> dict:
    """The config fields given on the command line (lists as tuples)."""
    out = {}
    for f in fields(cls):
        if hasattr(args, f.name):
            value = getattr(args, f.name)
            out[f.name] = tuple(value) if isinstance(value, list) else value
    return out


# --- many processes (torchrun) --------------------------------------------------------------------------------

_Item = typing.TypeVar("_Item")


def torchrun_rank() -> tuple[int, int]:
    """(rank, number of processes) under ``torchrun --nproc-per-node N``; (0, 1) otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1")) if "LOCAL_RANK" in os.environ else 1
    return (int(os.environ.get("RANK", "0")), world) if world > 1 else (0, 1)


def process_share(items: Sequence[_Item]) -> list[_Item]:
    """This process's share of ``items`` (every N-th from its rank) under torchrun, so that N processes
    handle each file once between them, with the outputs of a single run; all of them otherwise. No
    process group is needed: the shares follow from the rank alone."""
    rank, world = torchrun_rank()
    return list(items[rank::world])


def all_checked() -> None:
    """Under torchrun, wait until every process has checked the whole run: otherwise a process that
    starts late would find the results of a faster one and refuse to overwrite them. Nothing otherwise."""
    if torchrun_rank()[1] == 1:
        return
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("gloo")  # a barrier only: gloo works beside any device
    dist.barrier()


def all_done() -> None:
    """Leave the process group :func:`all_checked` joined (torchrun), once this process's share is written,
    all processes together (see :func:`stylist.training.close_distributed`)."""
    from ..training import close_distributed

    close_distributed()


def process_device(name: str) -> str:
    """``name``, or ``cuda:LOCAL_RANK`` under torchrun when ``name`` is auto or cuda and a GPU is there
    (one GPU per process)."""
    import torch

    if torchrun_rank()[1] > 1 and name in ("auto", "cuda") and torch.cuda.is_available():
        return f"cuda:{int(os.environ['LOCAL_RANK']) % torch.cuda.device_count()}"
    return name


def process_note() -> str:
    """' (process R of N)' under torchrun, else ''."""
    rank, world = torchrun_rank()
    return f" (process {rank + 1} of {world})" if world > 1 else ""


# --- inputs -------------------------------------------------------------------------------------------------


def one_of(args: argparse.Namespace, positional: str, option: str, flag: str):
    """An input given either as a positional argument or as its option (``--content``), not both."""
    a, b = getattr(args, positional, None), getattr(args, option, None)
    if a and b:
        raise StylistError(f"give the {positional} either before the options or with {flag}, not both")
    return a or b


def scan_inputs(names: Sequence[str], what: str = "input") -> tuple[list[tuple[Path, Path]], list[tuple[str, str]]]:
    """([(image file, its path relative to the folder it was found in)], [(damaged file skipped, why)]).

    The folder policy of every command: a file named on the command line is taken as it is (read
    later: a damaged one is an error); in a folder (searched recursively), a file with an image
    suffix whose header cannot be read is skipped (the caller names it with :func:`warn_skipped` once
    every check has passed, so that an error stays the only line) and counted. A name that does not
    exist, or a folder with no readable image, is an error."""
    from PIL import Image

    from ..training import IMAGE_SUFFIXES

    found: list[tuple[Path, Path]] = []
    skipped: list[tuple[str, str]] = []
    for name in names:
        path = Path(name)
        if not path.exists():
            raise StylistError(f"{path}: {what} file not found (no such file or folder)")
        if path.is_file():
            found.append((path, Path(path.name)))
            continue
        if not path.is_dir():
            raise StylistError(f"{path}: is not a file or folder")
        before = len(found)
        for file in sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()):
            try:
                with Image.open(file) as im:  # the header only; a damaged body is found when it is read
                    _ = im.size
                found.append((file, file.relative_to(path)))
            except (OSError, SyntaxError, ValueError) as err:
                skipped.append((str(file), f"not a readable image ({err.__class__.__name__})"))
        if len(found) == before:
            raise StylistError(f"{path}: no readable images (.jpg .png .webp .tif .bmp) in this folder or below it")
    return found, skipped


def skipped_note(skipped: Sequence[object]) -> str:
    """The final line's account of the damaged files left out (each was named in a warning)."""
    n = len(skipped)
    return f", {n} unreadable file{'' if n == 1 else 's'} skipped" if n else ""


def warn_skipped(path: object, why: object) -> None:
    """One warning line naming a damaged input file that is left out of a folder run."""
    text = str(why)
    text = text[len(f"{path}: ") :] if text.startswith(f"{path}: ") else text  # the path is said once
    warnings.warn(f"skipped {path}: {text}", StylistWarning)


# --- output paths -------------------------------------------------------------------------------------------


def check_output_file(
    out: str | os.PathLike,
    inputs: Sequence[str | os.PathLike] = (),
    overwrite: bool = False,
    suffixes: Sequence[str] = tuple(WRITE_FORMATS),
    what: str = "image",
) -> Path:
    """The output policy for one file: its suffix is one of ``suffixes``, it is not an input, then the
    policy every output shares (image.check_output_target: not a folder, exists only with ``overwrite``,
    its folder exists)."""
    out = Path(out)
    example = ".png" if ".png" in suffixes else sorted(suffixes)[0]
    if out.suffix.lower() not in suffixes and not out.is_dir():  # a folder's name usually has no suffix
        raise StylistError(
            f"{out}: '{out.suffix}' is not a{'n' if what[0] in 'aeiou' else ''} {what} format Stylist writes; "
            f"use one of {' '.join(sorted(suffixes))}"
        )
    for src in inputs:
        if same_file(out, src):
            raise StylistError(f"{out}: the output would replace an input; choose another output path")
    return check_output_target(out, overwrite, f"result{example}")


def check_output_folder(out: str | os.PathLike) -> Path:
    """The output policy for a folder of results: not a file, and not a name with an image-like suffix
    typed wrong (``out.jgp``); it is created (with the sub-folders that mirror the inputs) only when
    its parent exists."""
    out = Path(out)
    if out.is_file():
        raise StylistError(f"{out}: is a file, not a folder; give a folder for the results")
    if not out.is_dir():
        if out.suffix and out.suffix.lower() not in WRITE_FORMATS:
            raise StylistError(
                f"{out}: '{out.suffix}' is not an image format Stylist writes ({' '.join(sorted(WRITE_FORMATS))}); "
                "for a folder of results give a name without a suffix"
            )
        if not out.parent.exists():
            raise StylistError(f"{out}: folder {out.parent} does not exist; create it first")
    return out


# --- the command line's own files ---------------------------------------------------------------------------


def state_note(save: Callable[[], None], checkpoint: Path, carry_on: str) -> str:
    """The end of the error line for a trained model that could not be written: where the training
    survives (issue 19: a failed write must not lose the run). ``save`` writes the final state."""
    try:
        save()
        return f"the trained state is saved in {checkpoint}: {carry_on}"
    except StylistError:
        if checkpoint.exists():
            return f"the last checkpoint is {checkpoint}: {carry_on}"
        return "no checkpoint could be saved either"


def write_history(rows: list[dict], path: Path, **plot: typing.Any) -> None:
    """The loss history as CSV, and its plot as PNG beside it (same name, .png); see plots.history_plot."""
    # image.write_atomic_bytes: a failed write is one WriteError line, with no partial file.
    write_atomic_bytes(path, history_csv(rows))
    write_atomic_bytes(path.with_suffix(".png"), history_plot(rows, **plot))


# --- signals and progress -----------------------------------------------------------------------------------


class StopSignals:
    """Ctrl-C (SIGINT) and SIGTERM stop a run after the step under way, so that what it writes
    (a checkpoint, the image so far) is whole; a second signal, or one before the first step,
    stops at once. ``exit_code`` is 128 + the signal's number (130, 143)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.iterating = False
        self._previous: dict = {}

    def __enter__(self) -> StopSignals:
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

    @property
    def requested(self) -> bool:
        """A stop was asked for; marks the run as under way (a later signal waits for the step)."""
        self.iterating = True
        return self.signum is not None

    def check(self) -> None:
        """Called after each step: raise KeyboardInterrupt when a stop was asked for."""
        if self.requested:
            raise KeyboardInterrupt

    @property
    def exit_code(self) -> int:
        return 128 + (self.signum or signal.SIGINT)


class ProgressBar:
    """The one progress reporter: a tqdm bar on stderr, made at the first update (a setup error
    prints alone); nothing with ``quiet``."""

    def __init__(self, quiet: bool, unit: str = "it") -> None:
        self.quiet, self.unit = quiet, unit
        self.bar: typing.Any = None

    def update(self, done: int, total: int | None, description: str = "", postfix: str = "") -> None:
        if self.quiet:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=0, unit=self.unit, dynamic_ncols=True, file=sys.stderr)
        if total is not None:
            self.bar.total = total
        if description:
            self.bar.set_description(description)
        if postfix:
            self.bar.set_postfix_str(postfix)
        self.bar.update(done - self.bar.n)

    def line(self, text: str) -> None:
        """A per-file line (not with ``quiet``), printed above the bar."""
        if self.quiet:
            return
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def rate_note(progress: typing.Any) -> str:
    """``12.5 img/s, 3:05 left`` for a training progress line (training.TrainProgress: the images per
    second over every process, and the time left at this pace or by --time-limit, whichever comes first)."""
    left = progress.seconds_left
    if left is None:
        return f"{progress.images_per_s:.1f} img/s"
    minutes, seconds = divmod(round(left), 60)
    hours, minutes = divmod(minutes, 60)
    clock = f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"
    return f"{progress.images_per_s:.1f} img/s, {clock} left"


def final_line(text: str) -> None:
    """The one closing line of a command: ``wrote OUT (...)`` on stderr (stdout stays for data)."""
    print(text, file=sys.stderr)


# --- errors -------------------------------------------------------------------------------------------------


@contextmanager
def one_line_warnings() -> Iterator[None]:
    """Stylist's warnings as one line each on stderr ("stylist: warning: ..."), each message once."""
    shown_before: set[str] = set()

    with warnings.catch_warnings():
        original = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None) -> None:
            if not issubclass(category, StylistWarning):
                return original(message, category, filename, lineno, file, line)
            if str(message) not in shown_before:
                shown_before.add(str(message))
                print(f"stylist: warning: {message}", file=sys.stderr)

        warnings.simplefilter("always", StylistWarning)
        warnings.showwarning = show
        yield


def run_command(run: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run a command with the one error-to-exit-code mapping: a StylistError of any kind
    (NonFiniteLossError included) and a file the system refuses to read or write are one line and
    exit 2; Ctrl-C outside a run's own handling exits 130."""
    try:
        with one_line_warnings():
            return run(args)
    except StylistError as err:
        print(f"stylist: error: {err}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as err:  # a write the core does not wrap (a full disk, no permission)
        where = f"{err.filename}: " if getattr(err, "filename", None) else ""
        print(f"stylist: error: {where}cannot read or write ({err.strerror or err})", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("stylist: interrupted", file=sys.stderr)
        return 130
