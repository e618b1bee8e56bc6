"""Named recipes for optimisation transfer: the settings people use and compare.

A preset is a set of TransferConfig values. Each runs all of its recipe's steps (early
stop off), as the recipe does, with one scale. options given explicitly override it
(``stylist transfer --preset gatys2016 --iterations 500``). The README lists each preset
with its source and a sample result.

Layer names: the recipes name layers ``convX_Y``; in the Caffe VGG the papers used, the
ReLU runs in place, so what they read as ``conv4_2`` is Stylist's ``relu4_2``.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from .errors import ConfigError
from .optimize import TransferConfig, upgrade_config

_STYLE5 = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")

PRESETS: dict[str, dict[str, Any]] = {
    # Gatys, Ecker and Bethge, "Image Style Transfer Using Convolutional Neural Networks",
    # CVPR 2016: L-BFGS from white noise, the paper's sums, conv4_2 content, conv1_1..conv5_1
    # style at 1/5 each, alpha/beta = 1e-3, one scale. The paper also swaps max for
    # average pooling ("slightly more appealing results").
    "gatys2016": {
        "optimizer": "lbfgs",
        "normalization": "paper",
        "content_layers": ("relu4_2",),
        "style_layers": _STYLE5,
        "style_layer_weights": (0.2,) * 5,
        "content_weight": 1.0,
        "style_weight": 1e3,
        "init": "noise",
        "pooling": "avg",
        "multiscale": False,
        # The paper gives no iteration count; from white noise L-BFGS needs about 1000.
        "iterations": 1000,
        "early_stop_patience": 0,
    },
    # The Adam recipe of course labs: lr 0.004 for 7000 steps from the photo, content
    # weight 8, style weight 70, conv1_1..conv5_1.
    "lab-adam": {
        "optimizer": "adam",
        "lr": 0.004,
        "iterations": 7000,
        "content_weight": 8.0,
        "style_weight": 70.0,
        "style_layers": _STYLE5,
        "init": "content",
        "multiscale": False,
        "early_stop_patience": 0,
    },
    # A short L-BFGS run: lr 0.2, 250 steps, style weight 100, and per-layer style weights
    # 1e3/n^2 with n the layer's channel count (64, 128, 256, 512, 512), which favours the
    # shallow layers' fine texture.
    "lbfgs-short": {
        "optimizer": "lbfgs",
        "lr": 0.2,
        "iterations": 250,
        "style_weight": 100.0,
        "style_layers": _STYLE5,
        "style_layer_weights": tuple(1e3 / n**2 for n in (64, 128, 256, 512, 512)),
        "multiscale": False,
        "early_stop_patience": 0,
    },
    # The plain Adam baseline for smoothness studies: lr 0.01, 1000 steps, alpha 1, beta 1e3,
    # layer weights 0.2, from the photo, with a total-variation weight gamma to vary (0, 10,
    # 100); 10 unless --tv-weight says otherwise. The paper's sums, as alpha/beta = 1e-3 implies.
    "vanilla-tv": {
        "optimizer": "adam",
        "lr": 0.01,
        "iterations": 1000,
        "content_weight": 1.0,
        "style_weight": 1e3,
        "style_layers": _STYLE5,
        "style_layer_weights": (0.2,) * 5,
        "init": "content",
        "tv_weight": 10.0,
        "normalization": "paper",
        "multiscale": False,
        "early_stop_patience": 0,
    },
}


def preset_config(name: str | None, **overrides: Any) -> TransferConfig:
    """A TransferConfig from the preset ``name`` (None: the defaults), then ``overrides``."""
    values: dict[str, Any] = {}
    if name is not None:
        if name not in PRESETS:
            raise ConfigError(f"unknown preset '{name}': use one of {', '.join(PRESETS)}")
        values.update(PRESETS[name])
    overrides = upgrade_config(overrides)  # a recorded config may use older field names
    known = {f.name for f in fields(TransferConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConfigError(f"unknown option(s) {', '.join(unknown)}: see stylist.TransferConfig for the list")
    for key, value in overrides.items():
        values[key] = tuple(value) if isinstance(value, list) else value
    return TransferConfig(**values)
