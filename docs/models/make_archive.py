"""Pack the training data of docs/models/retrain_gpu.sh into ONE tar file that a GPU machine can carry.

    python docs/models/make_archive.py [--data ../shared/data] [--out .data/stylist-train-data.tar]
    python docs/models/make_archive.py --smoke --out /tmp/smoke.tar      # a tiny one, for a CPU test

The device tool carries at most 64 MiB of untracked files, so the images are made smaller:
short side ``--short`` px (never enlarged; LANCZOS) and re-encoded as WebP (about half the bytes of
a JPEG of the same quality). The archive holds, under ``stylist-data/``:

- ``photos/``: the shared ``photos/`` (2910) and ``train/``: the 500 BSDS500 photos, two folders;
- ``paintings/`` and ``paintings.csv`` (file, artist, title, year): the shared paintings, **without**
  those of ``benchmarks/heldout_paintings.csv`` (kept out of training, for the benchmark);
- ``styles/``: the paintings of the built-in styles, bytes unchanged (the four of ``examples/style``,
  Monet's *Water Lilies* (1919) from ``style/`` and Kandinsky's *Composition VIII* (1923) from
  ``paintings/``);
- ``MANIFEST.txt``: counts, settings and the SHA-256 of every source CSV.

The tar is uncompressed (WebP is compressed already) and reproducible (sorted, mtime 0). The
script refuses to write an archive larger than ``--limit-mb``.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import os
import sys
import tarfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from PIL import Image, ImageOps

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
HELDOUT = ROOT / "benchmarks" / "heldout_paintings.csv"
# name in the archive -> where the painting comes from (relative: the data folder; examples/: the repo)
STYLES = {
    "starry_night.jpg": ROOT / "examples" / "style" / "starry_night.jpg",
    "great_wave.jpg": ROOT / "examples" / "style" / "great_wave.jpg",
    "the_scream.jpg": ROOT / "examples" / "style" / "the_scream.jpg",
    "composition_vii.jpg": ROOT / "examples" / "style" / "composition_vii.jpg",
    "water_lilies.jpg": Path("style/water_lilies.jpg"),
    "composition_viii.jpg": Path("paintings/wassily-kandinsky__kompozitsiia-viii.jpg"),
}


def default_data() -> Path:
    """$STYLIST_DATA, or shared/data beside or inside the checkout, or /work/shared/data (as benchmarks/quality.py)."""
    if os.environ.get("STYLIST_DATA"):
        return Path(os.environ["STYLIST_DATA"])
    candidates = (ROOT.parent / "shared" / "data", ROOT / "shared" / "data", Path("/work/shared/data"))
    return next((d for d in candidates if (d / "paintings.csv").is_file()), candidates[0])


def encode(job: tuple[Path, int, int]) -> bytes:
    """The image at ``path`` as WebP bytes, short side at most ``short`` px."""
    path, short, quality = job
    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im).convert("RGB")
    ratio = short / min(im.size)
    if ratio < 1:
        im = im.resize((max(1, round(im.width * ratio)), max(1, round(im.height * ratio))), Image.LANCZOS)
    out = io.BytesIO()
    im.save(out, "WEBP", quality=quality, method=4)
    return out.getvalue()


def heldout_stems() -> set[str]:
    with open(HELDOUT, newline="", encoding="utf-8") as f:
        return {Path(row["file"]).stem for row in csv.DictReader(f)}


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    tar.addfile(info, io.BytesIO(data))


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=default_data(), help="the shared data folder")
    p.add_argument("--out", type=Path, default=ROOT / ".data" / "stylist-train-data.tar")
    p.add_argument("--short", type=int, default=256, help="short side of every photo and painting, px (default 256)")
    p.add_argument("--photo-quality", type=int, default=70, help="WebP quality of the photos (default 70)")
    p.add_argument("--painting-quality", type=int, default=80, help="WebP quality of the paintings (default 80)")
    p.add_argument("--limit-mb", type=float, default=60.0, help="refuse an archive larger than this (default 60)")
    p.add_argument("--smoke", action="store_true", help="a tiny archive (24+8 photos, 40 paintings, 96 px)")
    p.add_argument("--workers", type=int, default=2, help="processes encoding images (default 2)")
    args = p.parse_args(argv)
    short = 96 if args.smoke else args.short
    held = heldout_stems()
    with open(args.data / "paintings.csv", newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if Path(r["file"]).stem not in held]
    photos = {
        "photos": sorted((args.data / "photos").glob("*.jpg")),
        "train": sorted((args.data / "train").glob("*.jpg")),
    }
    if args.smoke:  # every few files, so that the smoke run still sees several artists
        photos = {k: v[:: max(1, len(v) // (24 if k == "photos" else 8))] for k, v in photos.items()}
        rows = rows[:: max(1, len(rows) // 40)]
    jobs = [(f"{k}/{f.stem}.webp", (f, short, args.photo_quality)) for k, files in photos.items() for f in files]
    jobs += [
        (f"paintings/{Path(r['file']).stem}.webp", (args.data / r["file"], short, args.painting_quality)) for r in rows
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".part")
    with ProcessPoolExecutor(args.workers) as pool, tarfile.open(tmp, "w") as tar:
        for (name, _), data in zip(jobs, pool.map(encode, [j for _, j in jobs], chunksize=16)):
            _add(tar, f"stylist-data/{name}", data)
        table = io.StringIO()
        writer = csv.writer(table, lineterminator="\n")
        writer.writerow(["file", "artist", "title", "year"])
        for r in rows:
            writer.writerow([f"paintings/{Path(r['file']).stem}.webp", r["artist"], r["title"], r["year"]])
        _add(tar, "stylist-data/paintings.csv", table.getvalue().encode())
        for name, source in STYLES.items():
            _add(
                tar,
                f"stylist-data/styles/{name}",
                (source if source.is_absolute() else args.data / source).read_bytes(),
            )
        manifest = [
            f"photos: {len(photos['photos'])} of photos/, train: {len(photos['train'])} of train/ ({args.data})",
            f"paintings: {len(rows)} (held out: {len(held)}, benchmarks/heldout_paintings.csv sha256 {_sha(HELDOUT)})",
            f"short side {short} px, WebP quality photos {args.photo_quality}, paintings {args.painting_quality}",
            f"paintings.csv sha256 {_sha(args.data / 'paintings.csv')}",
            f"styles: {', '.join(STYLES)}",
        ]
        _add(tar, "stylist-data/MANIFEST.txt", ("\n".join(manifest) + "\n").encode())
    size = tmp.stat().st_size / 1e6
    if size > args.limit_mb:
        tmp.unlink()
        print(
            f"the archive would be {size:.1f} MB, over --limit-mb {args.limit_mb}; lower the qualities", file=sys.stderr
        )
        return 2
    tmp.replace(args.out)
    print(f"wrote {args.out} ({size:.1f} MB): " + "; ".join(manifest[:2]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
