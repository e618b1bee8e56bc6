"""Checkpoints: one dict per file, written atomically.

A checkpoint is whatever dict a run hands over (for optimisation transfer,
``progress.checkpoint()``: image, step, scale, optimiser state, RNG state, history and
config), plus what the caller adds (the CLI adds the input files and output options).
It is stored with ``torch.save`` through the one atomic writer (:func:`stylist.image.write_atomic`):
a temporary file in the same folder, then renamed, so a crash, a full disk or a second Ctrl-C
never leaves half a checkpoint behind. Loading uses
``weights_only=True``: a checkpoint holds tensors and plain values only, and opening one
never runs code from it.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import torch

from .errors import StylistError, first_line
from .image import write_atomic_bytes

FORMAT = "stylist-checkpoint"
VERSION = 1
SUFFIX = ".ckpt"


def default_path(output: str | os.PathLike) -> Path:
    """Where a run writing ``output`` keeps its checkpoint: ``OUT.ckpt`` beside it."""
    output = Path(output)
    return output.with_name(output.name + SUFFIX)


def save_checkpoint(path: str | os.PathLike, state: dict) -> Path:
    """Write ``state`` to ``path`` atomically (replacing an older checkpoint there).

    The state is serialised in memory first, then written by :func:`stylist.image.write_atomic`:
    torch.save writing to a file reports a full disk as a RuntimeError without its cause, while a
    plain write says "No space left on device". A failed write raises WriteError (one line) and
    leaves any older checkpoint at ``path`` untouched.
    """
    buf = io.BytesIO()
    torch.save({"format": FORMAT, "version": VERSION, **state}, buf)
    return write_atomic_bytes(path, buf.getbuffer(), "the checkpoint")


def load_checkpoint(path: str | os.PathLike) -> dict:
    """The dict saved at ``path``; StylistError (one line) for a missing, foreign or damaged file."""
    path = Path(path)
    if not path.is_file():
        raise StylistError(
            f"{path}: checkpoint file not found"
            if not path.exists()
            else f"{path}: is not a file; give a checkpoint file"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many kinds for a file that is not its own
        first = first_line(err)
        raise StylistError(f"{path}: not a Stylist checkpoint, or a damaged one ({first})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise StylistError(f"{path}: not a Stylist checkpoint")
    if state.get("version") != VERSION:
        raise StylistError(
            f"{path}: checkpoint version {state.get('version')} is not one this Stylist reads ({VERSION}); "
            "start the run afresh"
        )
    return state
