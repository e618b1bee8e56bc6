"""Measures of a style transfer's quality: structure kept, copying, style and colour closeness.

Every function takes RGB images in [0, 1] shaped (B, 3, H, W) (float tensors, any device) and
returns one number per image, a (B,) float32 tensor on the CPU, or a dict of such numbers. They
are pure (nothing is written, nothing printed), deterministic, and used alike by the metrics, the
studies and ``benchmarks/quality.py``; see ``docs/quality.md`` for calibration and limits.

- **structure kept** (:func:`structure`): how much of the photo's layout and edges the result
  keeps. Both images become blurred luminance at one analysis size (long side
  :data:`ANALYSIS_SIZE` px, Gaussian sigma :data:`BLUR_SIGMA` px), so that brush strokes and
  colours count little and the arrangement of shapes counts much; the measure is the Pearson
  correlation of their gradient magnitudes (Sobel), in [-1, 1], 1 = the same edges. Gradient
  magnitude correlation is a classic structure cue (e.g. Xue et al., *Gradient Magnitude
  Similarity Deviation*, IEEE TIP 2014, use gradient magnitudes for the same reason: they follow
  edges and ignore flat tone changes). :func:`structure_ssim` gives the SSIM of Wang, Bovik,
  Sheikh and Simoncelli (*Image Quality Assessment: from Error Visibility to Structural
  Similarity*, IEEE TIP 2004) of the same blurred luminance, as a second opinion.
- **copying** (:func:`copying`): the same measure between the result and the painting resized
  to the result (aspect not kept: the painting's layout laid over the result's frame). A result
  whose copying is at or above its structure is structurally closer to the painting than to the
  photo; :data:`COPYING_FLAG` flags a copied layout. Limit (docs/quality.md): the painting's figures
  painted at *new* places, on the photo's own light and dark areas, are not seen by this measure
  nor by structure; compare settings on the same pairs and look at the results.
- **style closeness** (:func:`style_distance`): the relative distance between the Gram matrices
  (Gatys, Ecker and Bethge, CVPR 2016) of VGG-19 features at relu1_1..relu4_1 of the result and
  the painting, as a fraction of the photo's own distance to the painting: 0 = the painting's
  statistics, 1 = no closer than the photo, above 1 = further. :func:`meanstd_distance` does the
  same with per-channel means and standard deviations (Huang and Belongie, AdaIN, ICCV 2017).
- **colour closeness** (:func:`colour_distance`): the sliced Wasserstein distance (Rabin, Peyre,
  Delon and Bernot, *Wasserstein Barycenter and its Application to Texture Mixing*, SSVM 2011)
  between the CIE Lab colours of the result's pixels and the painting's, in Lab units (about
  Delta E 1976): 0 = the same colour distribution, whatever the layout.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

from .image import resize, resize_long_side
from .losses import gram, mean_std
from .vgg import VGGFeatures

# Long side (px) of the blurred luminance that the structure measures compare: fixed, so that a
# result measures alike at 256 and at 1024 px (the painting's strokes scale with the result).
ANALYSIS_SIZE = 128
# Gaussian blur (px at the analysis size) that removes brush-stroke texture but keeps shapes.
BLUR_SIGMA = 1.0
# Layers whose feature statistics define the style (the issue: relu1_1..relu4_1; relu5_1 is left
# out because its Gram matrices carry object-level layout, not only style).
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
# Below this variance (in squared luminance units per pixel) an image counts as flat.
FLAT_VARIANCE = 1e-10
# Copying at or above this flags a result whose layout is the painting's (calibrated by eye in
# docs/quality.md: a copied Great Wave measured 0.40; the one-pass and transfer baseline results,
# none of which copies the painting's layout, measured 0.24 at the most).
COPYING_FLAG = 0.3
# Sliced Wasserstein: number of random directions in Lab and of quantiles per direction.
SW_DIRECTIONS = 64
SW_QUANTILES = 256
# SSIM constants of Wang et al. (2004): C1 = (K1 L)^2, C2 = (K2 L)^2 with L = 1.
SSIM_K1, SSIM_K2 = 0.01, 0.03
# CIE D65 white (2 degree observer), the white of sRGB.
D65_WHITE = (0.95047, 1.0, 1.08883)
# Linear sRGB -> CIE XYZ (IEC 61966-2-1).
_SRGB_TO_XYZ = torch.tensor(
    [
        [0.4124564, 0.3575761, 0.1804375],
        [0.2126729, 0.7151522, 0.0721750],
        [0.0193339, 0.1191920, 0.9503041],
    ],
    dtype=torch.float64,
)


def _check(x: torch.Tensor, what: str) -> torch.Tensor:
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"{what}: expected an RGB tensor (B, 3, H, W); got shape {tuple(x.shape)}")
    return x


# --- colour spaces -------------------------------------------------------------------------------------


def rgb_to_lab(x: torch.Tensor) -> torch.Tensor:
    """sRGB (B, 3, H, W) in [0, 1] -> CIE L*a*b* (B, 3, H, W), float64, D65 white.

    L* in [0, 100], a* and b* roughly in [-128, 128]. The exact sRGB transfer curve (IEC 61966-2-1)
    and the CIE 1976 formulas with their linear segment below (6/29)^3.
    """
    x = _check(x, "rgb_to_lab").double().clamp(0, 1)
    linear = torch.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)
    xyz = torch.einsum("ij,bjhw->bihw", _SRGB_TO_XYZ.to(x.device), linear)
    white = torch.tensor(D65_WHITE, dtype=torch.float64, device=x.device).view(1, 3, 1, 1)
    t = xyz / white
    delta = 6 / 29
    f = torch.where(t > delta**3, t.clamp_min(0) ** (1 / 3), t / (3 * delta**2) + 4 / 29)
    lightness = 116 * f[:, 1:2] - 16
    a = 500 * (f[:, 0:1] - f[:, 1:2])
    b = 200 * (f[:, 1:2] - f[:, 2:3])
    return torch.cat([lightness, a, b], 1)


def luma(x: torch.Tensor) -> torch.Tensor:
    """Rec. 601 luma of sRGB (B, 3, H, W) in [0, 1] -> (B, 1, H, W) in [0, 1], float64."""
    w = torch.tensor([0.299, 0.587, 0.114], dtype=torch.float64, device=x.device).view(1, 3, 1, 1)
    return (_check(x, "luma").double() * w).sum(1, keepdim=True)


# --- structure -----------------------------------------------------------------------------------------


def _gaussian(sigma: float) -> torch.Tensor:
    radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    g = torch.exp(-(t**2) / (2 * sigma**2))
    return g / g.sum()


def _blur(t: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (B, 1, H, W), borders replicated (no dark frame from zero padding)."""
    g = _gaussian(sigma).to(t)
    r = g.numel() // 2
    t = F.conv2d(F.pad(t, (r, r, 0, 0), mode="replicate"), g.view(1, 1, 1, -1))
    return F.conv2d(F.pad(t, (0, 0, r, r), mode="replicate"), g.view(1, 1, -1, 1))


def analysis_luminance(x: torch.Tensor, size: int = ANALYSIS_SIZE, sigma: float = BLUR_SIGMA) -> torch.Tensor:
    """The blurred luminance that the structure measures compare: (B, 3, H, W) RGB in [0, 1] ->
    (B, 1, h, w) float64 in [0, 1], long side ``size`` px (never enlarged), Gaussian ``sigma`` px."""
    y = luma(x)
    if max(y.shape[-2:]) > size:
        y = resize_long_side(y.float(), size).double()
    return _blur(y, sigma)


def gradient_magnitude(y: torch.Tensor) -> torch.Tensor:
    """Sobel gradient magnitude of (B, 1, H, W) -> (B, 1, H, W), borders replicated."""
    k = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=y.dtype, device=y.device) / 8
    p = F.pad(y, (1, 1, 1, 1), mode="replicate")
    gx = F.conv2d(p, k.view(1, 1, 3, 3))
    gy = F.conv2d(p, k.t().contiguous().view(1, 1, 3, 3))
    return torch.sqrt(gx * gx + gy * gy)


def correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson correlation per image of two (B, C, H, W) tensors -> (B,) in [-1, 1]; 0 where
    either image is constant (a flat image shares no structure with anything)."""
    a = a.flatten(1).double()
    b = b.flatten(1).double()
    a = a - a.mean(1, keepdim=True)
    b = b - b.mean(1, keepdim=True)
    va, vb = (a * a).mean(1), (b * b).mean(1)
    r = (a * b).mean(1) / torch.sqrt(va * vb).clamp_min(1e-30)
    # Resampling leaves a flat image with variations near 1e-8: count those as flat too.
    flat = (va < FLAT_VARIANCE) | (vb < FLAT_VARIANCE)
    return torch.where(flat, torch.zeros_like(r), r).clamp(-1, 1)


def _same_frame(x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """``reference`` resized to ``x``'s height and width (aspect not kept), on x's device."""
    return resize(reference.float().to(x.device), (x.shape[-2], x.shape[-1]))


def structure(result: torch.Tensor, photo: torch.Tensor) -> torch.Tensor:
    """Structure kept: correlation of the gradient magnitudes of the blurred luminance of
    ``result`` and ``photo`` (both (B, 3, H, W) RGB in [0, 1]; the photo is resized to the
    result's frame) -> (B,) float32 in [-1, 1]. 1 = the same edges, about 0 = unrelated images
    or a flat image. Symmetric when both have the same size.
    """
    _check(result, "result")
    ref = _same_frame(result, _check(photo, "photo"))
    g1 = gradient_magnitude(analysis_luminance(result))
    g2 = gradient_magnitude(analysis_luminance(ref))
    return correlation(g1, g2).float().cpu()


def copying(result: torch.Tensor, painting: torch.Tensor) -> torch.Tensor:
    """Copying: :func:`structure` of ``result`` against the painting resized to the result's frame
    (B, 3, H, W) RGB in [0, 1] -> (B,) float32 in [-1, 1]. High = the painting's own layout shows
    through; at or above :func:`structure` the result is closer to the painting than to the photo.
    """
    return structure(result, painting)


def ssim(x: torch.Tensor, y: torch.Tensor, size: int = 11, sigma: float = 1.5, data_range: float = 1.0) -> torch.Tensor:
    """Mean SSIM (Wang et al. 2004) of images (B, C, H, W) in [0, data_range] -> (B,) float32 in
    [-1, 1], 1 = identical. Local statistics under a Gaussian window (``size`` taps, at most the
    image's side; sigma 1.5 px; 'valid' positions only, so the borders do not mix in padding),
    population (not sample) variances, as Wang et al. Raises ValueError for images of different shapes.
    """
    if x.shape != y.shape:
        raise ValueError(f"ssim needs images of one shape; got {tuple(x.shape)} and {tuple(y.shape)}")
    taps = min(size, x.shape[-1], x.shape[-2])
    g = gaussian_window(taps, sigma).to(x.device)
    c = x.shape[1]
    kx = g.view(1, 1, 1, -1).repeat(c, 1, 1, 1)
    ky = g.view(1, 1, -1, 1).repeat(c, 1, 1, 1)

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.conv2d(t, kx, groups=c), ky, groups=c)

    x, y = x.double(), y.double()
    mx, my = blur(x), blur(y)
    vx = blur(x * x) - mx * mx
    vy = blur(y * y) - my * my
    cov = blur(x * y) - mx * my
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    s = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return s.mean(dim=(1, 2, 3)).float().cpu()


def gaussian_window(taps: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """A normalised 1-D Gaussian of ``taps`` samples (float64), as Wang et al.'s 11-tap window."""
    t = torch.arange(taps, dtype=torch.float64) - (taps - 1) / 2
    g = torch.exp(-(t**2) / (2 * sigma**2))
    return g / g.sum()


def structure_ssim(result: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """SSIM of the blurred luminance (:func:`analysis_luminance`) of ``result`` and ``reference``
    (photo or painting, resized to the result's frame), both (B, 3, H, W) RGB in [0, 1] -> (B,)
    float32 in [-1, 1]. Unlike :func:`structure` it also counts tone and contrast changes."""
    _check(result, "result")
    ref = _same_frame(result, _check(reference, "reference"))
    return ssim(analysis_luminance(result), analysis_luminance(ref))


# --- style ---------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=2)
def default_network(weights: str = "vgg19-caffe") -> VGGFeatures:
    """The shared frozen VGG-19 (default weights) up to relu4_1, built once per process."""
    return VGGFeatures(STYLE_LAYERS, weights=weights)


def _features(x: torch.Tensor, net: VGGFeatures | None) -> dict[str, torch.Tensor]:
    net = net or default_network()
    device = next(net.buffers()).device
    with torch.no_grad():
        feats = net(x.float().to(device))
    return {n: feats[n].float() for n in STYLE_LAYERS}


def _gram_distance(fx: dict[str, torch.Tensor], fy: dict[str, torch.Tensor]) -> torch.Tensor:
    total = torch.zeros(fx[STYLE_LAYERS[0]].shape[0], dtype=torch.float64)
    for n in STYLE_LAYERS:
        gx, gy = gram(fx[n]).double(), gram(fy[n]).double()
        num = (gx - gy).pow(2).sum((1, 2))
        total += (num / gy.pow(2).sum((1, 2)).clamp_min(1e-30)).cpu()
    return total / len(STYLE_LAYERS)


def _meanstd_distance(fx: dict[str, torch.Tensor], fy: dict[str, torch.Tensor]) -> torch.Tensor:
    total = torch.zeros(fx[STYLE_LAYERS[0]].shape[0], dtype=torch.float64)
    for n in STYLE_LAYERS:
        (mx, sx), (my, sy) = mean_std(fx[n]), mean_std(fy[n])
        num = (mx - my).double().pow(2).flatten(1).sum(1) + (sx - sy).double().pow(2).flatten(1).sum(1)
        den = my.double().pow(2).flatten(1).sum(1) + sy.double().pow(2).flatten(1).sum(1)
        total += (num / den.clamp_min(1e-30)).cpu()
    return total / len(STYLE_LAYERS)


STATISTICS = {"gram": _gram_distance, "meanstd": _meanstd_distance}


def gram_distance(x: torch.Tensor, y: torch.Tensor, net: VGGFeatures | None = None) -> torch.Tensor:
    """Mean over relu1_1..relu4_1 of the relative squared Frobenius distance of the Gram matrices
    (``stylist.losses.gram``, mean normalisation) ``||G(x) - G(y)||^2 / ||G(y)||^2``.

    ``x`` (B, 3, H, W) and ``y`` (1 or B, 3, h, w) RGB in [0, 1], sizes may differ (a Gram matrix
    does not depend on where things are). -> (B,) float32 >= 0, 0 = the same statistics. Relative
    per layer so that each layer counts alike whatever its activation scale (a stand-in for the
    paper's normalised VGG). Not symmetric: the reference ``y`` sets each layer's scale.
    """
    return _gram_distance(_features(_check(x, "x"), net), _features(_check(y, "y"), net)).float()


def meanstd_distance(x: torch.Tensor, y: torch.Tensor, net: VGGFeatures | None = None) -> torch.Tensor:
    """As :func:`gram_distance` with AdaIN's statistics: per layer
    ``(||mu_x - mu_y||^2 + ||sigma_x - sigma_y||^2) / (||mu_y||^2 + ||sigma_y||^2)``, mean over
    layers -> (B,) float32 >= 0."""
    return _meanstd_distance(_features(_check(x, "x"), net), _features(_check(y, "y"), net)).float()


def style_distances(
    result: torch.Tensor, photo: torch.Tensor, painting: torch.Tensor, net: VGGFeatures | None = None
) -> dict[str, torch.Tensor]:
    """Style closeness by both statistics, ``{"gram": (B,), "meanstd": (B,)}``: each the result's
    distance to the painting as a fraction of the photo's (see :func:`style_distance`), from one
    VGG pass per image."""
    _check(result, "result")
    ref = _same_frame(result, _check(photo, "photo"))
    art = resize_long_side(_check(painting, "painting").float(), max(result.shape[-2:]))
    fr, fp, fa = _features(result, net), _features(ref, net), _features(art, net)
    out = {}
    for name, dist in STATISTICS.items():
        out[name] = (dist(fr, fa) / dist(fp, fa).clamp_min(1e-12)).float()
    return out


def style_distance(
    result: torch.Tensor,
    photo: torch.Tensor,
    painting: torch.Tensor,
    net: VGGFeatures | None = None,
    statistic: str = "gram",
) -> torch.Tensor:
    """Style closeness: the result's style distance to the painting as a fraction of the photo's.

    ``result`` (B, 3, H, W), ``photo`` and ``painting`` (1 or B, 3, h, w), RGB in [0, 1]. The photo
    is resized to the result's frame and the painting to the result's long side (aspect kept), so
    the strokes are measured at the scale a transfer at style scale 1 paints them. ``statistic``
    is ``gram`` (:func:`gram_distance`) or ``meanstd`` (:func:`meanstd_distance`). -> (B,) float32
    >= 0: 0 = the painting's statistics, 1 = as far as the photo, > 1 further. Raises ValueError
    for an unknown statistic.
    """
    if statistic not in STATISTICS:
        raise ValueError(f"unknown style statistic '{statistic}': use gram or meanstd")
    return style_distances(result, photo, painting, net)[statistic]


# --- colour --------------------------------------------------------------------------------------------


def _directions(n: int = SW_DIRECTIONS) -> torch.Tensor:
    """``n`` fixed unit vectors in 3-D (seeded, so the measure is deterministic): (n, 3) float64."""
    g = torch.Generator().manual_seed(0)
    d = torch.randn(n, 3, generator=g, dtype=torch.float64)
    return d / d.norm(dim=1, keepdim=True)


def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, directions: int = SW_DIRECTIONS) -> float:
    """Sliced 1-Wasserstein distance between two point clouds (N, 3) and (M, 3) (float): the mean
    over fixed random directions of the 1-D Wasserstein-1 distance of the projections, from
    :data:`SW_QUANTILES` quantiles. In the points' units; 0 for the same distribution; symmetric."""
    d = _directions(directions).to(a.device)
    q = ((torch.arange(SW_QUANTILES, dtype=torch.float64) + 0.5) / SW_QUANTILES).to(a.device)
    pa = (a.double() @ d.t()).t().contiguous()  # (directions, N)
    pb = (b.double() @ d.t()).t().contiguous()
    return float((torch.quantile(pa, q, dim=1) - torch.quantile(pb, q, dim=1)).abs().mean())


def colour_distance(result: torch.Tensor, painting: torch.Tensor) -> torch.Tensor:
    """Colour closeness: sliced Wasserstein distance of the CIE Lab colours of the pixels of each
    ``result`` (B, 3, H, W) and the ``painting`` (1, 3, h, w), RGB in [0, 1], any sizes -> (B,)
    float32 in Lab units (about Delta E 1976), >= 0, 0 = the same colour distribution. Layout is
    ignored; images over 65,536 pixels are subsampled on a regular grid (same result every call).
    """
    art = _points(rgb_to_lab(_check(painting, "painting")[:1]))
    lab = rgb_to_lab(_check(result, "result"))
    return torch.tensor([sliced_wasserstein(_points(lab[i : i + 1]), art) for i in range(lab.shape[0])]).float()


def _points(lab: torch.Tensor, limit: int = 65536) -> torch.Tensor:
    """(1, 3, H, W) -> (N, 3) pixels, every k-th row and column so that N <= ``limit``."""
    step = max(1, math.ceil(math.sqrt(lab.shape[-2] * lab.shape[-1] / limit)))
    return lab[0, :, ::step, ::step].flatten(1).t()


# --- all at once ---------------------------------------------------------------------------------------

MEASURES = ("structure", "copying", "style", "colour")
EXTRA_MEASURES = ("structure_ssim", "copying_ssim", "style_meanstd", "psnr")


def psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio (dB) of (B, 3, H, W) against ``y`` resized to x's frame, RGB in
    [0, 1] (peak 1) -> (B,) float32; infinite for identical images."""
    ref = _same_frame(x, y).double()
    mse = (x.double() - ref).pow(2).flatten(1).mean(1)
    return (10 * torch.log10(1 / mse)).float().cpu()


def measure(
    result: torch.Tensor, photo: torch.Tensor, painting: torch.Tensor, net: VGGFeatures | None = None
) -> dict[str, float]:
    """Every measure of one result (1, 3, H, W) against its photo and painting (1, 3, h, w), RGB in
    [0, 1]: ``structure``, ``copying``, ``style`` (Gram), ``colour``, and ``structure_ssim``,
    ``copying_ssim``, ``style_meanstd``, ``psnr`` (against the photo). Plain floats."""
    style = style_distances(result, photo, painting, net)
    out = {
        "structure": structure(result, photo),
        "copying": copying(result, painting),
        "style": style["gram"],
        "colour": colour_distance(result, painting),
        "structure_ssim": structure_ssim(result, photo),
        "copying_ssim": structure_ssim(result, painting),
        "style_meanstd": style["meanstd"],
        "psnr": psnr(result, photo),
    }
    return {k: float(v[0]) for k, v in out.items()}
