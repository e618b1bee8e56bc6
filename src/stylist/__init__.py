"""Stylist: neural style transfer on one shared VGG feature extractor."""

__version__ = "0.1.0"  # first: modules record it in what they write, and are imported below
# stylist.api.arbitrary (PIL in, PIL out) is not re-exported: the name would hide the stylist.arbitrary module.

import types  # noqa: E402

from . import video as _video_module  # noqa: E402
from .api import load_model, transfer  # noqa: E402
from .api import video as _video_function  # noqa: E402
from .arbitrary import ArbitraryConfig, stylize_arbitrary  # noqa: E402
from .decoders import load_decoder  # noqa: E402
from .errors import StylistError  # noqa: E402
from .feedforward import FeedForwardConfig, StyleModel, train  # noqa: E402
from .optimize import Progress, TransferConfig, TransferResult, stylize  # noqa: E402
from .train_decoders import DecoderTrainConfig, train_decoder  # noqa: E402


class _FilmModule(types.ModuleType):
    """``stylist.video`` is the module (Film, VideoConfig ...) and, called, the public function
    :func:`stylist.api.video`: the name promised by the API cannot be re-exported without hiding the
    module, as ``stylist.arbitrary`` would be."""

    def __call__(self, *args, **kwargs):
        return _video_function(*args, **kwargs)


_video_module.__class__ = _FilmModule
VideoConfig = _video_module.VideoConfig

__all__ = [
    "ArbitraryConfig",
    "DecoderTrainConfig",
    "load_decoder",
    "stylize_arbitrary",
    "train_decoder",
    "FeedForwardConfig",
    "Progress",
    "StyleModel",
    "StylistError",
    "TransferConfig",
    "TransferResult",
    "VideoConfig",
    "load_model",
    "stylize",
    "train",
    "transfer",
    "video",
]
