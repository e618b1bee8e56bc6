"""Benchmark: peak memory and time against the pixel count, whole image against tiles, per method (issue 18).

For each method and size, a fresh child process runs one image once whole (``tile_size=0``) and once in
tiles (``tile_size=--tile``) and reports:

* ``peak_mb``: the rise of the process's peak memory during the run, MiB: on the CPU the resident set
  (Linux's VmHWM, reset before the run through /proc/self/clear_refs; elsewhere ru_maxrss, which then
  includes the start-up), on a GPU ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``;
* ``seconds``: wall time of the run (after a warm-up on a 64 px image that loads the networks);
* whole against tiled, where both ran: ``max_diff`` and ``mean_diff`` (pixel values in [0, 1]) and the
  seam check, ``seam_ratio``: mean squared gradient across the tiles' borders over that elsewhere
  (:func:`stylist.tiling.seam_ratio`), for the tiled result and, on the same borders, the whole one
  (which has no seams): equal ratios mean no seams.

Methods: ``apply`` (the built-in starry-night network), ``adain`` and ``wct`` (the shipped decoders,
painting at 512 px), ``transfer`` (``--iterations`` L-BFGS iterations at one level, default layers).
Sizes are the result's long side; the photo is the 3:2 Kodak lighthouse, resized.

Run:   OMP_NUM_THREADS=2 python benchmarks/resolution.py                  (CPU: 256 512 1024 px, a few minutes)
       python benchmarks/resolution.py --device cuda --sizes 1024 2048 4096 --tile 1024
Smoke: python benchmarks/resolution.py --methods adain --sizes 128 --tile 64 --out /tmp/r.json --plot /tmp/r.png
Rows are merged into ``--out`` by (method, size, mode, precision), so methods, sizes and precisions can be run
separately; the plot shows the ``auto`` precision rows.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONTENT = ROOT / "examples/content/kodak_lighthouse_coast.jpg"
STYLE = ROOT / "examples/style/starry_night.jpg"
METHODS = ("apply", "adain", "wct", "transfer")
sys.path.insert(0, str(ROOT / "src"))  # this checkout's stylist, in the parent as in the children

# The child: one method, one size, one mode; prints one JSON line and saves the result tensor.
CHILD = r"""
import json, resource, sys, time
from pathlib import Path
import torch
method, size, tile, device, iterations, out, precision = sys.argv[1:8]
size, tile, iterations = int(size), int(tile), int(iterations)
from stylist.image import load_tensor, resize_long_side
photo = load_tensor(sys.argv[8])
style = sys.argv[9]
if method == "apply":
    from stylist.feedforward import load_model
    model = load_model("starry-night", device, "auto" if precision == "auto" else precision)
    run = lambda x, t: model.stylize(x, tile_size=t)
elif method in ("adain", "wct"):
    from stylist.arbitrary import ArbitraryConfig, stylize_arbitrary
    cfg = lambda t: ArbitraryConfig(method=method, device=device, precision=precision, tile_size=t)
    run = lambda x, t: stylize_arbitrary(x, style, cfg(t))
else:
    from stylist.optimize import TransferConfig, stylize
    def run(x, t):
        cfg = TransferConfig(size=max(x.shape[-2:]), iterations=iterations, multiscale=False, device=device,
                             tile_size=t, early_stop_patience=0, precision=precision)
        return stylize(x, style, cfg).image
cuda = device.startswith("cuda")
run(resize_long_side(photo, 64), 0)  # networks loaded, allocator warm
x = resize_long_side(photo, size)
status = Path("/proc/self/status")
def rss(key):
    return int(next(l.split()[1] for l in status.read_text().splitlines() if l.startswith(key))) * 1024
resettable = Path("/proc/self/clear_refs").exists()
if cuda:
    torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats(); before = torch.cuda.memory_allocated()
elif resettable:
    Path("/proc/self/clear_refs").write_text("5"); before = rss("VmRSS:")
else:
    before = 0
start = time.perf_counter()
y = run(x, tile)
if cuda:
    torch.cuda.synchronize()
seconds = time.perf_counter() - start
if cuda:
    peak = torch.cuda.max_memory_allocated() - before
elif resettable:
    peak = rss("VmHWM:") - before
else:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
torch.save(y.float().cpu(), out)
print(json.dumps({"seconds": seconds, "peak_mb": peak / 2**20, "height": y.shape[-2], "width": y.shape[-1]}))
"""


def run_child(method: str, size: int, tile: int, args: argparse.Namespace, out: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    cmd = [sys.executable, "-c", CHILD, method, str(size), str(tile), args.device, str(args.iterations), str(out)]
    cmd.append(args.precision)
    done = subprocess.run([*cmd, str(CONTENT), str(STYLE)], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def grid_of(method: str, hw: tuple[int, int], tile: int):
    """The tiles the method cut the result into (for the seam check)."""
    from stylist.tiling import grid

    multiple = {"apply": 4, "adain": 8, "wct": 16, "transfer": 16}[method]
    h, w = (-(-s // multiple) * multiple for s in hw) if method != "transfer" else hw
    return grid(h, w, tile, 0, multiple)


def compare(method: str, whole_path: Path, tiled_path: Path, tile: int) -> dict:
    import torch

    from stylist.tiling import seam_ratio

    whole, tiled = torch.load(whole_path), torch.load(tiled_path)
    tiles = grid_of(method, (whole.shape[-2], whole.shape[-1]), tile)
    diff = (whole - tiled).abs()
    seams = {"seam_ratio_tiled": seam_ratio(tiled, tiles), "seam_ratio_whole": seam_ratio(whole, tiles)}
    return {
        "max_diff": float(diff.max()),
        "mean_diff": float(diff.mean()),
        # None: the image fitted in one tile (no borders to check)
        **{k: None if math.isnan(v) else v for k, v in seams.items()},
    }


def plot(rows: list[dict], path: Path, device: str) -> None:
    from stylist.plots import png_bytes, pyplot

    plt = pyplot()
    fig, (mem, sec) = plt.subplots(1, 2, figsize=(11, 4.2))
    colours = dict(zip(METHODS, ("tab:blue", "tab:orange", "tab:green", "tab:red")))
    for method in METHODS:
        for mode, style in (("whole", "-o"), ("tiled", "--s")):
            pts = sorted(
                (r["pixels"], r["peak_mb"], r["seconds"])
                for r in rows
                if r["method"] == method
                and r["mode"] == mode
                and "peak_mb" in r
                and r.get("precision", "auto") == "auto"
            )
            if not pts:
                continue
            px = [p[0] / 1e6 for p in pts]
            kw = {"color": colours[method], "label": f"{method} {mode}"}
            mem.plot(px, [p[1] for p in pts], style, **kw)
            sec.plot(px, [p[2] for p in pts], style, **kw)
    from matplotlib.ticker import FuncFormatter, NullFormatter

    for ax, label in ((mem, "peak memory rise, MiB"), (sec, "time, s")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("megapixels")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    mem.legend(fontsize=7)
    fig.suptitle(f"Whole image against tiles ({device})")
    fig.tight_layout()
    path.write_bytes(png_bytes(fig))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda [cpu]")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--sizes", nargs="+", type=int, default=[256, 512, 1024], help="long sides, px")
    parser.add_argument("--tile", type=int, default=256, help="tile side of the tiled runs, px [256]")
    parser.add_argument("--modes", nargs="+", choices=("whole", "tiled"), default=["whole", "tiled"])
    parser.add_argument("--iterations", type=int, default=5, help="transfer: L-BFGS iterations [5]")
    parser.add_argument("--precision", default="auto", help="auto, fp32 or bf16, for every method [auto]")
    parser.add_argument("--out", type=Path, help="JSON path [benchmarks/results/resolution-{device}.json]")
    parser.add_argument("--plot", type=Path, help="PNG path [docs/images/resolution-{device}.png]")
    args = parser.parse_args()
    kind = "cuda" if args.device.startswith("cuda") else "cpu"
    out = args.out or ROOT / f"benchmarks/results/resolution-{kind}.json"
    old = json.loads(out.read_text())["rows"] if out.exists() else []
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        for method in args.methods:
            for size in args.sizes:
                paths = {}
                for mode in args.modes:
                    paths[mode] = Path(tmp) / f"{method}-{size}-{mode}.pt"
                    result = run_child(method, size, 0 if mode == "whole" else args.tile, args, paths[mode])
                    row = {"method": method, "size": size, "mode": mode, "tile": args.tile if mode == "tiled" else 0}
                    row["precision"] = args.precision
                    row.update(result)
                    if "height" in result:
                        row["pixels"] = result["height"] * result["width"]
                    rows.append(row)
                    print(json.dumps(row), flush=True)
                if all(p.exists() for p in paths.values()) and len(paths) == 2:
                    rows[-1].update(compare(method, paths["whole"], paths["tiled"], args.tile))
                    print(json.dumps(rows[-1]), flush=True)

    def key(r: dict) -> tuple:
        return r["method"], r["size"], r["mode"], r.get("precision", "auto")

    keys = {key(r) for r in rows}
    merged = [r for r in old if key(r) not in keys] + rows
    merged.sort(key=lambda r: (METHODS.index(r["method"]), r["size"], r["mode"] != "whole"))
    report = {
        "benchmark": "resolution",
        "date": datetime.date.today().isoformat(),
        "device": args.device,
        "machine": platform.processor() or platform.machine(),
        "threads": os.environ.get("OMP_NUM_THREADS", "default"),
        "rows": merged,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    plot(merged, args.plot or ROOT / f"docs/images/resolution-{kind}.png", args.device)


if __name__ == "__main__":
    main()
