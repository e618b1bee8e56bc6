"""Judge freshly trained decoders against the shipped ones, quickly, where they were trained.

    python docs/models/retrain_report.py RESULTS/decoders [--size 256] > summary.md

For every ``*.safetensors`` decoder in the folder and the shipped ones: the reconstruction PSNR on
the bundled photographs (examples/content, in none of the training sets), decoding each photo's own
features (AdaIN: alpha 0, as tests/test_arbitrary.py measures it; WCT: each level alone), as a
Markdown table; and for each AdaIN decoder a grid (rows: the photos; columns: alpha 0, then the
result with The Scream, Composition VII and Water Lilies) beside it, ``NAME_samples.jpg``. The
quality benchmark (benchmarks/quality.py) is the real judge; this is the first look.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import torch
from PIL import Image

from stylist import decoders
from stylist.api import arbitrary
from stylist.arbitrary import ArbitraryConfig
from stylist.decoders import ADAIN_LEVEL, Encoder, load_decoder
from stylist.devices import resolve_device
from stylist.image import load_tensor, resize_long_side, to_pil

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
PHOTOS = sorted((ROOT / "examples" / "content").glob("*.jpg"))
STYLES = [ROOT / "examples" / "style" / "the_scream.jpg", ROOT / "examples" / "style" / "composition_vii.jpg"]


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1.0 / (a - b).pow(2).mean()))


@torch.no_grad()
def reconstructions(method: str, path: Path, size: int, device: torch.device) -> dict[str, list[float]]:
    """{level ("adain" for AdaIN): PSNR of each bundled photo decoded from its own features}."""
    decoder = load_decoder(method, str(path)).to(device).float()
    levels = [ADAIN_LEVEL] if method == "adain" else list(decoder.levels)
    encoder = Encoder(max(levels, key=decoders.LEVELS.index)).to(device)
    scores: dict[str, list[float]] = {}
    for photo_path in PHOTOS:
        photo = resize_long_side(load_tensor(photo_path), size).to(device)
        h, w = photo.shape[-2:]
        padded = torch.nn.functional.pad(photo, (0, -w % 16, 0, -h % 16), mode="reflect")
        feats = encoder(padded)
        for level in levels:
            net = decoder if method == "adain" else decoder[level]
            out = net(feats[level])[..., :h, :w].clamp(0, 1)
            scores.setdefault("adain" if method == "adain" else level, []).append(psnr(out, photo))
    return scores


def grid(path: Path, styles: list[Path], size: int, device: str) -> Path:
    """Rows: the bundled photos; columns: alpha 0, then each painting at alpha 1."""
    tiles = []
    for photo in PHOTOS:
        row = [arbitrary(photo, styles[0], ArbitraryConfig(decoder=str(path), alpha=0.0, size=size, device=device))]
        row += [arbitrary(photo, s, ArbitraryConfig(decoder=str(path), size=size, device=device)) for s in styles]
        tiles.append([to_pil(t) if isinstance(t, torch.Tensor) else t for t in row])
    width = max(sum(t.width for t in r) for r in tiles)
    sheet = Image.new("RGB", (width, sum(max(t.height for t in r) for r in tiles)), "white")
    y = 0
    for row in tiles:
        x = 0
        for t in row:
            sheet.paste(t, (x, y))
            x += t.width
        y += max(t.height for t in row)
    out = path.with_name(path.stem + "_samples.jpg")
    sheet.save(out, quality=85)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folder", type=Path, help="the folder of new decoder files")
    p.add_argument("--size", type=int, default=256, help="long side of the photos, px (default 256)")
    p.add_argument("--styles", type=Path, nargs="*", help="extra paintings for the sample grids")
    p.add_argument("--device", default="auto")
    args = p.parse_args()
    device = resolve_device(args.device)
    files = [("shipped", m, decoders.shipped_path(m)) for m in ("adain", "wct")]
    for path in sorted(args.folder.glob("*.safetensors")):
        method = "wct" if "wct" in path.stem else "adain"
        files.append((path.stem, method, path))
    print(f"Reconstruction PSNR (dB) of the {len(PHOTOS)} bundled photos at {args.size} px, median (each photo)\n")
    print("| decoder | method | level | median | photos |\n|---|---|---|---|---|")
    for name, method, path in files:
        if not path.is_file():
            continue
        for level, values in reconstructions(method, path, args.size, device).items():
            each = ", ".join(f"{v:.1f}" for v in values)
            print(f"| {name} | {method} | {level} | {statistics.median(values):.2f} | {each} |")
    styles = STYLES + list(args.styles or [])
    for name, method, path in files:
        if method == "adain" and name != "shipped" and path.is_file():
            print(f"\nwrote {grid(path, styles, args.size, str(device))}")


if __name__ == "__main__":
    main()
