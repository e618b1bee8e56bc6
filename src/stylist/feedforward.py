"""Feed-forward style networks (Johnson, Alahi and Fei-Fei, ECCV 2016).

One network per painting, trained once on a folder of photographs against the same VGG
losses as optimisation transfer; afterwards a photo is stylised in one forward pass.

Departures from the paper, each for a reason:

- **Instance normalisation** (Ulyanov, Vedaldi and Lempitsky 2016) instead of batch
  normalisation, by default: it removes each image's contrast before styling and gives
  visibly better results at any batch size. ``norm="batch"`` restores the paper's choice.
- **Upsampling by resizing, then convolving** (nearest neighbour x2 and a 3x3 convolution)
  instead of fractionally-strided convolutions, which leave checkerboard artefacts
  (Odena, Dumoulin and Olah, *Deconvolution and Checkerboard Artifacts*, Distill 2016).
- **Reflection padding** instead of zero padding, so that the borders carry no dark frame.
- **A sigmoid output** in [0, 1] (Stylist's image convention) instead of the paper's
  scaled tanh in the mean-subtracted 0..255 range.
- **The losses are Stylist's**: the one perceptual loss of every method
  (:class:`stylist.losses.PerceptualLoss`), with ``mean`` normalisation (features and Gram
  matrices divided by C*H*W) and each VGG layer divided by its feature norm from the weight
  source's table (its mean activation over photographs; "layer balance"), so that the default weights (content 2,
  style 40, TV 200 on the mean squared TV) mean the same at every crop size and the five
  style layers weigh in alike; Johnson et al. used raw VGG-16 activations.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import torch
import torch.nn.functional as F
from torch import nn

from . import __version__
from .color import luminance, with_chroma
from .devices import TRAIN_PRECISIONS, resolve_device, train_dtype
from .errors import ConfigError, StylistError, check_one_each, first_line
from .image import (
    ImageLike,
    check_tensor,
    crop_to,
    fit_min_side,
    load_tensor,
    pad_to_fit,
    resize_long_side,
    source_name,
    to_pil,
    write_atomic,
)
from .losses import PerceptualLoss, equal_weights, grid_loss, tv_loss
from .tiling import RunningMoments, Tile, choose_tile, grid
from .training import (  # noqa: F401  (TrainProgress, Interrupted: the names callers import from here)
    OPTIONS_ADDED_SINCE,
    Batches,
    CropDataset,
    FitConfig,
    Interrupted,
    TrainCallback,
    TrainProgress,
    TrainResult,
    check_checkpoint,
    fit,
    gather_floats,
    gather_images,
    parameter_checksum,
    plain_config,
    process_device,
    rank_and_world,
    resume_options,
    seed_everything,
    steps_for,
)
from .vgg import VGGFeatures, check_layers
from .weights import SOURCES, sha256_file

NORMS = ("instance", "batch")
MODEL_FORMAT = "stylist-feedforward"
CHECKPOINT_KIND = "stylist.train"
# The network needs sides divisible by 4 (two stride-2 convolutions, two x2 upsamplings);
# other sizes are padded by reflection and cropped back.
MULTIPLE = 4
GRID_PERIOD = 4  # px: the network's two 2x upsamplings (the grid loss's period)
MIN_SIDE = 8  # the smallest side core() takes: a multiple of 4 over the first layer's 4-px reflection pad
MODELS_DIR = Path(__file__).resolve().parent / "models"


# --- the network ---------------------------------------------------------------------------------


class InstanceNorm(nn.InstanceNorm2d):
    """``nn.InstanceNorm2d`` (same weights, same results) whose statistics a tiled run can set from
    outside: while :attr:`tiled` is set, it normalises with the whole image's statistics, gathered
    tile by tile (:func:`stylize_tiled`), instead of the statistics of the tile it is given."""

    tiled: _TiledNorms | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.tiled is None:
            return super().forward(x)
        return self.tiled.normalize(self, x)


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "instance":
        return InstanceNorm(channels, affine=True)
    return nn.BatchNorm2d(channels)


class ConvLayer(nn.Sequential):
    """Reflection pad, convolution, normalisation, ReLU (the last two optional)."""

    def __init__(
        self, cin: int, cout: int, kernel: int, stride: int = 1, norm: str | None = "instance", relu: bool = True
    ) -> None:
        layers: list[nn.Module] = [nn.ReflectionPad2d(kernel // 2), nn.Conv2d(cin, cout, kernel, stride)]
        if norm:
            layers.append(_norm(norm, cout))
        if relu:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions with a skip connection (no ReLU after the sum, as in the paper)."""

    def __init__(self, channels: int, norm: str) -> None:
        super().__init__()
        self.body = nn.Sequential(
            ConvLayer(channels, channels, 3, norm=norm), ConvLayer(channels, channels, 3, norm=norm, relu=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Upsample(nn.Module):
    """Nearest-neighbour x2, then a convolution (no checkerboard, see the module notes)."""

    def __init__(self, cin: int, cout: int, norm: str) -> None:
        super().__init__()
        self.conv = ConvLayer(cin, cout, 3, norm=norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class TransformerNet(nn.Module):
    """Johnson et al.'s image transformation network: RGB [0, 1] in, RGB [0, 1] out, same size.

    9x9 convolution, two stride-2 convolutions, five residual blocks, two upsamplings, 9x9
    convolution. ``forward`` takes any size; :meth:`core` needs sides divisible by 4.
    """

    def __init__(self, norm: str = "instance", width: int = 32) -> None:
        super().__init__()
        if norm not in NORMS:
            raise ConfigError(f"unknown norm '{norm}': use one of {', '.join(NORMS)}")
        self.norm, self.width = norm, width
        w = width
        self.encode = nn.Sequential(
            ConvLayer(3, w, 9, norm=norm),
            ConvLayer(w, 2 * w, 3, 2, norm=norm),
            ConvLayer(2 * w, 4 * w, 3, 2, norm=norm),
        )
        self.residuals = nn.Sequential(*(ResidualBlock(4 * w, norm) for _ in range(5)))
        self.decode = nn.Sequential(
            Upsample(4 * w, 2 * w, norm), Upsample(2 * w, w, norm), ConvLayer(w, 3, 9, norm=None, relu=False)
        )

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The residual blocks' output, (B, 4 * width, H / 4, W / 4), of ``x`` whose sides are multiples of 4."""
        return self.residuals(self.encode(x))

    def render(self, h: torch.Tensor) -> torch.Tensor:
        """:meth:`features` back to RGB in [0, 1], (B, 3, 4 h, 4 w)."""
        return torch.sigmoid(self.decode(h))

    def core(self, x: torch.Tensor) -> torch.Tensor:
        return self.render(self.features(x))

    def forward(
        self, x: torch.Tensor, on_features: Callable[[torch.Tensor], torch.Tensor] | None = None
    ) -> torch.Tensor:
        """``x`` (B, 3, H, W) in [0, 1] stylised; ``on_features``, when given, replaces the :meth:`features` of
        ``x`` padded at the bottom and right to sides that are multiples of 4 before they are rendered
        (``stylist video``'s consistency)."""
        # Sides padded to a multiple of 4 and to MIN_SIDE (the 9x9 reflection pad needs 5 px), cropped back.
        padded = pad_to_fit(x, MIN_SIDE, MULTIPLE)
        if on_features is None:
            return crop_to(self.core(padded), x.shape[-2:])
        return crop_to(self.render(on_features(self.features(padded))), x.shape[-2:])


# --- tiled inference (issue 18) -------------------------------------------------------------------------

# Receptive-field radius of TransformerNet, px at the input: 9x9 conv (4), two stride-2 3x3 convs
# (1 + 2), ten 3x3 convs at a quarter size (40), two upsampling 3x3 convs (2 + 1), 9x9 conv (4) = 54,
# and up to 3 px more where nearest-neighbour upsampling rounds; a tile's margin is the next multiple
# of the stride (4).
MARGIN = 60
# Peak bytes per input pixel of a whole-image float32 forward pass (measured by benchmarks/resolution.py
# on the CPU; the 32-channel full-size activations and their padded copies); what the automatic tile
# size plans with.
BYTES_PER_PIXEL = 1200.0


class _Gathered(Exception):
    """Raised by the norm being gathered once its tile's sums are taken: the rest of the network is not needed."""


class _TiledNorms:
    """The instance norms of one network during a tiled run: the whole-image statistics known so far,
    and the running sums of the norm whose statistics the current pass gathers."""

    def __init__(self, net: nn.Module) -> None:
        self.layers = [m for m in net.modules() if isinstance(m, InstanceNorm)]
        self.index = {id(m): k for k, m in enumerate(self.layers)}
        self.mean: list[torch.Tensor] = []
        self.var: list[torch.Tensor] = []
        self.moments: RunningMoments | None = None  # set while a pass gathers norm number len(self.mean)
        self.tile: Tile | None = None

    def __enter__(self) -> _TiledNorms:
        for m in self.layers:
            m.tiled = self
        return self

    def __exit__(self, *exc: object) -> None:
        for m in self.layers:
            m.tiled = None

    def normalize(self, m: InstanceNorm, x: torch.Tensor) -> torch.Tensor:
        k = self.index[id(m)]
        if k == len(self.mean):  # the norm being gathered: its features' sums over the tile's interior
            assert self.moments is not None and self.tile is not None
            self.moments.add(self.tile.interior(x, x.shape[-2] / (self.tile.bottom - self.tile.top)))
            raise _Gathered
        mean = self.mean[k].to(x.device, torch.float32).view(1, -1, 1, 1)
        scale = torch.rsqrt(self.var[k].to(x.device, torch.float32) + m.eps).view(1, -1, 1, 1)
        y = (x.float() - mean) * scale
        if m.affine:
            y = y * m.weight.view(1, -1, 1, 1) + m.bias.view(1, -1, 1, 1)
        return y.to(x.dtype)

    def gather(self, net: TransformerNet, padded: torch.Tensor, tiles: list[Tile], device: torch.device) -> None:
        """One pass over the tiles, up to the next norm: its whole-image mean and variance."""
        self.moments = RunningMoments()
        for tile in tiles:
            self.tile = tile
            try:
                net.core(tile.region(padded).to(device))
            except _Gathered:
                pass
        self.mean.append(self.moments.mean())
        self.var.append(self.moments.variance())
        self.moments, self.tile = None, None


@torch.no_grad()
def stylize_tiled(net: TransformerNet, x: torch.Tensor, tile: int, margin: int = MARGIN) -> torch.Tensor:
    """``net(x)`` for one image ``x`` (1, 3, H, W) in [0, 1], computed in tiles of at most ``tile`` px a
    side (plus ``margin`` px of context on each inner side): the same result up to floating-point
    rounding (about 1e-6), in memory that grows with the tile, not the image. Returns (1, 3, H, W) on
    ``x``'s device.

    Instance norm takes its statistics from the whole image, not the tile (per-tile statistics would
    give each tile its own contrast, a seam at every border): the statistics of norm k depend on those
    of norms 1..k-1, so pass k runs every tile up to norm k, normalising with the k-1 known ones, and
    sums its features over the tiles' interiors (each position once). Fifteen norms cost about seven
    whole-image passes in all; a last pass computes each tile and keeps its interior. Batch norm (eval
    mode) needs no pass. Johnson et al. ran whole images only; the tiling is Stylist's.
    """
    device = next(net.parameters()).device
    h, w = x.shape[-2:]
    padded = pad_to_fit(x.cpu(), MIN_SIDE, MULTIPLE)
    tiles = grid(padded.shape[-2], padded.shape[-1], tile, margin, MULTIPLE)
    out = torch.empty(1, 3, padded.shape[-2], padded.shape[-1])
    with _TiledNorms(net) as norms:
        for _ in norms.layers:
            norms.gather(net, padded, tiles, device)
        for t in tiles:
            t.place(out, net.core(t.region(padded).to(device)).float().cpu())
    return crop_to(out, (h, w)).to(x.device)


# --- training ---------------------------------------------------------------------------------------


@dataclass
class FeedForwardConfig:
    """Every option of ``stylist train``; the CLI builds its flags from these fields."""

    # The painting whose style the network learns.
    style: str = ""
    # Folders of training photographs (searched recursively; unreadable files are skipped).
    data: tuple[str, ...] = ()
    # Optimiser steps in all; None = --epochs passes over the data.
    steps: int | None = None
    # Passes over the data when --steps is not given.
    epochs: float = 2.0
    # Photos per step (per process under torchrun).
    batch_size: int = 8
    # Side of the square training crops, px.
    image_size: int = 256
    # Long side of the painting when its Gram matrices are taken, px; None = twice the crop
    # size, so the strokes keep the scale they have in a painting seen at 512 px.
    style_size: int | None = None
    # Adam's step size.
    lr: float = 1e-3
    # Weight of the content loss (alpha).
    content_weight: float = 2.0
    # Weight of the style loss (beta). 10, not the recipe's 40: with Stylist's balanced losses,
    # 40 let the painting's texture cover the photo's shapes (docs/models/README.md shows both).
    style_weight: float = 10.0
    # Weight of the total-variation term: mean squared difference of neighbouring pixels.
    tv_weight: float = 200.0
    # Weight of the grid loss (losses.grid_loss at 4 px, the period of the network's two 2x
    # upsamplings): it keeps the network from weaving a fixed pattern on that grid, which the
    # VGG-measured losses cannot see (the built-in styles trained without it wove one of about 4
    # levels of 255; 25 steps at 5000 took starry-night's to 0.55, the photos' own being 0.45).
    # Not in Johnson et al. (flagged departure); 0 turns it off.
    grid_weight: float = 5000.0
    # VGG layers of the content loss.
    content_layers: tuple[str, ...] = ("relu4_2",)
    # VGG layers of the style loss. relu5_1 is left out (a departure from the recipe, as in stylist
    # transfer's defaults): its Gram term stamped a painting's objects, such as The Starry Night's
    # stars, onto faces and skies; without it the built-in styles keep more of the photo and come
    # closer to their paintings on the quality benchmark (docs/models/starry-night.md).
    style_layers: tuple[str, ...] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
    # Weight of each style layer; None = 1/n each (0.25 for four layers).
    style_layer_weights: tuple[float, ...] | None = None
    # The loss network: a name from stylist.weights.SOURCES or a weights file.
    weights: str = "vgg19-caffe"
    # instance (Ulyanov et al., default) or batch (the paper's).
    norm: str = "instance"
    # Channels of the first layer (32 in the paper; 16 makes a network 4x cheaper).
    width: int = 32
    # auto (cuda, mps, cpu) or an explicit torch device. Under torchrun, one GPU per process.
    device: str = "auto"
    # auto (bf16 on GPUs, fp32 on CPUs), fp32, bf16 or fp16: autocast for the network and VGG.
    precision: str = "auto"
    # Seed for the network's initial weights, the crop positions and the data order.
    seed: int = 0
    # Processes that decode and crop photos beside training (0 = in the training process; at most
    # the CPUs this process may use).
    workers: int = 2
    # Stop after this many seconds of training, whatever --steps says (the model is written
    # with the steps it reached); None = no limit.
    time_limit: float | None = None
    # Start from the weights of this model (a built-in style name or a model file) instead of random
    # ones: fine-tuning, e.g. a built-in style on more photos. Its norm and width must be these.
    init: str | None = None

    def __post_init__(self) -> None:
        # One folder may be given as a string (the API before several folders, and older checkpoints).
        self.data = (self.data,) if isinstance(self.data, str) else tuple(self.data or ())
        self.data = tuple(d for d in self.data if d)

    def validate(self) -> None:
        if not self.style:
            raise ConfigError("--style: give the painting to learn")
        if not self.data:
            raise ConfigError("--data: give a folder of training photographs")
        for name in ("batch_size", "image_size", "width"):
            if getattr(self, name) <= 0:
                raise ConfigError(
                    f"--{name.replace('_', '-')} must be a positive whole number; got {getattr(self, name)}"
                )
        if self.image_size < 32:
            raise ConfigError(f"--image-size must be at least 32 px (relu5_1 needs 16 px); got {self.image_size}")
        if self.steps is not None and self.steps <= 0:
            raise ConfigError(f"--steps must be a positive whole number; got {self.steps}")
        if not (self.epochs > 0 and math.isfinite(self.epochs)):
            raise ConfigError(f"--epochs must be a positive number; got {self.epochs}")
        if self.style_size is not None and self.style_size < 16:
            raise ConfigError(f"--style-size must be at least 16 px; got {self.style_size}")
        for name in ("lr", "content_weight", "style_weight"):
            value = getattr(self, name)
            if not (value > 0 and math.isfinite(value)):
                raise ConfigError(f"--{name.replace('_', '-')} must be a positive number; got {value}")
        for name in ("tv_weight", "grid_weight"):
            if not (getattr(self, name) >= 0 and math.isfinite(getattr(self, name))):
                raise ConfigError(f"--{name.replace('_', '-')} must be zero or positive; got {getattr(self, name)}")
        if self.style_layer_weights is not None:
            check_one_each("--style-layer-weights", self.style_layer_weights, len(self.style_layers), "style layer")
        if self.norm not in NORMS:
            raise ConfigError(f"unknown --norm '{self.norm}': use one of {', '.join(NORMS)}")
        if self.precision not in TRAIN_PRECISIONS:
            raise ConfigError(f"unknown --precision '{self.precision}': use one of {', '.join(TRAIN_PRECISIONS)}")
        if self.weights not in SOURCES and not Path(self.weights).exists():
            raise ConfigError(
                f"unknown weights source '{self.weights}': use one of {', '.join(SOURCES)}, or a path to a weights file"
            )
        if self.weights in SOURCES:  # a weights file's network is known only once it is read
            check_layers(self.content_layers, SOURCES[self.weights].arch, "content layer")
            check_layers(self.style_layers, SOURCES[self.weights].arch, "style layer")
        if self.time_limit is not None and not self.time_limit > 0:
            raise ConfigError(f"--time-limit must be a positive number of seconds; got {self.time_limit}")
        if self.workers < 0:
            raise ConfigError(f"--workers must be 0 or more; got {self.workers}")


# Johnson et al.'s own setting: VGG-16, content relu2_2, style relu1_2 relu2_2 relu3_3 relu4_3.
# The weights are Stylist's balanced-loss equivalents, not the paper's raw numbers (see the notes).
TRAIN_PRESETS: dict[str, dict] = {
    "johnson2016": {
        "weights": "vgg16-torchvision",
        "content_layers": ("relu2_2",),
        "style_layers": ("relu1_2", "relu2_2", "relu3_3", "relu4_3"),
        "epochs": 2.0,
        "batch_size": 4,
        "lr": 1e-3,
        "norm": "batch",
    },
}


def train_preset(name: str | None, **options: Any) -> FeedForwardConfig:  # Any: FeedForwardConfig's fields
    if name is None:
        return FeedForwardConfig(**options)
    if name not in TRAIN_PRESETS:
        raise ConfigError(f"unknown preset '{name}': use one of {', '.join(TRAIN_PRESETS)}")
    return FeedForwardConfig(**{**TRAIN_PRESETS[name], **options})


@dataclass
class _Losses:
    """The loss network, the one perceptual loss and the painting's fixed style targets."""

    vgg: VGGFeatures
    loss: PerceptualLoss  # feature norms from the weight source's table (or measured, see _build_losses)
    targets: dict[str, torch.Tensor]  # feature-normed, mean-normalised Gram of the painting per style layer


def style_target(cfg: FeedForwardConfig) -> torch.Tensor:
    """The painting as the losses see it: RGB [0, 1], long side ``style_size``."""
    # issue 19: a painting too thin for relu5_1 (16 px) is enlarged, with a warning
    return fit_min_side(
        load_tensor(cfg.style, "style"), 16, source_name(cfg.style), cfg.style_size or 2 * cfg.image_size
    )


@torch.no_grad()
def _build_losses(
    cfg: FeedForwardConfig,
    device: torch.device,
    painting: torch.Tensor,
    photos: torch.Tensor,
    feature_norms: dict[str, float] | None,
) -> _Losses:
    """The losses; ``feature_norms`` from a checkpoint, else the source's table, else measured on ``photos``
    (the first training crops) for a source without a table."""
    layers = [*cfg.content_layers, *cfg.style_layers]
    # torch's stubs of Module.to omit memory_format (hence the ignore)
    vgg = VGGFeatures(layers, weights=cfg.weights).to(device).to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    check_layers(cfg.content_layers, vgg.arch, "content layer")
    check_layers(cfg.style_layers, vgg.arch, "style layer")
    if feature_norms is None:
        feature_norms = vgg.feature_norms(photos.to(device))
    style_weights = cfg.style_layer_weights or [1.0 / len(cfg.style_layers)] * len(cfg.style_layers)
    loss = PerceptualLoss(equal_weights(cfg.content_layers), dict(zip(cfg.style_layers, style_weights)), feature_norms)
    targets = loss.style_targets({n: f.float() for n, f in vgg(painting.to(device)).items()})
    return _Losses(vgg, loss, targets)


def compute_losses(
    cfg: FeedForwardConfig, losses: _Losses, photos: torch.Tensor, out: torch.Tensor, dtype: torch.dtype | None
) -> dict[str, torch.Tensor]:
    """The weighted loss terms of one batch (each averaged over the batch)."""
    with torch.autocast(out.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
        with torch.no_grad():
            target = losses.vgg(photos)
        feats = losses.vgg(out)
    content = losses.loss.content(feats, losses.loss.content_targets(target))
    style = losses.loss.style({n: f.float() for n, f in feats.items()}, losses.targets)
    tv = tv_loss(out.float(), "l2")
    terms = {"content": cfg.content_weight * content, "style": cfg.style_weight * style, "tv": cfg.tv_weight * tv}
    if cfg.grid_weight > 0:
        terms["grid"] = cfg.grid_weight * grid_loss(out, GRID_PERIOD)
    terms["total"] = sum(terms.values(), torch.zeros((), device=out.device))
    return terms


def _first_photos(dataset: CropDataset, count: int) -> torch.Tensor:
    return torch.stack([dataset[i][0] for i in range(min(count, len(dataset)))])


def train(cfg: FeedForwardConfig, callback: TrainCallback | None = None, resume: dict | None = None) -> TrainResult:
    """Train a network for ``cfg.style`` on the photos under the folders ``cfg.data`` with :func:`stylist.training.fit`.

    ``callback`` after every step (True stops). Under torchrun each process trains on its own share
    of every epoch and DDP averages the gradients, so all processes hold the same network.
    ``resume`` is a state from :attr:`TrainProgress.checkpoint` (see :func:`resume_config` for the
    options it fixes): the run carries on at its step with the same batches, crops and random
    numbers the unbroken run would have had. Returns a :class:`stylist.training.TrainResult` whose
    model is on the CPU, float32, eval mode, and whose metadata is what :func:`save_model` stores.
    """
    cfg.validate()
    if resume is not None:
        check_checkpoint(resume, CHECKPOINT_KIND, "stylist train")
    device = process_device(cfg.device)
    world = rank_and_world()[1]
    dtype = train_dtype(cfg.precision, device)
    seed_everything(cfg.seed)
    painting = style_target(cfg)  # read first: a bad painting is reported before the data is scanned
    files, unreadable = gather_images(cfg.data, "--content")
    dataset = CropDataset(files, cfg.image_size, cfg.seed)
    data = Batches(dataset, cfg.batch_size, cfg.seed, cfg.workers)
    total = cfg.steps or steps_for(cfg.epochs, len(files), cfg.batch_size, world)

    # torch's stubs of Module.to omit memory_format (hence the ignore)
    net = TransformerNet(cfg.norm, cfg.width).to(device).to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    if cfg.init is not None and resume is None:  # a resumed run has its own weights
        _load_init(net, cfg)
    saved_norms = resume["extra"]["feature_norms"] if resume is not None else None
    losses = _build_losses(cfg, device, painting, _first_photos(dataset, 16), saved_norms)

    def loss_fn(model: nn.Module, photos: torch.Tensor) -> dict[str, torch.Tensor]:
        out = model(photos)  # under fit's autocast
        with torch.autocast(device.type, enabled=False):  # the loss sums in float32 (VGG itself autocasts)
            return compute_losses(cfg, losses, photos, out, dtype)

    def preview(photo: torch.Tensor) -> torch.Tensor:
        net.eval()
        with torch.no_grad(), torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            out = net(photo.to(device)).float().cpu()
        net.train()
        return out

    fit_config = FitConfig(
        steps=total,
        lr=cfg.lr,
        device=device,
        dtype=dtype,
        kind=CHECKPOINT_KIND,
        config=asdict(cfg),
        extra={"feature_norms": losses.loss.feature_norms},
        skipped=unreadable,
        memory_format=torch.channels_last,
        time_limit=cfg.time_limit,
    )
    result = fit(net, loss_fn, data.from_step, fit_config, callback, resume, preview=preview)
    checksums = gather_floats(parameter_checksum(net))
    result.metadata = _metadata(cfg, result, losses.loss.feature_norms, world, checksums, len(files))
    result.model = net.float().cpu().eval()
    return result


def _load_init(net: TransformerNet, cfg: FeedForwardConfig) -> None:
    """``net``'s weights from the model ``cfg.init``; ConfigError (one line) when its shape differs."""
    model = load_model(cast(str, cfg.init), device="cpu", precision="fp32")
    if (model.metadata.get("norm"), model.metadata.get("width")) != (cfg.norm, str(cfg.width)):
        raise ConfigError(
            f"{cfg.init}: --init has norm {model.metadata.get('norm')} and width {model.metadata.get('width')}, "
            f"this run {cfg.norm} and {cfg.width}; give the same --norm and --width"
        )
    with torch.no_grad():
        for mine, theirs in zip(net.state_dict().values(), model.net.state_dict().values()):
            mine.copy_(theirs)


# Options a resumed run may change: none alters the state it carries on from.
RESUME_MAY_CHANGE = ("steps", "epochs", "device", "workers", "precision", "time_limit")


def resume_config(state: dict, given: dict) -> FeedForwardConfig:
    """The checkpoint's options with those ``given`` (field -> value) that a resume may change.

    ConfigError (one line) for a file that is not a current checkpoint of ``stylist train``, or when
    ``given`` changes an option outside :data:`RESUME_MAY_CHANGE`.
    """
    check_checkpoint(state, CHECKPOINT_KIND, "stylist train")
    return FeedForwardConfig(**resume_options(state["config"], given, RESUME_MAY_CHANGE, OPTIONS_ADDED_SINCE))


def _metadata(
    cfg: FeedForwardConfig, result: TrainResult, feature_norms: dict, world: int, checksums: list[float], images: int
) -> dict[str, str]:
    step, skipped = result.step, result.state["skipped"]
    last = result.history[-1] if result.history else {}
    return {
        "format": MODEL_FORMAT,
        "version": "1",
        "norm": cfg.norm,
        "width": str(cfg.width),
        "style_name": Path(cfg.style).name,
        "style_sha256": sha256_file(Path(cfg.style)),
        "config": json.dumps(plain_config(asdict(cfg))),
        "steps": str(step),
        "images": str(images),
        "skipped": str(skipped),
        "final_losses": json.dumps({k: round(v, 6) for k, v in last.items() if k != "step"}),
        "feature_norms": json.dumps(feature_norms),
        "processes": str(world),
        "stopped": result.stopped,
        "train_seconds": str(round(result.train_seconds, 1)),  # resumed parts included
        "rank_checksums": json.dumps(checksums),
        "stylist_version": __version__,
        "torch_version": torch.__version__,
    }


# --- model files ------------------------------------------------------------------------------------


def save_model(result: TrainResult, path: str | os.PathLike, half: bool = False) -> Path:
    """Write the network and its metadata as safetensors, atomically; ``half`` stores float16."""
    from safetensors.torch import save_file

    state = {
        k: (v.half() if half and v.is_floating_point() else v).contiguous()
        for k, v in result.model.state_dict().items()
    }
    metadata = {**result.metadata, "dtype": "float16" if half else "float32"}
    path = Path(path)
    write_atomic(path, lambda tmp: save_file(state, tmp, metadata=metadata))
    return path


def builtin_models() -> dict[str, Path]:
    """The networks shipped inside the package: {name: file}."""
    if not MODELS_DIR.is_dir():
        return {}
    return {
        p.stem: p for p in sorted(MODELS_DIR.glob("*.safetensors")) if read_metadata(p).get("format") == MODEL_FORMAT
    }


def resolve_model_path(name_or_path: str | os.PathLike) -> Path:
    """A built-in model's name or a model file -> its path; StylistError (one line) otherwise."""
    builtins = builtin_models()
    if str(name_or_path) in builtins:
        return builtins[str(name_or_path)]
    path = Path(name_or_path)
    if path.is_file():
        return path
    names = ", ".join(builtins) or "none installed"
    if path.exists():
        raise StylistError(
            f"{path}: is not a file; give a model file (.safetensors or .onnx) or a built-in style ({names})"
        )
    raise StylistError(f"{path}: no such model file or built-in style; built-in styles: {names} (see stylist models)")


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """A model file's metadata; StylistError (one line) for a file that is not a Stylist model."""
    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as err:  # safetensors raises several kinds for a foreign file
        raise StylistError(f"{path}: not a Stylist model file ({first_line(err)})") from None
    return meta


class StyleModel:
    """A trained network ready to stylise: ``model(image)`` for PIL images, paths or tensors.

    A PIL image or a path gives a PIL image back, a tensor (B, 3, H, W) in [0, 1] gives a
    tensor. ``size`` scales the input's long side first; ``preserve_color="luminance"``
    keeps the photo's colours (the network's luminance on the photo's chroma); ``tile_size``
    (px; None: only when the image would not fit the device's memory, 0: never) stylises in tiles
    with the whole image's instance-norm statistics (:func:`stylize_tiled`).
    """

    def __init__(
        self, net: TransformerNet, metadata: dict[str, str], device: str = "auto", precision: str = "auto"
    ) -> None:
        self.device = resolve_device(device)
        # Inference runs in float32, NCHW, unless asked otherwise: measured on an H100 at batch 1
        # (benchmarks/feedforward.py, docs/benchmarks.md), bf16 autocast and channels-last made this
        # small, memory-bound network slower (reflection padding and instance norm), not faster.
        self.dtype = None if precision == "auto" else train_dtype(precision, self.device)
        self.metadata = metadata
        self.net = net.to(self.device).eval().requires_grad_(False)

    @property
    def name(self) -> str:
        """The style's name: the built-in style's or the model file's (``starry-night``), else its painting's."""
        if self.metadata.get("name"):
            return self.metadata["name"]
        return Path(self.metadata.get("path") or self.metadata.get("style_name", "model")).stem

    @torch.no_grad()
    def stylize(
        self,
        images: torch.Tensor,
        preserve_color: str = "none",
        tile_size: int | None = None,
        on_features: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> the same, on the CPU.

        ``tile_size`` (px): None tiles only an image too big for the device's memory, 0 never tiles, a
        positive value tiles any image larger than it (:func:`stylize_tiled`: the same result in
        bounded memory). ConfigError for a negative value. ``on_features``: see :meth:`TransformerNet.forward`
        (on the device, in the run's precision); not called when the image is stylised in tiles.
        """
        hw = (images.shape[-2], images.shape[-1])
        tile = choose_tile(hw, tile_size, self.device, BYTES_PER_PIXEL * images.shape[0], MARGIN, MULTIPLE)
        x = images.to(self.device) if tile is None else images.cpu()
        with torch.autocast(self.device.type, dtype=self.dtype or torch.float32, enabled=self.dtype is not None):
            if tile is None:
                y = self.net(x, on_features).float()
            else:
                y = torch.cat([stylize_tiled(self.net, image[None], tile) for image in x])
        if preserve_color == "luminance":
            y = with_chroma(luminance(y), x.float())
        elif preserve_color != "none":
            raise ConfigError(
                f"unknown --preserve-color '{preserve_color}' for a trained network: use none or luminance"
            )
        return y.clamp(0, 1).cpu()

    def __call__(
        self,
        image: ImageLike | torch.Tensor,
        size: int | None = None,
        preserve_color: str = "none",
        tile_size: int | None = None,
    ):
        as_tensor = isinstance(image, torch.Tensor)
        # ValueError: see image.py
        x = check_tensor(cast(torch.Tensor, image), "input") if as_tensor else load_tensor(image, "input")
        if size is not None:
            x = resize_long_side(x, size)
        y = self.stylize(x, preserve_color, tile_size)
        return y if as_tensor else to_pil(y)


def load_model(name_or_path: str | os.PathLike, device: str = "auto", precision: str = "auto") -> StyleModel:
    """A built-in style (``stylist models``) or a model file from ``stylist train``, ready to use."""
    from safetensors.torch import load_file

    path = resolve_model_path(name_or_path)
    meta = read_metadata(path)
    if meta.get("format") != MODEL_FORMAT:
        raise StylistError(
            f"{path}: not a Stylist feed-forward model (no '{MODEL_FORMAT}' metadata); train one with stylist train"
        )
    net = TransformerNet(meta.get("norm", "instance"), int(meta.get("width", "32")))
    state = {k: v.float() for k, v in load_file(str(path)).items()}
    try:
        net.load_state_dict(state)
    except RuntimeError:
        raise StylistError(
            f"{path}: the weights do not fit the network its metadata describes; the file is damaged"
        ) from None
    return StyleModel(net, {**meta, "path": str(path)}, device, precision)


_Key = TypeVar("_Key")  # what the caller tags each image with


def batches_by_size(
    items: Sequence[tuple[_Key, torch.Tensor]], batch_size: int
) -> list[list[tuple[_Key, torch.Tensor]]]:
    """Group (key, image) pairs into batches of images of the same size, keeping their order within a size."""
    groups: dict[tuple[int, int], list] = {}
    for item in items:
        groups.setdefault((item[1].shape[-2], item[1].shape[-1]), []).append(item)
    out = []
    for group in groups.values():
        out += [group[i : i + batch_size] for i in range(0, len(group), batch_size)]
    return out
