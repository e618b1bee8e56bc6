"""Side by side: the same pairs under several quality-benchmark runs (photo | painting | one result per run).

Structure ranks *settings on the same pair* the way the eye does (docs/quality.md), so comparing runs
pair by pair is how a default is chosen. Each run is an ``--out`` folder of ``benchmarks/quality.py``
(its ``pairs.csv`` and ``results/``); rows are matched by photo and painting, so runs made with
``--pairs-file`` on a subset line up with full runs.

    python benchmarks/quality_compare.py OUT1 OUT2 ... --names before after -o compare.jpg
    python benchmarks/quality_compare.py OUT1 OUT2 --content-only --max-side 160 -o docs/images/quality/x.jpg

``--content-only`` keeps the pairs whose photo is in the data folder's ``content/`` (Kodak and
scikit-image photos with clear terms): the only ones whose sheets may be committed (DESIGN.md keeps
``photos/`` to training and evaluation). ``--ids`` picks pairs by the first run's ids.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from PIL import Image, ImageDraw


def read_run(folder: Path) -> dict[tuple[str, str], dict]:
    with open(folder / "pairs.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r["image"] = folder / "results" / f"{int(r['id']):03d}.jpg"
    return {(Path(r["photo"]).name, Path(r["painting"]).name): r for r in rows}


def thumb(path: Path, side: int) -> Image.Image:
    im = Image.open(path).convert("RGB")
    im.thumbnail((side, side))
    return im


def sheet(rows: list[list[dict]], names: list[str], side: int) -> Image.Image:
    label_h, pad = 28, 4
    cols = 2 + len(names)
    out = Image.new("RGB", (cols * (side + pad) + pad, len(rows) * (side + label_h + pad) + pad), "white")
    draw = ImageDraw.Draw(out)
    for j, runs in enumerate(rows):
        y = pad + j * (side + label_h + pad)
        first = runs[0]
        draw.text((pad, y), f"{Path(first['photo']).stem[:30]} | {Path(first['painting']).stem[:34]}", fill="black")
        for k, (name, r) in enumerate(zip(names, runs)):
            x = pad + (2 + k) * (side + pad)
            draw.text((x, y + 13), f"{name}: structure {float(r['structure']):.2f}", fill="black")
        images = [Path(first["photo"]), Path(first["painting"])] + [r["image"] for r in runs]
        for k, src in enumerate(images):
            out.paste(thumb(src, side), (pad + k * (side + pad), y + label_h))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="output folders of benchmarks/quality.py")
    parser.add_argument("--names", nargs="+", help="a label per run (default: the folder names)")
    parser.add_argument("--ids", nargs="+", help="pair ids of the first run to show (default: all shared)")
    parser.add_argument("--content-only", action="store_true", help="only pairs whose photo is in content/")
    parser.add_argument("--max-side", type=int, default=200, help="thumbnail size, px (default 200)")
    parser.add_argument("-o", "--out", type=Path, required=True, help="the sheet (.jpg or .png)")
    args = parser.parse_args(argv)
    names = args.names or [p.name for p in args.runs]
    if len(names) != len(args.runs):
        parser.error(f"--names: {len(names)} given for {len(args.runs)} runs")
    runs = [read_run(p) for p in args.runs]
    keys = [k for k in runs[0] if all(k in r for r in runs[1:])]
    if args.ids:
        keys = [k for k in keys if runs[0][k]["id"] in args.ids]
    if args.content_only:
        keys = [k for k in keys if Path(runs[0][k]["photo"]).parent.name == "content"]
    if not keys:
        parser.error("no pair is in every run (and matches the filters)")
    rows = [[r[k] for r in runs] for k in keys]
    sheet(rows, names, args.max_side).save(args.out, quality=85)
    print(f"{args.out}: {len(rows)} pairs x {len(runs)} runs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
