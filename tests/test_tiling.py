"""Tiled processing at print size (issue 18): tiled results are the whole-image ones, without seams,
in less memory; sizes that cannot fit are refused in one line before any work.

The bound for a one-pass method is 1e-4 (in [0, 1] pixel values): the tiles sum the same statistics
as the whole image, so only floating-point rounding differs (measured: about 1e-6). An optimisation
run follows the same loss and gradient (relative error about 1e-6), so its result after a few
iterations differs by rounding grown through the optimiser: bound 1e-3.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from stylist.arbitrary import MARGIN as ARBITRARY_MARGIN
from stylist.arbitrary import ArbitraryConfig, stylize_arbitrary
from stylist.cli import main
from stylist.feedforward import MARGIN, MULTIPLE, load_model, stylize_tiled
from stylist.image import load_tensor, resize_long_side
from stylist.optimize import (
    MIN_HISTORY,
    Interrupted,
    Objective,
    TiledObjective,
    TransferConfig,
    build_network,
    feature_norms_for,
    plan_levels,
    plan_memory,
    stylize,
)
from stylist.tiling import RunningMoments, grid, seam_ratio

ROOT = Path(__file__).resolve().parent.parent
ONE_PASS_BOUND = 1e-4
OPTIMISATION_BOUND = 1e-3
SHALLOW = {"content_layers": ("relu2_2",), "style_layers": ("relu1_1", "relu2_1", "relu3_1")}


def photo(long_side: int) -> torch.Tensor:
    return resize_long_side(load_tensor(ROOT / "examples/content/kodak_lighthouse_coast.jpg"), long_side)


def no_seams(tiled: torch.Tensor, whole: torch.Tensor, tiles) -> None:
    """The border-gradient check: the tiled result's gradient energy on the tile borders, relative to
    elsewhere, is the whole-image result's (which has no borders)."""
    assert abs(seam_ratio(tiled, tiles) - seam_ratio(whole, tiles)) < 0.01


# --- geometry and sums ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("h, w, tile, margin, multiple", [(64, 48, 16, 8, 4), (37, 100, 32, 16, 16), (8, 8, 64, 4, 4)])
def test_grid_covers_each_pixel_once(h: int, w: int, tile: int, margin: int, multiple: int) -> None:
    cover = torch.zeros(h, w)
    for t in grid(h, w, tile, margin, multiple):
        cover[t.y0 : t.y1, t.x0 : t.x1] += 1
        assert t.y0 % multiple == 0 and t.x0 % multiple == 0
        assert t.y1 - t.y0 <= max(tile, multiple) or t.y1 == h
        assert t.top <= max(0, t.y0 - margin) and t.left <= max(0, t.x0 - margin)
        assert t.bottom >= min(h, t.y1 + margin) and t.right >= min(w, t.x1 + margin)
        assert t.top % multiple == 0 and t.left % multiple == 0 and t.bottom <= h and t.right <= w
    assert torch.equal(cover, torch.ones(h, w))


def test_running_moments_over_tiles_are_the_whole_image_moments() -> None:
    f = torch.randn(1, 6, 20, 28, dtype=torch.float64) * 3 + 1
    weights = torch.rand(1, 1, 20, 28, dtype=torch.float64)
    plain, cov, masked = RunningMoments(), RunningMoments(covariance=True), RunningMoments()
    for t in grid(20, 28, 8, 0):
        plain.add(t.inner(f))
        cov.add(t.inner(f))
        masked.add(t.inner(f), t.inner(weights))
    var, mean = torch.var_mean(f[0], dim=(1, 2), unbiased=False)
    flat = f[0].reshape(6, -1)
    assert torch.allclose(plain.mean(), mean) and torch.allclose(plain.variance(), var)
    assert torch.allclose(cov.cov(), torch.cov(flat, correction=0))
    w = weights.reshape(-1)
    assert torch.allclose(masked.mean(), (flat * w).sum(1) / w.sum())


# --- one-pass methods -----------------------------------------------------------------------------------------


def test_feedforward_tiled_is_the_whole_image_result() -> None:
    net = load_model("starry-night", "cpu").net
    x = photo(384)[..., :128, :256]  # 256x128: two tiles whose regions (248 px wide) are narrower than the image
    with torch.no_grad():
        whole = net(x)
        tiled = stylize_tiled(net, x, 128)
        # The same tiles with each tile's own instance-norm statistics: the seams the mechanism avoids.
        naive = torch.zeros_like(x)
        tiles = grid(x.shape[-2], x.shape[-1], 128, MARGIN, MULTIPLE)
        assert len(tiles) == 2 and all(t.right - t.left < 256 for t in tiles)
        for t in tiles:
            t.place(naive, net(t.region(x)))
    assert (tiled - whole).abs().max() < ONE_PASS_BOUND
    assert (naive - whole).abs().max() > 100 * ONE_PASS_BOUND  # the check can fail
    no_seams(tiled, whole, tiles)


def test_apply_tiles_in_the_api_and_keeps_sizes_not_multiples_of_four() -> None:
    model = load_model("starry-night", "cpu")
    x = photo(150)[..., :97, :]  # 150x97
    whole = model(x, tile_size=0)
    tiled = model(x, tile_size=64)
    assert tiled.shape == whole.shape == x.shape
    assert (tiled - whole).abs().max() < ONE_PASS_BOUND


def test_apply_command_tiles_to_the_same_picture(tmp_path: Path, content_path: Path) -> None:
    whole, tiled = tmp_path / "whole.png", tmp_path / "tiled.png"
    common = ["apply", "starry-night", str(content_path), "--size", "150", "--device", "cpu", "-q"]
    assert main([*common, "-o", str(whole), "--tile-size", "0"]) == 0
    assert main([*common, "-o", str(tiled), "--tile-size", "64"]) == 0
    assert (load_tensor(whole) - load_tensor(tiled)).abs().max() <= 1 / 255  # 8-bit rounding at most


def test_adain_tiled_is_the_whole_image_result_with_masks() -> None:
    x = photo(192)
    left = torch.zeros(1, 1, *x.shape[-2:])
    left[..., : x.shape[-1] // 2] = 1
    styles = [ROOT / "examples/style/starry_night.jpg", ROOT / "examples/style/the_scream.jpg"]
    cfg = {"device": "cpu", "precision": "fp32", "style_size": 64, "alpha": 0.8}
    masks = [left, 1 - left]
    whole = stylize_arbitrary(x, styles, ArbitraryConfig(**cfg, tile_size=0), masks=masks)
    tiled = stylize_arbitrary(x, styles, ArbitraryConfig(**cfg, tile_size=48), masks=masks)
    assert (tiled - whole).abs().max() < ONE_PASS_BOUND
    no_seams(tiled, whole, grid(x.shape[-2], x.shape[-1], 48, ARBITRARY_MARGIN["relu4_1"], 8))


def test_wct_tiled_is_the_whole_image_result() -> None:
    x = photo(160)
    levels = ("relu3_1", "relu2_1", "relu1_1")
    cfg = {"method": "wct", "levels": levels, "device": "cpu", "precision": "fp32", "style_size": 64}
    style = ROOT / "examples/style/great_wave.jpg"
    whole = stylize_arbitrary(x, style, ArbitraryConfig(**cfg, tile_size=0))
    tiled = stylize_arbitrary(x, style, ArbitraryConfig(**cfg, tile_size=32))
    assert (tiled - whole).abs().max() < ONE_PASS_BOUND
    no_seams(tiled, whole, grid(x.shape[-2], x.shape[-1], 32, 16, 16))


# --- optimisation ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("layers", [SHALLOW, {}], ids=["shallow", "default-layers"])
def test_tiled_objective_has_the_whole_image_loss_and_gradient(layers: dict) -> None:
    content = photo(160 if layers else 176)
    style = resize_long_side(load_tensor(ROOT / "examples/style/starry_night.jpg"), 128)
    cfg = TransferConfig(device="cpu", precision="fp32", tv_weight=0.1, **layers)
    net = build_network(cfg, torch.device("cpu"))
    norms = feature_norms_for(net, cfg, content)
    x = (content + 0.1 * torch.randn(content.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    whole_x, tiled_x = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    whole = Objective(net, cfg, content, [style], precision="fp32", feature_norms=norms)(whole_x)
    whole["total"].backward()
    tiled_objective = TiledObjective(net, cfg, content, [style], 48 if layers else 64, 100, "fp32", norms)
    assert len(tiled_objective.tiles) >= 6
    tiled = tiled_objective.backward(tiled_x)
    for name in ("content", "style", "tv", "total"):
        assert float(tiled[name]) == pytest.approx(whole[name].item(), rel=1e-5)
    error = (tiled_x.grad - whole_x.grad).abs().max() / whole_x.grad.abs().max()
    assert error < 1e-4


def test_transfer_tiled_is_the_whole_image_result(content_path: Path, style_path: Path) -> None:
    cfg = {"size": 128, "iterations": 4, "multiscale": False, "device": "cpu", "precision": "fp32", **SHALLOW}
    whole = stylize(content_path, style_path, TransferConfig(**cfg, tile_size=0))
    tiled = stylize(content_path, style_path, TransferConfig(**cfg, tile_size=32))
    assert (tiled.image - whole.image).abs().max() < OPTIMISATION_BOUND
    assert [round(r["total"], 3) for r in tiled.history] == [round(r["total"], 3) for r in whole.history]
    no_seams(tiled.image, whole.image, grid(*tiled.image.shape[-2:], 32, 16, 4))


def test_memory_plan_tiles_only_the_levels_that_do_not_fit() -> None:
    cfg = TransferConfig(size=3840, max_memory=16)
    sizes = [hw for hw, _ in plan_levels((2560, 3840), cfg)]
    plan = plan_memory(sizes, cfg, torch.device("cpu"), "bf16")
    assert plan[:-1] == [None, None]  # the coarse levels as today
    tile, history = plan[-1]
    assert 512 <= tile <= 2048 and MIN_HISTORY <= history <= 100
    small = plan_memory([(100, 150)], TransferConfig(), torch.device("cpu"), "fp32")
    assert small == [None]  # what fits stays whole: the untiled path, bit for bit as before


# --- memory ----------------------------------------------------------------------------------------------------

PEAK = """
import json, sys, torch
from pathlib import Path
from stylist.arbitrary import ArbitraryConfig, stylize_arbitrary
torch.set_num_threads(1)
style = sys.argv[1]
# WCT at its two finest levels: small margins (16 px) keep the tiled run quick at a tiny tile size.
cfg = dict(method="wct", levels=("relu2_1", "relu1_1"), device="cpu", precision="fp32", style_size=64)
stylize_arbitrary(torch.rand(1, 3, 64, 64), style, ArbitraryConfig(**cfg))  # networks loaded, allocator warm
x = torch.rand(1, 3, 384, 512)
status = lambda key: int(next(line.split()[1] for line in Path("/proc/self/status").read_text().splitlines()
                              if line.startswith(key))) * 1024
peaks = []
for tile in (0, 96):
    Path("/proc/self/clear_refs").write_text("5")  # the peak (VmHWM) starts again from here
    before = status("VmRSS:")
    stylize_arbitrary(x, style, ArbitraryConfig(**cfg, tile_size=tile))
    peaks.append(status("VmHWM:") - before)
print(json.dumps(peaks))
"""


def peak_bytes() -> tuple[int, int]:
    """The rise in peak resident memory of a child process that stylises a 512x384 photo with WCT,
    whole and in tiles of 96 px (the peak reset in between)."""
    style = str(ROOT / "examples/style/starry_night.jpg")
    env = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run([sys.executable, "-c", PEAK, style], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    whole, tiled = json.loads(done.stdout.strip().splitlines()[-1])
    return whole, tiled


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux's resettable peak RSS")
def test_tiled_peak_memory_is_below_the_whole_image_peak() -> None:
    whole, tiled = peak_bytes()
    print(f"peak rise: whole {whole / 2**20:.0f} MiB, tiled {tiled / 2**20:.0f} MiB")
    assert tiled < 0.5 * whole, (tiled, whole)


# --- errors ----------------------------------------------------------------------------------------------------


def one_line_error(argv: list[str], capsys, *words: str) -> None:
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as stop:
        code = int(stop.code)
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    for word in words:
        assert word in err, err


def test_impossible_sizes_are_refused_in_one_line_before_any_work(
    tmp_path: Path, content_path: Path, style_path: Path, capsys
) -> None:
    out = tmp_path / "out.png"
    c, s = str(content_path), str(style_path)
    one_line_error(["transfer", c, s, "--size", "8000", "--max-memory", "0.3", "-o", str(out)], capsys, "--max-memory")
    one_line_error(
        ["transfer", c, s, "--size", "2000", "--tile-size", "0", "--max-memory", "1", "-o", str(out)],
        capsys,
        "--tile-size 0",
    )
    one_line_error(["transfer", c, s, "--max-memory", "-1", "-o", str(out)], capsys, "--max-memory")
    one_line_error(["apply", "starry-night", c, "--tile-size", "-1", "-o", str(out)], capsys, "--tile-size")
    one_line_error(["arbitrary", c, "--style", s, "--tile-size", "-5", "-o", str(out)], capsys, "--tile-size")
    assert not out.exists()


# --- many processes ----------------------------------------------------------------------------------------------


def test_process_shares_partition_the_files(monkeypatch) -> None:
    from stylist.cli._common import process_share

    files = [f"photo{i}.jpg" for i in range(7)]
    assert process_share(files) == files  # no torchrun: every file
    shares = []
    for rank in range(3):
        monkeypatch.setenv("LOCAL_RANK", str(rank))
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "3")
        shares.append(process_share(files))
    assert sorted(sum(shares, [])) == sorted(files) and all(shares)


@pytest.mark.slow
@pytest.mark.parametrize("command", ["apply", "arbitrary"])
def test_torchrun_shares_a_folder_with_the_outputs_of_one_run(tmp_path: Path, command: str) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for p in (ROOT / "examples/content").glob("*.jpg"):
        (photos / p.name).write_bytes(p.read_bytes())
    style = str(ROOT / "examples/style/great_wave.jpg")
    args = ["starry-night", str(photos)] if command == "apply" else [str(photos), "--style", style]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
    tail = ["--size", "48", "--device", "cpu", "-q"]
    one = subprocess.run(
        [sys.executable, "-m", "stylist", command, *args, "-o", str(tmp_path / "one"), *tail],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert one.returncode == 0, one.stderr
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29541"]
    two = subprocess.run(
        [*launcher, "-m", "stylist", command, *args, "-o", str(tmp_path / "two"), *tail],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert two.returncode == 0, two.stderr[-2000:]
    assert "process 1 of 2" in two.stdout + two.stderr and "process 2 of 2" in two.stdout + two.stderr
    names = sorted(p.name for p in (tmp_path / "one").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "two").iterdir()) and len(names) == 3
    for name in names:
        a, b = load_tensor(tmp_path / "one" / name), load_tensor(tmp_path / "two" / name)
        assert torch.equal(a, b), name


def test_a_tiled_run_resumes_to_the_unbroken_result(content_path: Path, style_path: Path) -> None:
    cfg = TransferConfig(
        size=96, iterations=6, multiscale=False, early_stop_patience=0, device="cpu", precision="fp32",
        tile_size=32, **SHALLOW,
    )  # fmt: skip
    unbroken = stylize(content_path, style_path, cfg)

    def stop_at_3(p) -> None:
        if p.step == 3:
            raise KeyboardInterrupt

    with pytest.raises(Interrupted) as stop:
        stylize(content_path, style_path, cfg, stop_at_3)
    resumed = stylize(content_path, style_path, cfg, resume=stop.value.result.checkpoint())
    assert torch.equal(resumed.image, unbroken.image)


@pytest.mark.parametrize("bad", [-3, 7, 31])
def test_a_tile_size_too_small_to_be_useful_is_refused(bad) -> None:
    """A 7 px tile is nearly all margin (a run took minutes where whole it took a second): one line."""
    from stylist.errors import ConfigError

    for cfg in (TransferConfig(tile_size=bad), ArbitraryConfig(tile_size=bad)):
        with pytest.raises(ConfigError, match="--tile-size must be 0 .no tiles. or at least 32 px"):
            cfg.validate()
    TransferConfig(tile_size=32).validate()
    ArbitraryConfig(tile_size=0).validate()
