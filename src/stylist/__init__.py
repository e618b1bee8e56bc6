"""Stylist: neural style transfer on one shared VGG feature extractor."""

from .api import transfer
from .errors import StylistError
from .optimize import Progress, TransferConfig, TransferResult, stylize

__all__ = ["Progress", "StylistError", "TransferConfig", "TransferResult", "stylize", "transfer"]
__version__ = "0.1.0"
