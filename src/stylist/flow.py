"""Optical flow between video frames, the masks that say where it can be trusted, scene cuts, and
Lai et al.'s warping error: the motion side of stylising a film without flicker.

Conventions: a frame is an RGB tensor in [0, 1] shaped (1, 3, H, W) (the one tensor convention); a
flow is a float32 tensor (1, 2, H, W) in pixels, channel 0 along x (to the right), channel 1 along y
(down). ``flow(a, b)`` maps each pixel ``p`` of ``a`` to where it went in ``b``: ``a(p) ~ b(p + flow(p))``.
So :func:`warp` of the previous frame by the flow *from the current frame to the previous one*
brings the previous frame onto the current one (backward warping).

Flow comes from OpenCV (``opencv-python-headless``, the optional ``video`` extra): DIS (Kroeger et
al., "Fast optical flow using dense inverse search", ECCV 2016) for the consistency itself, fast and
weight-free; Farneback ("Two-frame motion estimation based on polynomial expansion", SCIA 2003) as
an independent second estimator for measuring, so that a method is not judged by the flow it was
made consistent with. The papers used learned or variational flow (Ruder et al.: DeepFlow and
EpicFlow; Lai et al.: FlowNet 2); both OpenCV methods need no weights and run on the CPU.

The masks follow Ruder, Dosovitskiy and Brox ("Artistic style transfer for videos", GCPR 2016,
section 3.2): a pixel is *occluded* (disoccluded, in fact) when the forward and backward flows do
not cancel, and on a *motion boundary* when the flow's gradient is large; both are left out of
every temporal term. The module is silent (no prints, no files).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .errors import ConfigError

FLOW_METHODS = ("dis", "farneback")
# A scene cut: fewer than this share of the pixels have a flow that the backward flow confirms (measured: 0.03
# to 0.07 across a cut, 0.37 and more for shapes crossing a flat ground, where DIS flow is noisy).
CUT_CONSISTENT_SHARE = 0.15
# ... or the grey-level histograms of the two frames overlap by less than this (a cut to a scene of
# other brightness is caught even where the flow happens to agree, e.g. on flat frames).
CUT_HISTOGRAM_OVERLAP = 0.5


def need_opencv() -> None:
    """Raise ConfigError (one line) when OpenCV is missing."""
    if importlib.util.find_spec("cv2") is None:
        raise ConfigError(
            "temporal consistency needs OpenCV, which is not installed: "
            'pip install "stylist-nst[video]" (from a clone: pip install -e ".[video]"), or pass --temporal 0'
        )


def grey(frame: torch.Tensor) -> np.ndarray:
    """The frame's luma (BT.601) as uint8 (H, W), what OpenCV's flow methods take."""
    rgb = frame[0].detach().float().cpu().clamp(0, 1)
    y = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
    return (y * 255 + 0.5).to(torch.uint8).numpy()


def optical_flow(a: np.ndarray, b: np.ndarray, method: str = "dis") -> torch.Tensor:
    """Dense flow (1, 2, H, W) in pixels from grey frame ``a`` to grey frame ``b`` (uint8, H x W)."""
    import cv2

    cv2.setNumThreads(1)  # a frame is small work; OpenCV's own pool would fight torch's for the cores
    if method == "dis":
        # The medium preset with variational refinement: the fastest setting whose flow is smooth
        # enough to warp brush strokes without tearing them.
        dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)  # type: ignore[attr-defined]
        flow = dis.calc(a, b, None)
    elif method == "farneback":
        # OpenCV's stubs want an array for the flow argument; None asks for a new one.
        flow = cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 3, 15, 3, 5, 1.2, 0)  # type: ignore[call-overload]
    else:
        raise ConfigError(f"unknown flow method '{method}': use one of {', '.join(FLOW_METHODS)}")
    return torch.from_numpy(np.ascontiguousarray(flow)).permute(2, 0, 1)[None].float()


def warp(image: torch.Tensor, flow: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """``image`` (B, C, H, W) sampled at ``p + flow(p)`` (``mode`` bilinear or bicubic; outside the
    frame: the edge pixel). With the flow from frame t to frame t-1, the previous frame is brought
    onto frame t. Bicubic keeps fine strokes sharper when a frame is warped again and again (it may
    overshoot [0, 1] a little: clamp an image afterwards)."""
    _, _, h, w = image.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    fl = flow.to(image.device, torch.float32)
    x = xs.to(image.device) + fl[:, 0]
    y = ys.to(image.device) + fl[:, 1]
    # grid_sample's coordinates: -1 and 1 are the centres of the corner pixels (align_corners=True).
    grid = torch.stack((2 * x / max(w - 1, 1) - 1, 2 * y / max(h - 1, 1) - 1), dim=-1)
    out = F.grid_sample(image.float(), grid, mode=mode, padding_mode="border", align_corners=True)
    return out.to(image.dtype)


def consistency_mask(backward: torch.Tensor, forward: torch.Tensor) -> torch.Tensor:
    """Where the flow can be trusted: (1, 1, H, W), 1 = use the previous frame there, 0 = not.

    ``backward`` is the flow from frame t to t-1, ``forward`` from t-1 to t. Ruder et al.'s tests
    (their eqs. 5 and 6, on frame t's grid): the forward flow, read where the backward flow points,
    must cancel it, ``|w~ + w|^2 <= 0.01 (|w~|^2 + |w|^2) + 0.5`` (else disoccluded), and the
    backward flow's gradient must be small, ``|grad u|^2 + |grad v|^2 <= 0.01 |w|^2 + 0.002``
    (else a motion boundary).
    """
    w = backward
    w_tilde = warp(forward, w)  # the forward flow at p + w(p)
    occluded = (w_tilde + w).pow(2).sum(1, keepdim=True) > 0.01 * (
        w_tilde.pow(2).sum(1, keepdim=True) + w.pow(2).sum(1, keepdim=True)
    ) + 0.5
    gx = F.pad(w[..., :, 1:] - w[..., :, :-1], (0, 1, 0, 0))
    gy = F.pad(w[..., 1:, :] - w[..., :-1, :], (0, 0, 0, 1))
    gradient = (gx.pow(2) + gy.pow(2)).sum(1, keepdim=True)
    boundary = gradient > 0.01 * w.pow(2).sum(1, keepdim=True) + 0.002
    return (~(occluded | boundary | _leaves_frame(w))).float()


def _leaves_frame(flow: torch.Tensor) -> torch.Tensor:
    """(1, 1, H, W) True where ``p + flow(p)`` falls outside the frame (nothing there to carry over)."""
    _, _, h, w = flow.shape
    xs = torch.arange(w, dtype=torch.float32).view(1, 1, 1, w) + flow[:, :1]
    ys = torch.arange(h, dtype=torch.float32).view(1, 1, h, 1) + flow[:, 1:]
    return (xs < 0) | (xs > w - 1) | (ys < 0) | (ys > h - 1)


def histogram_overlap(a: np.ndarray, b: np.ndarray, bins: int = 32) -> float:
    """Intersection of the normalised grey-level histograms of two uint8 frames, in [0, 1] (1 = same)."""
    ha = np.bincount((a // (256 // bins)).ravel(), minlength=bins) / a.size
    hb = np.bincount((b // (256 // bins)).ravel(), minlength=bins) / b.size
    return float(np.minimum(ha, hb).sum())


@dataclass
class Motion:
    """What connects frame t to frame t-1 (all on frame t's grid)."""

    backward: torch.Tensor  # (1, 2, H, W) flow from frame t to frame t-1, px
    mask: torch.Tensor  # (1, 1, H, W) 1 where the previous frame may be used (not occluded, no motion boundary)
    cut: bool  # a scene cut: nothing of the previous frame carries over


class MotionTracker:
    """Feeds frames one at a time and tells how each relates to the one before (None for the first
    frame and after a change of size). Keeps only the previous frame: memory does not grow with the film."""

    def __init__(self, method: str = "dis") -> None:
        need_opencv()
        self.method = method
        self.previous: np.ndarray | None = None

    def __call__(self, frame: torch.Tensor) -> Motion | None:
        current = grey(frame)
        previous, self.previous = self.previous, current
        if previous is None or previous.shape != current.shape:
            return None
        return motion(previous, current, self.method)


def motion(previous: np.ndarray, current: np.ndarray, method: str = "dis") -> Motion:
    """The :class:`Motion` from grey frame ``previous`` to grey frame ``current`` (uint8, H x W)."""
    backward = optical_flow(current, previous, method)
    forward = optical_flow(previous, current, method)
    mask = consistency_mask(backward, forward)
    cut = float(mask.mean()) < CUT_CONSISTENT_SHARE or histogram_overlap(previous, current) < CUT_HISTOGRAM_OVERLAP
    return Motion(backward, torch.zeros_like(mask) if cut else mask, cut)


def coarse_motion(m: Motion, size: tuple[int, int], factor: int, before: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``m``'s flow (1, 2, h, w) and mask (1, 1, h, w) on a grid ``factor`` times coarser, ``size`` = (h, w),
    such as a network's features: the frame is first extended by ``before`` px at the top and left and
    up to (factor h, factor w) at the bottom and right, as the network pads its input (the flow by its
    edge values, the mask by 0); then each cell's flow is the mean of its pixels' divided by ``factor``
    (cells, not pixels), and its mask is 1 only where every pixel of the cell is trusted."""
    h, w = size
    b = before
    pad = (b, factor * w - m.mask.shape[-1] - b, b, factor * h - m.mask.shape[-2] - b)
    flow = F.avg_pool2d(F.pad(m.backward.float(), pad, mode="replicate"), factor) / factor
    mask = F.avg_pool2d(F.pad(m.mask.float(), pad), factor)
    return flow, (mask > 1 - 1e-6).float()


def warping_error(current: torch.Tensor, previous: torch.Tensor, m: Motion) -> float | None:
    """Lai et al.'s warping error ("Learning blind video temporal consistency", ECCV 2018, eq. 9) of
    one frame pair: the mean over the trusted pixels (``m.mask``) of the squared difference, summed
    over RGB, between stylised frame t and stylised frame t-1 warped onto it by the input's flow.
    ``current`` and ``previous`` are (1, 3, H, W) in [0, 1]. None at a cut or where no pixel is trusted.

    Departure: Lai et al. take the flow from FlowNet 2 and the mask from its occlusions; here both
    come from :func:`motion` (OpenCV flow, Ruder et al.'s masks).
    """
    if m.cut:
        return None
    count = float(m.mask.sum())
    if count == 0:
        return None
    diff = (current.float() - warp(previous.float(), m.backward)).pow(2).sum(1, keepdim=True)
    return float((diff * m.mask).sum()) / count


def film_warping_error(outputs: list[torch.Tensor], inputs: list[torch.Tensor], method: str = "farneback") -> float:
    """Mean :func:`warping_error` over the frame pairs of ``outputs`` (stylised), with the flow of
    ``inputs`` (the frames they were made from) by ``method``; NaN when no pair counts (cuts only).
    Farneback by default: a film made consistent along DIS flow is not judged by its own flow."""
    errors = []
    for t in range(1, len(outputs)):
        m = motion(grey(inputs[t - 1]), grey(inputs[t]), method)
        e = warping_error(outputs[t], outputs[t - 1], m)
        if e is not None:
            errors.append(e)
    return float(np.mean(errors)) if errors else float("nan")
