"""Metrics: SSIM checked analytically, distances zero for identical images, a stylised result nearer the painting."""

import json
import math

import pytest
import torch

from stylist.cli import main
from stylist.image import save_image
from stylist.metrics import Scorer, color_distance, measure, ssim
from stylist.optimize import TransferConfig, stylize
from stylist.quality import SSIM_K1, SSIM_K2, gaussian_window


def test_ssim_of_identical_images_is_one(content64):
    assert float(ssim(content64, content64)[0]) == pytest.approx(1.0, abs=1e-6)


def test_ssim_of_constant_images_matches_the_formula():
    # Flat images: no variance, so SSIM is its luminance term alone, (2ab + C1) / (a^2 + b^2 + C1).
    a, b = 0.2, 0.7
    x, y = torch.full((1, 1, 24, 24), a), torch.full((1, 1, 24, 24), b)
    c1 = SSIM_K1**2
    assert float(ssim(x, y)[0]) == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), rel=1e-5)


def test_ssim_matches_a_direct_sum_at_one_window():
    # An image exactly one window in size: one SSIM value, from the Gaussian-weighted sums written out.
    g = torch.Generator().manual_seed(1)
    x = torch.rand(1, 1, 11, 11, generator=g, dtype=torch.float64)
    y = (0.6 * x + 0.4 * torch.rand(1, 1, 11, 11, generator=g, dtype=torch.float64)).clamp(0, 1)
    w2 = torch.outer(gaussian_window(), gaussian_window())
    mx, my = (w2 * x[0, 0]).sum(), (w2 * y[0, 0]).sum()
    vx, vy = (w2 * (x[0, 0] - mx) ** 2).sum(), (w2 * (y[0, 0] - my) ** 2).sum()
    cov = (w2 * (x[0, 0] - mx) * (y[0, 0] - my)).sum()
    c1, c2 = SSIM_K1**2, SSIM_K2**2
    expected = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    assert float(ssim(x, y)[0]) == pytest.approx(float(expected), rel=1e-5)


def test_ssim_falls_with_noise(content64):
    g = torch.Generator().manual_seed(0)
    slight = (content64 + 0.02 * torch.randn(content64.shape, generator=g)).clamp(0, 1)
    heavy = (content64 + 0.2 * torch.randn(content64.shape, generator=g)).clamp(0, 1)
    s_slight, s_heavy = float(ssim(content64, slight)[0]), float(ssim(content64, heavy)[0])
    assert 1.0 > s_slight > s_heavy


def test_color_distance_is_the_shift_of_a_uniform_offset():
    # Earth mover's distance between a distribution and itself moved by d is d.
    x = torch.rand(1, 3, 40, 40, generator=torch.Generator().manual_seed(2)) * 0.5
    assert color_distance(x, x) == pytest.approx(0.0, abs=1e-9)
    assert color_distance(x, x + 0.25) == pytest.approx(0.25, abs=1e-6)


def test_identical_images_give_zero_distances(content64, style64):
    scorer = Scorer(content64, style64, tuple(content64.shape[-2:]))
    m = scorer(content64)
    assert m["content"] == pytest.approx(0.0, abs=1e-9)
    assert m["ssim"] == pytest.approx(1.0, abs=1e-6)
    same = Scorer(style64, style64, tuple(style64.shape[-2:]))(style64)
    assert same["style_gram"] == pytest.approx(0.0, abs=1e-9)
    assert same["style_meanstd"] == pytest.approx(0.0, abs=1e-9)
    assert same["color"] == pytest.approx(0.0, abs=1e-9)


def test_stylised_result_is_nearer_the_style_than_the_photo(content64, style64):
    result = stylize(content64, style64, TransferConfig(size=64, iterations=10, device="cpu", precision="fp32")).image
    scorer = Scorer(content64, style64, tuple(result.shape[-2:]))
    photo, styled = scorer(content64), scorer(result)
    assert styled["style_gram"] < photo["style_gram"]
    assert styled["style_meanstd"] < photo["style_meanstd"]
    assert styled["content"] > photo["content"]  # some of the photo was given up for it
    assert styled["ssim"] < 1.0


def test_metrics_command_prints_table_and_json(tmp_path, content_path, style_path, content64, capsys):
    result = tmp_path / "result.png"
    save_image(content64, result)
    assert main(["metrics", str(result), "--content", str(content_path), "--style", str(style_path), "--json"]) == 0
    values = json.loads(capsys.readouterr().out)
    assert set(values) >= {"content", "style_gram", "style_meanstd", "ssim", "color"}
    assert all(math.isfinite(v) for v in values.values())
    assert values == pytest.approx(measure(result, content_path, style_path))
    assert main(["metrics", str(result), "--content", str(content_path), "--style", str(style_path)]) == 0
    table = capsys.readouterr().out
    assert "style_gram" in table and "ssim" in table


def test_metrics_command_missing_file_is_one_line(tmp_path, content_path, style_path, capsys):
    assert (
        main(["metrics", str(tmp_path / "nope.png"), "--content", str(content_path), "--style", str(style_path)]) == 2
    )
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "nope.png" in err


def test_stylist_and_its_cli_import_without_the_resource_module(tmp_path):
    """Windows has no ``resource`` module: importing stylist, its CLI and the metrics must not need it."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    (tmp_path / "sitecustomize.py").write_text(
        "import sys\n"
        "class NoResource:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'resource':\n"
        "            raise ModuleNotFoundError(\"No module named 'resource'\")\n"
        "sys.modules.pop('resource', None)\n"
        "sys.meta_path.insert(0, NoResource())\n"
    )
    src = Path(__file__).resolve().parent.parent / "src"
    code = (
        "import sys\n"
        "import stylist, stylist.cli, stylist.metrics, stylist.study\n"
        "assert 'resource' not in sys.modules, 'resource was imported'\n"
        "try:\n    import resource\nexcept ImportError:\n    print('blocked')\n"
        "print(stylist.metrics.rss_mb() >= 0)\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{src}"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["blocked", "True"]
