"""Stylist: neural style transfer on one shared VGG feature extractor."""

__version__ = "0.1.0"  # first: modules record it in what they write, and are imported below
# stylist.api.arbitrary (PIL in, PIL out) is not re-exported: the name would hide the stylist.arbitrary module.

from .api import load_model, transfer, video  # noqa: E402
from .arbitrary import ArbitraryConfig, stylize_arbitrary  # noqa: E402
from .decoders import load_decoder  # noqa: E402
from .errors import StylistError  # noqa: E402
from .feedforward import FeedForwardConfig, StyleModel, train  # noqa: E402
from .films import VideoConfig  # noqa: E402  (the module is stylist.films; stylist.video is the function)
from .optimize import Progress, TransferConfig, TransferResult, stylize  # noqa: E402
from .train_decoders import DecoderTrainConfig, train_decoder  # noqa: E402

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
