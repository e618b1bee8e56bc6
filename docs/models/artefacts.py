"""Edge bands and checkerboard in the results of quality-benchmark runs (issue 16's artefact checks).

    python docs/models/artefacts.py /tmp/stylist-quality/arbitrary [more runs ...]

For every pair of a run (``pairs.csv`` and ``results/ID.jpg`` of benchmarks/quality.py), with the
photo resized to the result's size:

- **edge band**: on each side of the image, the mean RGB of the outer 4 px strip minus that of the
  4 px strip just inside it, for the result, less the same difference for the photo (so that a
  photo's own vignette or sky does not count); the largest of the four sides, absolute, in [0, 1]
  units. A frame or band the decoder draws along an edge raises it; 0.03 is about where it shows.
- **checkerboard**: the mean absolute response of the 2x2 filter [[1, -1], [-1, 1]] / 4 (a
  checkerboard of 2 px period, what nearest-neighbour upsampling followed by convolution leaves) on
  the result's luminance, over the same for the photo. Painted texture raises it too: compare runs
  on the same pairs rather than reading it alone.
- **grid**: the root mean square of the pattern the result repeats on an 8 px grid (relu4_1's
  upsampling grid; ``stylist.losses.grid_loss``), in 8-bit levels (x 255); the photos' own is
  printed for scale. Stripes or a weave drawn by the decoder raise it; the results' JPEG blocks
  (also 8 px) add a little to every run alike.

Prints the median and the worst (largest) value of each per run.
"""

from __future__ import annotations

import argparse
import csv
import statistics
from pathlib import Path

import torch
import torch.nn.functional as F

from stylist.image import load_tensor, resize
from stylist.losses import grid_loss

STRIP = 4  # px


def edge_band(result: torch.Tensor, photo: torch.Tensor) -> float:
    """The largest, over the four sides, of |(outer - inner strip means) of result - same of photo|."""

    def steps(x: torch.Tensor) -> torch.Tensor:
        s = STRIP
        sides = [
            (x[..., :s, :], x[..., s : 2 * s, :]),
            (x[..., -s:, :], x[..., -2 * s : -s, :]),
            (x[..., :, :s], x[..., :, s : 2 * s]),
            (x[..., :, -s:], x[..., :, -2 * s : -s]),
        ]
        return torch.stack([(a.mean((-2, -1)) - b.mean((-2, -1))).squeeze(0) for a, b in sides])  # (4, 3)

    return float((steps(result) - steps(photo)).abs().mean(1).max())


def checker(x: torch.Tensor) -> float:
    grey = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).unsqueeze(1)
    kernel = torch.tensor([[[[1.0, -1.0], [-1.0, 1.0]]]]) / 4
    return float(F.conv2d(grey, kernel).abs().mean())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", type=Path, help="output folders of benchmarks/quality.py")
    args = p.parse_args()
    print("| run | pairs | edge band: median | worst | checkerboard ratio: median | worst | grid: median | worst |")
    print("|---|---|---|---|---|---|---|---|")
    photo_grids: list[float] = []
    for run in args.runs:
        bands, checks, grids = [], [], []
        with open(run / "pairs.csv", newline="") as f:
            for row in csv.DictReader(f):
                result = load_tensor(run / "results" / f"{int(row['id']):03d}.jpg")
                photo = resize(load_tensor(row["photo"]), (result.shape[-2], result.shape[-1]))
                bands.append(edge_band(result, photo))
                checks.append(checker(result) / max(checker(photo), 1e-6))
                grids.append(255 * grid_loss(result, 8).sqrt().item())
                photo_grids.append(255 * grid_loss(photo, 8).sqrt().item())
        print(
            f"| {run.name} | {len(bands)} | {statistics.median(bands):.3f} | {max(bands):.3f} | "
            f"{statistics.median(checks):.2f} | {max(checks):.2f} | {statistics.median(grids):.2f} | {max(grids):.2f} |"
        )
    print(f"\nthe photos' own grid: median {statistics.median(photo_grids):.2f}, largest {max(photo_grids):.2f}")


if __name__ == "__main__":
    main()
