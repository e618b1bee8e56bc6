"""The public Python face of Stylist (re-exported by ``stylist``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields, replace

from PIL import Image

from .errors import ConfigError
from .image import ImageLike, to_pil
from .optimize import Callback, TransferConfig, stylize


def transfer(
    content: ImageLike,
    style: ImageLike | Sequence[ImageLike],
    config: TransferConfig | None = None,
    callback: Callback | None = None,
    **options,
) -> Image.Image:
    """Render ``content`` in the style of ``style`` and return a PIL image.

    ``content`` and ``style`` may be paths, PIL images or RGB tensors in [0, 1].
    Keyword ``options`` are fields of :class:`TransferConfig` (``size=384``,
    ``optimizer="adam"`` ...) and override ``config``. ``callback(progress)`` is called
    after every iteration with the step, the loss terms and the current image;
    returning True stops early.
    """
    cfg = config or TransferConfig()
    known = {f.name for f in fields(TransferConfig)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigError(f"unknown option(s) {', '.join(unknown)}: see stylist.TransferConfig for the list")
    for key in ("content_layers", "style_layers", "content_layer_weights", "style_layer_weights"):
        if key in options and options[key] is not None:
            options[key] = tuple(options[key])
    cfg = replace(cfg, **options)
    return to_pil(stylize(content, style, cfg, callback).image)
