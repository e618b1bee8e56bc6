"""Stylist: neural style transfer on one shared VGG feature extractor."""

from .api import transfer
from .errors import StylistError
from .optimize import Progress, TransferConfig, TransferResult, stylize

__all__ = ["transfer", "stylize", "TransferConfig", "TransferResult", "Progress", "StylistError"]
__version__ = "0.1.0"
