"""Training data, shared by ``stylist train`` and ``stylist train-decoder``: image files gathered from
several folders, how often each is drawn, and resumable batches of random crops.

- :func:`gather_images` lists the readable images under one or more folders (recursively, sorted,
  each file once); a file whose header cannot be read is skipped and counted, never fatal.
- :func:`sampling_weights` reads a CSV that says how often each file is drawn: per artist (column
  ``artist``: every artist equally often, whatever the number of their paintings; a third of the
  shared paintings are Monet's) or per file (column ``weight``: in proportion to it).
- :class:`CropDataset` gives random square crops; item ``i`` of epoch ``e`` depends on (seed, e, i)
  alone, so a resumed run, or one split between processes, sees the same crops and files. With
  weights, each epoch's files are drawn with replacement from them (seeded by (seed, epoch)).
- :class:`Batches` gives endless batches in a fixed order, from any step on.

Every error about the user's folders or CSV files is a :class:`stylist.errors.ConfigError` of one
line naming the file and the fix. Nothing here prints or writes files.
"""

from __future__ import annotations

import csv
import math
import os
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from .errors import ConfigError, StylistWarning
from .image import load_tensor

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp")


def rank_and_world() -> tuple[int, int]:
    """(this process's rank, the number of processes); (0, 1) outside torchrun."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


# --- image files -------------------------------------------------------------------------------------


def find_images(root: str | os.PathLike, what: str = "--data") -> tuple[list[Path], int]:
    """(readable image files under ``root``, recursively and sorted; count of files skipped).

    A file with an image suffix whose header Pillow cannot read is skipped and counted.
    ConfigError (one line) when ``root`` is missing, is a file, or holds no image at all.
    """
    root = Path(root)
    if not root.exists():
        raise ConfigError(f"{root}: {what} folder not found")
    if root.is_file():
        raise ConfigError(f"{root}: {what} must be a folder of images, not a file")
    found, skipped = [], 0
    for path in sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()):
        try:
            with Image.open(path) as im:  # reads the header only
                _ = im.size
            found.append(path)
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
            skipped += 1
    if not found:
        raise ConfigError(f"{root}: no readable images (.jpg .png .webp .tif .bmp) in this folder or below it")
    return found, skipped


def gather_images(
    roots: str | os.PathLike | Sequence[str | os.PathLike], what: str = "--data"
) -> tuple[list[Path], int]:
    """(readable image files under every folder of ``roots``, folder by folder; count skipped).

    A file reached through two of the folders (one inside the other, or named twice) is listed once.
    ConfigError (one line) for no folder, or for any folder :func:`find_images` refuses.
    """
    roots = [roots] if isinstance(roots, (str, os.PathLike)) else list(roots)
    if not roots:
        raise ConfigError(f"give {what} FOLDER, a folder of training images (several may follow {what})")
    files, skipped, seen = [], 0, set()
    for root in roots:
        found, more = find_images(root, what)
        skipped += more
        for path in found:
            key = path.resolve()
            if key not in seen:
                seen.add(key)
                files.append(path)
    return files, skipped


# --- CSV tables: which files to leave out, how often to draw each ------------------------------------------


def read_table(path: str | os.PathLike, what: str, needs: Sequence[str] = ("file",)) -> list[dict[str, str]]:
    """The rows of a CSV file (header line first, UTF-8 with or without a BOM).

    ConfigError (one line) when the file is missing or unreadable, has no rows, or lacks a column of ``needs``.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: {what} CSV file not found")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            columns = reader.fieldnames or []
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise ConfigError(
            f"{path}: cannot read this {what} CSV ({err.__class__.__name__}); save it as UTF-8 CSV"
        ) from None
    missing = [c for c in needs if c not in columns]
    if missing:
        raise ConfigError(
            f"{path}: the {what} CSV has no column {', '.join(missing)} (its header: {', '.join(columns) or 'empty'}); "
            f"its first line must name the columns, e.g. {','.join(needs)}"
        )
    if not rows:
        raise ConfigError(f"{path}: the {what} CSV has a header but no rows")
    return rows


def excluded_names(entries: Iterable[str]) -> set[str]:
    """The names (file names without their suffix) of the images to leave out of training.

    Each entry is a file name, or a ``.csv`` file whose ``file`` column lists them (paths count by
    their last part). The suffix is dropped because a painting re-encoded in another format (the
    GPU archive's WebP copies of JPEG files) is still the same painting: compare with ``path.stem``.
    """
    names: set[str] = set()
    for entry in entries:
        if entry.lower().endswith(".csv"):
            names.update(Path(row["file"]).stem for row in read_table(entry, "--exclude-styles") if row["file"])
        else:
            names.add(Path(entry).stem)
    return names


SAMPLE_COLUMNS = ("weight", "artist")  # the CSV columns sampling_weights understands, in order of precedence


def sampling_weights(files: Sequence[Path], table: str | os.PathLike, what: str = "--style-csv") -> list[float]:
    """How often to draw each of ``files``, from the CSV ``table`` (one weight per file, not normalised).

    The CSV has a ``file`` column (a path relative to the CSV's folder, as in the shared
    ``paintings.csv``, or a bare file name) and either

    - ``weight``: each file is drawn in proportion to its weight (a number >= 0); a file the CSV does
      not list weighs 1; or
    - ``artist``: every artist is drawn equally often, each of their files alike (weight 1/n for an
      artist with n files); a file the CSV does not list, or with a blank artist, is an artist of its own.

    ``weight`` wins when both columns are there. ConfigError (one line) for a missing or malformed
    CSV, a weight that is not a number >= 0, a CSV that names none of ``files``, or all weights 0.
    """
    rows = read_table(table, what)
    columns = set(rows[0])
    mode = next((c for c in SAMPLE_COLUMNS if c in columns), None)
    if mode is None:
        raise ConfigError(
            f"{table}: the CSV needs a column 'artist' (each artist drawn equally often) or 'weight' "
            f"(each file in proportion); its header: {', '.join(rows[0])}"
        )
    by_path, by_name = _rows_by_file(rows, Path(table))
    values: list[str | None] = []
    for path in files:
        row = by_path.get(path.resolve()) or by_name.get(path.name)
        values.append(None if row is None else row[mode].strip())
    if all(v is None for v in values):
        raise ConfigError(
            f"{table}: names none of the {len(files)} images found; its 'file' column must give each image's "
            "path relative to the CSV's folder, or its file name"
        )
    _warn_unmatched(rows, files, by_path, table)
    weights = _file_weights(values, table) if mode == "weight" else _artist_weights(values)
    if not any(w > 0 for w in weights):
        raise ConfigError(f"{table}: every image has weight 0; give some a positive weight")
    return weights


def _warn_unmatched(rows: list[dict[str, str]], files: Sequence[Path], by_path: dict[Path, dict], table) -> None:
    """A warning (one line) for CSV rows naming no image found: a typo, or a file left out on purpose."""
    paths = {p.resolve() for p in files}
    names = {p.name for p in files}
    unmatched = [
        r["file"]
        for r in rows
        if r["file"] and (Path(table).parent / r["file"]).resolve() not in paths and Path(r["file"]).name not in names
    ]
    if unmatched:
        n = len(unmatched)
        rows_say = "1 row names" if n == 1 else f"{n} rows name"
        warnings.warn(
            f"{table}: {rows_say} no image in the folders (first: {unmatched[0]}); "
            f"{'it is' if n == 1 else 'they are'} not drawn",
            StylistWarning,
        )


def _rows_by_file(rows: list[dict[str, str]], table: Path) -> tuple[dict[Path, dict], dict[str, dict]]:
    """Rows keyed by the file's resolved path (relative to the CSV's folder) and by a file name listed once."""
    by_path = {(table.parent / r["file"]).resolve(): r for r in rows if r["file"]}
    names = Counter(Path(r["file"]).name for r in rows if r["file"])
    by_name = {Path(r["file"]).name: r for r in rows if r["file"] and names[Path(r["file"]).name] == 1}
    return by_path, by_name


def _file_weights(values: list[str | None], table: str | os.PathLike) -> list[float]:
    weights = []
    for value in values:
        try:
            weight = 1.0 if value is None else float(value)
        except ValueError:
            weight = float("nan")
        if not (weight >= 0 and math.isfinite(weight)):
            raise ConfigError(f"{table}: weight '{value}' is not a number >= 0; fix that row")
        weights.append(weight)
    return weights


def _artist_weights(values: list[str | None]) -> list[float]:
    # An unlisted file (None) or a blank artist is a group of its own: its index keeps it apart.
    groups: list[object] = [v if v else ("file", i) for i, v in enumerate(values)]
    count = Counter(groups)
    return [1.0 / count[g] for g in groups]


# --- crops -----------------------------------------------------------------------------------------------------


def random_crop(
    image: torch.Tensor, size: int, generator: torch.Generator, zoom: tuple[float, float] = (1.0, 1.0)
) -> torch.Tensor:
    """A ``size`` x ``size`` crop of (1, 3, H, W), flipped left-right half the time.

    The image is first resized so its short side is ``size`` times a zoom factor drawn from the
    range ``zoom`` (1, 1 = the short side fills the crop), so every crop has the same field of
    view whatever the photo's resolution.
    """
    lo, hi = zoom
    factor = lo + (hi - lo) * torch.rand((), generator=generator).item()
    h, w = image.shape[-2:]
    ratio = size * factor / min(h, w)
    nh, nw = max(size, round(h * ratio)), max(size, round(w * ratio))
    image = F.interpolate(image, size=(nh, nw), mode="bilinear", align_corners=False, antialias=ratio < 1).clamp(0, 1)
    top = int(torch.randint(0, nh - size + 1, (), generator=generator))
    left = int(torch.randint(0, nw - size + 1, (), generator=generator))
    crop = image[..., top : top + size, left : left + size]
    if torch.rand((), generator=generator).item() < 0.5:
        crop = crop.flip(-1)
    return crop


class CropDataset(Dataset):
    """Random crops of image files; item ``i`` is (crop (3, S, S) in [0, 1], files skipped to get it).

    The crop of item ``i`` in epoch ``e`` depends only on (seed, e, i), so resuming a run or
    splitting it between processes gives the same crops. A file that fails to decode is replaced
    by the next one in the list.

    ``repeat`` makes an epoch that many times the number of files (each item its own crop), so
    that a folder of a few images still makes long epochs. Without ``weights`` item ``i`` is file
    ``i mod n``; with them (one number >= 0 per file, see :func:`sampling_weights`) the files of
    an epoch's items are drawn with replacement in proportion to the weights, anew each epoch
    (:meth:`set_epoch`). ``preload`` decodes every file once, here, and keeps it in memory (shrunk
    to the largest size a crop can need), so that loader processes forked later share it and no
    file is decoded twice; a file that fails to decode is then skipped the same way.
    """

    def __init__(
        self,
        files: Sequence[Path],
        size: int,
        seed: int = 0,
        zoom: tuple[float, float] = (1.0, 1.0),
        repeat: int = 1,
        preload: bool = False,
        weights: Sequence[float] | None = None,
    ) -> None:
        self.files, self.size, self.seed, self.zoom = list(files), size, seed, zoom
        self.repeat = max(1, int(repeat))
        if weights is not None and len(weights) != len(self.files):
            raise ValueError(f"{len(weights)} weights for {len(self.files)} files")
        self.weights = None if weights is None else torch.tensor(list(weights), dtype=torch.float64)
        self.drawn: torch.Tensor | None = None  # this epoch's file for each item (weighted sampling)
        self.set_epoch(0)
        self.images: list[torch.Tensor | None] | None = [self._preload(p) for p in self.files] if preload else None

    def __len__(self) -> int:
        return len(self.files) * self.repeat

    def set_epoch(self, epoch: int) -> None:
        """Make ``epoch`` the one whose crops (and, with weights, files) the items give."""
        self.epoch = epoch
        if self.weights is not None:
            generator = torch.Generator().manual_seed(_mix(self.seed, epoch, -1))
            self.drawn = torch.multinomial(self.weights, len(self), replacement=True, generator=generator)

    def file_index(self, index: int) -> int:
        """The file item ``index`` of the current epoch crops (before any replacement of a damaged file)."""
        return int(self.drawn[index]) if self.drawn is not None else index % len(self.files)

    def _preload(self, path: Path) -> torch.Tensor | None:
        try:
            image = load_tensor(path, "training")
        except Exception:  # counted when an item asks for it, as without preloading
            return None
        h, w = image.shape[-2:]
        most = math.ceil(self.size * max(self.zoom))  # the largest short side random_crop can ask for
        if min(h, w) > most:
            ratio = most / min(h, w)
            image = F.interpolate(
                image,
                size=(max(most, round(h * ratio)), max(most, round(w * ratio))),
                mode="bilinear",
                align_corners=False,
                antialias=True,
            )
        return image.clamp(0, 1).contiguous()

    def _load(self, index: int) -> torch.Tensor | None:
        if self.images is not None:
            return self.images[index]
        try:
            return load_tensor(self.files[index], "training")
        except Exception:  # any decoding failure: skip this file, never stop training
            return None

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        generator = torch.Generator().manual_seed(_mix(self.seed, self.epoch, index))
        first = self.file_index(index)
        for tries in range(len(self.files)):
            image = self._load((first + tries) % len(self.files))
            if image is None:
                continue
            return random_crop(image, self.size, generator, self.zoom)[0], tries
        raise ConfigError("no image in the training folders could be decoded")


def _mix(seed: int, epoch: int, index: int) -> int:
    # hash() of a tuple of ints is the same in every process and every run (no PYTHONHASHSEED for ints).
    return hash((seed, epoch, index)) & 0x7FFF_FFFF


# --- batches ----------------------------------------------------------------------------------------------------


class ResumableSampler(DistributedSampler):
    """The distributed sampler (seeded shuffle per epoch, one shard per rank) that can start
    part-way through an epoch: ``start`` batches of the shard are skipped without loading them."""

    def __init__(self, dataset: Dataset, batch_size: int, seed: int, rank: int, world: int) -> None:
        super().__init__(dataset, num_replicas=world, rank=rank, shuffle=True, seed=seed, drop_last=True)
        self.batch_size = batch_size
        self.start = 0

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())
        usable = len(indices) // self.batch_size * self.batch_size  # whole batches only
        return iter(indices[self.start * self.batch_size : usable])

    def batches_per_epoch(self) -> int:
        return self.num_samples // self.batch_size


@dataclass
class Batch:
    images: torch.Tensor | dict[str, torch.Tensor]  # (B, 3, S, S) in [0, 1], or several such by name
    bad: int  # files that failed to decode and were replaced in this batch


def _collate(items: list[tuple[torch.Tensor, int]]) -> Batch:
    return Batch(torch.stack([image for image, _ in items]), sum(bad for _, bad in items))


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity where the system reports one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no affinity call
        return os.cpu_count() or 1


class Batches:
    """Endless batches of a :class:`CropDataset` in a fixed order: epoch after epoch, resumable at
    any (epoch, batch); under torchrun each process gets its own share of every epoch."""

    def __init__(self, dataset: CropDataset, batch_size: int, seed: int, workers: int = 2) -> None:
        rank, world = rank_and_world()
        if len(dataset) < batch_size * world:
            raise ConfigError(
                f"the training folders have {len(dataset)} readable images, fewer than one batch per process "
                f"({batch_size} x {world}); lower --batch-size or add images"
            )
        self.dataset = dataset
        self.sampler = ResumableSampler(dataset, batch_size, seed, rank, world)
        self.loader = DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=self.sampler,
            collate_fn=_collate,
            # No more loader processes than CPUs this process may use: more only compete with training
            # (and PyTorch warns about them). The crops do not depend on the count.
            num_workers=min(workers, usable_cpus()),
            persistent_workers=False,
            pin_memory=torch.cuda.is_available(),
        )
        self.per_epoch = self.sampler.batches_per_epoch()

    def from_step(self, step: int) -> Iterator[tuple[int, Batch]]:
        """(epoch, batch) pairs starting at the ``step``-th batch of the whole run (0-based)."""
        epoch, start = divmod(step, self.per_epoch)
        while True:
            self.sampler.set_epoch(epoch)
            self.dataset.set_epoch(epoch)  # before the loader forks its workers: they copy the dataset
            self.sampler.start = start
            for batch in self.loader:
                yield epoch, batch
            epoch, start = epoch + 1, 0


def steps_for(epochs: float, images: int, batch_size: int, world: int = 1) -> int:
    """Optimiser steps in ``epochs`` passes over ``images`` with ``world`` processes."""
    return max(1, math.ceil(epochs * (images // (batch_size * world))))
