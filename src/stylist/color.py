"""Colour preservation (Gatys, Bethge, Hertzmann and Shechtman, *Controlling Perceptual
Factors in Neural Style Transfer*, CVPR 2017), as pure functions of RGB tensors in [0, 1]
(B x 3 x H x W).

``luminance``  the transfer runs on luminance alone: the painting's luminance is matched to
               the photo's mean and standard deviation, both are made grey (Y in all three
               channels, as the network needs three), and the result's Y is recombined with
               the photo's chroma (I and Q of YIQ). The result's chroma is the photo's.
``mean-covariance``  the painting is recoloured so that its RGB mean and covariance equal the
               photo's (a linear colour transfer, Gatys et al. 2017 section 5.1), then the
               ordinary transfer runs on it. Only the first two moments are matched: this is
               not histogram matching, though the paper and Stylist's first versions called it
               so; ``histogram`` stays accepted as its old name.
"""

from __future__ import annotations

import torch

# The modes as users choose them.
COLOR_CHOICES = ("none", "luminance", "mean-covariance")
# Old spellings still accepted (manifests and checkpoints written before the rename carry them).
COLOR_ALIASES = {"histogram": "mean-covariance"}
# Every value a config accepts.
COLOR_MODES = (*COLOR_CHOICES, *COLOR_ALIASES)


def canonical_color(mode: str) -> str:
    """``mode`` under its current name (``histogram`` -> ``mean-covariance``)."""
    return COLOR_ALIASES.get(mode, mode)


# NTSC YIQ (FCC 1953 coefficients); the inverse is computed rather than typed in, so the
# round trip is exact to float precision.
_RGB_TO_YIQ = torch.tensor(
    [
        [0.299, 0.587, 0.114],
        [0.595716, -0.274453, -0.321263],
        [0.211456, -0.522591, 0.311135],
    ],
    dtype=torch.float64,
)
_YIQ_TO_RGB = torch.linalg.inv(_RGB_TO_YIQ)


def _apply(matrix: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,bjhw->bihw", matrix.to(image.dtype).to(image.device), image)


def rgb_to_yiq(image: torch.Tensor) -> torch.Tensor:
    return _apply(_RGB_TO_YIQ, image)


def yiq_to_rgb(image: torch.Tensor) -> torch.Tensor:
    return _apply(_YIQ_TO_RGB, image)


def luminance(image: torch.Tensor) -> torch.Tensor:
    """Y of YIQ, B x 1 x H x W."""
    return rgb_to_yiq(image)[:, :1]


def grey(y: torch.Tensor) -> torch.Tensor:
    """A one-channel luminance as a three-channel grey image (what the network takes)."""
    return y.expand(-1, 3, -1, -1).clamp(0, 1).contiguous()


def match_luminance(style_y: torch.Tensor, content_y: torch.Tensor) -> torch.Tensor:
    """The painting's luminance with the photo's mean and standard deviation (Gatys et al. 2017, eq. 6)."""
    s_mean, s_std = style_y.mean(), style_y.std()
    c_mean, c_std = content_y.mean(), content_y.std()
    return (style_y - s_mean) * (c_std / s_std.clamp_min(1e-6)) + c_mean


def with_chroma(y: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """RGB from the luminance ``y`` (B x 1 or 3 x H x W; a 3-channel image gives its Y)
    and the chroma (I, Q) of ``content`` at the same size."""
    if y.shape[1] == 3:
        y = luminance(y)
    iq = rgb_to_yiq(content)[:, 1:]
    return yiq_to_rgb(torch.cat([y, iq], dim=1)).clamp(0, 1)


def _sqrtm(cov: torch.Tensor, inverse: bool = False) -> torch.Tensor:
    """Symmetric (inverse) square root of a 3x3 covariance via its eigendecomposition."""
    vals, vecs = torch.linalg.eigh(cov)
    vals = vals.clamp_min(1e-8)
    power = -0.5 if inverse else 0.5
    return vecs @ torch.diag(vals**power) @ vecs.T


def match_color(style: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """The painting recoloured so that its RGB mean and covariance equal the photo's.

    Uses the symmetric square roots of the two covariances (x -> C_c^1/2 C_s^-1/2 (x - mu_s) + mu_c),
    which of all the linear maps that match the statistics rotates the colours least;
    Gatys et al. 2017 also name the Cholesky variant, which depends on the channel order.
    """
    s = style.double()[0].reshape(3, -1)
    c = content.double()[0].reshape(3, -1)
    mu_s, mu_c = s.mean(1, keepdim=True), c.mean(1, keepdim=True)
    cov_s = torch.cov(s) + 1e-5 * torch.eye(3, dtype=torch.float64)
    cov_c = torch.cov(c) + 1e-5 * torch.eye(3, dtype=torch.float64)
    transform = _sqrtm(cov_c) @ _sqrtm(cov_s, inverse=True)
    out = transform @ (s - mu_s) + mu_c
    return out.reshape(style.shape).to(style.dtype).clamp(0, 1)


def prepare_colors(
    mode: str, content: torch.Tensor, styles: list[torch.Tensor]
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The photo and paintings as the optimisation should see them under ``mode``."""
    if mode == "luminance":
        y = luminance(content)
        return grey(y), [grey(match_luminance(luminance(s), y)) for s in styles]
    if canonical_color(mode) == "mean-covariance":
        return content, [match_color(s, content) for s in styles]
    return content, styles
