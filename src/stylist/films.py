"""Frames in and out: films stylised without flicker (PyAV, audio copied), and the film of an optimisation.

**Stylising a film** (:func:`stylize_video`, :func:`stylize_frames`; ``stylist video``). Frames are
decoded, stylised and encoded one at a time (memory does not grow with the film's length) by any
method: a feed-forward network (built-in, trained or ONNX), AdaIN or WCT, or Gatys et al.'s
optimisation. Temporal consistency uses optical flow between the *input* frames (:mod:`stylist.flow`),
trusted only where the forward and backward flows agree, and restarts at scene cuts:

* ``optimize`` follows Ruder, Dosovitskiy and Brox ("Artistic style transfer for videos", GCPR
  2016): each frame after the first of a shot starts from the previous stylised frame warped by the
  flow, and its loss gains their temporal term (:func:`stylist.losses.temporal_loss`) on the trusted
  pixels; the first frame of a shot gets the full iteration count, later ones fewer.
* The one-pass methods (feed-forward, AdaIN, WCT) blend each stylised frame with the previous
  *output* warped by the flow (bicubic), on the trusted pixels, by the weight ``temporal``, and the
  blend gets back the stylised frame's local contrast (:func:`local_contrast`). Departure: Huang
  et al. (CVPR 2017) train the network with a temporal loss and Lai et al. (ECCV 2018) train a
  separate recurrent network; this blend needs no training and works with every network, at the
  cost of some softening where the flow is imprecise (a recursive filter along the motion). A
  feed-forward network's features are blended the same way before it renders them
  (:class:`_BlendedFeatures`), and so are AdaIN's, so that the strokes move with the picture.

Flicker is measured with Lai et al.'s warping error (:func:`stylist.flow.warping_error`).

**The film of an optimisation** (:class:`Film`, ``stylist transfer --animation``). A :class:`Film`
takes frames one at a time at any size, scales them to its own (the
final size: a coarse scale's image is upsampled, so the film does not jump in size), and
writes the file atomically when closed: a temporary file in the same folder, then a
rename. GIF frames are kept in memory until then (Pillow writes a GIF in one go); MP4
frames are encoded as they come. MP4 needs the optional PyAV (``pip install "stylist-nst[video]"``,
or ``pip install -e ".[video]"`` in a clone).
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
import os
import re
import tempfile
import time
import warnings
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .devices import resolve_device, resolve_precision
from .errors import ConfigError, ImageError, StylistWarning, check_one_each, first_line
from .flow import Motion, MotionTracker, coarse_motion, need_opencv, warp, warping_error
from .image import (
    TEMP_SUFFIX,
    ImageLike,
    WriteError,
    _plain_permissions,
    check_output_target,
    load_tensor,
    remove_stale_temps,
    resize,
    resize_long_side,
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
    return check_output_target(path, overwrite, "film.gif")


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


# === stylising a film ========================================================================================

VIDEO_METHODS = ("adain", "wct", "optimize")
# Containers written, by suffix; every one takes H.264 and copied AAC audio.
CONTAINERS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska"}
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".m4v", ".webm", ".avi", ".gif", ".mpg", ".mpeg", ".ts")
# Encoders offered by --codec (each, if this PyAV's FFmpeg has it) and the quality option each takes.
CODECS = {"libx264": "crf", "libx265": "crf", "libopenh264": None, "mpeg4": None}


@dataclass
class VideoConfig:
    """Every option of ``stylist video`` other than the inputs; the CLI builds its flags from these fields."""

    # adain or wct (any painting in one pass, as stylist arbitrary), or optimize (Gatys et al. per
    # frame, Ruder et al.'s temporal loss); not used with a feed-forward model.
    method: str = "adain"
    # Strength of temporal consistency from 0 (each frame on its own: flickers) to 1 (the most):
    # the weight of the warped previous output (one-pass methods) or of the temporal loss (optimize).
    temporal: float = 0.7
    # Longest side of the result in pixels; None = the film's own size.
    size: int | None = None
    # Style strength: 0 gives back the photo (through the decoder), 1 the full style.
    alpha: float = 1.0
    # Share of each painting in a blend of several styles; None = equal shares.
    style_weights: tuple[float, ...] | None = None
    # Keep the film's colours: none, luminance or mean-covariance (see stylist arbitrary; a
    # feed-forward model takes none or luminance).
    preserve_color: str = "none"
    # Longest side the paintings are resized to before their statistics are taken (adain, wct), px.
    style_size: int | None = 512
    # A decoder file from stylist train-decoder (adain, wct); None = the decoder shipped with Stylist.
    decoder: str | None = None
    # optimize: iterations for the first frame of each shot (the first frame, and after a cut).
    iterations: int = 100
    # optimize: iterations for each later frame, which starts from the previous one warped; None =
    # 0.4 x iterations (Ruder et al.: 800 after 2000).
    later_iterations: int | None = None
    # optimize: weight of the temporal loss at temporal 1 (it is multiplied by temporal).
    temporal_weight: float = 20000.0
    # Optical flow for the consistency and the warping error: dis (fast) or farneback.
    flow: str = "dis"
    # Start this many seconds into the film.
    start: float = 0.0
    # Stylise this many seconds only; None = to the end.
    duration: float | None = None
    # x264/x265 quality: 0 lossless ... 51 worst; 18 is about visually lossless.
    crf: int = 18
    # Video encoder: libx264 (H.264, plays everywhere), libx265, libopenh264 or mpeg4.
    codec: str = "libx264"
    # Frames per second of a folder of images read as a film.
    fps: float = 25.0
    # auto (cuda, then mps, then cpu), or an explicit torch device such as cpu or cuda:1.
    device: str = "auto"
    # auto (bf16 where the hardware is fast at it), fp32 or bf16.
    precision: str = "auto"
    # Refuse images (paintings, frames of a folder) with more pixels than this; None = Pillow's limit.
    max_pixels: int | None = None

    def validate(self) -> None:
        """Raise ConfigError (one line) for a value Stylist cannot use."""
        from .color import COLOR_MODES
        from .flow import FLOW_METHODS

        if self.method not in VIDEO_METHODS:
            raise ConfigError(f"unknown --method '{self.method}': use one of {', '.join(VIDEO_METHODS)}")
        if not (0.0 <= self.temporal <= 1.0):
            raise ConfigError(f"--temporal must be between 0 and 1; got {self.temporal}")
        if not (0.0 <= self.alpha <= 1.0):
            raise ConfigError(f"--style-strength (alpha) must be between 0 and 1; got {self.alpha}")
        if self.preserve_color not in COLOR_MODES:
            raise ConfigError(f"unknown --preserve-color '{self.preserve_color}': use one of {', '.join(COLOR_MODES)}")
        if self.flow not in FLOW_METHODS:
            raise ConfigError(f"unknown --flow '{self.flow}': use one of {', '.join(FLOW_METHODS)}")
        for name in ("size", "style_size"):
            value = getattr(self, name)
            if value is not None and value < 16:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 16 pixels; got {value}")
        if self.iterations < 1 or (self.later_iterations is not None and self.later_iterations < 0):
            raise ConfigError("--iterations must be at least 1 and --later-iterations 0 or more")
        if self.temporal_weight < 0:
            raise ConfigError(f"--temporal-weight must be 0 or more; got {self.temporal_weight}")
        if self.start < 0 or (self.duration is not None and self.duration <= 0):
            raise ConfigError("--start must be 0 or more seconds and --duration more than 0 seconds")
        if not (0 <= self.crf <= 51):
            raise ConfigError(f"--crf must be between 0 and 51; got {self.crf}")
        if self.codec not in CODECS:
            raise ConfigError(f"unknown --codec '{self.codec}': use one of {', '.join(CODECS)}")
        if not self.fps > 0:
            raise ConfigError(f"--fps must be more than 0; got {self.fps}")

    def later(self) -> int:
        return self.later_iterations if self.later_iterations is not None else max(1, round(0.4 * self.iterations))


@dataclass
class VideoProgress:
    """What the callback receives after every frame."""

    frame: int  # frames done, 1-based
    total: int | None  # frames expected (an estimate from the file's header), None if unknown
    image: torch.Tensor  # the stylised frame (1, 3, H, W) in [0, 1], on the CPU
    warping_error: float | None  # this frame's against the previous (flow.warping_error); None at a cut
    cut: bool  # a scene cut was found before this frame
    elapsed: float  # seconds since the start


VideoCallback = Callable[[VideoProgress], "bool | None"]


@dataclass
class VideoResult:
    """What a stylised film came to."""

    frames: int = 0
    cuts: int = 0
    # Mean of Lai et al.'s warping error over the frame pairs that are not cut (flow.warping_error),
    # None when there was no such pair or no OpenCV to measure it.
    warping_error: float | None = None
    elapsed: float = 0.0
    stopped: bool = False  # the callback (Ctrl-C in the CLI) stopped it before the end
    size: tuple[int, int] = (0, 0)  # (H, W) of the result
    path: Path | None = None
    audio_streams: int = 0  # audio streams copied

    @property
    def fps(self) -> float:
        return self.frames / self.elapsed if self.elapsed > 0 else 0.0


# --- the methods, one frame at a time -----------------------------------------------------------------------


class _OnePass:
    """A feed-forward network, AdaIN or WCT, made consistent by blending with the previous output warped."""

    def __init__(self, run: Callable[[torch.Tensor], torch.Tensor], temporal: float) -> None:
        self.run, self.temporal = run, temporal
        self.previous: torch.Tensor | None = None

    def stylise(self, frame: torch.Tensor, m: Motion | None) -> torch.Tensor:
        return self.run(frame)

    def __call__(self, frame: torch.Tensor, m: Motion | None) -> torch.Tensor:
        y = self.stylise(frame, m).float().clamp(0, 1)
        if self.previous is not None and m is not None and self.temporal > 0:
            # Departure (see the module notes): a blend along the motion, not a trained network.
            k = self.temporal * m.mask  # 0 at a cut, in disocclusions and on motion boundaries
            blend = k * warp(self.previous, m.backward, "bicubic").clamp(0, 1) + (1 - k) * y
            y = local_contrast(blend, y)
        self.previous = y
        return y

    def prime(self, output: torch.Tensor) -> None:
        """Carry on after ``output`` (a resumed film's last frame)."""
        self.previous = output.float()


class _BlendedFeatures(_OnePass):
    """A feed-forward network or AdaIN, blended twice: its features (a feed-forward network's after
    the residual blocks, a quarter of the frame's size; AdaIN's target at relu4_1, an eighth) with the
    previous frame's warped by the flow, by the weight ``temporal`` on the trusted cells, before they
    are decoded; then the output, as every one-pass method (:class:`_OnePass`).

    ``run(frame, blend)`` stylises a frame with ``blend`` applied to its features; ``stride`` is the
    features' cell size in px and ``before(h, w)`` the px the method adds at the top and left of a
    (h, w) frame before encoding it.

    Why: the network draws its strokes anew in every frame from where its features put them, and
    blending outputs alone averages strokes that do not line up; features carried along the motion
    are rendered into strokes that stay where they were, sharp. Measured on Big Buck Bunny
    (benchmarks/video.py, docs/benchmarks.md), feed-forward network: the output blend alone left 0.54
    of the frame-by-frame warping error at +7 % style distance; both blends 0.49 at +6 % (another
    stretch of the film, not tuned on: 0.56 and 0.46). The features alone leave 0.71; warping them
    with weight near 1 drifts (the style is lost within a second). Departure: a training-free form of
    the feature-level consistency that Huang et al. (CVPR 2017) and Gao et al. (ReCoNet, ACCV 2018)
    train for.
    """

    def __init__(
        self,
        run: Callable[[torch.Tensor, Callable[[torch.Tensor], torch.Tensor] | None], torch.Tensor],
        stride: int,
        before: Callable[[int, int], int],
        temporal: float,
    ) -> None:
        super().__init__(lambda frame: run(frame, None), temporal)
        self.run_blended, self.stride, self.before = run, stride, before
        self.features: torch.Tensor | None = None  # the previous frame's, after its blend

    def stylise(self, frame: torch.Tensor, m: Motion | None) -> torch.Tensor:
        def blend(h: torch.Tensor) -> torch.Tensor:
            last = self.features
            if last is not None and m is not None and self.temporal > 0 and last.shape == h.shape:
                offset = self.before(frame.shape[-2], frame.shape[-1])
                flow, mask = coarse_motion(m, (h.shape[-2], h.shape[-1]), self.stride, offset)
                k = self.temporal * mask.to(h.device)
                h = (k * warp(last, flow) + (1 - k) * h).to(h.dtype)
            self.features = h
            return h

        return self.run_blended(frame, blend)


class _Optimize:
    """Gatys et al. per frame with Ruder et al.'s temporal loss and warped start."""

    def __init__(self, cfg: VideoConfig, styles: list[torch.Tensor]) -> None:
        from .optimize import TransferConfig, build_network

        self.cfg, self.styles = cfg, styles
        self.transfer = TransferConfig(
            iterations=cfg.iterations,
            style_weights=cfg.style_weights,
            preserve_color=cfg.preserve_color,
            device=cfg.device,
            precision=cfg.precision,
            # A film's frames are small; the coarse-to-fine schedule would give its coarse levels too few pixels.
            multiscale=False,
            early_stop_patience=0,
        )
        self.transfer.validate()
        self.device = resolve_device(cfg.device)
        self.net = build_network(self.transfer, self.device)
        self.objective = None
        self.previous: torch.Tensor | None = None  # the previous result in the working colours

    def __call__(self, frame: torch.Tensor, m: Motion | None) -> torch.Tensor:
        from .color import prepare_colors, with_chroma

        content, styles = prepare_colors(self.cfg.preserve_color, frame, self.styles)
        shot_starts = self.previous is None or m is None or m.cut or self.previous.shape != content.shape
        if shot_starts or self.objective is None:
            # A new shot: the objective (and mean-covariance paintings) from its first frame.
            self.objective = self._objective(content, styles)
        else:
            with torch.no_grad():
                self.objective.content_targets = self.objective.loss.content_targets(
                    self.objective.net_features(content.to(self.device))
                )
        if shot_starts:
            x = self._run(content.clone(), self.cfg.iterations, None)
        else:
            assert self.previous is not None and m is not None
            warped = warp(self.previous, m.backward)
            weight = self.cfg.temporal * self.cfg.temporal_weight
            x = self._run(warped, self.cfg.later(), (warped, m.mask, weight) if weight > 0 else None)
        self.previous = x
        return with_chroma(x, frame) if self.cfg.preserve_color == "luminance" else x

    def prime(self, output: torch.Tensor) -> None:
        """Carry on after ``output`` (a resumed film's last frame), in the working colours."""
        from .color import prepare_colors

        self.previous = prepare_colors(self.cfg.preserve_color, output.float(), [])[0]
        self.objective = None

    def _objective(self, content: torch.Tensor, styles: list[torch.Tensor]):
        from .image import fit_min_side
        from .optimize import Objective, feature_norms_for, min_side

        precision = resolve_precision(self.transfer.precision, self.device)
        c = content.to(self.device)
        s = [fit_min_side(t, min_side(self.transfer), "style image", max(c.shape[-2:])).to(self.device) for t in styles]
        norms = feature_norms_for(self.net, self.transfer, c, precision)
        return Objective(
            self.net, self.transfer, c, s, self.cfg.style_weights, precision=precision, feature_norms=norms
        )

    def _run(self, start: torch.Tensor, iterations: int, temporal: tuple | None) -> torch.Tensor:
        """``iterations`` of the configured optimiser from ``start``; the lowest-loss image is kept
        (L-BFGS without a line search now and then leaps uphill: optimize.py damps it, here the
        short runs simply keep their best point)."""
        from .losses import temporal_loss
        from .optimize import make_optimizer

        objective = self.objective
        assert objective is not None
        # A copy: the optimiser changes x in place, and the start is also the temporal loss's target.
        x = start.detach().to(self.device).clone().contiguous().requires_grad_(True)
        if temporal is not None:
            warped, mask, weight = (temporal[0].to(self.device), temporal[1].to(self.device), temporal[2])
        optimizer = make_optimizer(self.transfer, x)
        best, best_x = math.inf, x.detach().clone()

        def closure() -> torch.Tensor:
            optimizer.zero_grad(set_to_none=False)
            total = objective(x)["total"]
            if temporal is not None:
                total = total + weight * temporal_loss(x, warped, mask)
            total.backward()
            if isinstance(optimizer, torch.optim.SGD):  # as optimize._iterate: one step size for every size
                cast(torch.Tensor, x.grad).mul_(x.shape[-1] * x.shape[-2])
            return total

        for _ in range(iterations):
            start_x = x.detach().clone()
            loss = float(cast(torch.Tensor, optimizer.step(closure)).detach())  # type: ignore[arg-type]
            if math.isfinite(loss) and loss < best:
                best, best_x = loss, start_x  # the loss was measured at the point the step started from
            with torch.no_grad():
                x.clamp_(0, 1)
        if iterations == 0:
            return start.detach().cpu().float()
        return best_x.cpu().float() if not math.isfinite(best) else _better(objective, temporal, x, best, best_x)


def _better(objective, temporal, x: torch.Tensor, best: float, best_x: torch.Tensor) -> torch.Tensor:
    """The final image if its loss is no worse than the best seen on the way, else that best one."""
    from .losses import temporal_loss

    with torch.no_grad():
        total = objective(x)["total"]
        if temporal is not None:
            total = total + temporal[2] * temporal_loss(x, temporal[0].to(x.device), temporal[1].to(x.device))
    return (x.detach() if float(total) <= best else best_x).cpu().float()


# Side of the window in which the blend of a frame with the previous output gets back the stylised
# frame's contrast (see local_contrast), px.
CONTRAST_WINDOW = 3


def local_contrast(blend: torch.Tensor, stylised: torch.Tensor, window: int = CONTRAST_WINDOW) -> torch.Tensor:
    """``blend`` (1, 3, H, W) with its local mean kept and its local standard deviation, per channel in
    a ``window`` x ``window`` box, set to that of ``stylised``; clamped to [0, 1]. 3 x 3 by default:
    measured on Big Buck Bunny, 5 x 5 and 9 x 9 keep less of the painting's statistics for the same flicker.

    Why: averaging two frames whose strokes do not line up exactly (the flow is never exact, and a
    network draws each frame anew) lowers the strokes' contrast, which the painting's statistics
    (and the quality benchmark's style closeness) notice; the mean of the blend, which carries the
    consistency, is kept. Departure: none of the papers does this, since none blends outputs.
    """
    pad = window // 2

    def box(x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, window, 1, pad, count_include_pad=False)

    mean_b, mean_s = box(blend), box(stylised)
    std_b = (box(blend * blend) - mean_b * mean_b).clamp_min(1e-6).sqrt()
    std_s = (box(stylised * stylised) - mean_s * mean_s).clamp_min(1e-6).sqrt()
    return ((blend - mean_b) / std_b * std_s + mean_b).clamp(0, 1)


def make_stylizer(
    cfg: VideoConfig, model: object = None, style: ImageLike | Sequence[ImageLike] | None = None
) -> Callable[[torch.Tensor, Motion | None], torch.Tensor]:
    """One frame (1, 3, H, W) and its :class:`~stylist.flow.Motion` to the previous frame -> the
    stylised frame (1, 3, H, W) in [0, 1]. ``model``: a built-in style name, a model file (.safetensors
    or .onnx), or a loaded :class:`~stylist.feedforward.StyleModel`; else ``style`` (one painting or
    several) with ``cfg.method``. Raises ConfigError for neither or both."""
    if (model is None) == (style is None):
        what = "not both" if model is not None else "one of them is needed"
        raise ConfigError(f"give either a feed-forward model (--model) or the painting(s) (--style); {what}")
    if model is not None:
        net = _load_model(model, cfg)
        if cfg.preserve_color not in ("none", "luminance"):
            raise ConfigError(
                f"--preserve-color {cfg.preserve_color} is not for a feed-forward model: use none or luminance"
            )
        from .feedforward import MULTIPLE, StyleModel

        if isinstance(net, StyleModel):
            model = net

            def run(frame: torch.Tensor, blend: Callable[[torch.Tensor], torch.Tensor] | None) -> torch.Tensor:
                return model.stylize(frame, cfg.preserve_color, on_features=blend)

            return _BlendedFeatures(run, MULTIPLE, lambda h, w: 0, cfg.temporal)  # padded at the bottom and right
        return _OnePass(lambda frame: net.stylize(frame, cfg.preserve_color), cfg.temporal)  # ONNX
    styles = list(style) if isinstance(style, (list, tuple)) else [cast(ImageLike, style)]
    if cfg.style_weights is not None:
        check_one_each("--style-weights", cfg.style_weights, len(styles), "style image")
    paintings = [load_tensor(s, "style", cfg.max_pixels) for s in styles]
    if cfg.method == "optimize":
        return _Optimize(cfg, paintings)
    if cfg.method == "adain":
        from .arbitrary import edge_margin

        return _BlendedFeatures(_arbitrary(cfg, paintings), 8, edge_margin, cfg.temporal)  # relu4_1: 8 px a cell
    wct = _arbitrary(cfg, paintings)
    return _OnePass(lambda frame: wct(frame, None), cfg.temporal)


def _load_model(model: object, cfg: VideoConfig):
    if not isinstance(model, (str, os.PathLike)):
        return model  # a loaded StyleModel or OnnxStyleModel
    if str(model).lower().endswith(".onnx"):
        from .export import OnnxStyleModel

        if not Path(model).is_file():
            raise ImageError(f"{model}: ONNX model file not found")
        return OnnxStyleModel(model)
    from .feedforward import load_model

    return load_model(model, device=cfg.device, precision=cfg.precision)


def _arbitrary(
    cfg: VideoConfig, paintings: list[torch.Tensor]
) -> Callable[[torch.Tensor, Callable[[torch.Tensor], torch.Tensor] | None], torch.Tensor]:
    from .arbitrary import ArbitraryConfig, shared_encoder, stylize_arbitrary
    from .decoders import load_decoder

    acfg = ArbitraryConfig(
        method=cfg.method,
        alpha=cfg.alpha,
        style_weights=cfg.style_weights,
        preserve_color=cfg.preserve_color,
        style_size=cfg.style_size,
        decoder=cfg.decoder,
        device=cfg.device,
        precision=cfg.precision,
        max_pixels=cfg.max_pixels,
    )
    acfg.validate()
    device = resolve_device(acfg.device)
    decoder, encoder = load_decoder(acfg.method, acfg.decoder, device), shared_encoder(device)
    cache: dict = {}  # the paintings' features, encoded once for the whole film

    def run(frame: torch.Tensor, blend: Callable[[torch.Tensor], torch.Tensor] | None) -> torch.Tensor:
        # blend: AdaIN's target features (stylize_arbitrary), None for WCT
        return stylize_arbitrary(
            frame, paintings, acfg, decoder=decoder, encoder=encoder, style_cache=cache, on_features=blend
        )

    return run


def stylize_frames(
    frames: Iterable[torch.Tensor],
    config: VideoConfig | None = None,
    *,
    model: object = None,
    style: ImageLike | Sequence[ImageLike] | None = None,
    callback: VideoCallback | None = None,
    total: int | None = None,
    result: VideoResult | None = None,
    prime: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> Iterator[torch.Tensor]:
    """Stylise ``frames`` (each (1, 3, H, W) RGB in [0, 1]) one at a time and yield the results,
    (1, 3, H', W') in [0, 1] on the CPU (H', W' from ``config.size``, else the frame's size).

    ``model`` (feed-forward) or ``style`` (paintings, with ``config.method`` adain, wct or optimize)
    as in :func:`make_stylizer`. Only the previous frame is kept: memory does not grow with the
    number of frames. ``callback(progress)`` (:class:`VideoProgress`) is called after every frame;
    returning True stops. ``result``, when given, is filled in as the frames go (count, cuts, mean
    warping error, time). ``prime`` = (input frame, its stylised frame) carries on after them (a
    resumed film): the first frame is then made consistent with them. Raises ConfigError for bad
    options, ImageError for a bad frame or painting.
    """
    from .image import check_tensor

    cfg = config or VideoConfig()
    cfg.validate()
    if cfg.temporal > 0:
        need_opencv()
    stylizer = make_stylizer(cfg, model, style)
    tracker = MotionTracker(cfg.flow) if importlib.util.find_spec("cv2") is not None else None
    result = result if result is not None else VideoResult()
    errors: list[float] = []
    previous: torch.Tensor | None = None
    if prime is not None:
        first_input = resize_long_side(prime[0], cfg.size) if cfg.size is not None else prime[0]
        if tracker is not None:
            tracker(first_input)
        previous = prime[1].float()
        cast(_OnePass, stylizer).prime(previous)  # _OnePass or _Optimize: both have prime()
    start = time.perf_counter() - result.elapsed
    for frame in frames:
        frame = check_tensor(frame, "frame")
        if cfg.size is not None:
            frame = resize_long_side(frame, cfg.size)
        m = tracker(frame) if tracker is not None else None
        out = stylizer(frame, m if cfg.temporal > 0 else None)
        error = warping_error(out, previous, m) if (m is not None and previous is not None) else None
        if error is not None:
            errors.append(error)
        result.cuts += bool(m is not None and m.cut)
        result.frames += 1
        result.size = (out.shape[-2], out.shape[-1])
        result.elapsed = time.perf_counter() - start
        result.warping_error = sum(errors) / len(errors) if errors else None
        previous = out
        yield out
        if callback is not None:
            progress = VideoProgress(result.frames, total, out, error, bool(m is not None and m.cut), result.elapsed)
            if callback(progress):
                result.stopped = True
                return


# --- films in ----------------------------------------------------------------------------------------------


@dataclass
class FilmInfo:
    """What a film (or a folder of frames) is, as read from its header."""

    path: Path
    size: tuple[int, int]  # (H, W) as displayed (after the rotation)
    rate: Fraction  # frames per second (the stream's average rate)
    time_base: Fraction  # unit of the timestamps, s
    frames: int | None  # frames in the piece chosen by start/duration, an estimate from the header
    duration: float | None  # s, of the whole film
    rotation: int = 0  # degrees counterclockwise the player turns the stored frames (the display matrix)
    color_range: int = 0  # the video's colour range (1 limited "MPEG", 2 full "JPEG", 0 unknown)
    colorspace: int = 2  # its YUV matrix (1 BT.709, 5/6 BT.601, 2 unknown)
    audio: int = 0  # audio streams
    codec: str = ""


def _av_error(path: Path, err: Exception) -> ImageError:
    # FFmpeg's own words without PyAV's "[Errno N] ...: 'path'" wrapping, which says nothing more.
    reason = getattr(err, "strerror", None) or first_line(err)
    return ImageError(
        f"{path}: not a readable video, damaged or not a film (FFmpeg: {reason}); "
        "check that it plays in a video player, or convert it to MP4"
    )


class FilmReader:
    """A film opened for decoding, streamed: :meth:`frames` yields one frame at a time.

    Frames come out upright (the display rotation applied to the pixels) as (1, 3, H, W) RGB in
    [0, 1], read with the film's own YUV matrix and colour range. ``start``/``duration`` (s) choose a
    piece. Raises ImageError (one line) for a missing file, a file without a video stream, or one
    that cannot be decoded.
    """

    def __init__(self, path: str | os.PathLike, start: float = 0.0, duration: float | None = None) -> None:
        import av

        self.path, self.start, self.duration = Path(path), start, duration
        if not self.path.is_file():
            raise ImageError(f"{self.path}: video file not found")
        try:
            self.container = av.open(str(self.path))
        except (av.FFmpegError, UnicodeDecodeError, ValueError) as err:
            raise _av_error(self.path, err) from None
        if not self.container.streams.video:
            self.container.close()
            raise ImageError(f"{self.path}: has no video stream (an audio file?); give a film")
        self.stream = self.container.streams.video[0]
        self.audio = [s for s in self.container.streams.audio if s.codec_context is not None]
        self.info = self._info()

    def _info(self) -> FilmInfo:
        s = self.stream
        rate = Fraction(s.average_rate or s.guessed_rate or 25)
        tb = Fraction(s.time_base or Fraction(1, 90000))
        duration = float(s.duration * tb) if s.duration else None
        if duration is None and self.container.duration:
            duration = self.container.duration / 1_000_000
        end = duration if self.duration is None or duration is None else min(duration, self.start + self.duration)
        frames = round((end - self.start) * rate) if end is not None else (s.frames or None)
        first = self._first_frame()
        rotation = int(first.rotation) if first is not None else 0
        h, w = (s.height, s.width) if rotation % 180 == 0 else (s.width, s.height)
        return FilmInfo(
            self.path,
            (h, w),
            rate,
            tb,
            max(0, frames) if frames is not None else None,
            duration,
            rotation,
            int(first.color_range) if first is not None else 0,
            int(first.colorspace) if first is not None else 2,
            len(self.audio),
            s.codec_context.name,
        )

    def _first_frame(self):
        """The first frame (for its rotation and colours); the file is rewound afterwards."""
        import av

        try:
            for frame in self.container.decode(self.stream):
                return frame
        except (av.FFmpegError, ValueError) as err:
            raise _av_error(self.path, err) from None
        finally:
            self.container.seek(0, stream=self.stream)
        raise ImageError(f"{self.path}: the video stream has no frames")

    def frames(self, on_audio: Callable[[object], None] | None = None) -> Iterator[tuple[torch.Tensor, int]]:
        """(frame, pts) one at a time; pts in ``info.time_base`` counted from ``start``. Audio packets of the
        piece are handed to ``on_audio`` (their timestamps moved by ``start`` too) as they are demuxed."""
        import av

        tb, first_pts = self.info.time_base, None
        start_pts = round(self.start / tb)
        end = None if self.duration is None else self.start + self.duration
        if self.start > 0:
            self.container.seek(start_pts, stream=self.stream, backward=True)
        streams = [self.stream, *(self.audio if on_audio is not None else [])]
        try:
            for packet in self.container.demux(streams):
                if packet.stream.type == "audio":
                    self._audio_packet(packet, end, on_audio)
                    continue
                for frame in packet.decode():
                    if not isinstance(frame, av.VideoFrame) or frame.pts is None:
                        continue
                    t = float(frame.pts * tb)
                    if t < self.start - 1e-6:
                        continue
                    if end is not None and t >= end - 1e-6:
                        return
                    first_pts = frame.pts if first_pts is None else first_pts
                    yield self._tensor(frame), frame.pts - first_pts
        except av.FFmpegError as err:
            raise ImageError(f"{self.path}: the video is damaged ({first_line(err)})") from None

    def _audio_packet(self, packet, end: float | None, on_audio) -> None:
        if packet.pts is None or packet.size == 0:
            return
        t = float(packet.pts * packet.time_base)
        # From the film's start every packet is kept, the encoder's priming ones (negative pts) too.
        if (self.start > 0 and t < self.start - 1e-6) or (end is not None and t >= end - 1e-6):
            return
        if self.start > 0:
            shift = round(self.start / packet.time_base)
            packet.pts -= shift
            if packet.dts is not None:
                packet.dts -= shift
        on_audio(packet)

    def _tensor(self, frame) -> torch.Tensor:
        # The film's own matrix and range, not swscale's defaults (which would take a full-range film
        # for a limited one and lift its blacks).
        rgb = frame.reformat(format="rgb24", src_color_range=frame.color_range or None).to_ndarray()
        t = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float() / 255
        turns = round(self.info.rotation / 90) % 4
        return torch.rot90(t, turns, dims=(2, 3)).contiguous() if turns else t

    def close(self) -> None:
        self.container.close()


def read_frames(path: str | os.PathLike, start: float = 0.0, duration: float | None = None) -> Iterator[torch.Tensor]:
    """The frames of a film, one at a time, as (1, 3, H, W) RGB in [0, 1] (see :class:`FilmReader`)."""
    reader = FilmReader(path, start, duration)
    try:
        for frame, _ in reader.frames():
            yield frame
    finally:
        reader.close()


def frame_files(folder: str | os.PathLike) -> list[Path]:
    """The image files of a folder of frames, in name order (natural: frame2 before frame10)."""
    from .training import IMAGE_SUFFIXES

    folder = Path(folder)
    files = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
    if not files:
        raise ImageError(f"{folder}: no images (.jpg .png .webp .tif .bmp) in this folder to read as frames")
    return sorted(files, key=lambda p: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)])


def check_frames(files: Sequence[Path]) -> None:
    """ImageError (one line) naming the first of ``files`` that is not a readable image, before any
    frame is stylised (a run would otherwise stop at it, its earlier frames done). Pillow's
    ``verify`` reads each file without decoding it: a damaged PNG is caught here, a JPEG cut short
    only when it is decoded."""
    for i, file in enumerate(files):
        try:
            with Image.open(file) as im:
                im.verify()
        except Exception as err:  # Pillow raises many kinds (OSError, SyntaxError, struct.error, ...)
            raise ImageError(
                f"{file}: frame {i + 1} of the folder is not a readable image ({first_line(err)}); "
                "replace it or move it out of the folder"
            ) from None


# --- films out ---------------------------------------------------------------------------------------------


def check_codec(codec: str) -> str:
    """``codec`` if this PyAV's FFmpeg can encode with it, else ImageError (one line)."""
    import av

    try:
        av.codec.Codec(codec, "w")
    except (ValueError, av.FFmpegError):
        usable = [c for c in CODECS if _has_encoder(c)]
        raise ImageError(f"this FFmpeg has no '{codec}' encoder; use one of {', '.join(usable)}") from None
    return codec


def _has_encoder(name: str) -> bool:
    import av

    try:
        av.codec.Codec(name, "w")
        return True
    except (ValueError, av.FFmpegError):
        return False


class FilmWriter:
    """A film being encoded to ``path`` (.mp4, .mov or .mkv), frame by frame, into a temporary file
    ``.NAME.XXXXXXXX.tmp`` beside it; :meth:`close` renames it into place (image.write_atomic's rules),
    :meth:`abort` removes it. The video is ``codec`` in yuv420p (sides padded to even by repeating the
    edge pixel), at the input's frame rate and timestamps (``info``), colour range and matrix; the
    audio streams given are copied packet for packet (never re-encoded)."""

    def __init__(
        self,
        path: str | os.PathLike,
        info: FilmInfo,
        size: tuple[int, int],
        codec: str = "libx264",
        crf: int = 18,
        audio: Sequence[Any] = (),
    ) -> None:
        import av

        self.path = Path(path)
        remove_stale_temps(self.path)
        fd, self.tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=TEMP_SUFFIX)
        os.close(fd)
        _plain_permissions(self.tmp)
        self.h, self.w = size[0] + size[0] % 2, size[1] + size[1] % 2
        self.info, self.frames, self.open = info, 0, True
        try:
            self.container = av.open(self.tmp, mode="w", format=CONTAINERS.get(self.path.suffix.lower(), "mp4"))
            self.stream = cast("VideoStream", self.container.add_stream(check_codec(codec), rate=info.rate))
            self.stream.width, self.stream.height, self.stream.pix_fmt = self.w, self.h, "yuv420p"
            # The input's timestamps as they are (a variable frame rate stays variable; the duration is kept).
            self.stream.codec_context.time_base = info.time_base
            self.stream.time_base = info.time_base
            self.color_range = info.color_range if info.color_range in (1, 2) else 1
            self.colorspace = info.colorspace if info.colorspace in (1, 5, 6) else 5  # unknown: BT.601 as swscale
            self.stream.codec_context.color_range = self.color_range
            self.stream.codec_context.colorspace = self.colorspace
            if CODECS.get(codec) == "crf":
                self.stream.options = {"crf": str(crf)}
            if codec == "libx265":  # x265 prints its settings on stderr itself, past libav's log level
                self.stream.options = {**self.stream.options, "x265-params": "log-level=error"}
            self.audio = {}
            for s in audio:
                try:
                    self.audio[s.index] = self.container.add_stream_from_template(s)
                except (ValueError, av.FFmpegError):
                    pass  # a stream this container cannot hold is left out (the caller says so)
        except BaseException:
            self.abort()
            raise

    def add(self, image: torch.Tensor, pts: int) -> None:
        """Encode ``image`` (1, 3, h, w) in [0, 1] shown at ``pts`` (in ``info.time_base``)."""
        import av

        rgb = (image[0].detach().float().cpu().clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(1, 2, 0).numpy()
        pad = ((0, self.h - rgb.shape[0]), (0, self.w - rgb.shape[1]), (0, 0))
        frame = av.VideoFrame.from_ndarray(np.pad(rgb, pad, mode="edge"), format="rgb24")
        frame = frame.reformat(format="yuv420p", dst_colorspace=self.colorspace, dst_color_range=self.color_range)
        frame.pts, frame.time_base = pts, self.info.time_base
        self._mux(self.stream.encode(frame))
        self.frames += 1

    def copy(self, packet) -> None:
        """Mux an audio packet of the input as it is (no decoding, no re-encoding)."""
        out = self.audio.get(packet.stream.index)
        if out is not None:
            packet.stream = out
            self._mux(packet)

    def _mux(self, packets) -> None:
        try:
            self.container.mux(packets)
        except Exception as err:  # noqa: BLE001 - FFmpeg reports a failed write its own way
            raise WriteError(
                f"{self.path}: cannot write the film ({write_failure_reason(err, self.path.parent)})"
            ) from None

    def close(self) -> Path:
        """Flush the encoder, finish the file and move it into place (a film with no frame is not written)."""
        try:
            self._mux(self.stream.encode(None))
            self.container.close()
            self.open = False
            if self.frames == 0:
                raise ImageError(f"{self.path}: no frames to write (the piece chosen by --start/--duration is empty?)")
            os.replace(self.tmp, self.path)
        except WriteError:
            raise
        except ImageError:
            raise
        except Exception as err:  # noqa: BLE001
            raise WriteError(
                f"{self.path}: cannot write the film ({write_failure_reason(err, self.path.parent)})"
            ) from None
        finally:
            self.abort()
        return self.path

    def abort(self) -> None:
        """Drop the film: nothing is left behind."""
        if getattr(self, "open", False) and hasattr(self, "container"):
            with contextlib.suppress(Exception):
                self.container.close()
        self.open = False
        if os.path.exists(self.tmp):
            os.unlink(self.tmp)


class FrameFolderWriter:
    """Frames written as PNG files ``frame_000001.png`` ... into a folder (made if its parent exists),
    each atomically (image.save_image)."""

    def __init__(self, folder: str | os.PathLike, overwrite: bool = False) -> None:
        self.folder, self.overwrite, self.frames = Path(folder), overwrite, 0
        self.folder.mkdir(exist_ok=True)

    def add(self, image: torch.Tensor, pts: int = 0) -> None:
        from .image import save_image

        self.frames += 1
        save_image(image, self.folder / f"frame_{self.frames:06d}.png", overwrite=self.overwrite)

    def copy(self, packet) -> None:
        pass

    def close(self) -> Path:
        return self.folder

    def abort(self) -> None:
        pass


# --- a film from file to file ---------------------------------------------------------------------------------


def _no_frames(src: str | os.PathLike, cfg: VideoConfig, duration: float | None) -> str:
    """The one line for a run that found no frame to stylise."""
    if cfg.start == 0 and cfg.duration is None:
        return f"{src}: holds no video frames (an image, or an empty film?); give a film (.mp4) or a folder of frames"
    length = f"the film lasts {duration:.2f} s" if duration else "the film's length is unknown"
    span = f" for --duration {cfg.duration} s" if cfg.duration is not None else ""
    return f"{src}: no frames from --start {cfg.start} s{span} ({length})"


def is_frame_folder(path: str | os.PathLike) -> bool:
    """True for a folder (read as a film of images in name order) or a name without a film suffix."""
    p = Path(path)
    return p.is_dir() or (not p.exists() and p.suffix.lower() not in VIDEO_SUFFIXES and p.suffix == "")


def open_input(src: str | os.PathLike, cfg: VideoConfig) -> tuple[FilmInfo, Callable[..., Iterator], Callable, list]:
    """(info, frames(on_audio) -> (frame, pts) iterator, close, audio streams) for a film or a folder of frames."""
    src = Path(src)
    if src.is_dir():
        files = frame_files(src)
        first = load_tensor(files[0], "frame", cfg.max_pixels)
        rate = Fraction(cfg.fps).limit_denominator(1001)
        skip = round(cfg.start * rate)
        count = len(files) - skip if cfg.duration is None else min(len(files) - skip, round(cfg.duration * rate))
        count = max(0, count)
        check_frames(files[skip : skip + count])
        hw = (first.shape[-2], first.shape[-1])
        info = FilmInfo(src, hw, rate, 1 / rate, count, len(files) / float(rate))

        def folder_frames(on_audio=None) -> Iterator[tuple[torch.Tensor, int]]:
            for i, file in enumerate(files[skip : skip + count]):
                yield resize(load_tensor(file, "frame", cfg.max_pixels), hw), i  # every frame at the first's size

        return info, folder_frames, lambda: None, []
    reader = FilmReader(src, cfg.start, cfg.duration)
    return reader.info, reader.frames, reader.close, reader.audio


PARTIAL_SUFFIX = ".partial.json"  # beside a film stopped before its end: what --resume needs to carry on
# Options a resumed run may change (they do not change the picture of the frames already made).
RESUME_MAY_CHANGE = ("crf", "codec", "device", "precision", "max_pixels", "duration")


def partial_record(out: str | os.PathLike) -> Path:
    """The record of a stopped film ``out``: ``OUT.partial.json``."""
    out = Path(out)
    return out.with_name(out.name + PARTIAL_SUFFIX)


def stylize_video(
    src: str | os.PathLike,
    out: str | os.PathLike,
    config: VideoConfig | None = None,
    *,
    model: object = None,
    style: ImageLike | Sequence[ImageLike] | None = None,
    callback: VideoCallback | None = None,
    resume: bool = False,
) -> VideoResult:
    """Stylise the film ``src`` (a video file, or a folder of images in name order) into ``out`` (.mp4,
    .mov or .mkv, or a folder for PNG frames), streamed, with the audio copied; see :func:`stylize_frames`
    for ``model``/``style``/``callback``. Returns the :class:`VideoResult`.

    A stop asked for by the callback still writes a playable film of the frames so far
    (``result.stopped``) and, beside it, ``OUT.partial.json`` (:func:`partial_record`); ``resume``
    carries such a film on: its frames are kept (decoded and encoded again: one more generation of
    compression for them, at ``crf``) and the rest is stylised, consistent with its last frame.

    Raises ImageError (a missing, damaged or frameless input, an unknown codec, nothing to resume),
    ConfigError (options; a resume with other options), WriteError (the film cannot be written;
    nothing is left behind and an older ``out`` is kept).
    """
    cfg = config or VideoConfig()
    cfg.validate()
    out = Path(out)
    record = _resume_record(src, out, cfg, model, style) if resume else None
    info, frames, close, audio = open_input(src, cfg)
    result = VideoResult(path=out)
    writer = None
    pending: list = []  # audio packets demuxed before the first frame is stylised (the writer needs its size)
    stamps: list[int] = []  # the timestamps of the frames read and not yet written

    def on_audio(packet) -> None:
        if writer is None:
            pending.append(packet)
        else:
            writer.copy(packet)

    def pictures() -> Iterator[torch.Tensor]:
        for frame, pts in frames(on_audio=on_audio if audio else None):
            stamps.append(pts)
            yield frame

    def write(image: torch.Tensor) -> None:
        nonlocal writer
        if writer is None:
            writer = _writer(out, info, (image.shape[-2], image.shape[-1]), cfg, audio)
            result.audio_streams = len(getattr(writer, "audio", {}))
            left_out = len(audio) - result.audio_streams
            if left_out and is_frame_folder(out):
                warnings.warn(f"{src}: its sound is left out (a folder of frames holds none)", StylistWarning)
            elif left_out:
                warnings.warn(
                    f"{src}: {left_out} audio stream{'' if left_out == 1 else 's'} cannot go into a {out.suffix} "
                    "film as they are and are left out; write a .mkv to keep them",
                    StylistWarning,
                )
            for packet in pending:
                writer.copy(packet)
            pending.clear()
        writer.add(image, stamps.pop(0))

    try:
        inputs = pictures()
        prime = _replay(out, record, inputs, cfg, write, result) if record else None
        stylized = stylize_frames(
            inputs, cfg, model=model, style=style, callback=callback, total=info.frames, result=result, prime=prime
        )
        for image in stylized:
            write(image)
        if writer is None:
            raise ImageError(_no_frames(src, cfg, info.duration))
        writer.close()
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    finally:
        close()
    _note_partial(out, src, cfg, model, style, result)
    return result


def _run_options(src, cfg: VideoConfig, model: object, style) -> dict:
    """What a resumed run must share with the stopped one."""
    from dataclasses import asdict

    styles = style if isinstance(style, (list, tuple)) else [style]
    return {
        "source": str(Path(src).resolve()),
        "model": str(model) if isinstance(model, (str, os.PathLike)) else None,
        "style": [str(s) for s in styles if isinstance(s, (str, os.PathLike))],
        **{k: v for k, v in asdict(cfg).items() if k not in RESUME_MAY_CHANGE},
    }


def _note_partial(out: Path, src, cfg: VideoConfig, model: object, style, result: VideoResult) -> None:
    import json

    from .image import write_atomic_bytes

    record = partial_record(out)
    if result.stopped and not is_frame_folder(out):
        options = json.loads(json.dumps(_run_options(src, cfg, model, style), default=list))
        write_atomic_bytes(record, json.dumps({"frames": result.frames, "run": options}, indent=1).encode())
    elif record.exists():
        record.unlink()


def _resume_record(src, out: Path, cfg: VideoConfig, model: object, style) -> dict:
    import json

    record = partial_record(out)
    if is_frame_folder(out):
        raise ConfigError(f"{out}: --resume carries on a film, not a folder of frames")
    if not out.exists() or not record.exists():
        raise ImageError(f"{out}: no stopped film to resume here (no {record.name}); run without --resume")
    try:
        saved = json.loads(record.read_text())
        frames = int(saved["frames"])
    except (OSError, ValueError, KeyError, TypeError):
        raise ImageError(f"{record}: damaged; delete it and run without --resume") from None
    now = json.loads(json.dumps(_run_options(src, cfg, model, style), default=list))
    changed = [k for k in now if saved["run"].get(k) != now[k]]
    if changed:
        raise ConfigError(
            f"{out}: was made with other options ({', '.join(changed)}); resume with the same ones, or start again"
        )
    return {"frames": frames}


def _replay(out: Path, record: dict, inputs: Iterator[torch.Tensor], cfg: VideoConfig, write, result: VideoResult):
    """Copy the stopped film's frames into the new one, reading as many input frames; returns the
    (input, output) pair to carry on from."""
    last = None
    done = cast(Generator[torch.Tensor, None, None], read_frames(out))
    try:
        for _ in range(record["frames"]):
            frame = next(inputs, None)
            old = next(done, None)
            if frame is None or old is None:
                break
            size = resize_long_side(frame, cfg.size).shape[-2:] if cfg.size is not None else frame.shape[-2:]
            old = old[..., : size[0], : size[1]]  # the even-side padding of yuv420p comes off
            write(old)
            result.frames += 1
            last = (frame, old)
    finally:
        done.close()
    return last


def _writer(out: str | os.PathLike, info: FilmInfo, size: tuple[int, int], cfg: VideoConfig, audio: list):
    if is_frame_folder(out):
        return FrameFolderWriter(out, overwrite=True)
    return FilmWriter(out, info, size, cfg.codec, cfg.crf, audio)
