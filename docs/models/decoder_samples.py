"""Sample grids and reconstruction scores for the shipped arbitrary-style decoders' model cards.

    python docs/models/decoder_samples.py [adain] [wct]

Writes docs/models/images/{adain,wct}_samples.jpg (rows: the bundled photographs; columns: two
paintings the AdaIN decoder never saw in training, The Scream and Composition VII, and one it
did, The Starry Night) and {adain,wct}_alpha.jpg (alpha 0, 0.5, 1), and prints each decoder's
reconstruction PSNR on the bundled photographs (as tests/test_arbitrary.py measures it). The
photographs are not in BSDS500, the decoders' training set.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from PIL import Image, ImageDraw

from stylist import arbitrary as arb
from stylist import decoders
from stylist.api import arbitrary
from stylist.image import load_tensor, resize_long_side

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
PHOTOS = sorted((ROOT / "examples" / "content").glob("*.jpg"))
PAINTINGS = [ROOT / "examples" / "style" / f"{n}.jpg" for n in ("the_scream", "composition_vii", "starry_night")]
TILE = 256  # px, long side of each tile


def _tile(im: Image.Image, label: str = "") -> Image.Image:
    im = im.convert("RGB")
    im.thumbnail((TILE, TILE))
    tile = Image.new("RGB", (TILE, TILE), "white")
    tile.paste(im, ((TILE - im.width) // 2, (TILE - im.height) // 2))
    if label:
        draw = ImageDraw.Draw(tile)
        draw.rectangle((0, TILE - 18, TILE, TILE), fill="white")
        draw.text((4, TILE - 16), label, fill="black")
    return tile


def _grid(rows: list[list[Image.Image]], path: Path) -> None:
    gap = 6
    grid = Image.new("RGB", (len(rows[0]) * (TILE + gap) - gap, len(rows) * (TILE + gap) - gap), "white")
    for r, row in enumerate(rows):
        for c, tile in enumerate(row):
            grid.paste(tile, (c * (TILE + gap), r * (TILE + gap)))
    grid.save(path, quality=88)
    print("wrote", path.relative_to(ROOT))


def samples(method: str) -> None:
    # Only AdaIN's decoder saw paintings in training; WCT's saw photographs alone.
    seen = (lambda p: " (seen)" if "starry" in p.stem else " (held out)") if method == "adain" else (lambda p: "")
    header = [_tile(Image.new("RGB", (TILE, TILE), "white"))] + [
        _tile(Image.open(p), p.stem + seen(p)) for p in PAINTINGS
    ]
    rows = [header]
    for photo in PHOTOS:
        rows.append(
            [_tile(Image.open(photo), photo.stem)]
            + [_tile(arbitrary(photo, p, method=method, size=512)) for p in PAINTINGS]
        )
    _grid(rows, HERE / "images" / f"{method}_samples.jpg")
    alphas = (0.0, 0.5, 1.0)
    rows = [
        [_tile(Image.open(photo), photo.stem)]
        + [_tile(arbitrary(photo, PAINTINGS[0], method=method, alpha=a, size=512), f"alpha {a}") for a in alphas]
        for photo in PHOTOS
    ]
    _grid(rows, HERE / "images" / f"{method}_alpha.jpg")


def psnr_table(method: str) -> None:
    """Mean PSNR (dB) of each photo decoded from its own features, at 256 px."""
    decoder, encoder = decoders.load_decoder(method), decoders.Encoder()
    scores: dict[str, list[float]] = {}
    with torch.no_grad():
        for photo_path in PHOTOS:
            photo = resize_long_side(load_tensor(photo_path), 256)
            h, w = photo.shape[-2:]
            feats = encoder(arb.pad_to_multiple(photo, 16))
            for level in [decoders.ADAIN_LEVEL] if method == "adain" else decoder.levels:
                out = (decoder if method == "adain" else decoder[level])(feats[level])[..., :h, :w].clamp(0, 1)
                scores.setdefault(level, []).append(float(10 * torch.log10(1 / (out - photo).pow(2).mean())))
    for level, values in scores.items():
        print(f"{method} {level}: mean {sum(values) / len(values):.2f} dB ({', '.join(f'{v:.2f}' for v in values)})")


if __name__ == "__main__":
    for m in sys.argv[1:] or decoders.METHODS:
        psnr_table(m)
        samples(m)
