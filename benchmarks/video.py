"""Benchmark: flicker of stylised film, frame by frame against temporally consistent, for every method.

On the same clip (a piece of ``video/bigbuckbunny.mp4`` from the shared data folder, or ``--film``),
each method runs twice through :func:`stylist.films.stylize_frames`, once with ``--temporal 0`` (each
frame on its own) and once consistent (``temporal`` 0.7 for the one-pass methods, 1 for optimize):

* ``model``: the built-in feed-forward network ``starry-night``;
* ``adain`` and ``wct`` with ``examples/style/starry_night.jpg``;
* ``optimize`` (Gatys et al. per frame, Ruder et al.'s temporal loss), at a smaller size and on
  fewer frames, since it is two orders of magnitude slower.

Measured for each run:

* **warping error** (Lai et al., ECCV 2018): the mean over frame pairs of the squared RGB difference
  between stylised frame t and stylised frame t-1 warped onto it by the input's optical flow, on the
  pixels that the forward-backward check trusts. The flow here is Farneback's, not the DIS flow the
  consistency itself uses, so that a method is not judged by the flow it was made consistent with.
* **style closeness** of the quality benchmark (``stylist.quality.style_distance``, Gram statistic:
  the result's distance to the painting as a fraction of the frame's; lower is closer), the median
  over every fourth frame. For the feed-forward model the painting is the one it was trained on.
* **frames per second**, stylising and flow together (decoding excluded: the frames are decoded once).

The goal (issue 17): consistent output at most half the warping error of frame by frame, with a
style closeness within 10 % of it.

Run:   OMP_NUM_THREADS=2 python benchmarks/video.py                  (about 15 minutes on 2 cores)
Smoke: python benchmarks/video.py --seconds 0.5 --size 64 --opt-size 48 --opt-frames 3 --out /tmp/v.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from stylist import flow, quality
from stylist.films import VideoConfig, read_frames, stylize_frames
from stylist.image import load_tensor, resize_long_side

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA_CANDIDATES = (ROOT.parent.parent / "shared" / "data", ROOT.parent / "shared" / "data", Path("/work/shared/data"))
PAINTING = ROOT / "src" / "stylist" / "examples" / "style" / "starry_night.jpg"


def data_folder() -> Path:
    if os.environ.get("STYLIST_DATA"):
        return Path(os.environ["STYLIST_DATA"])
    return next((p for p in DATA_CANDIDATES if p.exists()), DATA_CANDIDATES[-1])


def style_closeness(outputs: list[torch.Tensor], inputs: list[torch.Tensor], painting: torch.Tensor, net) -> float:
    values = [float(quality.style_distance(outputs[i], inputs[i], painting, net)[0]) for i in range(0, len(outputs), 4)]
    return statistics.median(values)


def run_method(name: str, frames: list[torch.Tensor], temporal: float, args) -> tuple[list[torch.Tensor], float]:
    options: dict = {"temporal": temporal, "precision": "fp32"}
    kwargs: dict = {"style": str(PAINTING)}
    if name == "model":
        kwargs = {"model": "starry-night"}
    elif name == "optimize":
        options.update(method="optimize", iterations=args.opt_iterations)
    else:
        options.update(method=name)
    start = time.perf_counter()
    outputs = list(stylize_frames(frames, VideoConfig(**options), **kwargs))
    return outputs, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--film", default=str(data_folder() / "video" / "bigbuckbunny.mp4"))
    parser.add_argument("--start", type=float, default=1.0, help="seconds into the film")
    parser.add_argument("--seconds", type=float, default=2.0, help="length of the clip, s")
    parser.add_argument("--size", type=int, default=256, help="long side of the frames, px")
    parser.add_argument("--methods", nargs="+", default=["model", "adain", "wct", "optimize"])
    parser.add_argument("--opt-size", type=int, default=128, help="optimize: long side, px")
    parser.add_argument("--opt-frames", type=int, default=12, help="optimize: frames (the first of the clip)")
    parser.add_argument("--opt-iterations", type=int, default=100, help="optimize: iterations of the first frame")
    parser.add_argument("--temporal", type=float, default=VideoConfig().temporal, help="one-pass methods' consistency")
    parser.add_argument("--out", default=str(HERE / "results" / "video-cpu.json"))
    args = parser.parse_args()

    clip = [resize_long_side(f, args.size) for f in read_frames(args.film, args.start, args.seconds)]
    painting = load_tensor(PAINTING)
    net = quality.default_network()
    rows = []
    for name in args.methods:
        frames = clip if name != "optimize" else [resize_long_side(f, args.opt_size) for f in clip[: args.opt_frames]]
        consistent = 1.0 if name == "optimize" else args.temporal
        row: dict = {"method": name, "frames": len(frames), "size": list(frames[0].shape[-2:])}
        for label, temporal in (("frame_by_frame", 0.0), ("consistent", consistent)):
            outputs, seconds = run_method(name, frames, temporal, args)
            row[label] = {
                "temporal": temporal,
                "warping_error": flow.film_warping_error(outputs, frames),
                "style": style_closeness(outputs, frames, painting, net),
                "fps": len(frames) / seconds,
            }
            print(name, label, row[label], flush=True)
        fbf, con = row["frame_by_frame"], row["consistent"]
        row["warping_error_ratio"] = con["warping_error"] / fbf["warping_error"]
        row["style_change"] = con["style"] / fbf["style"] - 1
        rows.append(row)
    report = {
        "date": datetime.date.today().isoformat(),
        "command": "python benchmarks/video.py "
        + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k not in ("out", "methods", "film")
        ),
        "film": args.film,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "load_average": os.getloadavg(),
        "rows": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(
        "| method | frames | size | warping error, frame by frame | consistent | ratio | style, frame by frame | "
        "consistent | change | fps frame by frame | fps consistent |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        f, c = r["frame_by_frame"], r["consistent"]
        print(
            f"| {r['method']} | {r['frames']} | {r['size'][1]}x{r['size'][0]} | {f['warping_error']:.5f} | "
            f"{c['warping_error']:.5f} | **{r['warping_error_ratio']:.2f}** | {f['style']:.3f} | {c['style']:.3f} | "
            f"{100 * r['style_change']:+.1f} % | {f['fps']:.2f} | {c['fps']:.2f} |"
        )


if __name__ == "__main__":
    main()
