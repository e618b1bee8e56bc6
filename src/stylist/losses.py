"""Losses as pure functions of feature tensors.

Two normalisations, chosen by name:

``paper``  Gatys et al. 2016: content ``1/2 sum (F - P)^2``; Gram ``G = F F^T``;
           style per layer ``E_l = 1/(4 N^2 M^2) sum (G - A)^2`` with N channels, M = H*W.
``mean``   Johnson et al. 2016: features and Gram divided by C*H*W; content is the mean
           squared difference, style the squared Frobenius distance of the normalised Grams.

Under ``mean`` both terms are independent of image size, so one set of weights gives
similar-looking results at 256 px and at 1024 px; under ``paper`` the content term
grows with the pixel count while the style term does not. ``mean`` is Stylist's default.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

NORMALIZATIONS = ("mean", "paper")
TV_KINDS = ("l1", "l2")


def _wide(t: torch.Tensor) -> torch.Tensor:
    """Half-precision features are widened to float32 for the sums; float64 stays float64."""
    return t if t.dtype in (torch.float32, torch.float64) else t.float()


def gram(features: torch.Tensor, normalization: str = "mean") -> torch.Tensor:
    """Gram matrix (B, C, C) of features (B, C, H, W), returned as float32.

    The product runs in the features' own dtype: bfloat16 features use the hardware's
    fast bf16 matrix units (the sums accumulate in float32; only the result is rounded).
    """
    b, c, h, w = features.shape
    if c > 1 and features.is_contiguous(memory_format=torch.channels_last):
        # (B, H*W, C) is a view of channels-last memory: no copy before the product.
        f = features.permute(0, 2, 3, 1).reshape(b, h * w, c)
        g = _wide(torch.bmm(f.transpose(1, 2), f))
    else:
        f = features.reshape(b, c, h * w)
        g = _wide(torch.bmm(f, f.transpose(1, 2)))
    if normalization == "mean":
        g = g / (c * h * w)
    elif normalization != "paper":
        raise ValueError(f"unknown normalization {normalization!r}")
    return g


def layer_mask(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A soft mask (B, 1, H, W) in [0, 1] averaged down to a layer's (h, w)."""
    return torch.nn.functional.adaptive_avg_pool2d(_wide(mask), size)


def masked_gram(features: torch.Tensor, mask: torch.Tensor, normalization: str = "mean") -> torch.Tensor:
    """Gram matrix of the features inside a soft region (Gatys et al. 2017, spatial control).

    ``mask`` (B, 1, h, w) at the features' size weights every position: G = (F m)(F m)^T.
    The result is scaled by ``h*w / sum(m^2)`` so that it is the region's Gram per unit
    area, comparable with a whole painting's Gram under either normalisation; a mask of
    ones gives :func:`gram` exactly. An empty region gives zeros.
    """
    _, _, h, w = features.shape
    g = gram(features * mask.to(features.dtype), normalization)
    area = mask.float().pow(2).sum(dim=(1, 2, 3)).view(-1, 1, 1)
    return g * (h * w / area.clamp_min(1e-8))


def content_loss(features: torch.Tensor, target: torch.Tensor, normalization: str = "mean") -> torch.Tensor:
    diff = _wide(features) - _wide(target)
    if normalization == "paper":
        return 0.5 * diff.pow(2).sum()
    if normalization == "mean":
        return diff.pow(2).mean()
    raise ValueError(f"unknown normalization {normalization!r}")


def style_layer_loss(
    g: torch.Tensor, target_gram: torch.Tensor, n: int, m: int, normalization: str = "mean"
) -> torch.Tensor:
    """One layer's style loss between Grams already computed with the same ``normalization``.

    ``n`` channels and ``m = H*W`` positions of the generated image's features.
    Batched Grams are summed over the batch.
    """
    sq = (g - target_gram).pow(2).sum()
    if normalization == "paper":
        return sq / (4.0 * n * n * m * m)
    if normalization == "mean":
        return sq
    raise ValueError(f"unknown normalization {normalization!r}")


def style_loss(
    features: Mapping[str, torch.Tensor],
    target_grams: Mapping[str, torch.Tensor],
    layer_weights: Mapping[str, float],
    normalization: str = "mean",
) -> torch.Tensor:
    """``sum_l w_l E_l`` over the layers in ``layer_weights``."""
    total = None
    for name, weight in layer_weights.items():
        f = features[name]
        _, c, h, w = f.shape
        term = weight * style_layer_loss(gram(f, normalization), target_grams[name], c, h * w, normalization)
        total = term if total is None else total + term
    assert total is not None, "no style layers"
    return total


def tv_loss(image: torch.Tensor, kind: str = "l1", normalization: str = "mean") -> torch.Tensor:
    """Total variation: anisotropic ``sum |dx| + |dy|`` (l1) or ``sum dx^2 + dy^2`` (l2).

    ``paper`` returns the plain sum; ``mean`` divides it by the element count (B*C*H*W)
    so that one weight means the same thing at every image size.
    """
    dx = image[..., :, 1:] - image[..., :, :-1]
    dy = image[..., 1:, :] - image[..., :-1, :]
    if kind == "l1":
        s = dx.abs().sum() + dy.abs().sum()
    elif kind == "l2":
        s = dx.pow(2).sum() + dy.pow(2).sum()
    else:
        raise ValueError(f"unknown TV kind {kind!r}")
    if normalization == "mean":
        return s / image.numel()
    if normalization == "paper":
        return s
    raise ValueError(f"unknown normalization {normalization!r}")


def grid_loss(image: torch.Tensor, period: int) -> torch.Tensor:
    """How strongly ``image`` (B, C, H, W) repeats a pattern on a ``period`` px grid: the mean square,
    over images, channels and the period x period positions in a cell, of each position's mean over
    all cells less the mean of those means. Float32 scalar, 0 for a flat image; a photograph
    cropped anywhere gives nearly 0 (its content averages out over the cells), a decoder that
    draws a fixed stripe or checker on its upsampling grid gives much more. Rows and columns past
    the last whole cell are left out.

    Stylist's own term, in no paper: a decoder's content and style losses are measured through
    VGG, whose pooling folds a pattern at exactly the pooling grid's period into a constant, so
    nothing in those losses stops the decoder from drawing one (Odena et al.'s "Deconvolution
    and checkerboard artifacts", Distill 2016, has the upsampling side of the story). This term
    sees the pattern in pixels, where it is cheap to measure.
    """
    if period < 2:
        return image.new_zeros((), dtype=torch.float32)
    b, c, h, w = image.shape
    h, w = h // period * period, w // period * period
    cells = _wide(image[..., :h, :w]).reshape(b, c, h // period, period, w // period, period)
    position_means = cells.mean(dim=(2, 4))  # (B, C, period, period)
    return (position_means - position_means.mean(dim=(2, 3), keepdim=True)).pow(2).mean()


def temporal_loss(image: torch.Tensor, warped_previous: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Ruder, Dosovitskiy and Brox's short-term temporal loss ("Artistic style transfer for videos",
    GCPR 2016, eq. 7): ``1/D sum c (x - w)^2`` over the D = 3*H*W values of ``image`` (B, 3, H, W),
    where ``warped_previous`` is the previous stylised frame warped onto this one by optical flow
    and ``mask`` (B, 1, H, W) in [0, 1] is c, 0 where the flow is not trusted (disocclusions,
    motion boundaries). Float32 scalar."""
    diff = (_wide(image) - _wide(warped_previous)).pow(2)
    return (_wide(mask) * diff).mean()


def mean_std(features: torch.Tensor, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and standard deviation (B, C, 1, 1), as used by AdaIN."""
    f = _wide(features)
    mean = f.mean(dim=(2, 3), keepdim=True)
    std = (f.var(dim=(2, 3), keepdim=True, unbiased=False) + eps).sqrt()
    return mean, std


def equal_weights(layers: Sequence[str]) -> dict[str, float]:
    return {name: 1.0 / len(layers) for name in layers}


class PerceptualLoss:
    """The one perceptual loss of every method and the metrics: content and Gram style terms on VGG
    features, each layer divided by its feature norm (layer balance), under one normalisation.

    ``content_weights`` and ``style_weights`` map layer names to weights (the paper's w_l; 1/n each
    is :func:`equal_weights`); ``feature_norms`` maps every one of those layers to its divisor
    (:meth:`stylist.vgg.VGGFeatures.feature_norms`, from the weight source's table). Targets are
    computed once (:meth:`content_targets`, :meth:`style_targets`) and the terms then compare any
    batch against them. Features are (B, C, H, W) of any float dtype; results are float32.

    Dividing a Gram matrix by norm^2 equals dividing the features by norm, without an elementwise
    pass over the largest activations.
    """

    def __init__(
        self,
        content_weights: Mapping[str, float],
        style_weights: Mapping[str, float],
        feature_norms: Mapping[str, float],
        normalization: str = "mean",
    ) -> None:
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"unknown normalization {normalization!r}")
        self.content_weights, self.style_weights = dict(content_weights), dict(style_weights)
        self.feature_norms, self.normalization = dict(feature_norms), normalization

    def gram(self, features: torch.Tensor, layer: str) -> torch.Tensor:
        """The Gram matrices (B, C, C) of one layer's features, feature-normed."""
        return gram(features, self.normalization) / self.feature_norms[layer] ** 2

    def masked_gram(self, features: torch.Tensor, mask: torch.Tensor, layer: str) -> torch.Tensor:
        """The Gram matrices of one layer's features inside a soft region (see :func:`masked_gram`)."""
        return masked_gram(features, mask, self.normalization) / self.feature_norms[layer] ** 2

    def content_targets(self, features: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The photo's feature-normed features at the content layers (float32)."""
        return {n: _wide(features[n]) / self.feature_norms[n] for n in self.content_weights}

    def style_targets(self, features: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The painting's feature-normed Gram matrices at the style layers."""
        return {n: self.gram(features[n], n) for n in self.style_weights}

    def content(self, features: Mapping[str, torch.Tensor], targets: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """``sum_l w_l L_content`` between ``features`` and the content targets (one per image of the batch)."""
        total = None
        for n, w in self.content_weights.items():
            term = w * content_loss(_wide(features[n]) / self.feature_norms[n], targets[n], self.normalization)
            total = term if total is None else total + term
        assert total is not None, "no content layers"
        return total

    def style(self, features: Mapping[str, torch.Tensor], targets: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """``sum_l w_l E_l`` against Gram targets (1 or B, C, C), averaged over the batch."""
        total = None
        for n, w in self.style_weights.items():
            f = features[n]
            b, c, h, wd = f.shape
            term = w * style_layer_loss(self.gram(f, n), targets[n].expand(b, c, c), c, h * wd, self.normalization) / b
            total = term if total is None else total + term
        assert total is not None, "no style layers"
        return total
