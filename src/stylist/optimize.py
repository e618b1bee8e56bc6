"""Optimisation-based style transfer (Gatys, Ecker and Bethge, CVPR 2016).

The result image is optimised directly so that its VGG features match the content
photo at the content layers and the painting's Gram matrices at the style layers:
``alpha * L_content + beta * L_style + gamma * TV``.

Departures from the paper, each switchable:
- coarse-to-fine by default: most iterations run at a quarter and half of the final
  size, a few at full size (``multiscale=False`` gives the paper's single scale);
- the image starts from the content photo by default (the paper starts from noise:
  ``init="noise"``);
- features are taken after the ReLU (``relu4_2``), which is what the paper's Caffe
  network, whose ReLUs run in place, reports as ``conv4_2``;
- the paper used a VGG "normalised" so that each filter's mean activation over ImageNet
  is one, which keeps the five style layers on a comparable footing. The released
  weights are not normalised (mean activations run from about 20 at relu1_1 to about
  400 at relu4_1, so relu4_1 would outweigh relu1_1 a hundred-thousandfold). Stylist
  divides each layer's features by its feature norm, that layer's mean activation over a
  fixed set of photographs, from the weight source's table (:mod:`stylist.weights`; the
  same divisors every method and the metrics use), a per-layer stand-in for the paper's
  normalisation (``layer_balance=False`` uses the raw activations);
- at print size a level too large for the memory (``max_memory``) is optimised in tiles whose sums
  give the whole image's loss and exact gradient (:class:`TiledObjective`, issue 18), so the result
  is the whole-image one up to rounding; L-BFGS then keeps fewer than 100 pairs if memory is short;
- on hardware with fast bfloat16 (CUDA, CPUs with AMX or AVX512-BF16) the VGG passes run in bfloat16
  (the network is cast once) while the image, Grams and losses stay float32 (``precision="fp32"`` turns it off).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, cast

import torch

from .color import COLOR_MODES, prepare_colors, with_chroma
from .devices import (  # noqa: F401  (resolve_device, resolve_precision, PRECISIONS: old import path)
    PRECISIONS,
    cpu_has_fast_bf16,
    resolve_device,
    resolve_precision,
    working_dtype,
)
from .errors import ConfigError, NonFiniteLossError, check_one_each
from .image import (
    ImageLike,
    check_min_side,
    fit_min_side,
    fit_size,
    load_tensor,
    read_picture,
    resize,
    resize_long_side,
    source_name,
)
from .losses import NORMALIZATIONS, TV_KINDS, PerceptualLoss, gram, layer_mask, style_layer_loss, tv_loss
from .masks import load_masks
from .tiling import MIN_TILE, Tile, budget_bytes, check_tile_size, grid, tile_for_budget
from .training import check_checkpoint, cpu_copy, resume_options
from .vgg import POOLING, VGGFeatures, check_layers, layer_names
from .weights import SOURCES

if TYPE_CHECKING:
    from .metrics import MetricsConfig

OPTIMIZERS = ("lbfgs", "adam", "sgd")
INITS = ("content", "noise", "style")
# A loss this many times the lowest seen at the current level counts as a blow-up (see stylize).
BLOWUP = 2.0
DEFAULT_LR = {"lbfgs": 1.0, "adam": 0.02, "sgd": 3e-6}
LBFGS_HISTORY = 100  # curvature pairs L-BFGS keeps (each two image-sized vectors)
# Options a resumed run may change: none of them alters the state it carries on from.
RESUME_MAY_CHANGE = (
    "iterations",
    "early_stop_patience",
    "early_stop_tol",
    "device",
    "precision",
    "max_pixels",
    "max_memory",
    "tile_size",
)
CHECKPOINT_KIND = "stylist.transfer"


# Fields renamed since earlier releases (old name -> new): manifests and checkpoints written with the
# old names still load (see upgrade_config). "Scale" had six meanings; each now has its own name.
RENAMED_FIELDS = {"style_scale": "style_size_ratio", "min_scale_size": "min_level_size"}


def upgrade_config(recorded: dict) -> dict:
    """A recorded TransferConfig dict (a manifest's or checkpoint's) with renamed fields under their new names."""
    return {RENAMED_FIELDS.get(key, key): value for key, value in recorded.items()}


@dataclass
class TransferConfig:
    """Every option of ``stylist transfer``; the CLI builds its flags from these fields."""

    # Longest side of the result in pixels; None = 512 on a CPU, 1024 on a GPU.
    size: int | None = None
    # Optimiser iterations in all, shared out over the levels of the coarse-to-fine schedule.
    iterations: int = 300
    # lbfgs (the paper's), adam or sgd.
    optimizer: str = "lbfgs"
    # Step size; None = 1.0 for L-BFGS, 0.02 for Adam (pixels are in [0, 1]), 3e-6 for SGD
    # (momentum 0.9, on the gradient times the pixel count, so it holds at every size).
    lr: float | None = None
    # Starting image: content, noise, style, or the path of an image file.
    init: str = "content"
    # Seed for the noise start and anything else random.
    seed: int = 0
    # auto (cuda, then mps, then cpu), or an explicit torch device such as cpu or cuda:1.
    device: str = "auto"
    # Layers whose activations the result must match in the content photo.
    content_layers: tuple[str, ...] = ("relu4_2",)
    # Weight of each content layer; None = equal weights summing to 1.
    content_layer_weights: tuple[float, ...] | None = None
    # Layers whose Gram matrices the result must match in the painting. Departure from Gatys et
    # al. (relu1_1 .. relu5_1): relu5_1 is left out. Its Gram matrices carry object-level content,
    # and at the coarse levels of the schedule its term is 5 to 10 times every other layer's, so the
    # painting's figures (faces, dancers, a Madonna) were painted over the photo. Without it the
    # quality benchmark's figurative pairs keep far more of the photo (median structure 0.42 ->
    # 0.59) at the same style closeness (docs/quality.md, issue 15). The gatys2016 preset keeps it.
    style_layers: tuple[str, ...] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
    # Weight of each style layer; None = 1/n each, as in the paper.
    style_layer_weights: tuple[float, ...] | None = None
    # Share of each painting in a blend of several styles; None = equal shares. Normalised to
    # sum to 1. With masks, each region's style term is multiplied by its painting's share
    # relative to the mean share.
    style_weights: tuple[float, ...] | None = None
    # Size of the paintings relative to the result (long side to long side): 2 paints with
    # brush strokes twice as big, 0.5 half as big.
    style_size_ratio: float = 1.0
    # Keep the photo's colours: none, luminance (transfer luminance only and keep the photo's
    # chroma) or mean-covariance (recolour the paintings to the photo's colour mean and covariance
    # first; 'histogram' is accepted as its old name).
    preserve_color: str = "none"
    # alpha: weight of the content loss.
    content_weight: float = 1.0
    # beta: weight of the style loss. With the default normalisation and layer balance, alpha/beta = 1/30
    # keeps the photo's structure clearly readable under the painting's colours and strokes.
    style_weight: float = 30.0
    # gamma: weight of the total-variation smoothness term (0 turns it off).
    tv_weight: float = 0.0
    # l1 (anisotropic sum |dx| + |dy|) or l2 (sum of squares).
    tv: str = "l1"
    # mean (size-independent, default) or paper (Gatys et al.'s sums); see stylist.losses.
    normalization: str = "mean"
    # Divide each layer's features by its feature norm (its mean activation over photographs, from
    # the weight source's table), standing in for the paper's normalised VGG (see the module notes);
    # False = raw activations.
    layer_balance: bool = True
    # max (the network's own) or avg (Gatys et al.'s choice for synthesis).
    pooling: str = "max"
    # A name from stylist.weights.SOURCES or a path to a weights file.
    weights: str = "vgg19-caffe"
    # For a weights file without metadata: caffe or imagenet.
    weights_preprocessing: str | None = None
    # Coarse-to-fine schedule (quarter, half, full size); False = one level only.
    multiscale: bool = True
    # The coarsest level of the schedule is never smaller than this (long side, px): 96 gives
    # three levels from a 384 px result up.
    min_level_size: int = 96
    # Stop a level early when the loss improved by less than early_stop_tol (relative)
    # over early_stop_patience iterations; 0 disables.
    early_stop_patience: int = 30
    early_stop_tol: float = 1e-3
    # auto (bf16 where the hardware is fast at it), fp32 or bf16.
    precision: str = "auto"
    # Refuse input images with more pixels than this (a guard against decompression bombs);
    # None = Pillow's limit, Image.MAX_IMAGE_PIXELS (about 89.5 million).
    max_pixels: int | None = None
    # Memory the run may use, GB; None = the device's (seven tenths of the free GPU memory, or of the available RAM).
    # A level that would need more is optimised in tiles, with the same loss and gradient.
    max_memory: float | None = None
    # Side of the tiles of a level too large for --max-memory, px; None = chosen from the memory (up to
    # 1024 px first), 0 = never tile (refuse a size that does not fit), a positive value tiles every level
    # larger than it.
    tile_size: int | None = None

    def validate(self) -> None:
        """Raise ConfigError (one line) for a value Stylist cannot use."""
        if self.size is not None and self.size < 16:
            raise ConfigError(f"--size must be at least 16 pixels; got {self.size}")
        if self.iterations <= 0:
            raise ConfigError(f"--iterations must be a positive whole number; got {self.iterations}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"unknown optimizer '{self.optimizer}': use one of {', '.join(OPTIMIZERS)}")
        if self.lr is not None and not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"--lr must be a positive number; got {self.lr}")
        if self.init not in INITS and not Path(self.init).exists():
            raise ConfigError(f"--init '{self.init}' is neither one of {', '.join(INITS)} nor an existing image file")
        for name in ("content_weight", "style_weight"):
            value = getattr(self, name)
            if not (value > 0 and math.isfinite(value)):
                raise ConfigError(f"--{name.replace('_', '-')} must be a positive number; got {value}")
        if not (self.tv_weight >= 0 and math.isfinite(self.tv_weight)):
            raise ConfigError(f"--tv-weight must be zero or positive; got {self.tv_weight}")
        for layers, weights, what in (
            (self.content_layers, self.content_layer_weights, "content"),
            (self.style_layers, self.style_layer_weights, "style"),
        ):
            if not layers:
                raise ConfigError(f"--{what}-layers needs at least one layer")
            if weights is not None:
                check_one_each(f"--{what}-layer-weights", weights, len(layers), f"{what} layer")
                if any(not (w > 0 and math.isfinite(w)) for w in weights):
                    raise ConfigError(f"--{what}-layer-weights must all be positive; got {' '.join(map(str, weights))}")
        if self.style_weights is not None and any(not (w >= 0 and math.isfinite(w)) for w in self.style_weights):
            raise ConfigError(f"--style-weights must be zero or positive; got {' '.join(map(str, self.style_weights))}")
        if self.style_weights is not None and not sum(self.style_weights) > 0:
            raise ConfigError("--style-weights must not all be zero")
        if not (self.style_size_ratio > 0 and math.isfinite(self.style_size_ratio)):
            raise ConfigError(f"--style-size-ratio must be a positive number; got {self.style_size_ratio}")
        if self.preserve_color not in COLOR_MODES:
            raise ConfigError(f"unknown --preserve-color '{self.preserve_color}': use one of {', '.join(COLOR_MODES)}")
        if self.tv not in TV_KINDS:
            raise ConfigError(f"unknown TV kind '{self.tv}': use one of {', '.join(TV_KINDS)}")
        if self.normalization not in NORMALIZATIONS:
            raise ConfigError(f"unknown normalization '{self.normalization}': use one of {', '.join(NORMALIZATIONS)}")
        if self.pooling not in POOLING:
            raise ConfigError(f"unknown pooling '{self.pooling}': use one of {', '.join(POOLING)}")
        if self.weights not in SOURCES and not Path(self.weights).suffix and not Path(self.weights).exists():
            raise ConfigError(
                f"unknown weights source '{self.weights}': use one of {', '.join(SOURCES)}, or a path to a weights file"
            )
        if self.precision not in PRECISIONS:
            raise ConfigError(f"unknown precision '{self.precision}': use one of {', '.join(PRECISIONS)}")
        if self.min_level_size < 16:
            raise ConfigError(f"--min-level-size must be at least 16; got {self.min_level_size}")
        if self.early_stop_patience < 0:
            raise ConfigError(f"--early-stop-patience must be 0 or more; got {self.early_stop_patience}")
        if self.max_pixels is not None and self.max_pixels <= 0:
            raise ConfigError(f"--max-pixels must be a positive number of pixels; got {self.max_pixels}")
        if self.max_memory is not None and not (self.max_memory > 0 and math.isfinite(self.max_memory)):
            raise ConfigError(f"--max-memory must be a positive number of GB; got {self.max_memory}")
        check_tile_size(self.tile_size)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Progress:
    """What the callback receives after every iteration."""

    step: int  # 1-based, counted over all levels
    total: int  # planned iterations over all levels
    level: int  # 0-based level of the coarse-to-fine schedule
    levels: int
    size: tuple[int, int]  # (H, W) of the current level
    losses: dict[str, float]  # weighted terms: content, style, tv, total
    elapsed: float  # seconds since the start
    image: torch.Tensor  # current result (1, 3, h, w) in [0, 1], on the CPU
    # The run's state as a dict for stylist.checkpoint (resume with stylize(..., resume=state)).
    # A call copies the optimiser's memory (L-BFGS: up to 200 image-sized vectors), so call it only
    # to save; checkpoint(optimizer=False) leaves that memory out (a resumed run then rebuilds it).
    checkpoint: Callable[..., dict | None] | None = field(default=None, repr=False)


@dataclass
class TransferResult:
    image: torch.Tensor  # (1, 3, H, W) in [0, 1], CPU
    history: list[dict] = field(default_factory=list)  # one row per iteration
    stopped: str = "done"  # done | early | callback
    elapsed: float = 0.0
    device: str = "cpu"
    precision: str = "fp32"
    alpha: torch.Tensor | None = None  # (1, 1, H, W) in [0, 1]: the content's transparency; None when opaque
    weights_sha256: str = ""  # digest of the VGG weights used (for the manifest)
    # The final state for a checkpoint (see Progress.checkpoint); on Interrupted, the state when stopped.
    checkpoint: Callable[..., dict | None] | None = field(default=None, repr=False)


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a run; ``result`` holds the image so far at the final size."""

    def __init__(self, result: TransferResult) -> None:
        super().__init__("interrupted")
        self.result = result


Callback = Callable[[Progress], "bool | None"]


def default_size(device: torch.device) -> int:
    """Long side of the result when --size is not given: what a default run finishes in about
    two minutes or less. GPUs: 1024 px. CPUs with fast bf16 (AMX, AVX512-BF16): 512 px. Other
    CPUs run VGG in fp32, about twice as slow again: 384 px (256 px x 1.5, the classic figure size)."""
    if device.type != "cpu":
        return 1024
    return 512 if cpu_has_fast_bf16() else 384


def min_side(cfg: TransferConfig | MetricsConfig) -> int:
    """The shortest image side the deepest layer in use can see: 2 ** (poolings before it).

    relu5_1 comes after four 2x2 poolings, so an image needs at least 16 px on its short side;
    relu4_1 and relu4_2 (the defaults' deepest) after three: 8 px.
    """
    order = layer_names("vgg19")  # VGG-16 has the same blocks and poolings, fewer convs
    deepest = max(order.index(n) for n in (*cfg.content_layers, *cfg.style_layers))
    return 2 ** sum(1 for name in order[:deepest] if name.startswith("pool"))


def plan_levels(final_hw: tuple[int, int], cfg: TransferConfig) -> list[tuple[tuple[int, int], int]]:
    """[(size, iterations)] from coarse to fine.

    Up to three scales (1/4, 1/2, 1) whose long side stays at or above ``min_level_size``;
    iterations are shared 4:2:1 so that most of the work runs where it is cheap.
    """
    long_side, short_side = max(final_hw), min(final_hw)
    levels = 1
    if cfg.multiscale:
        while levels < 3 and long_side / 2**levels >= cfg.min_level_size and short_side / 2**levels >= min_side(cfg):
            levels += 1
    shares = [2 ** (levels - 1 - i) for i in range(levels)]
    iters = [max(1, int(cfg.iterations * s / sum(shares))) for s in shares]
    iters[-1] += cfg.iterations - sum(iters)  # rounding goes to the final level
    iters = [max(1, n) for n in iters]
    sizes = [fit_size(final_hw[0], final_hw[1], round(long_side / 2 ** (levels - 1 - i))) for i in range(levels)]
    sizes[-1] = final_hw
    return list(zip(sizes, iters))


def layer_weights(layers: Sequence[str], weights: Sequence[float] | None) -> dict[str, float]:
    if weights is None:
        return {name: 1.0 / len(layers) for name in layers}
    return dict(zip(layers, weights))


def perceptual_loss(cfg: TransferConfig, feature_norms: dict[str, float]) -> PerceptualLoss:
    """The configured loss (layers, layer weights, divisors, normalisation), whole image or tiled."""
    return PerceptualLoss(
        layer_weights(cfg.content_layers, cfg.content_layer_weights),
        layer_weights(cfg.style_layers, cfg.style_layer_weights),
        feature_norms,
        cfg.normalization,
    )


def build_network(cfg: TransferConfig, device: torch.device) -> VGGFeatures:
    net = VGGFeatures(
        list(cfg.content_layers) + list(cfg.style_layers),
        weights=cfg.weights,
        pooling=cfg.pooling,
        weights_preprocessing=cfg.weights_preprocessing,
    )
    check_layers(cfg.content_layers, net.arch, "content layer")
    check_layers(cfg.style_layers, net.arch, "style layer")
    return net.to(device)


class Objective:
    """``alpha * L_content + beta * L_style + gamma * TV`` for one content/style pair at one size,
    on the one perceptual loss (:class:`stylist.losses.PerceptualLoss`).

    ``feature_norms`` (layer -> divisor, see :func:`feature_norms_for`) are looked up (or, for a
    weight source without a table, measured on ``content``) when not given. A coarse-to-fine run
    passes the same divisors to every level of its schedule, so that every level optimises the
    objective the result is judged by.
    """

    def __init__(
        self,
        net: VGGFeatures,
        cfg: TransferConfig,
        content: torch.Tensor,
        styles: Sequence[torch.Tensor],
        style_blend: Sequence[float] | None = None,
        precision: str = "fp32",
        feature_norms: dict[str, float] | None = None,
        masks: Sequence[torch.Tensor] | None = None,
    ) -> None:
        self.net, self.cfg, self.precision = net, cfg, precision
        self.dtype = working_dtype(precision)
        # torch's stubs of Module.to omit memory_format (hence the ignore)
        net.to(self.dtype, memory_format=torch.channels_last)  # type: ignore[call-overload]
        if feature_norms is None:
            feature_norms = feature_norms_for(net, cfg, content, precision)
        self.feature_norms = feature_norms
        self.loss = perceptual_loss(cfg, feature_norms)
        shares = torch.tensor(list(style_blend or [1.0] * len(styles)), dtype=torch.float64)
        shares = shares / shares.sum()
        with torch.no_grad():
            feats = self.net_features(content)
            self.content_targets = self.loss.content_targets(feats)
            grams = [self._style_grams(style, feats) for style in styles]
        # (per-layer masks or None, per-layer target Grams, share) for each style term.
        self.regions: list[tuple[dict[str, torch.Tensor] | None, dict[str, torch.Tensor], float]]
        if masks is None:
            # A blend is one target: the share-weighted mean of the paintings' Grams.
            self.regions = [
                (
                    None,
                    {
                        n: cast(torch.Tensor, sum(float(a) * g[n] for a, g in zip(shares, grams)))
                        for n in cfg.style_layers
                    },
                    1.0,
                )
            ]
        else:
            # Spatial control: one term per painting, its Gram matched inside its own soft
            # region. Each term is weighted by the region's share of the image (a mask of ones
            # is then the unmasked loss), a choice Gatys et al. 2017 leave open.
            rel = shares * len(styles)
            self.regions = []
            for mask, g, r in zip(masks, grams, rel):
                layer_masks = {n: layer_mask(mask, (feats[n].shape[-2], feats[n].shape[-1])) for n in cfg.style_layers}
                self.regions.append((layer_masks, g, float(r)))

    def _style_grams(self, style: torch.Tensor, content_feats: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        sf = self.net_features(style)
        grams = self.loss.style_targets(sf)
        if self.cfg.normalization == "paper":
            # The paper's Gram is a sum over positions, and its formula assumes the painting
            # and the result have the same number M of them. A painting of another shape
            # would give a target the result cannot reach (too large or too small by
            # M_style / M_result), so the target is rescaled to the result's M.
            for n in grams:
                grams[n] = grams[n] * (_positions(content_feats[n]) / _positions(sf[n]))
        return grams

    def net_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return _features(self.net, x, self.dtype)

    def __call__(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        cfg, loss = self.cfg, self.loss
        feats = self.net_features(x)
        lc = loss.content(feats, self.content_targets)
        ls = None
        area: float | torch.Tensor  # 1.0, or the mean square of the region's mask
        for masks, targets, share in self.regions:
            for n, w in loss.style_weights.items():
                _, c, h, wd = feats[n].shape
                if masks is None:
                    g, area = loss.gram(feats[n], n), 1.0
                else:
                    g, area = loss.masked_gram(feats[n], masks[n], n), masks[n].pow(2).mean()
                term = (w * share * area) * style_layer_loss(g, targets[n], c, h * wd, cfg.normalization)
                ls = term if ls is None else ls + term
        # ls is set: there is at least one region and one style layer.
        terms = {"content": cfg.content_weight * lc, "style": cfg.style_weight * cast(torch.Tensor, ls)}
        if cfg.tv_weight > 0:
            terms["tv"] = cfg.tv_weight * tv_loss(x, cfg.tv, cfg.normalization)
        else:
            terms["tv"] = torch.zeros((), device=x.device)
        terms["total"] = terms["content"] + terms["style"] + terms["tv"]
        return terms


def _positions(f: torch.Tensor) -> int:
    return f.shape[-2] * f.shape[-1]


def _features(net: VGGFeatures, x: torch.Tensor, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    # The network is held in the working dtype and channels-last layout (weights cast
    # once, not per call as autocast would; oneDNN and cuDNN run fastest in NHWC);
    # the image itself stays float32 NCHW and is converted on the way in.
    return net(x.to(dtype, memory_format=torch.channels_last))


def feature_norms_for(
    net: VGGFeatures, cfg: TransferConfig, content: torch.Tensor, precision: str = "fp32"
) -> dict[str, float]:
    """The per-layer divisors of the loss (1.0 each with ``layer_balance`` off).

    Departure from Gatys et al., who used a VGG normalised so that each filter's mean activation
    over ImageNet is one: the released weights are not normalised (raw relu5_1 Gram entries are
    orders of magnitude below relu1_1's), so each layer is divided by its mean activation over
    photographs, from the weight source's table (:mod:`stylist.weights`); a source without a
    table (or average pooling) is measured on ``content``. Equal layer weights then mean equal
    influence, as in the paper.
    """
    layers = list(dict.fromkeys((*cfg.content_layers, *cfg.style_layers)))
    if not cfg.layer_balance:
        return dict.fromkeys(layers, 1.0)
    dtype = working_dtype(precision)
    # torch's stubs of Module.to omit memory_format (hence the ignore)
    net.to(dtype, memory_format=torch.channels_last)  # type: ignore[call-overload]
    return net.feature_norms(content.to(dtype, memory_format=torch.channels_last), layers)


def initial_image(
    cfg: TransferConfig, content: torch.Tensor, style: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    h, w = content.shape[-2:]
    if cfg.init == "content":
        return content.clone()
    if cfg.init == "noise":
        # Uniform noise around mid-grey; the paper starts from white noise.
        return torch.rand(content.shape, generator=generator).to(content.device)
    if cfg.init == "style":
        return resize(style, (h, w)).clone()
    return resize(load_tensor(cfg.init, "--init image", cfg.max_pixels).to(content.device), (h, w))


def make_optimizer(
    cfg: TransferConfig, x: torch.Tensor, damping: float = 1.0, history: int = LBFGS_HISTORY
) -> torch.optim.Optimizer:
    """The configured optimiser over the image ``x``; ``damping`` scales its step size; ``history`` is
    L-BFGS's number of curvature pairs (fewer only for a tiled level that could not hold them all)."""
    lr = damping * (cfg.lr if cfg.lr is not None else DEFAULT_LR[cfg.optimizer])
    if cfg.optimizer == "lbfgs":
        # One iteration per step() call, so every iteration is seen by the loop (progress,
        # clamping, early stop, Ctrl-C); the curvature history persists across calls.
        return torch.optim.LBFGS([x], lr=lr, max_iter=1, history_size=history, tolerance_grad=0.0, tolerance_change=0.0)
    if cfg.optimizer == "adam":
        return torch.optim.Adam([x], lr=lr)
    return torch.optim.SGD([x], lr=lr, momentum=0.9)


def stylize(
    content: ImageLike,
    style: ImageLike | Sequence[ImageLike],
    cfg: TransferConfig | None = None,
    callback: Callback | None = None,
    masks: Sequence[ImageLike] | None = None,
    resume: dict | None = None,
) -> TransferResult:
    """Run the optimisation and return the result at the final size.

    ``style`` is one painting or a list of them (blended by ``cfg.style_weights``, or with
    ``masks``, one soft mask per painting over the photo, each painting styling its region).
    ``callback(progress)`` is called after every iteration; returning True stops the run
    and returns the image so far. Ctrl-C raises :class:`Interrupted` carrying the image so far.

    ``resume`` is a state from ``progress.checkpoint()`` or ``result.checkpoint()`` (saved and
    loaded with :mod:`stylist.checkpoint`): the run carries on from it, at its level and step,
    to ``cfg.iterations`` in all (extra iterations go to the final level). Options other than
    those in :data:`RESUME_MAY_CHANGE` must be the checkpoint's; with the same inputs the result
    is the one the uninterrupted run would have given.
    """
    cfg = cfg or TransferConfig()
    cfg.validate()
    device = resolve_device(cfg.device)
    precision = resolve_precision(cfg.precision, device)
    # The content's alpha is set aside and re-attached to the result; its RGB is stylised (see image.Picture).
    content_p = read_picture(content, "content", cfg.max_pixels)
    content_t = content_p.rgb
    styles = list(style) if isinstance(style, (list, tuple)) else [cast(ImageLike, style)]  # else: one painting
    style_ts = [load_tensor(s, "style", cfg.max_pixels) for s in styles]
    if cfg.style_weights is not None:
        check_one_each("--style-weights", cfg.style_weights, len(style_ts), "style image")
    mask_ts = load_masks(masks, len(style_ts), (content_t.shape[-2], content_t.shape[-1]))
    photo = content_t
    content_t, style_ts = prepare_colors(cfg.preserve_color, content_t, style_ts)
    show = _user_view(cfg, photo)
    if callback is not None and cfg.preserve_color == "luminance":
        user_callback = callback

        def callback(p: Progress) -> bool | None:  # the user sees colour, the loop works on grey
            return user_callback(replace(p, image=show(p.image)))

    net = build_network(cfg, device)  # first: it checks the layer names min_side() reads
    final_hw = fit_size(content_t.shape[-2], content_t.shape[-1], cfg.size or default_size(device))
    check_min_side(  # issue 19: refused before any work (the optimised image itself cannot be padded)
        final_hw, min_side(cfg), f"{source_name(content, 'content image')} (the result at this --size)", "raise --size"
    )
    schedule = plan_levels(final_hw, cfg) if resume is None else resumed_schedule(resume, cfg, final_hw)
    # issue 18: each level whole if it fits the memory, else in tiles; ConfigError (one line) before any work
    # when even tiles cannot fit.
    tiles = plan_memory([hw for hw, _ in schedule], cfg, device, precision)
    if mask_ts is not None and any(t is not None for t in tiles):
        raise ConfigError(
            "--mask needs each level optimised whole, and this --size needs tiles: lower --size or raise --max-memory"
        )
    generator = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)

    result = TransferResult(
        image=resize(content_t, final_hw),
        device=str(device),
        precision=precision,
        alpha=content_p.alpha_at(final_hw),
        weights_sha256=net.sha256,
    )
    run = _RunState(result, schedule, callback, cfg, generator, final_hw)
    result.checkpoint = run.checkpoint
    start = run.restore(resume) if resume is not None else _ResumePoint()
    # One set of divisors for every level: one objective from coarse to fine.
    feature_norms = feature_norms_for(net, cfg, resize(content_t, final_hw).to(device), precision)
    try:
        for level, (hw, iters) in enumerate(schedule):
            if level < start.level:
                continue  # done before the checkpoint
            c = resize(content_t, hw).to(device)
            s = [  # a painting too thin for the layers is enlarged, with a warning (issue 19)
                fit_min_side(
                    t, min_side(cfg), source_name(src, "style image"), max(16, round(max(hw) * cfg.style_size_ratio))
                ).to(device)
                for t, src in zip(style_ts, styles)
            ]
            m = None if mask_ts is None else [resize(t, hw).to(device) for t in mask_ts]
            objective: Objective | TiledObjective
            if tiles[level] is None:
                objective = Objective(
                    net, cfg, c, s, cfg.style_weights, precision=precision, feature_norms=feature_norms, masks=m
                )
            else:
                tile, history = cast(tuple[int, int], tiles[level])
                objective = TiledObjective(net, cfg, c, s, tile, history, precision, feature_norms)
            if level == start.level and start.record is not None:  # carry on inside the checkpoint's level
                carried = cast(torch.Tensor, start.x)  # a checkpoint inside a level always holds its image
                x = _optimize_level(
                    cfg, objective, carried.to(device), iters, level, run, start.record, start.optimizer
                )
            else:
                x = (
                    initial_image(cfg, c, s[0], generator)
                    if start.x is None
                    else resize(start.x.detach().to(device), hw)
                )
                x = _optimize_level(cfg, objective, x, iters, level, run)
            start = _ResumePoint(level + 1, x)
            if run.result.stopped == "callback":
                break
    except KeyboardInterrupt:
        raise Interrupted(_shown(run.finish(), show)) from None
    return _shown(run.finish(), show)


def resumed_schedule(state: dict, cfg: TransferConfig, final_hw: tuple[int, int]) -> list[tuple[tuple[int, int], int]]:
    """The checkpointed run's schedule, its total changed to ``cfg.iterations``.

    Raises ConfigError if ``cfg`` does not fit it.
    """
    check_checkpoint(state, CHECKPOINT_KIND, "stylist transfer (an optimisation run)", layout=None)
    # The one resume rule; ConfigError if cfg differs from the checkpoint.
    resume_options(upgrade_config(state["config"]), asdict(cfg), RESUME_MAY_CHANGE)
    if tuple(state["final_hw"]) != tuple(final_hw):
        (h, w), (h2, w2) = state["final_hw"], final_hw
        raise ConfigError(
            f"the checkpoint is of a {w}x{h} result but this content photo gives {w2}x{h2}: "
            "resume with the photo it was made from"
        )
    plan = [(tuple(hw), int(n)) for hw, n in state["schedule"]]
    return _retotal(plan, cfg.iterations)


def _retotal(plan: list[tuple[tuple[int, int], int]], iterations: int) -> list[tuple[tuple[int, int], int]]:
    """``plan`` with ``iterations`` in all: extra ones go to the final level (the refinement a longer
    run is asked for), and a shorter total is taken off the end."""
    extra = iterations - sum(n for _, n in plan)
    if extra >= 0:
        return plan[:-1] + [(plan[-1][0], plan[-1][1] + extra)]
    out, left = [], iterations
    for hw, n in plan:
        out.append((hw, min(n, left)))
        left -= out[-1][1]
    return out


def _user_view(cfg: TransferConfig, photo: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """What turns the optimised image into the picture the user gets (and sees in callbacks)."""
    if cfg.preserve_color != "luminance":
        return lambda image: image
    return lambda image: with_chroma(image.float(), resize(photo, (image.shape[-2], image.shape[-1])).to(image.device))


def _shown(result: TransferResult, show: Callable[[torch.Tensor], torch.Tensor]) -> TransferResult:
    result.image = show(result.image)
    return result


@dataclass(frozen=True)
class _LevelRecord:
    """What the loop of one level remembers between iterations; a checkpoint holds all of it.

    Frozen, and replaced whole after each iteration, so that an interrupt never leaves it half-updated.
    """

    done: int = 0  # iterations run at this level
    damping: float = 1.0  # step-size factor, halved at each blow-up
    best: float = math.inf  # for the early stop
    since_best: int = 0
    lowest: float = math.inf  # for the blow-up guard
    lowest_x: torch.Tensor | None = None
    finished: bool = False  # stopped early: the loss had stopped improving


@dataclass
class _LiveLevel:
    """The live state of the level being optimised."""

    level: int
    x: torch.Tensor
    optimizer: torch.optim.Optimizer
    record: _LevelRecord
    # (image, record, step) at the start of an iteration still under way; None between iterations.
    before: tuple[torch.Tensor, _LevelRecord, int] | None = None
    history: int = LBFGS_HISTORY  # L-BFGS's curvature pairs (fewer at a tiled level short of memory)


@dataclass
class _ResumePoint:
    """Where a run begins: level 0 from scratch, or where a checkpoint left off."""

    level: int = 0
    x: torch.Tensor | None = None  # the image to start the level from (resized to it unless carried on)
    record: _LevelRecord | None = None  # set: carry on inside ``level`` with this loop state
    optimizer: dict | None = None  # its optimiser's state_dict, when the checkpoint has one


@dataclass
class _RunState:
    """What the levels of one run share: the result so far, the step count, the clock."""

    result: TransferResult
    schedule: list[tuple[tuple[int, int], int]]
    callback: Callback | None
    cfg: TransferConfig
    generator: torch.Generator
    final_hw: tuple[int, int]
    step: int = 0
    start: float = field(default_factory=time.perf_counter)
    live: _LiveLevel | None = None

    def log(self, level: int, hw: tuple[int, int], values: dict[str, float], x: torch.Tensor) -> None:
        """Record one iteration."""
        self.step += 1
        elapsed = time.perf_counter() - self.start
        self.result.history.append(
            {"step": self.step, "level": level, "height": hw[0], "width": hw[1], **values, "seconds": elapsed}
        )
        self.result.image = x.detach()

    def tell(self, level: int, hw: tuple[int, int], values: dict[str, float], x: torch.Tensor) -> bool:
        """Tell the callback about the last iteration; True when it asks to stop."""
        if self.callback is None:
            return False
        total = sum(n for _, n in self.schedule)
        elapsed = self.result.history[-1]["seconds"]
        progress = Progress(
            self.step, total, level, len(self.schedule), hw, values, elapsed, x.detach().cpu().clone(), self.checkpoint
        )
        return bool(self.callback(progress))

    def finish(self) -> TransferResult:
        self.result.image = resize(self.result.image.detach().float().cpu().clamp(0, 1), self.final_hw)
        self.result.elapsed = time.perf_counter() - self.start
        return self.result

    def checkpoint(self, optimizer: bool = True) -> dict | None:
        """The state after the last whole iteration (None before the first), on the CPU, copied;
        without the optimiser's memory when ``optimizer`` is False."""
        s = self.live
        if s is None:
            return None
        if s.before is not None:  # stopped inside an iteration: back to its start, with a fresh optimiser memory
            (x, record, step), memory = s.before, None
        else:
            x, record, step, memory = s.x, s.record, self.step, s.optimizer.state_dict() if optimizer else None
        return cpu_copy(
            {
                "kind": CHECKPOINT_KIND,
                "config": asdict(self.cfg),
                "schedule": [[list(hw), n] for hw, n in self.schedule],
                "final_hw": list(self.final_hw),
                "step": step,
                "level": s.level,
                "image": x.detach(),
                "book": dict(vars(record)),  # the key of the first layout, kept
                "optimizer": memory,
                "history": self.result.history[:step],
                "elapsed": time.perf_counter() - self.start,
                "stopped": self.result.stopped,
                "rng": {"torch": torch.get_rng_state(), "generator": self.generator.get_state()},
            }
        )

    def restore(self, state: dict) -> _ResumePoint:
        """Take up a checkpointed run (its step, history, clock and RNG); returns where to carry on."""
        self.step = int(state["step"])
        self.result.history = [dict(row) for row in state["history"]][: self.step]
        self.start -= float(state["elapsed"])
        self.result.stopped = "early" if state["stopped"] == "early" else "done"
        torch.set_rng_state(state["rng"]["torch"])
        self.generator.set_state(state["rng"]["generator"])
        x, level, record = state["image"], int(state["level"]), _LevelRecord(**state["book"])
        self.result.image = x
        if sum(n for _, n in self.schedule) > sum(int(n) for _, n in state["schedule"]):
            record = replace(
                record, finished=False, since_best=0
            )  # more iterations asked for: go on past an early stop
        if record.finished or record.done >= self.schedule[level][1]:
            return _ResumePoint(level + 1, x)  # that level is over: the next one starts from its image
        return _ResumePoint(level, x, record, state["optimizer"])


def _optimize_level(
    cfg: TransferConfig,
    objective: Objective | TiledObjective,
    x: torch.Tensor,
    iters: int,
    level: int,
    run: _RunState,
    record: _LevelRecord | None = None,
    optimizer_state: dict | None = None,
) -> torch.Tensor:
    """Up to ``iters`` iterations at one level (counting those in ``record``, when carrying on).

    Returns the image (a leaf tensor).
    """
    hw = (x.shape[-2], x.shape[-1])
    # A plain NCHW leaf: L-BFGS flattens the gradient with view(), which needs it.
    x = x.detach().contiguous().requires_grad_(True)
    record = record or _LevelRecord(lowest_x=x.detach().clone())
    history = objective.history if isinstance(objective, TiledObjective) else LBFGS_HISTORY
    optimizer = make_optimizer(cfg, x, record.damping, history)
    if optimizer_state is not None:
        optimizer.load_state_dict(optimizer_state)
    live = run.live = _LiveLevel(level, x, optimizer, record, history=history)
    while live.record.done < iters and not live.record.finished:
        start_x = x.detach().clone()
        live.before = (start_x, live.record, run.step)
        terms = _iterate(live.optimizer, objective, x)
        with torch.no_grad():
            x.clamp_(0, 1)
        values = {k: float(v) for k, v in terms.items()}
        if not all(math.isfinite(v) for v in values.values()) or not torch.isfinite(x).all():
            raise NonFiniteLossError(
                f"the loss became {values['total']} at iteration {run.step + 1} ({hw[1]}x{hw[0]} px): "
                "lower --lr or the loss weights, or use --optimizer lbfgs"
            )
        live.record = _record_iteration(cfg, live, values["total"], start_x)
        run.log(level, hw, values, x)
        live.before = None  # a whole iteration: from here a checkpoint holds it
        if run.tell(level, hw, values, x):
            run.result.stopped = "callback"
            break
    if live.record.finished:
        run.result.stopped = "early"
    return x


def _record_iteration(cfg: TransferConfig, live: _LiveLevel, total: float, start_x: torch.Tensor) -> _LevelRecord:
    """The loop state after an iteration that started at ``start_x`` with loss ``total``."""
    record = replace(live.record, done=live.record.done + 1)
    if total > BLOWUP * record.lowest:
        # L-BFGS without a line search now and then leaps far uphill: its first curvature
        # estimate comes from a tiny step, and the Gram terms are quartic in the pixels.
        # Go back to the lowest point of this level with half the step and a fresh memory.
        with torch.no_grad():
            live.x.copy_(cast(torch.Tensor, record.lowest_x))  # set when the level's record was made
        record = replace(record, damping=record.damping / 2)
        live.optimizer = make_optimizer(cfg, live.x, record.damping, live.history)
    elif total < record.lowest:
        record = replace(record, lowest=total, lowest_x=start_x)
    if total < record.best * (1 - cfg.early_stop_tol):
        record = replace(record, best=total, since_best=0)
    else:
        record = replace(record, since_best=record.since_best + 1)
    return replace(record, finished=bool(cfg.early_stop_patience) and record.since_best >= cfg.early_stop_patience)


def _iterate(
    optimizer: torch.optim.Optimizer, objective: Objective | TiledObjective, x: torch.Tensor
) -> dict[str, torch.Tensor]:
    """One optimiser iteration; returns the loss terms at the point it started from."""
    seen: dict[str, torch.Tensor] = {}

    def closure() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=False)
        if isinstance(objective, TiledObjective):
            terms = objective.backward(x)  # the whole image's loss; its gradient added to x.grad tile by tile
        else:
            terms = objective(x)
            terms["total"].backward()
        if isinstance(optimizer, torch.optim.SGD):
            # The 'mean' losses give per-pixel gradients that shrink with the pixel count;
            # plain SGD would need a new step size at every level. Scaling by H*W makes one
            # step size fit all sizes (Adam and L-BFGS adapt on their own).
            cast(torch.Tensor, x.grad).mul_(x.shape[-1] * x.shape[-2])  # backward() has just filled it
        if not seen:
            seen.update({k: v.detach() for k, v in terms.items()})
        return terms["total"]

    # torch's stubs type the closure as returning a float; L-BFGS needs (and gets) the loss tensor.
    optimizer.step(closure)  # type: ignore[arg-type]
    return seen


def evaluate(
    result: ImageLike, content: ImageLike, style: ImageLike, cfg: TransferConfig | None = None, device: str = "cpu"
) -> dict[str, float]:
    """The weighted loss terms of ``result`` at its own size, in float32 (for benchmarks and reports)."""
    cfg = cfg or TransferConfig()
    dev = resolve_device(device)
    x = load_tensor(result).to(dev)
    hw = (x.shape[-2], x.shape[-1])
    c = resize(load_tensor(content), hw).to(dev)
    s = resize_long_side(load_tensor(style), max(hw)).to(dev)
    net = build_network(cfg, dev)
    with torch.no_grad():
        terms = Objective(net, cfg, c, [s], precision="fp32")(x)
    return {k: float(v) for k, v in terms.items()}


# --- print size: memory planning and tiled levels (issue 18) --------------------------------------------------

# Peak bytes per pixel of one VGG-19 forward and backward pass to relu5_1 (the activations kept for the
# backward pass and their gradients), measured by benchmarks/resolution.py on the CPU in float32; bf16
# keeps the activations in half the bytes.
VGG_BYTES_PER_PIXEL = 2600.0
# Bytes per pixel of the state every level holds at its full size, whether tiled or not, besides the
# history: float32 RGB copies (12 bytes a pixel) of the image, its gradient, the content photo, the
# loop's start and lowest points and L-BFGS's working vectors (flat gradient, previous one, direction),
# with slack for a resize; an estimate from the code, not a measurement.
STATE_BYTES_PER_PIXEL = 10 * 12.0
MIN_HISTORY = 5  # L-BFGS's fewest curvature pairs at a tiled level (Nocedal and Wright suggest 3 to 20)
PREFERRED_TILE = 1024  # px: margins (96 px a side for relu5_1) then cost a third more compute, not three times


def vgg_grid(layers: Sequence[str], arch: str = "vgg19") -> tuple[int, int]:
    """(receptive-field radius in px, total stride) of VGG up to the deepest of ``layers``: a tile's
    margin must be at least the radius for the interior's features to be the whole image's, and tiles
    must start at multiples of the stride for the poolings to see the same windows."""
    order = layer_names(arch)
    deepest = max(order.index(n) for n in layers)
    radius, stride = 0, 1
    for name in order[: deepest + 1]:
        if name.startswith(("conv", "pool")):  # a 3x3 convolution or a 2x2 pooling reaches one step further
            radius += stride
        if name.startswith("pool"):
            stride *= 2
    return radius, stride


def _margin(cfg: TransferConfig) -> tuple[int, int]:
    radius, stride = vgg_grid((*cfg.content_layers, *cfg.style_layers))
    return math.ceil((radius + 1) / stride) * stride, stride


def plan_memory(
    sizes: Sequence[tuple[int, int]], cfg: TransferConfig, device: torch.device, precision: str
) -> list[tuple[int, int] | None]:
    """For each level size: None (optimise the whole image, as always) or (tile side, L-BFGS history).

    A level runs whole when its estimated peak fits the budget (``cfg.max_memory`` GB, else
    :func:`stylist.tiling.budget_bytes` of the device) and ``cfg.tile_size`` does not ask for tiles;
    otherwise in tiles: the largest up to :data:`PREFERRED_TILE` that leave room beside the full-size
    state (image, gradient, content targets) for :data:`MIN_HISTORY` L-BFGS pairs, then as many pairs
    as fit (at most 100), then the largest tiles that fit beside them. ConfigError (one line) when a
    level cannot fit even then, or when ``cfg.tile_size`` is 0 and a level does not fit whole.
    """
    budget = budget_bytes(device, cfg.max_memory)
    vgg = VGG_BYTES_PER_PIXEL * (0.55 if precision == "bf16" else 1.0)
    margin, stride = _margin(cfg)
    history_bytes = 24.0 if cfg.optimizer == "lbfgs" else 12.0  # a curvature pair, or a moment (Adam, SGD)
    pairs = LBFGS_HISTORY if cfg.optimizer == "lbfgs" else 2
    plan: list[tuple[int, int] | None] = []
    for h, w in sizes:
        px = h * w
        whole = px * (vgg + STATE_BYTES_PER_PIXEL + pairs * history_bytes)
        forced = cfg.tile_size is not None and cfg.tile_size > 0 and max(h, w) > cfg.tile_size
        if whole <= budget and not forced:
            plan.append(None)
            continue
        if cfg.tile_size == 0:
            raise ConfigError(_too_big((h, w), sizes[-1], whole, budget, "whole (--tile-size 0)"))
        per_pixel = px * (STATE_BYTES_PER_PIXEL + _content_bytes(cfg))
        preferred = min(PREFERRED_TILE, cfg.tile_size or PREFERRED_TILE)
        history = -1
        for want in sorted({preferred, *range(MIN_TILE, preferred, MIN_TILE)}, reverse=True):
            # the largest tile, down from PREFERRED_TILE, that leaves room for MIN_HISTORY pairs: small tiles
            # waste compute on margins, while L-BFGS usually needs only 3 to 20 pairs (Nocedal and Wright)
            room = (budget - (want + 2 * margin) ** 2 * vgg - per_pixel) / (px * history_bytes)
            if room >= (MIN_HISTORY if cfg.optimizer == "lbfgs" else pairs):
                history = int(min(pairs, room))
                break
        if history < 0:
            need = per_pixel + (MIN_TILE + 2 * margin) ** 2 * vgg + px * history_bytes * min(pairs, MIN_HISTORY)
            raise ConfigError(_too_big((h, w), sizes[-1], need, budget, "even in tiles"))
        tile = tile_for_budget(int(budget - per_pixel - px * history * history_bytes), vgg, margin, stride)
        if cfg.tile_size:
            tile = min(tile, max(stride, cfg.tile_size // stride * stride))
        plan.append((tile, history))
    return plan


def _content_bytes(cfg: TransferConfig) -> float:
    """Bytes per pixel of the content targets a tiled level keeps (float32 features at the content layers)."""
    channels = {1: 64, 2: 128, 3: 256, 4: 512, 5: 512}
    total = 0.0
    for name in cfg.content_layers:
        block = int(name[4]) if name[4].isdigit() else 5
        total += 4.0 * channels[block] / 4 ** (block - 1)
    return total


def _too_big(hw: tuple[int, int], final: tuple[int, int], need: float, budget: float, how: str) -> str:
    """The one-line refusal; names the level that does not fit when it is not the result's own size
    (a finer level needs more still)."""
    what = f"a {final[1]}x{final[0]} px result"
    if hw != tuple(final):
        what += f": its {hw[1]}x{hw[0]} px scale alone"
    return (
        f"{what} needs about {need / 2**30:.1f} GB {how}, more than the {budget / 2**30:.1f} GB "
        "this run may use: lower --size or raise --max-memory"
    )


class TiledObjective:
    """:class:`Objective`'s loss and its exact gradient for an image too large for one VGG pass.

    The image is cut into tiles (:func:`stylist.tiling.grid`) whose margins cover VGG's receptive field,
    so that each interior's features are the whole image's. The style loss depends on the Gram matrices,
    sums over all positions: a first pass (no gradient) sums the interiors' Grams into the whole image's,
    from which the loss and its gradient dL/dG (C x C per layer) follow; a second pass back-propagates,
    tile by tile, ``<dL/dG, G_tile>`` plus the tile's share of the content loss, and adds each region's
    gradient into the image's. The sums are the whole image's, so loss and gradient are the whole-image
    Objective's up to floating-point rounding: no seams and no blending, at about 1.5 times the compute
    (two forward passes) and the memory of one tile. The painting's Grams and the photo's content features
    are taken in tiles the same way. The Gram sums are float32 even when VGG runs in bfloat16 (a bf16
    Gram per tile would add a rounding per tile; the whole-image Objective rounds its one Gram to bf16),
    so under bf16 the two differ by that rounding. Stylist's, not Gatys et al.'s (who optimised whole
    images); masks (spatial control) are not tiled.
    """

    def __init__(
        self,
        net: VGGFeatures,
        cfg: TransferConfig,
        content: torch.Tensor,
        styles: Sequence[torch.Tensor],
        tile: int,
        history: int,
        precision: str,
        feature_norms: dict[str, float],
    ) -> None:
        self.net, self.cfg, self.history = net, cfg, history
        self.dtype = working_dtype(precision)
        net.to(self.dtype, memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.loss = perceptual_loss(cfg, feature_norms)
        self.margin, self.stride = _margin(cfg)
        self.tile = tile
        self.tiles = grid(content.shape[-2], content.shape[-1], tile, self.margin, self.stride)
        shares = torch.tensor(list(cfg.style_weights or [1.0] * len(styles)), dtype=torch.float64)
        shares = shares / shares.sum()
        with torch.no_grad():
            _, self.counts = self._grams(content, layers=())
            painted = [self._grams(s) for s in styles]
            # "paper": as Objective, each painting's Gram rescaled to the result's number of positions
            paper = cfg.normalization == "paper"
            self.targets = {
                n: cast(
                    torch.Tensor,
                    sum(
                        float(a) * g[n] * (self.counts[n] / count[n] if paper else 1.0)
                        for a, (g, count) in zip(shares, painted)
                    ),
                )
                for n in cfg.style_layers
            }
            self.content_targets = [
                self.loss.content_targets(self._interiors(t, t.region(content))) for t in self.tiles
            ]
        self.content_counts = {
            n: sum(int(ts[n].shape[-2] * ts[n].shape[-1]) for ts in self.content_targets) for n in cfg.content_layers
        }

    def _interiors(self, t: Tile, region: torch.Tensor) -> dict[str, torch.Tensor]:
        """The features of the tile's interior, from a pass over its region (the whole image's features there)."""
        feats = _features(self.net, region, self.dtype)
        # The scale is the layer's stride, not the shapes' ratio: pooling drops a region's odd last row.
        return {n: t.interior(f, 1 / vgg_grid((n,), self.net.arch)[1]) for n, f in feats.items()}

    def _grams(
        self, image: torch.Tensor, layers: Sequence[str] | None = None
    ) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
        """The feature-normed Grams of ``image`` at the style layers (under cfg.normalization), summed over
        tiles of its own grid, and each layer's number of positions."""
        layers = self.cfg.style_layers if layers is None else layers
        sums: dict[str, torch.Tensor] = {}
        counts: dict[str, int] = dict.fromkeys(self.cfg.style_layers, 0)
        for t in grid(image.shape[-2], image.shape[-1], self.tile, self.margin, self.stride):
            inner = self._interiors(t, t.region(image))
            for n in self.cfg.style_layers:
                counts[n] += inner[n].shape[-2] * inner[n].shape[-1]
            for n in layers:
                g = gram(inner[n].float(), "paper")
                sums[n] = g if n not in sums else sums[n] + g
        return {n: self._normed(sums[n], n, counts[n]) for n in layers}, counts

    def _normed(self, raw: torch.Tensor, layer: str, positions: int) -> torch.Tensor:
        """A raw Gram sum as :meth:`PerceptualLoss.gram` gives it for the whole image."""
        c = raw.shape[-1]
        scale = 1.0 / (c * positions) if self.cfg.normalization == "mean" else 1.0
        return raw * scale / self.loss.feature_norms[layer] ** 2

    def backward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The loss terms at ``x`` (1, 3, H, W); their gradient is added to ``x.grad`` (which must exist)."""
        cfg, loss = self.cfg, self.loss
        with torch.no_grad():
            grams, _ = self._grams(x.detach())
        grams = {n: g.requires_grad_(True) for n, g in grams.items()}
        with torch.enable_grad():
            ls = sum(
                w * style_layer_loss(grams[n], self.targets[n], grams[n].shape[-1], self.counts[n], cfg.normalization)
                for n, w in loss.style_weights.items()
            )
            style = cfg.style_weight * cast(torch.Tensor, ls)
            style.backward()
        slopes = {n: cast(torch.Tensor, g.grad) for n, g in grams.items()}
        content = torch.zeros((), device=x.device)
        if x.grad is None:
            x.grad = torch.zeros_like(x)
        grad = x.grad
        for t, targets in zip(self.tiles, self.content_targets):
            region = t.region(x.detach()).clone().requires_grad_(True)
            with torch.enable_grad():
                inner = self._interiors(t, region)
                part = sum(
                    (slopes[n] * self._normed(gram(inner[n].float(), "paper"), n, self.counts[n])).sum()
                    for n in cfg.style_layers
                )
                lc = self._content_part(inner, targets)
                cast(torch.Tensor, part + cfg.content_weight * lc).backward()
            content = content + lc.detach()
            t.region(grad).add_(cast(torch.Tensor, region.grad))
        terms = {"content": cfg.content_weight * content, "style": style.detach()}
        if cfg.tv_weight > 0:
            with torch.enable_grad():
                tv = cfg.tv_weight * tv_loss(x, cfg.tv, cfg.normalization)
                tv.backward()
            terms["tv"] = tv.detach()
        else:
            terms["tv"] = torch.zeros((), device=x.device)
        terms["total"] = terms["content"] + terms["style"] + terms["tv"]
        return terms

    def _content_part(self, inner: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]) -> torch.Tensor:
        """The tile's share of the content loss: its interior's squared differences over the whole image's count."""
        total = torch.zeros((), device=next(iter(targets.values())).device)
        for n, w in self.loss.content_weights.items():
            diff = inner[n].float() / self.loss.feature_norms[n] - targets[n]
            sq = diff.pow(2).sum()
            positions = self.content_counts[n]
            total = total + w * (sq / (diff.shape[1] * positions) if self.cfg.normalization == "mean" else 0.5 * sq)
        return total
