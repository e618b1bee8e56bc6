"""Masks for spatial control: which painting styles which part of the photo."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch

from .errors import ConfigError, StylistWarning, count
from .image import ImageLike, TensorInputError, check_tensor, load_tensor, resize


def check_mask_count(n_masks: int, n_styles: int) -> None:
    """ConfigError (one line) unless there is one mask per style image."""
    if n_masks != n_styles:
        raise ConfigError(
            f"{count(n_masks, 'mask')} for {count(n_styles, 'style image')}: give one --mask per style image, "
            "in the same order"
        )


def load_masks(
    masks: Sequence[ImageLike] | None, n_styles: int, content_hw: tuple[int, int]
) -> list[torch.Tensor] | None:
    """The masks as (1, 1, H, W) tensors in [0, 1] at the photo's size, one per painting.

    A mask is read as grey levels (white = this painting, black = not, grey = partly).
    A mask of another size is resized to the photo's, with a warning, since a stretched
    mask is usually a mistake worth knowing about.
    """
    if masks is None or len(masks) == 0:
        return None
    check_mask_count(len(masks), n_styles)
    out = []
    for i, mask in enumerate(masks):
        name = mask if isinstance(mask, (str, bytes)) or hasattr(mask, "__fspath__") else f"mask {i + 1}"
        grey = _mask_tensor(mask)
        if tuple(grey.shape[-2:]) != tuple(content_hw):
            h, w = grey.shape[-2:]
            warnings.warn(
                f"{name}: mask is {w}x{h} but the photo is {content_hw[1]}x{content_hw[0]}; resizing the mask to fit",
                StylistWarning,
                stacklevel=2,
            )
            grey = resize(grey, content_hw)
        out.append(grey.clamp(0, 1).contiguous())
    return out


def _mask_tensor(mask: ImageLike) -> torch.Tensor:
    if isinstance(mask, torch.Tensor):
        t = mask.detach().float()
        if t.dim() == 2 or (t.dim() == 3 and t.shape[0] in (1, 3)):
            t = t.unsqueeze(0) if t.dim() == 3 else t[None, None]
        if t.dim() != 4 or t.shape[:2] not in ((1, 1), (1, 3)):
            raise TensorInputError(f"mask tensor must be (H, W), (1, H, W) or (1, 1, H, W); got {tuple(mask.shape)}")
        # The checks of every image tensor (dtype, NaN, range): a 0-255 mask would otherwise clamp to all-white.
        t = check_tensor(mask if not mask.dtype.is_floating_point else t, "mask", grey=True)
        return t.mean(dim=1, keepdim=True).clamp(0, 1)
    # Grey levels of the image (an RGB mask counts by its channel mean).
    return load_tensor(mask, "mask").mean(dim=1, keepdim=True)
