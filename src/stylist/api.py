"""The public Python face of Stylist (re-exported by ``stylist``)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict

from PIL import Image

from .arbitrary import ArbitraryConfig, stylize_arbitrary
from .errors import ConfigError
from .feedforward import load_model  # noqa: F401  (public: a built-in style or a trained network)
from .image import ImageLike, read_picture, to_pil
from .optimize import Callback, TransferConfig, stylize
from .presets import preset_config


def transfer(
    content: ImageLike,
    style: ImageLike | Sequence[ImageLike],
    config: TransferConfig | None = None,
    callback: Callback | None = None,
    *,
    masks: Sequence[ImageLike] | None = None,
    preset: str | None = None,
    **options,
) -> Image.Image:
    """Render ``content`` in the style of ``style`` and return a PIL image.

    ``content`` and ``style`` may be paths, PIL images or RGB tensors in [0, 1]; ``style``
    may be a list of paintings, blended by ``style_weights`` or, with ``masks`` (one soft
    mask per painting), each painting styling its own region of the photo.
    ``preset`` names a recipe from :data:`stylist.presets.PRESETS` (or pass a ``config``);
    keyword ``options`` are fields of :class:`TransferConfig` (``size=384``,
    ``optimizer="adam"`` ...) and override either. ``callback(progress)`` is called after every
    iteration with the step, the loss terms and the current image; returning True stops early.
    """
    if preset is not None and config is not None:
        raise ConfigError("give either a config or a preset (with options), not both")
    base = asdict(config) if config is not None else {}
    cfg = preset_config(preset, **{**base, **options})
    result = stylize(content, style, cfg, callback, masks=masks)
    return to_pil(result.image, result.alpha)  # RGBA when the content had transparency


def arbitrary(
    content: ImageLike,
    style: ImageLike | Sequence[ImageLike],
    config: ArbitraryConfig | None = None,
    *,
    masks: Sequence[ImageLike] | None = None,
    **options,
) -> Image.Image:
    """Render ``content`` in the style of any painting in one pass (AdaIN or WCT) and return a PIL image.

    Keyword ``options`` are fields of :class:`stylist.arbitrary.ArbitraryConfig` (``method="wct"``,
    ``alpha=0.6``, ``style_weights=(0.7, 0.3)``, ``preserve_color="luminance"``, ``decoder=path``
    ...) and override ``config``. The shipped decoders are used unless ``decoder`` names a file.
    An alpha channel of the content is carried over to the result (RGBA).
    """
    base = asdict(config) if config is not None else {}
    cfg = ArbitraryConfig(**{**base, **options})
    picture = read_picture(content, "content", cfg.max_pixels)
    result = stylize_arbitrary(picture, style, cfg, masks=masks)
    return to_pil(result, picture.alpha_at((result.shape[-2], result.shape[-1])))


def video(
    source,
    output=None,
    config=None,
    *,
    model=None,
    style=None,
    callback=None,
    **options,
):
    """Stylise a film; ``stylist.video(...)`` calls this.

    ``source`` is a video file or a folder of frames, with ``output`` the film (.mp4 .mov .mkv) or a
    folder for PNG frames: the film is written (streamed, audio copied) and a
    :class:`stylist.films.VideoResult` returned (frames, scene cuts, Lai et al.'s warping error, time).
    Or ``source`` is an iterable of frames, RGB tensors (1, 3, H, W) in [0, 1], and no ``output``: an
    iterator of the stylised frames (1, 3, H', W') in [0, 1] comes back, one at a time, for those who
    bring their own decoder.

    ``model`` is a feed-forward network (a built-in style name, a .safetensors or .onnx file, or a
    loaded model); else ``style`` is one painting or a list (paths, PIL images or tensors) for
    ``method`` adain, wct or optimize. Keyword ``options`` are fields of
    :class:`stylist.films.VideoConfig` (``temporal=0.7``, ``size=512``, ``alpha``, ``start`` ...)
    and override ``config``. ``callback(progress)`` is called after every frame; returning True stops
    (a film is still written, of the frames so far). Raises StylistError subclasses (one line) for
    bad inputs and options.
    """
    from .films import VideoConfig, stylize_frames, stylize_video

    base = asdict(config) if config is not None else {}
    cfg = VideoConfig(**{**base, **options})
    if output is not None:
        return stylize_video(source, output, cfg, model=model, style=style, callback=callback)
    if isinstance(source, (str, os.PathLike)):
        raise ConfigError("give the output film or folder for a video file (stylist.video(source, output, ...))")
    return stylize_frames(source, cfg, model=model, style=style, callback=callback)
