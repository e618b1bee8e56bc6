"""``stylist web``: the web app from the command line (needs the ``[web]`` extra: Gradio).

Its flags are built from :class:`stylist.web_limits.WebLimits`; Gradio is imported only when
the command runs, so ``stylist --help`` works without it.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from dataclasses import fields

from ..errors import StylistError
from ..web_limits import WebLimits
from ._common import add_config_arguments, install_hint, whole_number

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    w = sub.add_parser(
        "web",
        help="a local web app: stylise in the browser with live progress",
        description="Start the web app (Gradio) and print its address. "
        "It listens on 127.0.0.1 only unless --host says otherwise.",
    )
    w.add_argument(
        "--host", default="127.0.0.1", help="address to listen on; 0.0.0.0 lets other machines in [default: 127.0.0.1]"
    )
    w.add_argument("--port", type=whole_number, default=7860, help="port [default: 7860]")
    add_config_arguments(w, WebLimits)
    w.set_defaults(run=cmd_web)


def cmd_web(args: argparse.Namespace) -> int:
    if importlib.util.find_spec("gradio") is None:
        raise StylistError(f"the web app needs Gradio: {install_hint('web')}")
    limits = WebLimits(**{f.name: getattr(args, f.name) for f in fields(WebLimits) if hasattr(args, f.name)})
    limits.validate()
    if not 1 <= args.port <= 65535:
        raise StylistError(f"--port must be between 1 and 65535; got {args.port}")
    from ..web import start, stop_server

    try:
        demo, url, root = start(args.host, args.port, limits)
    except (OSError, OverflowError) as err:  # Gradio reports a port in use as OSError
        raise StylistError(
            f"cannot listen on {args.host}:{args.port} ({str(err).splitlines()[0]}); choose another --port"
        ) from None
    print(f"Stylist web app: {url}  (Ctrl-C stops it)", flush=True)
    if args.host not in LOOPBACK:
        print(f"stylist: warning: listening on {args.host}: anyone who can reach it can use the app", file=sys.stderr)
    try:
        demo.block_thread()
    finally:
        stop_server(demo, root)
    return 0
