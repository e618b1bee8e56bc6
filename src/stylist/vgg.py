"""VGG-16/19 feature extractor with named layers, shared by every method.

Layer names follow the paper: ``conv{block}_{i}``, ``relu{block}_{i}``, ``pool{block}``.
The extractor takes RGB images in [0, 1] shaped (B, 3, H, W) and applies the weight
source's own preprocessing inside, so callers never see BGR or mean pixels. It is
frozen and stops at the deepest layer asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from .errors import ConfigError
from .weights import (
    ARCH_BLOCKS,
    DEFAULT_SOURCE,
    PREPROCESSING,
    LoadedWeights,
    load_weights,
)

POOLING = ("max", "avg")


def layer_names(arch: str = "vgg19") -> list[str]:
    """Every named layer in network order: conv1_1, relu1_1, ..., pool5."""
    names = []
    for b, n in enumerate(ARCH_BLOCKS[arch], start=1):
        for i in range(1, n + 1):
            names += [f"conv{b}_{i}", f"relu{b}_{i}"]
        names.append(f"pool{b}")
    return names


def check_layers(layers: Sequence[str], arch: str = "vgg19", what: str = "layer") -> None:
    valid = layer_names(arch)
    for name in layers:
        if name not in valid:
            raise ConfigError(f"unknown {what} '{name}' for {arch}: valid names are {', '.join(valid)}")


def measure_feature_norms(features: dict[str, torch.Tensor]) -> dict[str, float]:
    """Each layer's mean activation after its ReLU over ``features`` (the fallback feature norms).

    A ``conv`` layer is measured after the ReLU that follows it (its own mean can be near zero or
    negative, no divisor); the result is never below 1e-6.
    """
    return {n: max(float(f.float().clamp_min(0).mean()), 1e-6) for n, f in features.items()}


class VGGFeatures(nn.Module):
    """Frozen VGG returning ``{layer_name: activation}`` for the layers asked for.

    ``pooling="avg"`` replaces max pooling by average pooling, which Gatys et al. found
    gives slightly smoother results; the weights were trained with max pooling.
    """

    # Buffers registered in __init__ (declared for the type checker: nn.Module's getattr is untyped).
    pixel_max: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor

    def __init__(
        self,
        layers: Sequence[str],
        weights: str | LoadedWeights = DEFAULT_SOURCE,
        pooling: str = "max",
        weights_preprocessing: str | None = None,
    ) -> None:
        super().__init__()
        loaded = weights if isinstance(weights, LoadedWeights) else load_weights(weights, weights_preprocessing)
        if pooling not in POOLING:
            raise ConfigError(f"unknown pooling '{pooling}': use one of {', '.join(POOLING)}")
        self.arch, self.source, self.sha256 = loaded.arch, loaded.source, loaded.sha256
        # Per-layer divisors measured once for this source (None: measured on the images at hand).
        self.norms_table = loaded.feature_norms if pooling == "max" else None
        check_layers(layers, self.arch)
        self.layers = tuple(dict.fromkeys(layers))
        all_names = layer_names(self.arch)
        self.depth = max(all_names.index(n) for n in self.layers) + 1 if self.layers else 0
        self.names = all_names[: self.depth]

        pre = PREPROCESSING[loaded.preprocessing]
        self.bgr = pre["bgr"]
        self.register_buffer("pixel_max", torch.tensor(pre["pixel_max"]))
        mean = torch.tensor(pre["mean"]).view(1, 3, 1, 1)
        std = torch.tensor(pre["std"]).view(1, 3, 1, 1)
        if self.bgr:
            mean, std = mean.flip(1), std.flip(1)
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

        self.convs = nn.ModuleDict()
        for name in self.names:
            if name.startswith("conv"):
                w = loaded.state[f"{name}.weight"]
                conv = nn.Conv2d(w.shape[1], w.shape[0], 3, padding=1)
                conv.weight.data.copy_(w)
                cast(torch.Tensor, conv.bias).data.copy_(loaded.state[f"{name}.bias"])  # bias=True: never None
                self.convs[name] = conv
        self.pooling = pooling
        self.requires_grad_(False)
        self.eval()

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """RGB [0, 1] -> what the weights were trained on."""
        if self.bgr:
            x = x.flip(1)
        return (x * self.pixel_max - self.mean) / self.std

    def forward(self, x: torch.Tensor, layers: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        """``{name: activation}`` for ``layers`` (default: those given at construction), raw (not
        divided by :meth:`feature_norms`); the walk stops at the deepest of them.

        ``x`` is RGB in [0, 1], (B, 3, H, W). ``layers`` may name any layer up to the deepest one
        the extractor was built for; ConfigError otherwise.
        """
        wanted = set(self.layers if layers is None else layers)
        missing = wanted - set(self.names)
        if missing:
            raise ConfigError(
                f"layer {', '.join(sorted(missing))} is deeper than this extractor was built for "
                f"(up to {self.names[-1]})"
            )
        depth = max(self.names.index(n) for n in wanted) + 1 if wanted else 0
        out: dict[str, torch.Tensor] = {}
        h = self.preprocess(x)
        for name in self.names[:depth]:
            if name.startswith("conv"):
                h = self.convs[name](h)
            elif name.startswith("relu"):
                # In place unless the caller asked for the conv output just before it (safe under
                # autograd: ReLU's backward needs its output, the convolution's its input).
                h = F.relu(h, inplace=f"conv{name[4:]}" not in wanted)
            elif self.pooling == "max":
                h = F.max_pool2d(h, 2, 2)
            else:
                h = F.avg_pool2d(h, 2, 2)
            if name in wanted:
                out[name] = h
        return out

    def feature_norms(
        self, sample: torch.Tensor | None = None, layers: Sequence[str] | None = None
    ) -> dict[str, float]:
        """The per-layer divisors of the perceptual loss (layer balance) for ``layers`` (default: all built).

        From the weight source's table (:attr:`stylist.weights.WeightSource.feature_norms`) when it has
        one; otherwise measured on ``sample`` (RGB [0, 1], (B, 3, H, W)) with :func:`measure_feature_norms`.
        ConfigError when a source without a table is given no sample.
        """
        layers = list(self.layers if layers is None else layers)
        if self.norms_table is not None and all(n in self.norms_table for n in layers):
            return {n: self.norms_table[n] for n in layers}
        if sample is None:
            raise ConfigError(
                f"the weights {self.source} have no feature-norm table; give sample images to measure one"
            )
        with torch.no_grad():
            return measure_feature_norms(self(sample, layers))

    def train(self, mode: bool = True) -> VGGFeatures:
        return super().train(False)  # always frozen: no dropout or batch norm, but keep eval semantics
