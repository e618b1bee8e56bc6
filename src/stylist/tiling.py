"""Tiles for images larger than memory: the geometry, the running statistics, the memory budget.

Every method that tiles (the feed-forward networks, AdaIN and WCT in :mod:`stylist.feedforward` and
:mod:`stylist.arbitrary`, the finest optimisation levels in :mod:`stylist.optimize`) cuts the image
the same way: disjoint *interiors* that cover it, each grown by a *margin* (clipped at the image's
edges) that is at least the network's receptive-field radius, so that a convolution sees in the tile
exactly the pixels it sees in the whole image. Only the interior of each tile's result is kept;
the interiors meet without overlap, so there is nothing to blend and, when the statistics that
normalise the features are the whole image's, no seam: the tiled result equals the whole-image one
up to floating-point rounding.

Normalisation statistics (instance norm, AdaIN's mean/std, WCT's mean/covariance) are gathered by
:class:`RunningMoments` over the interiors only, so that every position counts once: the sums are
the whole image's. Offsets are multiples of the network's total stride, so that the tiles' pooling
and upsampling grids are the whole image's.

The module is silent and pure tensor work; it only reads how much memory the device has.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import ConfigError

# Share of the free memory a run plans to use; the rest is left for the inputs, the outputs, the
# allocator's slack and everything else on the machine.
BUDGET_SHARE = 0.7
MIN_TILE = 64  # px: below this the margins would cost more than the interiors
# The smallest --tile-size accepted (tests use tiny tiles on tiny images; a real run wants hundreds of
# px): a 7 px tile is nearly all margin, and a run took minutes where whole it took a second.
MIN_TILE_OPTION = 32


def check_tile_size(tile_size: int | None) -> None:
    """ConfigError (one line) unless ``tile_size`` is None (auto), 0 (never tile) or at least
    :data:`MIN_TILE_OPTION` px. Every method's config calls it."""
    if tile_size is None or tile_size == 0:
        return
    if tile_size < 0 or tile_size < MIN_TILE_OPTION:
        raise ConfigError(
            f"--tile-size must be 0 (no tiles) or at least {MIN_TILE_OPTION} px (a few hundred is usual); "
            f"got {tile_size}"
        )


# Bytes per pixel of the full-size images a tiled one-pass run keeps in RAM (input, padded copy, result
# and its copies, float32 RGB, and the allocator's slack): the growth of the tiled peak above the tile
# size measured by benchmarks/resolution.py (0.2 kB/px for the feed-forward network, less for AdaIN).
IMAGE_BYTES_PER_PIXEL = 200.0


@dataclass(frozen=True)
class Tile:
    """One tile: the interior it contributes (``y0:y1, x0:x1``) and the region it is computed on
    (``top:bottom, left:right``: the interior grown by the margin, clipped to the image), in pixels."""

    y0: int
    y1: int
    x0: int
    x1: int
    top: int
    bottom: int
    left: int
    right: int

    def region(self, x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        """The tile's region of ``x`` (..., H*scale, W*scale): ``x`` may be at a coarser or finer scale."""
        return x[..., _at(self.top, scale) : _at(self.bottom, scale), _at(self.left, scale) : _at(self.right, scale)]

    def inner(self, x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        """The tile's interior of ``x`` (..., H*scale, W*scale), the whole image's tensor."""
        return x[..., _at(self.y0, scale) : _at(self.y1, scale), _at(self.x0, scale) : _at(self.x1, scale)]

    def interior(self, y: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        """The interior of ``y``, a result computed on :meth:`region` (at ``scale`` times its pixels)."""
        top, left = _at(self.y0 - self.top, scale), _at(self.x0 - self.left, scale)
        return y[..., top : top + _at(self.y1 - self.y0, scale), left : left + _at(self.x1 - self.x0, scale)]

    def place(self, out: torch.Tensor, y: torch.Tensor, scale: float = 1.0) -> None:
        """Write the interior of ``y`` (a result on :meth:`region`) into ``out`` (the whole image's result)."""
        out[..., _at(self.y0, scale) : _at(self.y1, scale), _at(self.x0, scale) : _at(self.x1, scale)] = self.interior(
            y, scale
        ).to(out.dtype)


def _at(px: int, scale: float) -> int:
    return int(round(px * scale))


def _cuts(length: int, tile: int, multiple: int) -> list[int]:
    """Interior edges along one side: about equal pieces of at most ``tile`` px, each a multiple of ``multiple``."""
    units = length // multiple
    pieces = max(1, math.ceil(length / tile))
    edges = [round(units * i / pieces) * multiple for i in range(pieces)]
    return [*dict.fromkeys(edges), length]  # a piece too short to hold one multiple is merged away


def grid(height: int, width: int, tile: int, margin: int, multiple: int = 1) -> list[Tile]:
    """The tiles of an image (height, width), row by row.

    Interiors are at most ``tile`` px a side and start at multiples of ``multiple`` (the network's total
    stride; the last one in a row or column ends at the image's edge); each is grown by ``margin`` px (a multiple
    of ``multiple``) on every side that is not the image's edge. ConfigError for a tile not larger
    than zero or a margin that breaks the stride's grid.
    """
    if tile <= 0:
        raise ConfigError(f"--tile-size must be a positive number of pixels; got {tile}")
    if margin % multiple:
        raise ConfigError(f"a tile margin must be a multiple of {multiple} px; got {margin}")
    tile = max(multiple, tile // multiple * multiple)
    rows, cols = _cuts(height, tile, multiple), _cuts(width, tile, multiple)
    tops = _spans(rows, height, margin, multiple)
    lefts = _spans(cols, width, margin, multiple)
    return [
        Tile(y0, y1, x0, x1, top, bottom, left, right)
        for (y0, y1), (top, bottom) in zip(zip(rows, rows[1:]), tops)
        for (x0, x1), (left, right) in zip(zip(cols, cols[1:]), lefts)
    ]


def _spans(cuts: list[int], length: int, margin: int, multiple: int) -> list[tuple[int, int]]:
    """The region of each interior along one side: the interior and ``margin`` px each side, widened
    (inwards, at the image's edges) to one size for all, so that every tile allocates the same tensors:
    tiles of different sizes fragment the heap (glibc keeps freed blocks of one size for the next),
    which raised the measured peak above the whole image's. More context leaves the interior unchanged."""
    size = min(length, max(b - a for a, b in zip(cuts, cuts[1:])) + 2 * margin)
    spans = []
    for a, b in zip(cuts, cuts[1:]):
        top = min(max(0, a - margin), (length - size) // multiple * multiple)
        spans.append((top, max(top + size, min(length, b + margin))))
    return spans


class RunningMoments:
    """Per-channel sums of features over many tiles, in float64: the mean and (biased) variance, or
    the mean and covariance, of the whole image's features once every interior has been added.

    ``weights`` (1, 1, h, w) weight each position (a soft mask); by default each counts once.
    """

    def __init__(self, covariance: bool = False) -> None:
        self.covariance = covariance
        self.count = 0.0
        self.sum: torch.Tensor | None = None
        self.square: torch.Tensor | None = None  # (C,) sums of squares, or (C, C) sums of outer products

    def add(self, features: torch.Tensor, weights: torch.Tensor | None = None) -> None:
        """Add the positions of ``features`` (1, C, h, w) (an interior; any float dtype)."""
        f = features[0].reshape(features.shape[1], -1).double()
        w = None if weights is None else weights.reshape(1, -1).to(f.device, torch.float64)
        fw = f if w is None else f * w
        count = float(f.shape[1]) if w is None else float(w.sum())
        s = fw.sum(1)
        sq = fw @ f.T if self.covariance else (fw * f).sum(1)
        self.count += count
        self.sum = s if self.sum is None else self.sum + s
        self.square = sq if self.square is None else self.square + sq

    def mean(self) -> torch.Tensor:
        """(C,) float64."""
        assert self.sum is not None, "no features were added"
        return self.sum / max(self.count, 1e-8)

    def variance(self) -> torch.Tensor:
        """(C,) biased variance, float64 (clamped at 0 against rounding)."""
        assert self.square is not None and not self.covariance
        return (self.square / max(self.count, 1e-8) - self.mean() ** 2).clamp_min(0)

    def cov(self) -> torch.Tensor:
        """(C, C) biased covariance, float64."""
        assert self.square is not None and self.covariance
        m = self.mean()
        return self.square / max(self.count, 1e-8) - torch.outer(m, m)


# --- memory -------------------------------------------------------------------------------------------------


def device_memory(device: torch.device) -> int:
    """Bytes a run may count on: free GPU memory on CUDA, available RAM otherwise (Linux's MemAvailable,
    else the physical memory). 0 when unknown."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 0


def budget_bytes(device: torch.device, max_memory_gb: float | None = None) -> int:
    """The bytes a run plans for: ``max_memory_gb`` if given, else :data:`BUDGET_SHARE` of :func:`device_memory`."""
    if max_memory_gb is not None:
        return int(max_memory_gb * 2**30)
    return int(BUDGET_SHARE * device_memory(device)) or 2**31  # unknown: plan for 2 GiB


def tile_for_budget(budget: int, bytes_per_pixel: float, margin: int, multiple: int = 1) -> int:
    """The largest interior side whose region (interior + 2 margins, squared) costs at most ``budget``
    bytes at ``bytes_per_pixel``; at least :data:`MIN_TILE`."""
    side = int(math.sqrt(max(budget, 0) / bytes_per_pixel)) - 2 * margin
    return max(MIN_TILE, side // max(multiple, 1) * max(multiple, 1))


def choose_tile(
    hw: tuple[int, int], tile_size: int | None, device: torch.device, bytes_per_pixel: float, margin: int, multiple: int
) -> int | None:
    """The interior side to tile ``hw`` with, or None to run the whole image at once.

    ``tile_size`` 0 forces a whole-image run, a positive value tiles whenever the image is larger; None
    (auto) tiles only when the whole image would need more than the budget at ``bytes_per_pixel``, with
    the largest tiles that fit beside the full-size images a tiled run keeps (in RAM: on the CPU they
    share the budget, on a GPU they do not).
    """
    check_tile_size(tile_size)
    if tile_size == 0:
        return None
    if tile_size is None:
        budget = budget_bytes(device)
        if hw[0] * hw[1] * bytes_per_pixel <= budget:
            return None
        held = int(hw[0] * hw[1] * IMAGE_BYTES_PER_PIXEL) if device.type == "cpu" else 0
        tile_size = tile_for_budget(budget - held, bytes_per_pixel, margin, multiple)
    return None if max(hw) <= tile_size else tile_size


# --- seams --------------------------------------------------------------------------------------------------


def seam_ratio(image: torch.Tensor, tiles: list[Tile], width: int = 1) -> float:
    """Mean squared gradient of ``image`` (1, C, H, W) across the tiles' interior borders, divided by
    the mean squared gradient everywhere else: about 1 without seams, well above 1 with them.

    A border is the step between the last row (column) of one interior and the first of the next;
    ``width`` steps on each side of it count as border. nan when the tiles have no inner border.
    """
    img = image.double()
    dy = (img[..., 1:, :] - img[..., :-1, :]).pow(2).mean(1)[0]  # (H-1, W): step between rows r and r+1
    dx = (img[..., :, 1:] - img[..., :, :-1]).pow(2).mean(1)[0]
    rows = {t.y0 for t in tiles if t.y0 > 0}
    cols = {t.x0 for t in tiles if t.x0 > 0}
    on_y = torch.zeros(dy.shape[0], dtype=torch.bool)
    on_x = torch.zeros(dx.shape[1], dtype=torch.bool)
    for r in rows:
        on_y[max(0, r - width) : r - 1 + width] = True
    for c in cols:
        on_x[max(0, c - width) : c - 1 + width] = True
    border = torch.cat([dy[on_y].flatten(), dx[:, on_x].flatten()])
    rest = torch.cat([dy[~on_y].flatten(), dx[:, ~on_x].flatten()])
    if border.numel() == 0 or rest.numel() == 0:
        return float("nan")
    return float(border.mean() / rest.mean().clamp_min(1e-12))
