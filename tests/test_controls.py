"""Several styles, style scale, colour preservation, masks and presets (real weights, tiny sizes)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import stylist.optimize as opt
from stylist.cli import build_parser, config_from_args
from stylist.color import (
    luminance,
    match_color,
    match_luminance,
    rgb_to_yiq,
    with_chroma,
    yiq_to_rgb,
)
from stylist.image import load_tensor, resize
from stylist.losses import gram, masked_gram
from stylist.masks import load_masks
from stylist.optimize import TransferConfig, build_network, stylize
from stylist.presets import PRESETS, preset_config

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT / "examples/content/kodak_lighthouse_coast.jpg"
STARRY = ROOT / "examples/style/starry_night.jpg"
WAVE = ROOT / "examples/style/great_wave.jpg"
SCREAM = ROOT / "examples/style/the_scream.jpg"

FAST = dict(size=64, iterations=40, multiscale=False, precision="fp32", early_stop_patience=0)


# ---- colour maths -------------------------------------------------------------------------


def test_yiq_round_trip_and_grey_has_no_chroma() -> None:
    x = torch.rand(1, 3, 8, 9, dtype=torch.float64)
    assert torch.allclose(yiq_to_rgb(rgb_to_yiq(x)), x, atol=1e-12)
    grey = torch.full((1, 3, 4, 4), 0.3, dtype=torch.float64)
    yiq = rgb_to_yiq(grey)
    assert torch.allclose(yiq[:, 0], torch.full((1, 4, 4), 0.3, dtype=torch.float64))
    assert yiq[:, 1:].abs().max() < 1e-6


def test_match_luminance_takes_the_photos_mean_and_std() -> None:
    g = torch.Generator().manual_seed(0)
    style_y = torch.rand(1, 1, 20, 20, generator=g) * 0.2 + 0.7
    content_y = torch.rand(1, 1, 16, 24, generator=g) * 0.8 + 0.1
    out = match_luminance(style_y, content_y)
    assert out.mean().item() == pytest.approx(content_y.mean().item(), abs=1e-5)
    assert out.std().item() == pytest.approx(content_y.std().item(), rel=1e-4)


def test_match_color_takes_the_photos_mean_and_covariance() -> None:
    g = torch.Generator().manual_seed(1)
    # Statistics well inside [0, 1] so that the final clamp does not bite.
    style = (0.5 + 0.08 * torch.randn(1, 3, 30, 30, generator=g)) * torch.tensor([1.0, 0.8, 0.6]).view(1, 3, 1, 1)
    mix = torch.tensor([[1.0, 0.3, 0.0], [0.2, 1.0, 0.1], [0.0, 0.4, 1.0]])
    content = 0.4 + 0.06 * torch.einsum("ij,bjhw->bihw", mix, torch.randn(1, 3, 25, 25, generator=g))
    out = match_color(style, content)
    o, c = out.double()[0].reshape(3, -1), content.double()[0].reshape(3, -1)
    assert torch.allclose(o.mean(1), c.mean(1), atol=1e-4)
    assert torch.allclose(torch.cov(o), torch.cov(c), atol=1e-5)


# ---- masked Gram --------------------------------------------------------------------------


@pytest.mark.parametrize("normalization", ["mean", "paper"])
def test_masked_gram_of_ones_is_the_gram_and_of_a_half_is_that_halfs_gram(normalization: str) -> None:
    f = torch.randn(1, 5, 6, 8, dtype=torch.float64)
    ones = torch.ones(1, 1, 6, 8, dtype=torch.float64)
    assert torch.allclose(masked_gram(f, ones, normalization), gram(f, normalization))
    half = ones.clone()
    half[..., 4:] = 0  # the left half only
    expected = gram(f[..., :4].contiguous(), normalization)
    if normalization == "paper":  # per unit area of the whole image: the left half is 1/2 of it
        expected = expected * 2
    assert torch.allclose(masked_gram(f, half, normalization), expected)
    assert masked_gram(f, torch.zeros_like(ones), normalization).abs().max() == 0


# ---- several styles -----------------------------------------------------------------------


def _gram_distance(image: torch.Tensor, style: torch.Tensor, net) -> float:
    with torch.no_grad():
        a = net(image)["relu2_1"]
        b = net(resize(style, tuple(image.shape[-2:])))["relu2_1"]
    return float((gram(a) - gram(b)).pow(2).sum())


def test_blend_weights_move_the_result_between_two_styles() -> None:
    net = build_network(
        TransferConfig(style_layers=("relu2_1",), content_layers=("relu2_1",)), torch.device("cpu")
    ).float()
    starry, wave = load_tensor(STARRY), load_tensor(WAVE)
    distances = []
    for weights in [(1.0, 0.0), (0.5, 0.5), (0.0, 1.0)]:
        cfg = TransferConfig(**FAST, style_weights=weights, style_weight=100.0)
        image = stylize(PHOTO, [STARRY, WAVE], cfg).image
        distances.append((_gram_distance(image, starry, net), _gram_distance(image, wave, net)))
    to_starry = [d[0] for d in distances]
    to_wave = [d[1] for d in distances]
    assert to_starry[0] < to_starry[1] < to_starry[2], to_starry
    assert to_wave[0] > to_wave[1] > to_wave[2], to_wave


def test_style_size_ratio_sets_the_paintings_size(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []
    real = opt.Objective

    def spy(net, cfg, content, styles, *args, **kwargs):
        seen.append(max(styles[0].shape[-2:]))
        return real(net, cfg, content, styles, *args, **kwargs)

    monkeypatch.setattr(opt, "Objective", spy)
    for scale in (0.5, 1.0, 2.0):
        stylize(PHOTO, STARRY, TransferConfig(**{**FAST, "iterations": 1}, style_size_ratio=scale))
    assert seen == [32, 64, 128]


def test_style_weights_count_must_match() -> None:
    with pytest.raises(opt.ConfigError, match="has 2 values for 1 style image: give one per style image"):
        stylize(PHOTO, STARRY, TransferConfig(**FAST, style_weights=(0.5, 0.5)))


# ---- colour preservation ------------------------------------------------------------------


def test_luminance_mode_keeps_the_photos_chroma() -> None:
    cfg = TransferConfig(**FAST, preserve_color="luminance")
    frames = []
    result = stylize(PHOTO, STARRY, cfg, callback=lambda p: frames.append(p.image)).image
    photo = resize(load_tensor(PHOTO), tuple(result.shape[-2:]))
    chroma_diff = (rgb_to_yiq(result)[:, 1:] - rgb_to_yiq(photo)[:, 1:]).abs()
    # Equal but for the clamp to [0, 1] where a new luminance leaves the RGB gamut.
    assert chroma_diff.mean() < 0.005, float(chroma_diff.mean())
    # ... while the luminance itself was restyled.
    assert (luminance(result) - luminance(photo)).abs().mean() > 0.02
    # What callbacks see is in colour too.
    assert (
        rgb_to_yiq(frames[-1])[:, 1:] - rgb_to_yiq(resize(photo, tuple(frames[-1].shape[-2:])))[:, 1:]
    ).abs().mean() < 0.005


def test_histogram_mode_brings_the_result_to_the_photos_colours() -> None:
    photo = load_tensor(PHOTO)
    plain = stylize(PHOTO, SCREAM, TransferConfig(**FAST)).image
    kept = stylize(PHOTO, SCREAM, TransferConfig(**FAST, preserve_color="histogram")).image
    target = resize(photo, tuple(plain.shape[-2:])).mean(dim=(2, 3))
    assert (kept.mean(dim=(2, 3)) - target).abs().sum() < (plain.mean(dim=(2, 3)) - target).abs().sum()


def test_with_chroma_of_a_grey_image_is_the_photo_when_luminance_matches() -> None:
    photo = load_tensor(PHOTO)[..., :32, :32]
    y = luminance(photo)
    assert (with_chroma(y, photo) - photo).abs().max() < 1e-4


# ---- masks --------------------------------------------------------------------------------


def test_a_mask_of_zeros_keeps_the_photo() -> None:
    photo = load_tensor(PHOTO)
    zeros = torch.zeros(1, 1, *photo.shape[-2:])
    result = stylize(PHOTO, STARRY, TransferConfig(**FAST), masks=[zeros]).image
    assert (result - resize(photo, tuple(result.shape[-2:]))).abs().max() < 1e-3


def test_masked_regions_take_their_own_style_and_an_empty_region_stays_the_photo() -> None:
    photo = load_tensor(PHOTO)
    h, w = photo.shape[-2:]
    left = torch.zeros(1, 1, h, w)
    left[..., : w // 2] = 1.0
    result = stylize(PHOTO, STARRY, TransferConfig(**{**FAST, "size": 96}), masks=[left]).image
    ref = resize(photo, tuple(result.shape[-2:]))
    diff = (result - ref).abs().mean(dim=1)[0]
    rw = result.shape[-1]
    styled, kept = diff[:, : rw // 2 - 8].mean(), diff[:, rw // 2 + 8 :].mean()
    # The receptive fields reach a little across the border; away from it the right half
    # changes several times less than the styled left half.
    assert kept < styled / 4, (float(styled), float(kept))


def test_two_masks_two_styles_each_region_nearer_its_own_painting() -> None:
    photo = load_tensor(PHOTO)
    h, w = photo.shape[-2:]
    left = torch.zeros(1, 1, h, w)
    left[..., : w // 2] = 1.0
    cfg = TransferConfig(**{**FAST, "size": 96}, style_weight=100.0)
    result = stylize(PHOTO, [STARRY, SCREAM], cfg, masks=[left, 1 - left]).image
    net = build_network(
        TransferConfig(style_layers=("relu2_1",), content_layers=("relu2_1",)), torch.device("cpu")
    ).float()
    rw = result.shape[-1]
    lhalf, rhalf = result[..., : rw // 2].contiguous(), result[..., rw // 2 :].contiguous()
    starry, scream = load_tensor(STARRY), load_tensor(SCREAM)
    assert _gram_distance(lhalf, starry, net) < _gram_distance(lhalf, scream, net)
    assert _gram_distance(rhalf, scream, net) < _gram_distance(rhalf, starry, net)


def test_a_mask_of_another_size_is_resized_with_a_note(tmp_path: Path) -> None:
    path = tmp_path / "m.png"
    Image.fromarray(np.full((10, 20), 255, np.uint8), "L").save(path)
    with pytest.warns(UserWarning, match="resizing the mask"):
        masks = load_masks([path], 1, (43, 64))
    assert masks[0].shape == (1, 1, 43, 64)
    assert masks[0].min() > 0.99


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "stylist", *args], capture_output=True, text=True, cwd=cwd)


@pytest.mark.parametrize("case", ["count", "unreadable", "missing"])
def test_bad_masks_get_one_line_and_exit_2(tmp_path: Path, case: str) -> None:
    good = tmp_path / "good.png"
    Image.fromarray(np.zeros((43, 64), np.uint8), "L").save(good)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image at all")
    masks = {"count": [str(good), str(good)], "unreadable": [str(bad)], "missing": [str(tmp_path / "nope.png")]}[case]
    out = tmp_path / "out.png"
    r = _cli(
        "transfer",
        str(PHOTO),
        str(STARRY),
        "-o",
        str(out),
        "--size",
        "32",
        "--iterations",
        "2",
        "--mask",
        *masks,
        cwd=tmp_path,
    )
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert "mask" in lines[0]
    assert not out.exists()


# ---- presets ------------------------------------------------------------------------------


def test_presets_resolve_to_their_documented_numbers() -> None:
    g = preset_config("gatys2016")
    assert (g.optimizer, g.normalization, g.init, g.content_layers) == ("lbfgs", "paper", "noise", ("relu4_2",))
    assert g.style_layers == ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
    assert g.style_layer_weights == (0.2,) * 5
    assert g.content_weight / g.style_weight == pytest.approx(1e-3)
    a = preset_config("lab-adam")
    assert (a.optimizer, a.lr, a.iterations, a.content_weight, a.style_weight, a.init) == (
        "adam",
        0.004,
        7000,
        8.0,
        70.0,
        "content",
    )
    s = preset_config("lbfgs-short")
    assert (s.optimizer, s.lr, s.iterations, s.style_weight) == ("lbfgs", 0.2, 250, 100.0)
    assert s.style_layer_weights == pytest.approx([1e3 / 64**2, 1e3 / 128**2, 1e3 / 256**2, 1e3 / 512**2, 1e3 / 512**2])
    v = preset_config("vanilla-tv")
    assert (v.optimizer, v.lr, v.iterations, v.content_weight, v.style_weight, v.init) == (
        "adam",
        0.01,
        1000,
        1.0,
        1e3,
        "content",
    )
    assert v.style_layer_weights == (0.2,) * 5
    for name in PRESETS:
        cfg = preset_config(name)
        cfg.validate()
        assert cfg.early_stop_patience == 0 and not cfg.multiscale  # a recipe runs all its steps, at one size


def test_explicit_options_override_a_preset() -> None:
    args = build_parser().parse_args(
        [
            "transfer",
            "c.jpg",
            "s.jpg",
            "-o",
            "o.png",
            "--preset",
            "vanilla-tv",
            "--tv-weight",
            "100",
            "--iterations",
            "20",
        ]
    )
    cfg = config_from_args(args)
    assert (cfg.tv_weight, cfg.iterations, cfg.optimizer, cfg.lr) == (100.0, 20, "adam", 0.01)
    assert preset_config("gatys2016", init="content").init == "content"


def test_an_unknown_preset_is_one_line_exit_2(tmp_path: Path) -> None:
    r = _cli("transfer", str(PHOTO), str(STARRY), "-o", str(tmp_path / "o.png"), "--preset", "monet", cwd=tmp_path)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1


def test_paper_gram_target_is_rescaled_to_the_results_size() -> None:
    """Under 'paper' the Gram is a sum over positions: a painting with twice the positions
    (the photo tiled twice) has the photo's statistics and must give a near-zero style loss
    at the photo itself, not the loss of a target twice too large."""
    photo = resize(load_tensor(PHOTO), (48, 64))
    tiled = torch.cat([photo, photo], dim=-1)  # same statistics, twice the positions
    cfg = TransferConfig(normalization="paper", precision="fp32", style_weight=1.0)
    net = build_network(cfg, torch.device("cpu"))
    same = opt.Objective(net, cfg, photo, [tiled])(photo)["style"].item()
    other = opt.Objective(net, cfg, photo, [resize(load_tensor(STARRY), (48, 64))])(photo)["style"].item()
    assert same < 0.1 * other, (same, other)  # measured 0.03 (the seam and borders); 0.9 without the rescale


def test_configs_recorded_with_old_field_names_still_load() -> None:
    # Manifests and checkpoints written before "scale" got its own names carry the old keys.
    from stylist.optimize import upgrade_config
    from stylist.presets import preset_config

    cfg = preset_config(None, **upgrade_config({"style_scale": 2.0, "min_scale_size": 64, "iterations": 3}))
    assert (cfg.style_size_ratio, cfg.min_level_size, cfg.iterations) == (2.0, 64, 3)
    assert preset_config(None, style_scale=0.5).style_size_ratio == 0.5
