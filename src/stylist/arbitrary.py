"""Arbitrary style in one pass: AdaIN (Huang and Belongie, ICCV 2017) and WCT (Li et al., NeurIPS 2017).

Both methods encode with the frozen Caffe VGG-19 (:mod:`stylist.vgg`), change the photo's
features so that their statistics are the painting's, and decode the result with a network
trained once, for any painting:

``adain``  one decoder from relu4_1; the photo's features get each channel's mean and standard
           deviation from the painting (adaptive instance normalisation). The decoder is trained
           with a content loss on the AdaIN target and a mean/std style loss.
``wct``    five decoders, relu5_1 ... relu1_1, each trained only to reconstruct photographs; the
           photo's features are whitened and coloured with the painting's covariance at every
           level, coarse to fine, decoding to an image between levels.

Departures from the papers, each for a stated reason:

* Features are divided by a fixed per-layer constant (:data:`FEATURE_SCALE`, the mean activation
  of the Caffe VGG-19 over photographs). Both papers used a *normalised* VGG (Gatys et al.: each
  filter's mean activation 1); the raw Caffe layers differ in scale by 20x, which would otherwise
  change what "style weight 10" and "feature weight 1" mean. AdaIN and WCT are unchanged by a
  per-layer scale; only the loss balance and the decoders' input range are.
* The relu5_1 WCT decoder is a slimmer mirror (at most :data:`WCT_DEEP_WIDTH` channels instead of
  512 in its two deepest blocks), to keep the shipped decoders small (about 20 MB in fp16 for all
  five, not 34 MB). The other decoders mirror the encoder exactly.
* WCT drops eigenvalues below a *relative* threshold (1e-5 of the largest) rather than Li et al.'s
  absolute 1e-5, so that the cut does not depend on the feature scale.
* ``identity_weight`` (0 by default, as in the paper) adds an identity loss to AdaIN training: the
  photo decoded from its own relu4_1 against the photo, so that alpha 0 gives the photo back
  rather than the training paintings' palette (a risk with few paintings; see the model card).
* The WCT feature loss is measured on the scaled features above (Li et al.: lambda = 1 on their
  normalised VGG's features), so lambda = 1 keeps the balance they intended.

The module is silent: it prints nothing and writes no file. Training reports through
``callback(progress)``; the CLI (:mod:`stylist.cli_arbitrary`) writes checkpoints, previews,
loss curves and the decoder file.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .color import COLOR_MODES, prepare_colors, with_chroma
from .errors import ConfigError, StylistError, first_line
from .image import ImageLike, fit_min_side, load_tensor, pad_to_fit, resize_long_side, source_name
from .losses import layer_mask, mean_std
from .masks import load_masks
from .optimize import PRECISIONS, resolve_device, resolve_precision
from .training import (
    TRAIN_PRECISIONS,
    Batches,
    CropDataset,
    find_images,
    gather_floats,
    init_distributed,
    is_main,
    mean_across,
    rank_and_world,
    rng_state,
    seed_everything,
    set_rng_state,
    train_dtype,
)
from .vgg import VGGFeatures

METHODS = ("adain", "wct")
LEVELS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")  # fine to coarse
WCT_LEVELS = tuple(reversed(LEVELS))  # the order WCT runs them: coarse to fine
ADAIN_LEVEL = "relu4_1"
ADAIN_STYLE_LAYERS = LEVELS[:4]  # Huang and Belongie's style loss layers
# Mean activation of each layer of the Caffe VGG-19 over BSDS500 photographs at their own size
# (measured once, rounded). Features are divided by these: see the module notes.
FEATURE_SCALE = {"relu1_1": 20.0, "relu2_1": 100.0, "relu3_1": 100.0, "relu4_1": 400.0, "relu5_1": 40.0}
VGG_CHANNELS = (64, 128, 256, 512, 512)  # channels of blocks 1..5
VGG_CONVS = (2, 2, 4, 4, 4)  # convolutions of blocks 1..5 (VGG-19)
WCT_DEEP_WIDTH = 256  # channel cap of the relu5_1 WCT decoder (a departure, see the notes)
ENCODER_WEIGHTS = "vgg19-caffe"
FORMAT = "stylist-arbitrary-decoder"
MODELS_DIR = Path(__file__).resolve().parent / "models"
SHIPPED = {"adain": "adain_decoder.safetensors", "wct": "wct_decoders.safetensors"}


def multiple_of(method: str) -> int:
    """Input sides must be multiples of this: 2 ** (poolings before the deepest layer)."""
    return 8 if method == "adain" else 16


# --- configuration ------------------------------------------------------------------------------------


@dataclass
class ArbitraryConfig:
    """Every option of ``stylist arbitrary``; the CLI builds its flags from these fields."""

    # adain (Huang and Belongie 2017: one decoder, fastest) or wct (Li et al. 2017: whitening and
    # colouring at five levels, stronger style, slower).
    method: str = "adain"
    # Style strength: 0 gives back the photo (through the decoder), 1 the full style.
    alpha: float = 1.0
    # Share of each painting in a blend of several styles; None = equal shares. Normalised to
    # sum to 1. Not used with masks (each mask says where its painting goes).
    style_weights: tuple[float, ...] | None = None
    # WCT only: strength of each level relu5_1 relu4_1 relu3_1 relu2_1 relu1_1 (coarse to fine),
    # multiplied by alpha; None = 1 at every level.
    level_alphas: tuple[float, ...] | None = None
    # WCT only: the levels to run, coarse to fine (fewer levels: faster, less style).
    levels: tuple[str, ...] = WCT_LEVELS
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

    def validate(self) -> None:
        """Raise ConfigError (one line) for a value Stylist cannot use."""
        if self.method not in METHODS:
            raise ConfigError(f"unknown --method '{self.method}': use one of {', '.join(METHODS)}")
        if not (0.0 <= self.alpha <= 1.0):
            raise ConfigError(f"--alpha must be between 0 and 1; got {self.alpha}")
        _check_shares(self.style_weights, "--style-weights")
        for level in self.levels:
            if level not in LEVELS:
                raise ConfigError(f"unknown level '{level}' in --levels: use some of {', '.join(WCT_LEVELS)}")
        if not self.levels or len(set(self.levels)) != len(self.levels):
            raise ConfigError("--levels needs at least one level, each once")
        if self.level_alphas is not None:
            if len(self.level_alphas) != len(self.levels):
                raise ConfigError(f"--level-alphas has {len(self.level_alphas)} values for {len(self.levels)} levels")
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


def _check_shares(weights: Sequence[float] | None, flag: str) -> None:
    if weights is None:
        return
    if any(not (w >= 0 and math.isfinite(w)) for w in weights):
        raise ConfigError(f"{flag} must be zero or positive; got {' '.join(map(str, weights))}")
    if not sum(weights) > 0:
        raise ConfigError(f"{flag} must not all be zero")


# --- encoder and decoders -------------------------------------------------------------------------------


class Encoder(nn.Module):
    """The frozen Caffe VGG-19 up to ``deepest``, returning relu{k}_1 features divided by FEATURE_SCALE."""

    def __init__(self, deepest: str = "relu5_1") -> None:
        super().__init__()
        self.vgg = VGGFeatures(LEVELS[: LEVELS.index(deepest) + 1], ENCODER_WEIGHTS)
        self.sha256 = self.vgg.sha256

    def forward(self, x: torch.Tensor, stop: str | None = None) -> dict[str, torch.Tensor]:
        """{relu{k}_1: features} for every level up to ``stop`` (default: the deepest built)."""
        vgg, out = self.vgg, {}
        stop = stop or vgg.layers[-1]
        h = vgg.preprocess(x)
        for name in vgg.names:
            if name.startswith("conv"):
                h = vgg.convs[name](h)
            elif name.startswith("relu"):
                h = F.relu(h, inplace=True)  # safe under autograd: ReLU's backward needs its output, conv's its input
            else:
                h = F.max_pool2d(h, 2, 2)
            if name in FEATURE_SCALE:
                out[name] = h / FEATURE_SCALE[name]
            if name == stop:
                break
        return out

    def train(self, mode: bool = True) -> Encoder:
        return super().train(False)


def decoder_plan(level: str, width_cap: int | None = None) -> list[tuple[int, int] | None]:
    """The decoder from ``level`` as a list of convolutions (in, out) and upsamplings (None).

    It mirrors the encoder: block k's single convolution (relu{k}_1 sees only conv{k}_1), then
    each lower block's convolutions in reverse, upsampling (nearest, 2x) where the encoder
    pooled. ``width_cap`` limits the channels of the decoder's blocks (not of its input).
    """
    k = LEVELS.index(level) + 1
    width = [min(c, width_cap or c) for c in VGG_CHANNELS]
    if k == 1:
        return [(VGG_CHANNELS[0], 3)]
    plan: list[tuple[int, int] | None] = [(VGG_CHANNELS[k - 1], width[k - 2]), None]
    for b in range(k - 1, 0, -1):
        c = width[b - 1]
        plan += [(c, c)] * (VGG_CONVS[b - 1] - 1)
        plan.append((c, width[b - 2] if b > 1 else 3))
        if b > 1:
            plan.append(None)
    return plan


class Decoder(nn.Module):
    """Features at ``level`` -> RGB image: reflection-padded 3x3 convolutions with ReLU (none after
    the last, as in Huang and Belongie's decoder) and nearest-neighbour upsampling."""

    def __init__(self, level: str = ADAIN_LEVEL, width_cap: int | None = None) -> None:
        super().__init__()
        self.level, self.width_cap = level, width_cap
        plan = decoder_plan(level, width_cap)
        layers: list[nn.Module] = []
        for i, step in enumerate(plan):
            if step is None:
                layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
                continue
            layers += [nn.ReflectionPad2d(1), nn.Conv2d(step[0], step[1], 3)]
            if i < len(plan) - 1:
                layers.append(nn.ReLU(inplace=True))
        self.net = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)


class WCTDecoders(nn.Module):
    """One reconstruction decoder per WCT level; ``forward`` decodes each level's features."""

    def __init__(self, levels: Sequence[str] = WCT_LEVELS, widths: dict[str, int | None] | None = None) -> None:
        super().__init__()
        widths = widths if widths is not None else {"relu5_1": WCT_DEEP_WIDTH}
        self.levels = tuple(levels)
        self.decoders = nn.ModuleDict({lv: Decoder(lv, widths.get(lv)) for lv in self.levels})

    def forward(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Decode the levels given (a fine-tuning run trains only some of them)."""
        return {lv: self.decoders[lv](f) for lv, f in features.items()}

    def __getitem__(self, level: str) -> Decoder:
        return self.decoders[level]


def new_decoder(method: str, levels: Sequence[str] = WCT_LEVELS) -> Decoder | WCTDecoders:
    return Decoder(ADAIN_LEVEL) if method == "adain" else WCTDecoders(levels)


# --- decoder files ----------------------------------------------------------------------------------------


def decoder_file(
    model: Decoder | WCTDecoders, extra: dict | None = None
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(fp16 tensors, string metadata) for a safetensors decoder file; the caller writes it."""
    method = "adain" if isinstance(model, Decoder) else "wct"
    parts = {"": model} if method == "adain" else {f"{lv}.": model[lv] for lv in model.levels}
    tensors = {
        p + k: v.detach().to("cpu", torch.float16).contiguous()
        for p, m in parts.items()
        for k, v in m.state_dict().items()
    }
    widths = (
        {lv: m.width_cap for lv, m in ((model.level, model),)}
        if method == "adain"
        else {lv: model[lv].width_cap for lv in model.levels}
    )
    meta = {
        "format": FORMAT,
        "method": method,
        "levels": json.dumps(list(widths)),
        "widths": json.dumps(widths),
        "encoder": ENCODER_WEIGHTS,
        "feature_scale": json.dumps(FEATURE_SCALE),
        **{k: v if isinstance(v, str) else json.dumps(v) for k, v in (extra or {}).items()},
    }
    return tensors, meta


def shipped_path(method: str) -> Path:
    return MODELS_DIR / SHIPPED[method]


def load_decoder(
    method: str = "adain", path: str | Path | None = None, device: str | torch.device = "cpu"
) -> Decoder | WCTDecoders:
    """A decoder from ``path`` (a file from ``stylist train-decoder``) or the one shipped with Stylist.

    StylistError (one line) when the file is missing, is not a decoder file, or is for the other method.
    """
    if method not in METHODS:
        raise ConfigError(f"unknown method '{method}': use one of {', '.join(METHODS)}")
    model = _load_cached(method, str(path) if path is not None else None)
    return model.to(device)


@lru_cache(maxsize=4)
def _load_cached(method: str, path: str | None) -> Decoder | WCTDecoders:
    from safetensors import SafetensorError, safe_open

    file = Path(path) if path is not None else shipped_path(method)
    if not file.is_file():
        if path is None:
            raise StylistError(
                f"no {method} decoder shipped in this installation ({file} is missing); "
                f"train one with 'stylist train-decoder --method {method} ...' and pass --decoder FILE"
            )
        raise StylistError(f"{file}: decoder file not found")
    try:
        with safe_open(str(file), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as err:
        raise StylistError(f"{file}: not a decoder file ({first_line(err)})") from None
    if meta.get("format") != FORMAT:
        raise StylistError(f"{file}: not a Stylist decoder file (no '{FORMAT}' metadata)")
    if meta.get("method") != method:
        raise StylistError(f"{file}: is a decoder for --method {meta.get('method')}, not --method {method}")
    widths = json.loads(meta["widths"])
    model = Decoder(ADAIN_LEVEL, widths.get(ADAIN_LEVEL)) if method == "adain" else WCTDecoders(list(widths), widths)
    state = {k if method == "adain" else f"decoders.{k}": v.float() for k, v in tensors.items()}
    try:
        model.load_state_dict(state)
    except RuntimeError:
        raise StylistError(
            f"{file}: the decoder's tensors do not match its stated shape; the file is damaged"
        ) from None
    return model.eval().requires_grad_(False)


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


def wct(content: torch.Tensor, style: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Whitening and colouring (Li et al. 2017): ``content`` (1, C, H, W) whitened with its own
    covariance (inside ``mask`` (1, 1, H, W) if given) and coloured with that of ``style`` (1, C, h, w).
    Float32 result whose covariance and mean are the painting's."""
    _, c, h, w = content.shape
    fc = content[0].reshape(c, -1)
    weights = mask.reshape(-1) if mask is not None else None
    c_mean, c_cov = _covariance(fc, weights)
    s_mean, s_cov = _covariance(style[0].reshape(c, -1))
    transform = _matrix_power(s_cov, 0.5) @ _matrix_power(c_cov, -0.5)
    out = transform @ (fc.double() - c_mean) + s_mean
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
        return sum(s * t for s, t in zip(shares, targets))
    total = sum(masks)
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
) -> torch.Tensor:
    """``content`` in the style of ``styles`` in one pass: (1, 3, H, W) float32 in [0, 1], on the CPU.

    ``content`` and ``styles`` may be paths, PIL images or RGB tensors in [0, 1]; several styles are
    blended by ``cfg.style_weights`` or, with ``masks`` (one soft mask per painting), each paints its
    own region. The result has the photo's size (or ``cfg.size`` on its long side), aspect kept.
    ``decoder``/``encoder`` reuse loaded networks (default: the shipped decoder, loaded once);
    ``style_cache``, a dict kept between calls, keeps each painting's features (keyed by its pixels),
    so that a batch of photos in one style encodes the painting once.
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
    with torch.inference_mode():
        run = _run_adain if cfg.method == "adain" else _run_wct
        out = run(prep, cfg, encoder, decoder, device, dtype)
    out = out.float().clamp(0, 1).cpu()
    if cfg.preserve_color == "luminance":
        out = with_chroma(out, prep.photo)
    return out


@lru_cache(maxsize=2)
def shared_encoder(device: torch.device) -> Encoder:
    """One encoder to relu5_1 per device, kept for later calls (loading the weights costs ~1 s)."""
    return Encoder("relu5_1").to(device)


def _place(model: nn.Module, device: torch.device, dtype: torch.dtype) -> nn.Module:
    # Weights cast once (not per call, as autocast would) and NHWC, which oneDNN and cuDNN run fastest.
    return model.to(device=device, dtype=dtype, memory_format=torch.channels_last)


def prepare_inputs(
    content: ImageLike,
    styles: ImageLike | Sequence[ImageLike],
    cfg: ArbitraryConfig,
    masks: Sequence[ImageLike] | None = None,
) -> Prepared:
    """Read, size and recolour the inputs (pure tensor work; the files are only read)."""
    style_list = list(styles) if isinstance(styles, (list, tuple)) else [styles]
    if not style_list:
        raise ConfigError("give at least one style image")
    if cfg.style_weights is not None and len(cfg.style_weights) != len(style_list):
        raise ConfigError(f"--style-weights has {len(cfg.style_weights)} values for {len(style_list)} style image(s)")
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
    mask_ts = load_masks(masks, len(paintings), tuple(photo.shape[-2:]))
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


def _run_adain(
    prep: Prepared, cfg: ArbitraryConfig, encoder: Encoder, decoder: Decoder, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    h, w = prep.content.shape[-2:]
    fc = _features_of(encoder, prep.content, 8, device, dtype, ADAIN_LEVEL)[ADAIN_LEVEL]
    targets = []
    masks = _mask_at(prep.masks, tuple(fc.shape[-2:]), 8, device)
    for i, style in enumerate(prep.styles):
        fs = _style_features(encoder, style, 8, device, dtype, ADAIN_LEVEL, prep.cache)[ADAIN_LEVEL]
        targets.append(adain(fc, fs) if masks is None else masked_adain(fc, fs, masks[i]))
    t = blend(fc, targets, prep.shares, masks)
    t = cfg.alpha * t + (1 - cfg.alpha) * fc.float()
    return decoder(t.to(dtype).contiguous(memory_format=torch.channels_last))[..., :h, :w]


def _run_wct(
    prep: Prepared,
    cfg: ArbitraryConfig,
    encoder: Encoder,
    decoders: WCTDecoders,
    device: torch.device,
    dtype: torch.dtype,
) -> torch.Tensor:
    missing = [lv for lv in cfg.levels if lv not in decoders.levels]
    if missing:
        raise ConfigError(
            f"the WCT decoder file has no decoder for {', '.join(missing)}; use --levels {' '.join(decoders.levels)}"
        )
    h, w = prep.content.shape[-2:]
    deepest = max(cfg.levels, key=LEVELS.index)
    style_feats = [_style_features(encoder, s, 16, device, dtype, deepest, prep.cache) for s in prep.styles]
    strengths = cfg.level_alphas or (1.0,) * len(cfg.levels)
    image = prep.content
    for level, strength in zip(cfg.levels, strengths):
        fc = _features_of(encoder, image, 16, device, dtype, level)[level]
        masks = _mask_at(prep.masks, tuple(fc.shape[-2:]), 16, device)
        targets = [wct(fc, sf[level], None if masks is None else masks[i]) for i, sf in enumerate(style_feats)]
        a = cfg.alpha * strength
        t = a * blend(fc, targets, prep.shares, masks) + (1 - a) * fc.float()
        image = (
            decoders[level](t.to(dtype).contiguous(memory_format=torch.channels_last))[..., :h, :w].float().clamp(0, 1)
        )
    return image


# --- training ----------------------------------------------------------------------------------------------


@dataclass
class DecoderTrainConfig:
    """Every option of ``stylist train-decoder``; the CLI builds its flags from these fields."""

    # adain (decoder trained with content and style losses; needs paintings) or wct (five decoders
    # trained to reconstruct photographs; needs photographs only).
    method: str = "adain"
    # Folder of photographs, searched recursively (Huang and Belongie used MS-COCO).
    content: str = ""
    # AdaIN: folder of paintings, searched recursively (Huang and Belongie used WikiArt).
    style: str | None = None
    # File names of paintings to leave out of training, to judge the decoder on styles it never saw.
    exclude_styles: tuple[str, ...] = ()
    # Optimiser steps in all (Huang and Belongie: 160000 at batch 8).
    steps: int = 10000
    # Images per step (per process under torchrun).
    batch_size: int = 8
    # Side of the square training crops, px (the papers: 256).
    image_size: int = 256
    # Photos: short side resized to image_size times a factor drawn from this range, then cropped.
    content_scale: tuple[float, ...] = (1.0, 1.5)
    # Paintings: the same, over a wider range (heavy crops and scales: a few paintings go further).
    style_scale: tuple[float, ...] = (1.0, 3.0)
    # Adam step (the papers: 1e-4).
    lr: float = 1e-4
    # Learning rate at step s is lr / (1 + lr_decay * s) (Huang and Belongie's schedule).
    lr_decay: float = 5e-5
    # AdaIN: weight of the content loss on the AdaIN target at relu4_1.
    content_weight: float = 1.0
    # AdaIN: weight of the mean/std style loss at relu1_1..relu4_1 (the paper: 10).
    style_weight: float = 10.0
    # WCT: weight of the pixel reconstruction loss.
    pixel_weight: float = 1.0
    # WCT: weight lambda of the feature reconstruction loss (Li et al.: 1).
    feature_weight: float = 1.0
    # WCT: the levels to train a decoder for.
    levels: tuple[str, ...] = WCT_LEVELS
    # Start from the weights of this decoder file instead of random ones (fine-tuning). WCT: the
    # file's levels that are not in --levels are carried over unchanged into the result.
    init: str | None = None
    # AdaIN: weight of an identity loss, decoder(photo's own relu4_1) against the photo (pixel MSE
    # plus relu4_1 MSE). 0 is the paper's objective; see docs/models/adain.md for when to add it.
    identity_weight: float = 0.0
    # Seed for the initial weights and the order and placement of the crops.
    seed: int = 0
    # auto (cuda, then cpu), or an explicit torch device such as cpu or cuda:1.
    device: str = "auto"
    # Mixed precision: auto (bf16 on GPUs that have it, else fp16 on GPUs, fp32 on CPUs), fp32, bf16 or fp16.
    precision: str = "auto"
    # Processes decoding and cropping images (0: in the training process itself).
    workers: int = 4
    # Stop (and save) after this many seconds of training even before --steps; None = no limit.
    time_limit: float | None = None
    # Report (and average the losses over processes) every N steps.
    log_every: int = 10

    def validate(self) -> None:
        """Raise ConfigError (one line) for a value Stylist cannot use."""
        if self.method not in METHODS:
            raise ConfigError(f"unknown --method '{self.method}': use one of {', '.join(METHODS)}")
        if not self.content:
            raise ConfigError("give --content DIR, a folder of photographs")
        if self.method == "adain" and not self.style:
            raise ConfigError("--method adain needs --style DIR, a folder of paintings")
        for name in ("steps", "batch_size", "log_every"):
            if getattr(self, name) <= 0:
                raise ConfigError(
                    f"--{name.replace('_', '-')} must be a positive whole number; got {getattr(self, name)}"
                )
        if self.image_size < 32 or self.image_size % 16:
            raise ConfigError(f"--image-size must be a multiple of 16, at least 32; got {self.image_size}")
        for name in ("content_scale", "style_scale"):
            lo_hi = getattr(self, name)
            if len(lo_hi) != 2 or not (0 < lo_hi[0] <= lo_hi[1]):
                raise ConfigError(
                    f"--{name.replace('_', '-')} takes two numbers LOW HIGH with 0 < LOW <= HIGH; got {' '.join(map(str, lo_hi))}"
                )
        for name in ("lr", "content_weight", "style_weight", "pixel_weight"):
            if not (getattr(self, name) > 0 and math.isfinite(getattr(self, name))):
                raise ConfigError(f"--{name.replace('_', '-')} must be a positive number; got {getattr(self, name)}")
        for name in ("lr_decay", "feature_weight", "identity_weight"):
            if not (getattr(self, name) >= 0 and math.isfinite(getattr(self, name))):
                raise ConfigError(f"--{name.replace('_', '-')} must be zero or positive; got {getattr(self, name)}")
        if any(lv not in LEVELS for lv in self.levels) or not self.levels:
            raise ConfigError(f"--levels takes some of {', '.join(WCT_LEVELS)}; got {' '.join(self.levels)}")
        if self.method == "wct" and tuple(self.levels) == (LINEAR_LEVEL,):
            raise ConfigError(
                f"--levels {LINEAR_LEVEL} alone leaves nothing to train (its decoder is fitted by least squares); add a deeper level"
            )
        if self.precision not in TRAIN_PRECISIONS:
            raise ConfigError(f"unknown precision '{self.precision}': use one of {', '.join(TRAIN_PRECISIONS)}")
        if self.workers < 0:
            raise ConfigError(f"--workers must be 0 or more; got {self.workers}")
        if self.time_limit is not None and not self.time_limit > 0:
            raise ConfigError(f"--time-limit must be a positive number of seconds; got {self.time_limit}")


@dataclass
class TrainProgress:
    """What the training callback receives after every step."""

    step: int  # steps done, 1-based, counted from the start of the run (resumed runs included)
    total: int  # --steps
    epoch: int  # pass over the photographs
    losses: (
        dict[str, float] | None
    )  # weighted terms and total, averaged over processes; every log_every steps, else None
    lr: float
    elapsed: float  # seconds of training in this process (not counting earlier, resumed parts)
    bad_files: int  # files that failed to decode so far (replaced by others)
    checkpoint: Callable[[], dict] = field(repr=False)  # the run's state, for stylist.checkpoint and resume
    preview: Callable[[], torch.Tensor] = field(repr=False)  # a grid image (1, 3, H, W) of the last batch


@dataclass
class TrainResult:
    model: Decoder | WCTDecoders  # the trained decoder(s), float32 (unwrapped from DDP)
    step: int
    stopped: str  # done | time | callback
    elapsed: float
    device: str
    precision: str
    checkpoint: Callable[[], dict] = field(repr=False)


TrainCallback = Callable[[TrainProgress], "bool | None"]
CHECKPOINT_KIND = "stylist.train-decoder"
# Folders with at most this many images are decoded once up front and kept in memory (shared by
# the loader processes): a few hundred photos cost ~200 MB, and no JPEG is decoded twice.
PRELOAD_LIMIT = 5000
EPOCH_STEPS = 500
LINEAR_LEVEL = "relu1_1"  # its decoder is a single convolution: fitted by least squares (fit_linear_decoder)
LINEAR_FIT_PHOTOS = 64  # photos in that fit: 64 x ~27k pixels for 577 unknowns per colour


def train_decoder(
    cfg: DecoderTrainConfig, callback: TrainCallback | None = None, resume: dict | None = None
) -> TrainResult:
    """Train an AdaIN decoder or the WCT decoders; ``resume`` is a checkpoint dict to carry on from.

    Runs under torchrun as well (one process per GPU, the data split between them); each process
    calls ``callback``, and only the caller decides which one writes files (rank 0).
    """
    cfg.validate()
    device = init_distributed(cfg.device) or _train_device(cfg.device)
    seed_everything(cfg.seed)
    model = _initial_model(cfg).to(device, memory_format=_memory_format(device))
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed crop size: let cuDNN pick its fastest kernels once
    linear = cfg.method == "wct" and LINEAR_LEVEL in cfg.levels
    if linear:
        model[LINEAR_LEVEL].requires_grad_(False)  # fitted by least squares below, not trained
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.lr)
    dtype = train_dtype(cfg.precision, device)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    start = _restore(resume, cfg, model, opt, scaler)
    if linear and resume is None:
        fit_linear_decoder(model[LINEAR_LEVEL], find_images(cfg.content, "--content")[0], cfg.image_size, cfg.seed)
    net = _wrap(model, device)
    encoder = Encoder(ADAIN_LEVEL if cfg.method == "adain" else max(cfg.levels, key=LEVELS.index)).to(
        device, memory_format=_memory_format(device)
    )
    batches, bad0 = _data(cfg, start)
    state = {"step": start, "model": model, "opt": opt, "scaler": scaler, "cfg": cfg}
    checkpoint = lambda: _checkpoint(state)  # noqa: E731
    losses_fn = _adain_losses if cfg.method == "adain" else _wct_losses
    t0, bad, stopped, last = time.perf_counter(), bad0, "done", {}
    for step in range(start + 1, cfg.steps + 1):
        epoch, images, bad_now = _next_batch(batches, device)
        lr = _set_lr(opt, cfg, step - 1)
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            terms, last = losses_fn(net, encoder, images, cfg)
        total = sum(terms.values())
        opt.zero_grad(set_to_none=True)
        scaler.scale(total).backward()
        scaler.step(opt)
        scaler.update()
        state["step"], bad = step, bad + bad_now
        logged = _log(terms, total, step, cfg)
        stopped = _should_stop(cfg, step, t0)
        progress = TrainProgress(
            step, cfg.steps, epoch, logged, lr, time.perf_counter() - t0, bad, checkpoint, _previewer(cfg, last)
        )
        if callback is not None and callback(progress):
            stopped = "callback"
        if stopped != "done":
            break
    model.eval()
    return TrainResult(
        model, state["step"], stopped, time.perf_counter() - t0, str(device), _dtype_name(dtype), checkpoint
    )


def _initial_model(cfg: DecoderTrainConfig) -> Decoder | WCTDecoders:
    """Random weights, or those of ``cfg.init``; only --levels are trained (the rest frozen)."""
    if cfg.init is None:
        return new_decoder(cfg.method, cfg.levels)
    model = copy.deepcopy(_load_cached(cfg.method, cfg.init)).train()
    if cfg.method == "wct":
        missing = [lv for lv in cfg.levels if lv not in model.levels]
        if missing:
            raise ConfigError(
                f"{cfg.init}: has no decoder for {', '.join(missing)}; --levels must be among {', '.join(model.levels)}"
            )
        for lv in model.levels:
            model[lv].requires_grad_(lv in cfg.levels)
        return model
    return model.requires_grad_(True)


def fit_linear_decoder(
    decoder: Decoder, photos: Sequence[Path], side: int, seed: int = 0, count: int = LINEAR_FIT_PHOTOS
) -> None:
    """Set the relu1_1 decoder (one 3x3 convolution, linear) to its least-squares optimum on pixels
    over ``count`` of the ``photos`` (long side ``side``), and freeze it.

    A departure from Li et al., who trained it by gradient descent on pixel plus feature loss like
    the deeper decoders. The decoder is linear, so the pixel loss has a closed-form minimum; on
    Stylist's scaled features the relu1_1 feature term outweighs the pixel term some 40 times, and
    gradient descent stalled near 17 dB where the least-squares fit reconstructs at 40 dB or more.
    """
    conv = decoder.net[-1]
    encoder = Encoder(LINEAR_LEVEL).to(conv.weight.device)
    order = torch.randperm(len(photos), generator=torch.Generator().manual_seed(seed))[:count]
    n = conv.in_channels * 9 + 1
    gram = torch.zeros(n, n, dtype=torch.float64)
    cross = torch.zeros(n, 3, dtype=torch.float64)
    with torch.no_grad():
        for i in order.tolist():
            photo = resize_long_side(load_tensor(photos[i]), side).to(conv.weight.device)
            cols = _patches(encoder(photo)[LINEAR_LEVEL])
            gram += (cols.T @ cols).double().cpu()
            cross += (cols.T @ photo[0].reshape(3, -1).T).double().cpu()
        ridge = 1e-6 * gram.diagonal().mean() * torch.eye(n, dtype=torch.float64)  # keeps the solve well posed
        solution = torch.linalg.solve(gram + ridge, cross).float()  # (n, 3): weights then bias
        conv.weight.copy_(solution[:-1].T.reshape(3, conv.in_channels, 3, 3))
        conv.bias.copy_(solution[-1])
    decoder.requires_grad_(False)


def _patches(features: torch.Tensor) -> torch.Tensor:
    """(H*W, C*9 + 1): each pixel's reflection-padded 3x3 neighbourhood (as the decoder sees it), and a 1 for the bias."""
    cols = F.unfold(F.pad(features, (1, 1, 1, 1), mode="reflect"), 3)[0].T
    return torch.cat([cols, torch.ones(cols.shape[0], 1, dtype=cols.dtype, device=cols.device)], 1)


def _train_device(name: str) -> torch.device:
    """auto: the GPU if there is one, else the CPU (training on MPS is not tested)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return resolve_device(name)


def _memory_format(device: torch.device) -> torch.memory_format:
    # NHWC: cuDNN's fastest layout for bf16/fp16 convolutions; CPUs keep the default layout.
    return torch.channels_last if device.type == "cuda" else torch.contiguous_format


def _dtype_name(dtype: torch.dtype | None) -> str:
    return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]


def _wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """DistributedDataParallel under torchrun (gradients averaged over processes), else the model itself."""
    if rank_and_world()[1] == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def _set_lr(opt: torch.optim.Optimizer, cfg: DecoderTrainConfig, done: int) -> float:
    lr = cfg.lr / (1.0 + cfg.lr_decay * done)
    for group in opt.param_groups:
        group["lr"] = lr
    return lr


@dataclass
class _Streams:
    content: object  # iterator of (epoch, Batch)
    style: object | None


def _data(cfg: DecoderTrainConfig, start: int) -> tuple[_Streams, int]:
    """Batches of photo crops (and painting crops for AdaIN) positioned at step ``start``; files skipped."""
    photos, skipped = find_images(cfg.content, "--content")
    per_step = cfg.batch_size * rank_and_world()[1]
    # Loader processes start afresh every epoch (a pause of a second or so): a small folder is
    # listed several times over so that an epoch lasts at least EPOCH_STEPS steps.
    content = _batches(
        photos, cfg.image_size, cfg.content_scale, cfg, cfg.seed, math.ceil(EPOCH_STEPS * per_step / len(photos))
    )
    style = None
    if cfg.method == "adain":
        paintings, more = find_images(cfg.style, "--style")
        paintings = [p for p in paintings if p.name not in set(cfg.exclude_styles)]
        if not paintings:
            raise ConfigError(f"{cfg.style}: every painting is excluded by --exclude-styles")
        skipped += more
        # Few paintings: repeat the list so that an epoch of paintings is as long as one of photos
        # (each repeat gets its own crops), rather than one short epoch per step.
        repeat = math.ceil(max(len(content.dataset), per_step) / len(paintings))
        style = _batches(paintings, cfg.image_size, cfg.style_scale, cfg, cfg.seed + 1, repeat)
    streams = _Streams(content.from_step(start), style.from_step(start) if style else None)
    return streams, skipped


def _batches(
    files: list, size: int, scale: Sequence[float], cfg: DecoderTrainConfig, seed: int, repeat: int
) -> Batches:
    dataset = CropDataset(files, size, seed, (scale[0], scale[1]), repeat=repeat, preload=len(files) <= PRELOAD_LIMIT)
    return Batches(dataset, cfg.batch_size, seed, cfg.workers)


def _next_batch(streams: _Streams, device: torch.device) -> tuple[int, dict[str, torch.Tensor], int]:
    fmt = _memory_format(device)
    epoch, batch = next(streams.content)
    images, bad = {"content": batch.images.to(device, non_blocking=True).contiguous(memory_format=fmt)}, batch.bad
    if streams.style is not None:
        _, sbatch = next(streams.style)
        images["style"], bad = (
            sbatch.images.to(device, non_blocking=True).contiguous(memory_format=fmt),
            bad + sbatch.bad,
        )
    return epoch, images, bad


def _adain_losses(
    net: nn.Module, encoder: Encoder, images: dict[str, torch.Tensor], cfg: DecoderTrainConfig
) -> tuple[dict, dict]:
    """Huang and Belongie's objective: content loss between the output's relu4_1 and the AdaIN
    target t, plus the mean/std style loss at relu1_1..relu4_1 (squared errors, as in their code)."""
    with torch.no_grad():
        fc = encoder(images["content"])[ADAIN_LEVEL]
        fs = encoder(images["style"])
        t = adain(fc, fs[ADAIN_LEVEL])
    out = net(t)
    fo = encoder(out)
    content = F.mse_loss(fo[ADAIN_LEVEL].float(), t)
    style = 0.0
    for layer in ADAIN_STYLE_LAYERS:
        (om, osd), (sm, ssd) = mean_std(fo[layer]), mean_std(fs[layer])
        style = style + F.mse_loss(om, sm) + F.mse_loss(osd, ssd)
    terms = {"content": cfg.content_weight * content, "style": cfg.style_weight * style}
    if cfg.identity_weight > 0:
        terms["identity"] = cfg.identity_weight * _identity_loss(net, encoder, images["content"], fc)
    return terms, {"content": images["content"], "style": images["style"], "output": out}


def _identity_loss(net: nn.Module, encoder: Encoder, photo: torch.Tensor, fc: torch.Tensor) -> torch.Tensor:
    """The photo decoded from its own relu4_1 against the photo: pixels and relu4_1 features.

    Not in Huang and Belongie's objective. Trained on stylised targets alone, a decoder never sees
    unstyled features, and with few paintings it paints every photo in their palette even at
    alpha 0; this term keeps alpha 0 a reconstruction (as the identity losses of later
    arbitrary-style papers do).
    """
    out = net(fc)
    return F.mse_loss(out.float(), photo) + F.mse_loss(encoder(out, ADAIN_LEVEL)[ADAIN_LEVEL].float(), fc.float())


def _wct_losses(
    net: nn.Module, encoder: Encoder, images: dict[str, torch.Tensor], cfg: DecoderTrainConfig
) -> tuple[dict, dict]:
    """Li et al.'s objective for each level's decoder: pixel plus feature reconstruction error."""
    x = images["content"]
    with torch.no_grad():
        feats = encoder(x)
    outs = net({lv: feats[lv] for lv in cfg.levels})
    terms = {}
    for level, out in outs.items():
        pixel = F.mse_loss(out.float(), x)
        feature = F.mse_loss(encoder(out, level)[level].float(), feats[level].float())
        terms[level] = cfg.pixel_weight * pixel + cfg.feature_weight * feature
    return terms, {"content": x, **outs}


def _log(
    terms: dict[str, torch.Tensor], total: torch.Tensor, step: int, cfg: DecoderTrainConfig
) -> dict[str, float] | None:
    """The loss terms as floats on logging steps (a GPU sync, so not every step), else None."""
    if step % cfg.log_every and step != cfg.steps:
        return None
    values = {k: float(v.detach()) for k, v in terms.items()} | {"total": float(total.detach())}
    values = mean_across(values)
    if not all(math.isfinite(v) for v in values.values()):
        raise StylistError(f"the loss became {values['total']} at step {step}; lower --lr or use --precision fp32")
    return values


def _should_stop(cfg: DecoderTrainConfig, step: int, t0: float) -> str:
    """'time' once --time-limit has passed (checked on logging steps, agreed by every process)."""
    if cfg.time_limit is None or step % cfg.log_every:
        return "done"
    slowest = max(gather_floats(time.perf_counter() - t0))
    return "time" if slowest > cfg.time_limit else "done"


def _previewer(cfg: DecoderTrainConfig, last: dict[str, torch.Tensor]) -> Callable[[], torch.Tensor]:
    """A grid of the last batch (up to 4 rows): photo, painting, result (AdaIN) or photo and each
    level's reconstruction (WCT, coarse to fine)."""

    def preview() -> torch.Tensor:
        cols = ["content", "style", "output"] if cfg.method == "adain" else ["content", *cfg.levels]
        rows = [
            torch.cat([last[c][i].detach().float().clamp(0, 1) for c in cols], dim=-1)
            for i in range(min(4, last["content"].shape[0]))
        ]
        return torch.cat(rows, dim=-2).unsqueeze(0).cpu()

    return preview


def _checkpoint(state: dict) -> dict:
    model, opt = state["model"], state["opt"]
    return {
        "kind": CHECKPOINT_KIND,
        "config": asdict(state["cfg"]),
        "step": state["step"],
        "model": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "optimizer": opt.state_dict(),
        "scaler": state["scaler"].state_dict(),
        "rng": rng_state(),
        "world": rank_and_world()[1],
    }


# Options a resumed run may change: none alters the state it carries on from.
RESUME_MAY_CHANGE = ("steps", "device", "precision", "workers", "time_limit", "log_every", "content", "style")


def resume_config(saved: dict, given: dict) -> DecoderTrainConfig:
    """The checkpoint's options with those ``given`` (field -> value) that a resume may change."""
    if saved.get("kind") != CHECKPOINT_KIND:
        raise StylistError("not a checkpoint of stylist train-decoder")
    config = dict(saved["config"])
    for key, value in given.items():
        if key in RESUME_MAY_CHANGE:
            config[key] = value
        elif key in config and _norm(config[key]) != _norm(value):
            raise ConfigError(
                f"--{key.replace('_', '-')} cannot change on --resume (the checkpoint has {config[key]!r}); start a new run instead"
            )
    return DecoderTrainConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in config.items()})


def _norm(value: object) -> object:
    return tuple(value) if isinstance(value, (list, tuple)) else value


def _restore(
    resume: dict | None,
    cfg: DecoderTrainConfig,
    model: nn.Module,
    opt: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
) -> int:
    """Load a checkpoint into the fresh model and optimiser; the step to carry on from (0 for none)."""
    if resume is None:
        return 0
    if resume.get("kind") != CHECKPOINT_KIND or resume["config"]["method"] != cfg.method:
        raise StylistError("the checkpoint is not one of this method's decoder training")
    model.load_state_dict(resume["model"])
    opt.load_state_dict(resume["optimizer"])
    if resume.get("scaler"):
        scaler.load_state_dict(resume["scaler"])
    if resume.get("world", 1) == rank_and_world()[1]:
        set_rng_state(resume["rng"])  # another process count draws differently anyway
    if resume["step"] >= cfg.steps:
        raise ConfigError(f"the checkpoint is already at step {resume['step']}; give --steps above it to train on")
    return int(resume["step"])


def is_writer() -> bool:
    """True in the process that writes files (rank 0, or the only one)."""
    return is_main()
