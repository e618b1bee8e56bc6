"""Measurable proxies of a style transfer's quality.

No single number judges style transfer: a result can copy the painting's statistics and lose
the photo, or keep the photo and miss the painting. These numbers say *how far* a result is
from each input along a few axes, for comparing settings on the same pair, never across pairs.

- ``content``: the content term of the one perceptual loss (:class:`stylist.losses.PerceptualLoss`,
  ``mean`` normalisation, equal layer weights) between result and photo at the content layers
  (default ``relu4_2``): mean squared difference of the features, each layer divided by its feature
  norm from the weight source's table (as every method does). 0 = same features; grows as the
  photo's structure is lost. It is also what optimisation minimises, so it favours optimisation.
- ``style_gram``: the style term of the same loss at the style layers (``relu1_1`` .. ``relu5_1``,
  equal weights): squared Frobenius distance of the ``mean``-normalised Gram matrices, result
  against painting. What optimisation minimises; blind to where things are.
- ``style_meanstd``: the same layers, mean squared distance of the per-channel means plus that of
  the per-channel standard deviations (AdaIN's statistics). Cheaper, coarser than the Gram.
- ``ssim``: structural similarity of the luminance of result and photo (Gaussian window, sigma 1.5,
  Wang et al. 2004 constants). 1 = same structure. Penalises every brush stroke, wanted or not.
- ``structure`` and ``copying``: the quality benchmark's measures (:mod:`stylist.quality`): the
  correlation of the gradient magnitudes of the blurred luminance, result against photo
  (``structure``) and against the painting in the result's frame (``copying``). A result whose
  copying is at or above its structure is closer to the painting's layout than to the photo's.
- ``color``: mean over R, G, B of the earth mover's distance between the result's and the
  painting's value distributions (in [0, 1] units: 0 = same histograms). Ignores spatial layout
  and colour co-occurrence (each channel alone).

The content and painting are resized to the result's size (the painting: long side to long side)
before measuring, so the numbers depend on that size. Time and peak memory are the run's, not
the image's: :class:`PeakMemory` samples them.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from typing import cast

import torch

from .color import luminance
from .devices import resolve_device
from .image import ImageLike, check_min_side, fit_min_side, load_tensor, resize, source_name
from .losses import PerceptualLoss, equal_weights, mean_std
from .optimize import min_side
from .quality import copying, ssim, structure  # the quality benchmark's own measures: one implementation
from .vgg import VGGFeatures

STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
CONTENT_LAYERS = ("relu4_2",)
METRIC_NAMES = ("content", "style_gram", "style_meanstd", "ssim", "structure", "copying", "color")


@dataclass
class MetricsConfig:
    """What :func:`measure` compares, and with which network."""

    # Layers whose features the result should share with the photo.
    content_layers: tuple[str, ...] = CONTENT_LAYERS
    # Layers whose statistics the result should share with the painting.
    style_layers: tuple[str, ...] = STYLE_LAYERS
    # VGG weights (a name from stylist.weights.SOURCES): the default judges every backbone alike.
    weights: str = "vgg19-caffe"
    # auto, cpu, cuda ...
    device: str = "cpu"


def color_distance(x: torch.Tensor, y: torch.Tensor, quantiles: int = 256) -> float:
    """Mean over channels of the 1-D earth mover's distance between the value distributions of
    ``x`` and ``y`` (1, 3, H, W), from their quantile functions (images of any sizes)."""
    q = (torch.arange(quantiles, dtype=torch.float64) + 0.5) / quantiles
    total = 0.0
    for ch in range(3):
        a = torch.quantile(x[:, ch].flatten().double(), q)
        b = torch.quantile(y[:, ch].flatten().double(), q)
        total += float((a - b).abs().mean())
    return total / 3


class Scorer:
    """The metrics of results against one photo and one painting, at one result size.

    The photo's features and the painting's statistics are computed once; call the scorer
    with each result (1, 3, H, W) of that size.
    """

    def __init__(
        self,
        content: torch.Tensor,
        style: torch.Tensor,
        size: tuple[int, int],
        cfg: MetricsConfig | None = None,
        net: VGGFeatures | None = None,
    ) -> None:
        self.cfg = cfg or MetricsConfig()
        self.device = resolve_device(self.cfg.device)
        self.size = cast("tuple[int, int]", tuple(size))
        self.net = (
            net or VGGFeatures([*self.cfg.content_layers, *self.cfg.style_layers], weights=self.cfg.weights)
        ).to(self.device)
        self.content = resize(content.float(), self.size)
        self.style = fit_min_side(style.float(), min_side(self.cfg), "the style image", max(self.size))  # issue 19
        layers = list(dict.fromkeys((*self.cfg.content_layers, *self.cfg.style_layers)))
        self.feature_norms = self.net.feature_norms(self.content.to(self.device), layers)
        self.loss = PerceptualLoss(
            equal_weights(self.cfg.content_layers), equal_weights(self.cfg.style_layers), self.feature_norms
        )
        with torch.no_grad():
            cf = self.net(self.content.to(self.device))
            sf = self.net(self.style.to(self.device))
            self.content_targets = self.loss.content_targets(cf)
            self.style_grams = self.loss.style_targets(sf)
            self.style_stats = {n: mean_std(sf[n].float() / self.feature_norms[n]) for n in self.cfg.style_layers}

    @torch.no_grad()
    def __call__(self, result: torch.Tensor) -> dict[str, float]:
        x = result.float()
        if tuple(x.shape[-2:]) != self.size:
            raise ValueError(f"this scorer measures results of {self.size}; got {tuple(x.shape[-2:])}")
        f = self.net(x.to(self.device))
        content = float(self.loss.content(f, self.content_targets))
        style_gram = float(self.loss.style(f, self.style_grams))
        style_ms = 0.0
        for n in self.cfg.style_layers:
            (m, s), (tm, ts) = mean_std(f[n].float() / self.feature_norms[n]), self.style_stats[n]
            style_ms += float((m - tm).pow(2).mean() + (s - ts).pow(2).mean())
        return {
            "content": content,
            "style_gram": style_gram,
            "style_meanstd": style_ms / len(self.cfg.style_layers),
            "ssim": float(ssim(luminance(x.cpu()), luminance(self.content))[0]),
            "structure": float(structure(x.cpu(), self.content)[0]),
            "copying": float(copying(x.cpu(), self.style)[0]),
            "color": color_distance(x.cpu(), self.style),
        }


def measure(
    result: ImageLike, content: ImageLike, style: ImageLike, cfg: MetricsConfig | None = None
) -> dict[str, float]:
    """The metrics of one result (see the module notes), at the result's own size."""
    x = load_tensor(result, "result")
    c, s = load_tensor(content, "content"), load_tensor(style, "style")
    cfg = cfg or MetricsConfig()
    # issue 19: a result too small for the deepest layer is refused before any work (it is measured as is)
    check_min_side((x.shape[-2], x.shape[-1]), min_side(cfg), source_name(result, "result"), "measure a larger result")
    return Scorer(c, s, (x.shape[-2], x.shape[-1]), cfg)(x)


def rss_mb() -> float:
    """The process's resident memory now, in MiB (Linux: /proc; elsewhere the peak so far)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError, AttributeError):  # no /proc; no os.sysconf on Windows
        pass
    try:
        import resource  # Unix only: imported here so that stylist imports on Windows
    except ImportError:
        return 0.0  # no portable way to read it without a dependency: the figure is left out (0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


class PeakMemory:
    """Time and peak memory of one piece of work.

    CPU: the resident set size, sampled at start, at each :meth:`sample` (call it once per
    iteration) and at the end: a lower bound of the true peak, which may fall between samples,
    and a process-wide figure (it includes the Python interpreter and loaded weights). CUDA:
    ``torch.cuda.max_memory_allocated`` over the work, exact for tensors.
    """

    def __init__(self, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device) if not isinstance(device, torch.device) else device
        self.peak_rss = 0.0
        self.seconds = 0.0
        self.cuda_peak_mb: float | None = None

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        self.sample()
        self._t0 = time.perf_counter()
        return self

    def sample(self) -> None:
        self.peak_rss = max(self.peak_rss, rss_mb())

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.cuda_peak_mb = torch.cuda.max_memory_allocated(self.device) / 2**20
        self.seconds = time.perf_counter() - self._t0
        self.sample()

    def record(self) -> dict[str, float]:
        out = {"seconds": self.seconds, "peak_rss_mb": self.peak_rss}
        if self.cuda_peak_mb is not None:
            out["cuda_peak_mb"] = self.cuda_peak_mb
        return out
