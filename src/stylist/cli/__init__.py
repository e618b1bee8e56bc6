"""The ``stylist`` command: a thin adapter over the Python API.

One module per command family, each with ``add_parsers(sub)`` and its ``cmd_*`` functions, over
:mod:`._common` (the options declared once, the output-path policy, signals, progress and the one
error-to-exit-code mapping). No command module imports another; only this one knows them all.

==============  ==============================================================
transfer.py     ``transfer`` (optimisation, Gatys et al.) and ``weights``
feedforward.py  ``train``, ``apply``, ``export``, ``info``, ``models``
arbitrary.py    ``arbitrary`` (AdaIN, WCT) and ``train-decoder``
study.py        ``study`` and ``metrics``
video.py        ``video`` (a film stylised by any method, temporal consistency, audio copied)
web.py          ``web``
==============  ==============================================================
"""

from __future__ import annotations

import argparse

from .. import __version__
from . import arbitrary, feedforward, study, transfer, video, web
from ._common import EXIT_CODES, EXIT_ERROR, OneLineParser, run_command
from .transfer import config_from_args  # noqa: F401  (the transfer options as a TransferConfig; used by tests)

COMMAND_MODULES = (transfer, feedforward, arbitrary, study, video, web)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="stylist",
        description="Neural style transfer: a photograph rendered in the style of a painting.\n\n"
        "Every command takes the photo(s) as CONTENT (or --content) and the painting(s) as --style\n"
        "(transfer also as its second argument), writes to -o, and says what it wrote in one line.",
        epilog=EXIT_CODES,
    )
    parser.add_argument("--version", action="version", version=f"stylist {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    for module in COMMAND_MODULES:
        module.add_parsers(sub)
    for command in sub.choices.values():
        command.epilog = command.epilog or EXIT_CODES
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``stylist ARGV``; returns the exit status (see ``EXIT_CODES``)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as done:  # a usage error (one line already printed), or --help / --version
        return done.code if isinstance(done.code, int) else EXIT_ERROR
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_ERROR
    return run_command(args.run, args)
