"""Arbitrary style in one pass: AdaIN (Huang and Belongie, ICCV 2017) and WCT (Li et al., NeurIPS 2017).

Both methods encode with the frozen Caffe VGG-19 (:mod:`stylist.vgg`), change the photo's
features so that their statistics are the painting's, and decode the result with a network
trained once, for any painting:

``adain``  one decoder from relu4_1; the photo's features get each channel's mean and standard
           deviation from the painting (adaptive instance normalisation). The decoder is trained
           with a content loss on the AdaIN target and a mean/std style loss.
``wct``    five decoders, relu5_1 ... relu1_1, each trained only to reconstruct photographs; the
           photo's features are given the painting's mean and covariance at every level (Li et al.
           whiten and colour them; Stylist by default uses the optimal-transport map, below),
           coarse to fine, decoding to an image between levels.

Departures from the papers, each for a stated reason:

* Features are divided by a fixed per-layer constant, their feature norm (the mean activation of
  the Caffe VGG-19 over photographs, :data:`stylist.weights.DECODER_FEATURE_NORMS`, the same table
  every method's perceptual loss uses). Both papers used a *normalised* VGG (Gatys et al.: each
  filter's mean activation 1); the raw Caffe layers differ in scale by 20x, which would otherwise
  change what "style weight 10" and "feature weight 1" mean. AdaIN and WCT are unchanged by a
  per-layer scale; only the loss balance and the decoders' input range are.
* The relu5_1 WCT decoder is a slimmer mirror (at most :data:`WCT_DEEP_WIDTH` channels instead of
  512 in its two deepest blocks), to keep the shipped decoders small (about 20 MB in fp16 for all
  five, not 34 MB). The other decoders mirror the encoder exactly.
* WCT drops eigenvalues below a *relative* threshold (1e-5 of the largest) rather than Li et al.'s
  absolute 1e-5, so that the cut does not depend on the features' magnitude.
* WCT's default map onto the painting's mean and covariance is the optimal-transport (Monge) map
  between the two Gaussians (``wct_transform="ot"``), not Li et al.'s whitening then colouring
  (``"zca"``): both give exactly the painting's covariance, but whitening makes the photo's faint
  feature directions as strong as its main ones, and the painting's strongest directions then paint
  them over the subject. On the quality benchmark the map keeps more of the photo at a closer style.
* Each WCT level's strength mixes the painting's statistics with the *photo's* features at that level
  (``level_blend="photo"``), where Li et al. mix with the previous level's result: in a chain of four
  levels at part strength the photo faded level by level until busy photos became a patchwork of
  the painting. At full strength and without masks the two are the same (outside the masks a level
  keeps the features it mixes with: the photo's, or the previous level's result).
* ``identity_weight`` (0 by default, as in the paper) adds an identity loss to AdaIN training: the
  photo decoded from its own relu4_1 against the photo, so that alpha 0 gives the photo back
  rather than the training paintings' palette (a risk with few paintings; see the model card).
* ``grid_weight`` (1000 by default; in neither paper) adds :func:`stylist.losses.grid_loss` to both
  methods' training, at each decoder's upsampling period (8 px from relu4_1): VGG's pooling folds a
  pattern at that period into a constant, so the papers' losses let a decoder draw stripes on its
  grid, and the decoders trained without the term did (docs/models/adain.md, wct.md).
* AdaIN reflects the photo by :data:`EDGE_MARGIN` px on every side before encoding it and cuts the
  margin off after decoding, so that the encoder's zero padding draws no frame along the border.
* The WCT feature loss is measured on the feature-normed features above (Li et al.: lambda = 1 on their
  normalised VGG's features), so lambda = 1 keeps the balance they intended.

The networks and their files are in :mod:`stylist.decoders`, their training in
:mod:`stylist.train_decoders`. The module is silent: it prints nothing and writes no file.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import TypeVar, cast

import torch
import torch.nn.functional as F
from torch import nn

from .color import COLOR_MODES, prepare_colors, with_chroma
from .decoders import (
    ADAIN_LEVEL,
    LEVELS,
    METHODS,
    WCT_LEVELS,
    Decoder,
    Encoder,
    WCTDecoders,
    load_decoder,
)
from .devices import PRECISIONS, resolve_device, resolve_precision
from .errors import ConfigError, check_one_each
from .image import ImageLike, fit_min_side, load_tensor, pad_to_fit, resize_long_side, source_name
from .losses import layer_mask, mean_std
from .masks import load_masks
from .tiling import RunningMoments, check_tile_size, choose_tile, grid

# --- configuration ------------------------------------------------------------------------------------

# WCT's defaults, chosen on the quality benchmark's held-out paintings (docs/quality.md). Departures
# from Li et al., who run all five levels at full strength: with the shipped decoders relu5_1 turns
# the photo into a collage of the painting (its decoder rebuilds a photo at only 16 dB; even at 0.2
# it halves the benchmark's structure), and full strength at every level draws blotches of the
# painting's light and dark over the subject. With the map and blend below, each level but relu1_1
# runs at WCT_LEVEL_ALPHA, mixing in the photo's own features, and relu1_1 (the painting's colours
# and grain) at full strength. Median structure over 24 pairs (seed 0): 0.21 at the paper's
# settings, 0.74 at the previous defaults (0.5 each, zca, previous), 0.86 at these; the style distance
# 0.15, 0.19, 0.23; the colour distance 2.0, 3.0, 2.2.
WCT_DEFAULT_LEVELS = tuple(level for level in WCT_LEVELS if level != "relu5_1")
WCT_LEVEL_ALPHA = 0.7
# How WCT maps the photo's features onto the painting's mean and covariance (both give exactly the
# painting's statistics): zca, Li et al.'s whitening then colouring; ot, the optimal-transport (Monge)
# map between the two Gaussians, the one such map that moves the features least.
WCT_TRANSFORMS = ("zca", "ot")
# What each WCT level's strength mixes the painting's statistics with: the photo's own features at
# that level, or the previous level's result (Li et al.). They differ from the second level on.
LEVEL_BLENDS = ("photo", "previous")


def default_level_alphas(levels: Sequence[str]) -> tuple[float, ...]:
    """WCT's strength per level when none is given: WCT_LEVEL_ALPHA, and 1 at relu1_1 (the painting's
    colours and grain) when it is among ``levels``."""
    return tuple(1.0 if level == "relu1_1" else WCT_LEVEL_ALPHA for level in levels)


# The options only WCT uses: with --method adain they are an error, given or not at their defaults.
WCT_ONLY_OPTIONS = ("levels", "level_alphas", "wct_transform", "level_blend")


@dataclass
class ArbitraryConfig:
    """Every option of ``stylist arbitrary``; the CLI builds its flags from these fields."""

    # adain (Huang and Belongie 2017: one decoder, fastest) or wct (Li et al. 2017: the painting's
    # feature covariance at several levels, coarse to fine, closer colours, slower).
    method: str = "adain"
    # Style strength: 0 decodes the photo's own features (the photo as well as the decoders can rebuild
    # it: about 21 dB PSNR for AdaIN and 42 dB for WCT, whose finest decoder has the last word, on the
    # bundled photos at 256 px; see their model cards), 1 the full style.
    alpha: float = 1.0
    # Share of each painting in a blend of several styles; None = equal shares. Normalised to
    # sum to 1. Not used with masks (each mask says where its painting goes).
    style_weights: tuple[float, ...] | None = None
    # WCT only: strength of each level in `levels` (coarse to fine), multiplied by alpha; None =
    # WCT_LEVEL_ALPHA at every level, 1 at relu1_1 (default_level_alphas).
    level_alphas: tuple[float, ...] | None = None
    # WCT only: the levels to run, coarse to fine (fewer levels: faster, less style). relu5_1 is
    # left out by default: with the shipped decoders it turns the photo into a collage of the painting.
    levels: tuple[str, ...] = WCT_DEFAULT_LEVELS
    # WCT only: how the photo's features take the painting's mean and covariance at each level: ot
    # (the optimal-transport map, which moves them least) or zca (Li et al.'s whitening and colouring).
    wct_transform: str = "ot"
    # WCT only: what each level's strength mixes the painting's statistics with: photo (the photo's
    # own features at that level) or previous (the previous level's result, as Li et al.).
    level_blend: str = "photo"
    # Keep the photo's colours: none, luminance (style on luminance only, the photo's chroma kept)
    # or histogram (the paintings recoloured to the photo's colour statistics first).
    preserve_color: str = "none"
    # Longest side of the result in pixels; None = the photo's own size.
    size: int | None = None
    # Longest side the paintings are resized to before their statistics are taken (bigger: finer
    # strokes); None = their own size.
    style_size: int | None = 512
    # A decoder file from stylist train-decoder; None = the decoder shipped with Stylist.
    decoder: str | None = None
    # auto (cuda, then mps, then cpu), or an explicit torch device such as cpu or cuda:1.
    device: str = "auto"
    # auto (bf16 where the hardware is fast at it), fp32 or bf16.
    precision: str = "auto"
    # Refuse input images with more pixels than this; None = Pillow's limit (about 89 million).
    max_pixels: int | None = None
    # Side of the tiles a large image is stylised in, px (the same result in bounded memory, see
    # stylist.tiling); None = tiles only when the whole image would not fit the device's memory, 0 = never.
    tile_size: int | None = None

    def validate(self) -> None:
        """Raise ConfigError (one line) for a value Stylist cannot use."""
        if self.method not in METHODS:
            raise ConfigError(f"unknown --method '{self.method}': use one of {', '.join(METHODS)}")
        if not (0.0 <= self.alpha <= 1.0):
            raise ConfigError(f"--style-strength (alpha) must be between 0 and 1; got {self.alpha}")
        _check_shares(self.style_weights, "--style-weights")
        for level in self.levels:
            if level not in LEVELS:
                raise ConfigError(f"unknown level '{level}' in --levels: use some of {', '.join(WCT_LEVELS)}")
        if not self.levels:
            raise ConfigError("--levels needs at least one level")
        repeated = sorted({lv for lv in self.levels if self.levels.count(lv) > 1})
        if repeated:
            raise ConfigError(f"--levels names {', '.join(repeated)} more than once: give each level once")
        depth = [LEVELS.index(lv) for lv in self.levels]
        if depth != sorted(depth, reverse=True):
            raise ConfigError(
                f"--levels run coarse to fine: give them in the order {' '.join(WCT_LEVELS)} "
                f"(got {' '.join(self.levels)})"
            )
        wct_only = (
            self.level_alphas is not None
            or tuple(self.levels) != WCT_DEFAULT_LEVELS
            or (self.wct_transform, self.level_blend) != (ArbitraryConfig.wct_transform, ArbitraryConfig.level_blend)
        )
        if self.method == "adain" and wct_only:
            raise wct_only_error()
        for name, choices in (("wct_transform", WCT_TRANSFORMS), ("level_blend", LEVEL_BLENDS)):
            if getattr(self, name) not in choices:
                flag = "--" + name.replace("_", "-")
                raise ConfigError(f"unknown {flag} '{getattr(self, name)}': use one of {', '.join(choices)}")
        if self.level_alphas is not None:
            check_one_each("--level-alphas", self.level_alphas, len(self.levels), "level")
            if any(not (0.0 <= a <= 1.0) for a in self.level_alphas):
                raise ConfigError(
                    f"--level-alphas must each be between 0 and 1; got {' '.join(map(str, self.level_alphas))}"
                )
        if self.preserve_color not in COLOR_MODES:
            raise ConfigError(f"unknown --preserve-color '{self.preserve_color}': use one of {', '.join(COLOR_MODES)}")
        for name in ("size", "style_size"):
            value = getattr(self, name)
            if value is not None and value < 16:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 16 pixels; got {value}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"unknown precision '{self.precision}': use one of {', '.join(PRECISIONS)}")
        if self.max_pixels is not None and self.max_pixels <= 0:
            raise ConfigError(f"--max-pixels must be a positive number of pixels; got {self.max_pixels}")
        check_tile_size(self.tile_size)


def wct_only_error() -> ConfigError:
    flags = ", ".join("--" + name.replace("_", "-") for name in WCT_ONLY_OPTIONS)
    return ConfigError(f"{flags} are for --method wct (AdaIN works at relu4_1 alone)")


def _check_shares(weights: Sequence[float] | None, flag: str) -> None:
    if weights is None:
        return
    if any(not (w >= 0 and math.isfinite(w)) for w in weights):
        raise ConfigError(f"{flag} must be zero or positive; got {' '.join(map(str, weights))}")
    if not sum(weights) > 0:
        raise ConfigError(f"{flag} must not all be zero")


# --- the transforms -----------------------------------------------------------------------------------------


def adain(content: torch.Tensor, style: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Adaptive instance normalisation: ``content`` (B, C, H, W) with each channel's mean and
    standard deviation replaced by those of ``style`` (B or 1, C, h, w). Float32 result."""
    c_mean, c_std = mean_std(content, eps)
    s_mean, s_std = mean_std(style, eps)
    return (content.float() - c_mean) / c_std * s_std + s_mean


def _masked_mean_std(f: torch.Tensor, m: torch.Tensor, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of ``f`` (1, C, h, w) weighted by the soft mask ``m`` (1, 1, h, w)."""
    total = m.sum().clamp_min(1e-8)
    mean = (f * m).sum(dim=(2, 3), keepdim=True) / total
    var = ((f - mean).pow(2) * m).sum(dim=(2, 3), keepdim=True) / total
    return mean, (var + eps).sqrt()


def masked_adain(content: torch.Tensor, style: torch.Tensor, mask: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """AdaIN with the photo's statistics taken inside ``mask`` only (Huang and Belongie's spatial
    control: each region normalised by its own statistics, then given its painting's)."""
    f = content.float()
    c_mean, c_std = _masked_mean_std(f, mask, eps)
    s_mean, s_std = mean_std(style, eps)
    return (f - c_mean) / c_std * s_std + s_mean


def _covariance(x: torch.Tensor, weights: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean (C, 1), covariance (C, C)) of the columns of ``x`` (C, N), in float64, optionally weighted (N,)."""
    x = x.double()
    if weights is None:
        mean = x.mean(1, keepdim=True)
        xc = x - mean
        return mean, xc @ xc.T / max(1, x.shape[1])
    w = weights.double()
    total = w.sum().clamp_min(1e-8)
    mean = (x * w).sum(1, keepdim=True) / total
    xc = x - mean
    return mean, (xc * w) @ xc.T / total


def _matrix_power(cov: torch.Tensor, power: float) -> torch.Tensor:
    """cov ** power for a symmetric PSD matrix, dropping eigenvalues below 1e-5 of the largest
    (Li et al. drop those below an absolute 1e-5; relative, the cut ignores the feature scale)."""
    vals, vecs = torch.linalg.eigh(cov)
    keep = vals > vals.max().clamp_min(1e-12) * 1e-5
    scaled = torch.where(keep, vals.clamp_min(1e-12).pow(power), torch.zeros_like(vals))
    return (vecs * scaled) @ vecs.T


def feature_transform(c_cov: torch.Tensor, s_cov: torch.Tensor, kind: str = "zca") -> torch.Tensor:
    """The (C, C) matrix T with T c_cov T^T = s_cov that WCT applies to the centred photo features.

    zca (Li et al. 2017): s_cov^1/2 c_cov^-1/2, whitening then colouring. It makes every direction of
    the photo's features equally strong before colouring, so its faint ones (texture, noise) can take
    the painting's strongest directions. ot: c^-1/2 (c^1/2 s c^1/2)^1/2 c^-1/2, the optimal-transport
    (Monge) map between the two Gaussians (Knott and Smith 1984; used for style by Mroueh 2020,
    "Wasserstein style transfer"): of all such maps, the one that moves the features least.
    ``c_cov`` and ``s_cov``: symmetric positive semi-definite (C, C), float64 for accuracy.
    ConfigError for an unknown ``kind``.
    """
    if kind not in WCT_TRANSFORMS:
        raise ConfigError(f"unknown WCT transform '{kind}': use one of {', '.join(WCT_TRANSFORMS)}")
    if kind == "zca":
        return _matrix_power(s_cov, 0.5) @ _matrix_power(c_cov, -0.5)
    c_half, c_inv_half = _matrix_power(c_cov, 0.5), _matrix_power(c_cov, -0.5)
    vals, vecs = torch.linalg.eigh(c_half @ s_cov @ c_half)  # symmetric PSD: no cut needed for a root
    middle_half = (vecs * vals.clamp_min(0).sqrt()) @ vecs.T
    return c_inv_half @ middle_half @ c_inv_half


def wct(
    content: torch.Tensor, style: torch.Tensor, mask: torch.Tensor | None = None, transform: str = "zca"
) -> torch.Tensor:
    """WCT's feature transform (Li et al. 2017): ``content`` (1, C, H, W) mapped by
    :func:`feature_transform` (``transform``: zca, whitening then colouring; ot, the optimal-transport
    map) from its own mean and covariance (inside ``mask`` (1, 1, H, W) if given) to those of
    ``style`` (1, C, h, w). Float32 result whose covariance and mean are the painting's."""
    _, c, h, w = content.shape
    fc = content[0].reshape(c, -1)
    weights = mask.reshape(-1) if mask is not None else None
    c_mean, c_cov = _covariance(fc, weights)
    s_mean, s_cov = _covariance(style[0].reshape(c, -1))
    matrix = feature_transform(c_cov, s_cov, transform)
    out = matrix @ (fc.double() - c_mean) + s_mean
    return out.reshape(1, c, h, w).float()


def blend(
    content: torch.Tensor,
    targets: Sequence[torch.Tensor],
    shares: Sequence[float],
    masks: Sequence[torch.Tensor] | None,
) -> torch.Tensor:
    """The stylised features of several paintings as one: ``shares`` (summing to 1) without masks;
    with masks (1, 1, h, w), each painting's target inside its own region, soft edges, and the
    photo's own features where the masks cover less than everything."""
    if masks is None:
        return cast(torch.Tensor, sum(s * t for s, t in zip(shares, targets)))  # a sum of tensors
    total = cast(torch.Tensor, sum(masks))
    norm = torch.where(total > 1, 1.0 / total.clamp_min(1e-8), torch.ones_like(total))
    out = content.float() * (1 - total * norm)
    for m, t in zip(masks, targets):
        out = out + m * norm * t
    return out


# --- inference ----------------------------------------------------------------------------------------------


@dataclass
class Prepared:
    """A photo and its paintings as the transforms see them."""

    content: torch.Tensor  # (1, 3, H, W) at the working size, colours prepared
    photo: torch.Tensor  # (1, 3, H, W) the photo's own colours, for luminance mode
    styles: list[torch.Tensor]
    masks: list[torch.Tensor] | None  # (1, 1, H, W) at the working size
    shares: list[float]
    cache: dict | None = None  # painting features by (pixels, size, device, dtype, level), kept by the caller


def stylize_arbitrary(
    content: ImageLike,
    styles: ImageLike | Sequence[ImageLike],
    cfg: ArbitraryConfig | None = None,
    *,
    masks: Sequence[ImageLike] | None = None,
    decoder: Decoder | WCTDecoders | None = None,
    encoder: Encoder | None = None,
    style_cache: dict | None = None,
    on_features: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """``content`` in the style of ``styles`` in one pass: (1, 3, H, W) float32 in [0, 1], on the CPU.

    ``content`` and ``styles`` may be paths, PIL images or RGB tensors in [0, 1]; several styles are
    blended by ``cfg.style_weights`` or, with ``masks`` (one soft mask per painting), each paints its
    own region. The result has the photo's size (or ``cfg.size`` on its long side), aspect kept.
    ``decoder``/``encoder`` reuse loaded networks (default: the shipped decoder, loaded once);
    ``style_cache``, a dict kept between calls, keeps each painting's features (keyed by its pixels),
    so that a batch of photos in one style encodes the painting once. ``on_features`` (AdaIN, whole images
    only: not called in tiles) replaces the target features before they are decoded, (1, 512, h, w)
    on the grid of the photo extended by :func:`edge_margin` px on every side and padded at the bottom
    and right to multiples of 8, one cell per 8 px (``stylist video``'s consistency).
    """
    cfg = cfg or ArbitraryConfig()
    cfg.validate()
    device = resolve_device(cfg.device)
    dtype = torch.bfloat16 if resolve_precision(cfg.precision, device) == "bf16" else torch.float32
    prep = prepare_inputs(content, styles, cfg, masks)
    prep.cache = style_cache
    decoder = decoder if decoder is not None else load_decoder(cfg.method, cfg.decoder, device)
    encoder = encoder if encoder is not None else shared_encoder(device)
    decoder, encoder = _place(decoder, device, dtype), _place(encoder, device, dtype)
    hw = (prep.content.shape[-2], prep.content.shape[-1])
    multiple = 8 if cfg.method == "adain" else 16
    bytes_per_pixel = BYTES_PER_PIXEL[cfg.method] * (0.5 if dtype == torch.bfloat16 else 1.0)
    tile = choose_tile(hw, cfg.tile_size, device, bytes_per_pixel, max(MARGIN.values()), multiple)
    with torch.inference_mode():
        # The decoder is the kind cfg.method names (Decoder for adain, WCTDecoders for wct).
        if cfg.method == "adain":
            out = _run_adain(prep, cfg, encoder, cast(Decoder, decoder), device, dtype, tile, on_features)
        else:
            out = _run_wct(prep, cfg, encoder, cast(WCTDecoders, decoder), device, dtype, tile)
    out = out.float().clamp(0, 1).cpu()
    if cfg.preserve_color == "luminance":
        out = with_chroma(out, prep.photo)
    return out


_Net = TypeVar("_Net", bound=nn.Module)


@lru_cache(maxsize=2)
def shared_encoder(device: torch.device) -> Encoder:
    """One encoder to relu5_1 per device, kept for later calls (loading the weights costs ~1 s)."""
    return Encoder("relu5_1").to(device)


def _place(model: _Net, device: torch.device, dtype: torch.dtype) -> _Net:
    # Weights cast once (not per call, as autocast would) and NHWC, which oneDNN and cuDNN run fastest.
    # torch's stubs of Module.to omit memory_format (hence the ignore)
    return model.to(device=device, dtype=dtype, memory_format=torch.channels_last)  # type: ignore[call-overload]


def prepare_inputs(
    content: ImageLike,
    styles: ImageLike | Sequence[ImageLike],
    cfg: ArbitraryConfig,
    masks: Sequence[ImageLike] | None = None,
) -> Prepared:
    """Read, size and recolour the inputs (pure tensor work; the files are only read)."""
    style_list = list(styles) if isinstance(styles, (list, tuple)) else [cast(ImageLike, styles)]  # else: one painting
    if not style_list:
        raise ConfigError("give at least one style image")
    if cfg.style_weights is not None:
        check_one_each("--style-weights", cfg.style_weights, len(style_list), "style image")
    if masks and cfg.style_weights is not None:
        raise ConfigError(
            "--style-weights and --mask do not go together: each mask already says where its painting goes"
        )
    photo = load_tensor(content, "content", cfg.max_pixels)
    if cfg.size is not None:
        photo = resize_long_side(photo, cfg.size)
    paintings = [load_tensor(s, "style", cfg.max_pixels) for s in style_list]
    need = 16 if cfg.method == "adain" else 32  # 2 px at relu4_1 (AdaIN) or relu5_1 (WCT): see pad_to_multiple
    paintings = [
        fit_min_side(p, need, source_name(s, f"style image {i + 1}"), cfg.style_size)
        for i, (p, s) in enumerate(zip(paintings, style_list))
    ]
    mask_ts = load_masks(masks, len(paintings), (photo.shape[-2], photo.shape[-1]))
    weights = cfg.style_weights or (1.0,) * len(paintings)
    shares = [w / sum(weights) for w in weights]
    content_t, style_ts = prepare_colors(cfg.preserve_color, photo, paintings)
    return Prepared(content_t, photo, style_ts, mask_ts, shares)


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """``x`` padded at the bottom and right so both sides are multiples of ``multiple``: reflected
    where the image is big enough (no hard edge for the encoder to see), else repeated."""
    # At least two multiples: the decoder's first reflection pad needs 2 px at the deepest level (issue 19).
    return pad_to_fit(x, 2 * multiple, multiple)


def _features_of(
    encoder: Encoder, x: torch.Tensor, multiple: int, device: torch.device, dtype: torch.dtype, stop: str | None = None
) -> dict[str, torch.Tensor]:
    x = pad_to_multiple(x.to(device), multiple).to(dtype).contiguous(memory_format=torch.channels_last)
    return encoder(x, stop)


def _style_features(
    encoder: Encoder,
    x: torch.Tensor,
    multiple: int,
    device: torch.device,
    dtype: torch.dtype,
    stop: str,
    cache: dict | None = None,
) -> dict[str, torch.Tensor]:
    """A painting's features: only statistics are taken, so it is not padded (padding would add
    reflected texture to them) unless a side is too short for the poolings."""
    if cache is not None:
        key = (
            hashlib.sha1(x.detach().cpu().contiguous().numpy().tobytes()).hexdigest(),
            tuple(x.shape),
            str(device),
            dtype,
            stop,
        )
        if key not in cache:
            cache[key] = _style_features(encoder, x, multiple, device, dtype, stop)
        return cache[key]
    if min(x.shape[-2:]) < multiple:
        x = F.pad(x, (0, max(0, multiple - x.shape[-1]), 0, max(0, multiple - x.shape[-2])), mode="replicate")
    return encoder(x.to(device, dtype).contiguous(memory_format=torch.channels_last), stop)


def _mask_at(
    masks: list[torch.Tensor] | None, size: tuple[int, int], multiple: int, device: torch.device
) -> list[torch.Tensor] | None:
    if masks is None:
        return None
    return [layer_mask(pad_to_multiple(m.to(device), multiple), size) for m in masks]


# AdaIN: px of the photo reflected on every side before encoding, cut off after decoding. Departure
# (none of the papers does it): the encoder's zero padding gives the features along the border values
# no interior feature has, and the decoder draws them as a frame of dark or light lines. Measured on
# the quality benchmark's 24 held-out pairs (docs/models/artefacts.py) with the retrained decoder half
# way through its training: the edge band's median 0.042 -> 0.034, worst 0.140 -> 0.098 with 16 px;
# 32 px did no better (0.031, 0.097) and cost more.
EDGE_MARGIN = 16


def edge_margin(h: int, w: int) -> int:
    """The margin AdaIN reflects a (h, w) photo by: EDGE_MARGIN, or 0 where a side is too short to reflect."""
    return EDGE_MARGIN if min(h, w) > EDGE_MARGIN else 0


def _with_margin(prep: Prepared, margin: int) -> Prepared:
    """``prep`` with its photo (and masks) reflected (repeated) by ``margin`` px on every side."""
    pad = (margin,) * 4
    masks = None if prep.masks is None else [F.pad(m, pad, mode="replicate") for m in prep.masks]
    return replace(prep, content=F.pad(prep.content, pad, mode="reflect"), masks=masks)


def _run_adain(
    prep: Prepared,
    cfg: ArbitraryConfig,
    encoder: Encoder,
    decoder: Decoder,
    device: torch.device,
    dtype: torch.dtype,
    tile: int | None = None,
    on_features: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    h, w = prep.content.shape[-2:]
    m = edge_margin(h, w)
    prep = _with_margin(prep, m) if m else prep
    if tile is not None:
        styles = [
            _style_features(encoder, s, 8, device, dtype, ADAIN_LEVEL, prep.cache)[ADAIN_LEVEL] for s in prep.styles
        ]
        moments = [mean_std(fs) for fs in styles]

        def to_targets(f: torch.Tensor, stats: list[RunningMoments]) -> list[torch.Tensor]:
            return [_adain_with(f, c, s_mean, s_std) for c, (s_mean, s_std) in zip(stats, moments)]

        level = _Level(ADAIN_LEVEL, 8, cfg.alpha, tile, False)
        out = _stylize_level_tiled(prep.content, prep, level, encoder, decoder, device, dtype, to_targets)
        return out[..., m : m + h, m : m + w]
    fc = _features_of(encoder, prep.content, 8, device, dtype, ADAIN_LEVEL)[ADAIN_LEVEL]
    targets = []
    masks = _mask_at(prep.masks, (fc.shape[-2], fc.shape[-1]), 8, device)
    for i, style in enumerate(prep.styles):
        fs = _style_features(encoder, style, 8, device, dtype, ADAIN_LEVEL, prep.cache)[ADAIN_LEVEL]
        targets.append(adain(fc, fs) if masks is None else masked_adain(fc, fs, masks[i]))
    t = blend(fc, targets, prep.shares, masks)
    t = cfg.alpha * t + (1 - cfg.alpha) * fc.float()
    if on_features is not None:
        t = on_features(t)
    # the margin and the padding to multiples of 8 (bottom and right) cut off
    return decoder(t.to(dtype).contiguous(memory_format=torch.channels_last))[..., m : m + h, m : m + w]


def _run_wct(
    prep: Prepared,
    cfg: ArbitraryConfig,
    encoder: Encoder,
    decoders: WCTDecoders,
    device: torch.device,
    dtype: torch.dtype,
    tile: int | None = None,
) -> torch.Tensor:
    missing = [lv for lv in cfg.levels if lv not in decoders.levels]
    if missing:
        raise ConfigError(
            f"the WCT decoder file has no decoder for {', '.join(missing)}; use --levels {' '.join(decoders.levels)}"
        )
    h, w = prep.content.shape[-2:]
    deepest = max(cfg.levels, key=LEVELS.index)
    style_feats = [_style_features(encoder, s, 16, device, dtype, deepest, prep.cache) for s in prep.styles]
    strengths = cfg.level_alphas or default_level_alphas(cfg.levels)
    image = prep.content
    for i, (level, strength) in enumerate(zip(cfg.levels, strengths)):
        a = cfg.alpha * strength
        # The features the strength mixes with: the photo's (Stylist's default), or the previous level's
        # result (Li et al.); the same at the first level.
        anchor = prep.content if cfg.level_blend == "photo" and i > 0 else None
        if tile is not None:
            image = _wct_level_tiled(image, anchor, prep, level, a, tile, style_feats, encoder, decoders, cfg)
            continue
        fc = _features_of(encoder, image, 16, device, dtype, level)[level]
        masks = _mask_at(prep.masks, (fc.shape[-2], fc.shape[-1]), 16, device)
        targets = [
            wct(fc, sf[level], None if masks is None else masks[k], cfg.wct_transform)
            for k, sf in enumerate(style_feats)
        ]
        if anchor is not None:
            del fc  # one full-size feature map at a time: the photo's replaces the image's
            keep = _features_of(encoder, anchor, 16, device, dtype, level)[level]
        else:
            keep = fc
        t = a * blend(keep, targets, prep.shares, masks) + (1 - a) * keep.float()
        image = (
            decoders[level](t.to(dtype).contiguous(memory_format=torch.channels_last))[..., :h, :w].float().clamp(0, 1)
        )
    return image


# --- tiled inference (issue 18) -------------------------------------------------------------------------------

# Receptive-field radii, px at the input, of the encoder up to each level (3x3 convolutions and 2x2
# poolings of VGG-19) and of the decoder from it (its mirror, 3x3 convolutions and x2 upsamplings).
ENCODER_RADIUS = {"relu1_1": 1, "relu2_1": 5, "relu3_1": 12, "relu4_1": 34, "relu5_1": 78}
DECODER_RADIUS = {"relu1_1": 1, "relu2_1": 5, "relu3_1": 11, "relu4_1": 31, "relu5_1": 71}
# A tile's margin at each level: encoder and decoder radii together, rounded up to the level's stride grid
# (8 px for AdaIN's padding, 16 px for WCT's).
MARGIN = {lv: math.ceil((ENCODER_RADIUS[lv] + DECODER_RADIUS[lv] + 1) / 16) * 16 for lv in LEVELS}
# Peak bytes per input pixel of a whole-image float32 run (measured by benchmarks/resolution.py on the
# CPU: the 64-channel full-size features of the encoder's and decoder's first block); what the
# automatic tile size plans with. bf16 halves them.
BYTES_PER_PIXEL = {"adain": 1400.0, "wct": 1600.0}


@dataclass
class _Level:
    """One level of a tiled run: where the features are changed, the grid's stride, the strength."""

    name: str
    multiple: int
    alpha: float
    tile: int
    covariance: bool  # WCT's mean and covariance, else AdaIN's mean and variance


def _adain_with(
    f: torch.Tensor, content: RunningMoments, s_mean: torch.Tensor, s_std: torch.Tensor, eps: float = 1e-5
) -> torch.Tensor:
    """:func:`adain` of features ``f`` with the photo's statistics given (the whole image's, gathered in tiles)."""
    c_mean = content.mean().float().to(f.device).view(1, -1, 1, 1)
    c_std = (content.variance() + eps).sqrt().float().to(f.device).view(1, -1, 1, 1)
    return (f.float() - c_mean) / c_std * s_std + s_mean


def _wct_with(f: torch.Tensor, transform: torch.Tensor, c_mean: torch.Tensor, s_mean: torch.Tensor) -> torch.Tensor:
    """:func:`wct` of features ``f`` (1, C, h, w) with the whole image's transform and means (float64)."""
    _, c, h, w = f.shape
    out = transform @ (f[0].reshape(c, -1).double() - c_mean) + s_mean
    return out.reshape(1, c, h, w).float()


def _gather(
    padded: torch.Tensor,
    level: _Level,
    masks: list[torch.Tensor] | None,
    encoder: Encoder,
    device: torch.device,
    dtype: torch.dtype,
) -> list[RunningMoments]:
    """The photo's whole-image statistics at ``level`` (one set per mask, or one), summed over the
    interiors of the tiles: each position once, as in the whole-image run."""
    # The decoding pass's margin, though the encoder needs less: tiles of one size keep the heap from
    # fragmenting (see stylist.tiling.grid), which costs less than the extra context.
    margin = MARGIN[level.name]
    moments = [RunningMoments(level.covariance) for _ in range(len(masks) if masks else 1)]
    scale = 1 / 2 ** LEVELS.index(level.name)  # the level's stride
    for t in grid(padded.shape[-2], padded.shape[-1], level.tile, margin, level.multiple):
        f = encoder(t.region(padded).to(device, dtype).contiguous(memory_format=torch.channels_last), level.name)
        f = f[level.name]
        inner = t.interior(f, scale)
        for i, m in enumerate(moments):
            m.add(inner, None if masks is None else t.inner(masks[i], scale))
    return moments


def _stylize_level_tiled(
    image: torch.Tensor,
    prep: Prepared,
    level: _Level,
    encoder: Encoder,
    decoder: Decoder,
    device: torch.device,
    dtype: torch.dtype,
    to_targets: Callable[[torch.Tensor, list[RunningMoments]], list[torch.Tensor]],
    anchor: torch.Tensor | None = None,
) -> torch.Tensor:
    """One level of AdaIN or WCT on ``image`` (1, 3, H, W) in tiles, with the whole image's statistics:
    a pass gathers them, a second changes each tile's features with them, decodes it and keeps its
    interior. The strength mixes with the features of ``anchor`` (same size; None: ``image``'s own).
    Returns (1, 3, H, W) float32 on the CPU, unclamped, as the whole-image run's decoder gives."""
    h, w = image.shape[-2:]
    padded = pad_to_multiple(image.float().cpu(), level.multiple)
    anchor_padded = None if anchor is None else pad_to_multiple(anchor.float().cpu(), level.multiple)
    stride = 2 ** LEVELS.index(level.name)
    feat_hw = (padded.shape[-2] // stride, padded.shape[-1] // stride)
    masks = (
        None
        if prep.masks is None
        else [layer_mask(pad_to_multiple(m.cpu(), level.multiple), feat_hw) for m in prep.masks]
    )
    stats = _gather(padded, level, masks, encoder, device, dtype)
    out = torch.empty(1, 3, padded.shape[-2], padded.shape[-1])
    for t in grid(padded.shape[-2], padded.shape[-1], level.tile, MARGIN[level.name], level.multiple):
        f = encoder(t.region(padded).to(device, dtype).contiguous(memory_format=torch.channels_last), level.name)
        fc = keep = f[level.name]
        if anchor_padded is not None:
            region = t.region(anchor_padded).to(device, dtype).contiguous(memory_format=torch.channels_last)
            keep = encoder(region, level.name)[level.name]
        region_masks = None if masks is None else [t.region(m, 1 / stride).to(device) for m in masks]
        target = blend(keep, to_targets(fc, stats), prep.shares, region_masks)
        target = level.alpha * target + (1 - level.alpha) * keep.float()
        t.place(out, decoder(target.to(dtype).contiguous(memory_format=torch.channels_last)).float().cpu())
    return out[..., :h, :w]


def _wct_level_tiled(
    image: torch.Tensor,
    anchor: torch.Tensor | None,
    prep: Prepared,
    level: str,
    alpha: float,
    tile: int,
    style_feats: list[dict[str, torch.Tensor]],
    encoder: Encoder,
    decoders: WCTDecoders,
    cfg: ArbitraryConfig,
) -> torch.Tensor:
    """One WCT level in tiles (:func:`_stylize_level_tiled`), clamped to [0, 1] as the whole-image level;
    ``anchor``: the image whose features the strength mixes with (None: ``image``'s own)."""
    device = next(encoder.parameters()).device
    dtype = next(encoder.parameters()).dtype
    styles = []
    for sf in style_feats:
        f = sf[level]
        styles.append(_covariance(f[0].reshape(f.shape[1], -1)))

    transforms: list[tuple[torch.Tensor, torch.Tensor]] = []  # per painting: whitening-colouring, photo's mean

    def to_targets(f: torch.Tensor, stats: list[RunningMoments]) -> list[torch.Tensor]:
        if not transforms:  # once per level: the eigendecompositions are the costly part
            for c, (_, s_cov) in zip(stats, styles):
                c_mean, c_cov = c.mean().to(s_cov.device).view(-1, 1), c.cov().to(s_cov.device)
                transforms.append((feature_transform(c_cov, s_cov, cfg.wct_transform), c_mean))
        return [_wct_with(f, t, c_mean, s[0]) for (t, c_mean), s in zip(transforms, styles)]

    spec = _Level(level, 16, alpha, tile, True)
    decoder = decoders[level]
    return _stylize_level_tiled(image, prep, spec, encoder, decoder, device, dtype, to_targets, anchor).clamp(0, 1)
