"""The networks of arbitrary-style transfer: the encoder, the decoders, and their files.

The encoder is the frozen Caffe VGG-19 up to relu{k}_1 (:class:`Encoder`), with its features divided
by their feature norms (:data:`stylist.weights.DECODER_FEATURE_NORMS`; see :mod:`stylist.arbitrary` for
why). A decoder (:class:`Decoder`) mirrors the encoder from one level back to RGB; WCT uses one per
level (:class:`WCTDecoders`). Decoder files
are safetensors in fp16 with a ``stylist-arbitrary-decoder`` metadata block; the decoders shipped with
Stylist live in ``stylist/models``. Training them is :mod:`stylist.train_decoders`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import cast

import torch
from torch import nn

from .errors import ConfigError, StylistError, first_line
from .vgg import VGGFeatures
from .weights import DECODER_FEATURE_NORMS

METHODS = ("adain", "wct")
LEVELS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")  # fine to coarse
WCT_LEVELS = tuple(reversed(LEVELS))  # the order WCT runs them: coarse to fine
ADAIN_LEVEL = "relu4_1"
# The divisors of the encoder's features live in the weight-source table (weights.py); this is the
# old name of those values, kept for callers written before the table.
FEATURE_SCALE = DECODER_FEATURE_NORMS
VGG_CHANNELS = (64, 128, 256, 512, 512)  # channels of blocks 1..5
VGG_CONVS = (2, 2, 4, 4, 4)  # convolutions of blocks 1..5 (VGG-19)
WCT_DEEP_WIDTH = 256  # channel cap of the relu5_1 WCT decoder (a departure, see the notes)
ENCODER_WEIGHTS = "vgg19-caffe"
FORMAT = "stylist-arbitrary-decoder"
MODELS_DIR = Path(__file__).resolve().parent / "models"
SHIPPED = {"adain": "adain_decoder.safetensors", "wct": "wct_decoders.safetensors"}


# --- encoder and decoders -------------------------------------------------------------------------------


class Encoder(nn.Module):
    """The frozen Caffe VGG-19 up to ``deepest``, returning relu{k}_1 features divided by their feature
    norms (:data:`stylist.weights.DECODER_FEATURE_NORMS`, the source's table at those layers)."""

    def __init__(self, deepest: str = "relu5_1") -> None:
        super().__init__()
        self.vgg = VGGFeatures(LEVELS[: LEVELS.index(deepest) + 1], ENCODER_WEIGHTS)
        self.sha256 = self.vgg.sha256
        self.feature_norms = self.vgg.feature_norms()

    def forward(self, x: torch.Tensor, stop: str | None = None) -> dict[str, torch.Tensor]:
        """{relu{k}_1: features} of ``x`` (RGB [0, 1], (B, 3, H, W)) for every level up to ``stop``
        (default: the deepest built); the walk ends there."""
        levels = self.vgg.layers if stop is None else LEVELS[: LEVELS.index(stop) + 1]
        return {n: f / self.feature_norms[n] for n, f in self.vgg(x, levels).items()}

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
        return cast(Decoder, self.decoders[level])  # ModuleDict is typed as holding any Module


def new_decoder(method: str, levels: Sequence[str] = WCT_LEVELS) -> Decoder | WCTDecoders:
    return Decoder(ADAIN_LEVEL) if method == "adain" else WCTDecoders(levels)


# --- decoder files ----------------------------------------------------------------------------------------


def decoder_file(
    model: Decoder | WCTDecoders, extra: dict | None = None
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(fp16 tensors, string metadata) for a safetensors decoder file; the caller writes it."""
    method = "adain" if isinstance(model, Decoder) else "wct"
    parts = {"": model} if isinstance(model, Decoder) else {f"{lv}.": model[lv] for lv in model.levels}
    tensors = {
        p + k: v.detach().to("cpu", torch.float16).contiguous()
        for p, m in parts.items()
        for k, v in m.state_dict().items()
    }
    widths = (
        {lv: m.width_cap for lv, m in ((model.level, model),)}
        if isinstance(model, Decoder)
        else {lv: model[lv].width_cap for lv in model.levels}
    )
    meta = {
        "format": FORMAT,
        "method": method,
        "levels": json.dumps(list(widths)),
        "widths": json.dumps(widths),
        "encoder": ENCODER_WEIGHTS,
        "feature_norms": json.dumps(DECODER_FEATURE_NORMS),
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
