"""Frames in and out: the film of an optimisation (GIF with Pillow, MP4 with PyAV).

A :class:`Film` takes frames one at a time at any size, scales them to its own (the
final size: a coarse scale's image is upsampled, so the film does not jump in size), and
writes the file atomically when closed: a temporary file in the same folder, then a
rename. GIF frames are kept in memory until then (Pillow writes a GIF in one go); MP4
frames are encoded as they come. MP4 needs the optional PyAV (``pip install "stylist-nst[video]"``,
or ``pip install -e ".[video]"`` in a clone).
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np
import torch
from PIL import Image

from .errors import ImageError
from .image import (
    TEMP_SUFFIX,
    WriteError,
    _plain_permissions,
    remove_stale_temps,
    resize,
    to_pil,
    write_failure_reason,
)

if TYPE_CHECKING:
    from av.video.stream import VideoStream

FILM_FORMATS = (".gif", ".mp4")
FPS = 10  # frames per second of a film
HOLD_LAST_MS = 2000  # a GIF loops: its last frame (the result) stays this long before the loop restarts
TARGET_FRAMES = 100  # what the default --animation-every aims at: 10 s at FPS


def default_every(total: int) -> int:
    """Steps between frames so that a run of ``total`` iterations makes about TARGET_FRAMES frames."""
    return max(1, round(total / TARGET_FRAMES))


def check_film_path(path: str | os.PathLike, overwrite: bool) -> Path:
    """Refuse (ImageError, one line) a film path Stylist cannot write, before any work is done."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FILM_FORMATS:
        raise ImageError(f"{path}: unknown animation format '{path.suffix}'; use .gif or .mp4")
    if suffix == ".mp4" and importlib.util.find_spec("av") is None:
        raise ImageError(
            f"{path}: writing MP4 needs PyAV, which is not installed: "
            'pip install "stylist-nst[video]" (from a clone: pip install -e ".[video]"), or write a .gif'
        )
    if path.is_dir():
        raise ImageError(f"{path}: is a directory; give a file name such as film.gif")
    if path.exists() and not overwrite:
        raise ImageError(f"{path}: already exists; pass --overwrite to replace it or choose another name")
    if not path.parent.exists():
        raise ImageError(f"{path}: folder {path.parent} does not exist")
    return path


class Film:
    """A film being recorded to ``path`` (.gif or .mp4) at ``size`` (H, W); ``close()`` writes it."""

    def __init__(self, path: str | os.PathLike, size: tuple[int, int], fps: int = FPS) -> None:
        self.path, self.fps = Path(path), fps
        self.size: tuple[int, int] = (int(size[0]), int(size[1]))
        self.frames = 0
        self.last_step: int | None = None  # the run step of the latest frame
        # The film grows frame by frame in a temporary file named as image.write_atomic names its own,
        # so that one left by a killed run is cleared by the next write of this film.
        remove_stale_temps(self.path)
        fd, self.tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=TEMP_SUFFIX)
        os.close(fd)
        _plain_permissions(self.tmp)  # mkstemp's 0600 would stick to the film
        self._gif: list[Image.Image] = []
        self._mp4 = _Mp4(self.tmp, self.size, fps) if self.path.suffix.lower() == ".mp4" else None

    def add(self, image: torch.Tensor, step: int | None = None) -> None:
        """Append ``image`` (1, 3, h, w) in [0, 1] as the next frame, scaled to the film's size."""
        frame = to_pil(resize(image.detach().float().cpu().clamp(0, 1), self.size))
        if self._mp4 is not None:
            self._mp4.add(np.asarray(frame))
        else:
            self._gif.append(frame)
        self.frames += 1
        self.last_step = step

    def close(self) -> Path:
        """Finish the file and move it into place."""
        try:
            if self._mp4 is not None:
                self._mp4.close()
            elif self._gif:
                durations = [round(1000 / self.fps)] * (len(self._gif) - 1) + [HOLD_LAST_MS]
                self._gif[0].save(
                    self.tmp, format="GIF", save_all=True, append_images=self._gif[1:], duration=durations, loop=0
                )
            os.replace(self.tmp, self.path)
        except Exception as err:  # noqa: BLE001 - PyAV and Pillow report a failed write their own ways
            raise WriteError(
                f"{self.path}: cannot write the animation ({write_failure_reason(err, self.path.parent)})"
            ) from None
        finally:
            self.abort()
        return self.path

    def abort(self) -> None:
        """Drop the film: nothing is left behind."""
        if self._mp4 is not None:
            self._mp4.abandon()
        if os.path.exists(self.tmp):
            os.unlink(self.tmp)


class _Mp4:
    """An H.264 (else MPEG-4 part 2) stream in an MP4 container, encoded frame by frame."""

    def __init__(self, target: str, size: tuple[int, int], fps: int) -> None:
        import av

        # yuv420p, which every player takes, needs even sides: frames are padded by a pixel where needed.
        self.h, self.w = size[0] + size[0] % 2, size[1] + size[1] % 2
        self.container = av.open(target, mode="w", format="mp4")
        codec = _encoder()
        # A video stream: PyAV types add_stream with a plain codec name as any kind of stream.
        self.stream = cast("VideoStream", self.container.add_stream(codec, rate=fps))
        self.stream.width, self.stream.height, self.stream.pix_fmt = self.w, self.h, "yuv420p"
        if codec == "libx264":
            self.stream.options = {"crf": "18"}  # x264's "visually lossless" (its default, 23, smears fine strokes)
        self.open = True

    def add(self, rgb: np.ndarray) -> None:
        import av

        pad = ((0, self.h - rgb.shape[0]), (0, self.w - rgb.shape[1]), (0, 0))
        frame = av.VideoFrame.from_ndarray(np.pad(rgb, pad, mode="edge"), format="rgb24")
        self.container.mux(self.stream.encode(frame))

    def close(self) -> None:
        self.container.mux(self.stream.encode(None))  # flush the encoder's delayed frames
        self.container.close()
        self.open = False

    def abandon(self) -> None:
        if self.open:
            self.container.close()
            self.open = False


def _encoder() -> str:
    import av

    for name in ("libx264", "libopenh264", "mpeg4"):
        try:
            av.codec.Codec(name, "w")
            return name
        except ValueError:  # UnknownCodecError: not in this PyAV's FFmpeg build
            pass
    raise ImageError("PyAV has no H.264 or MPEG-4 encoder here; write a .gif instead")
