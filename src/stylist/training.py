"""What every trained method shares: image folders, a resumable sampler, torchrun, RNG state.

Feed-forward style networks (:mod:`stylist.feedforward`) and arbitrary-style decoders
(:mod:`stylist.arbitrary`) train the same way: random square crops from a folder tree of
photographs, batches in an order fixed by the seed and the epoch (so a resumed run sees
exactly the batches the unbroken run would have seen), one process per GPU under
``torchrun`` with the data split between them, and checkpoints that carry the RNG states.

Unreadable files never stop a run: a file that is not an image is dropped when the folder
is scanned, and one that fails to decode later is replaced in its batch by the next
readable one and counted (:attr:`Batch.bad`), so the trainer can report it.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from .errors import ConfigError
from .image import load_tensor

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp")


# --- image folders ------------------------------------------------------------------------------


def find_images(root: str | os.PathLike, what: str = "--data") -> tuple[list[Path], int]:
    """(readable image files under ``root``, recursively and sorted; count of files skipped).

    A file with an image suffix whose header Pillow cannot read is skipped and counted.
    ConfigError (one line) when ``root`` is missing or holds no image at all.
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


def random_crop(
    image: torch.Tensor, size: int, generator: torch.Generator, scale: tuple[float, float] = (1.0, 1.0)
) -> torch.Tensor:
    """A ``size`` x ``size`` crop of (1, 3, H, W), flipped left-right half the time.

    The image is first resized so its short side is ``size`` times a factor drawn from
    ``scale`` (1, 1 = the short side fills the crop), so every crop has the same field of view
    whatever the photo's resolution.
    """
    lo, hi = scale
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
    """Random crops of image files; item ``i`` is (crop (3, S, S), files skipped to get it).

    The crop of item ``i`` in epoch ``e`` depends only on (seed, e, i), so resuming a run
    or splitting it between processes gives the same crops. A file that fails to decode is
    replaced by the next one in the list.

    ``repeat`` lists every file that many times (each copy gets its own crops), so that a
    folder of a few images still makes long epochs. ``preload`` decodes every file once, here,
    and keeps it in memory (shrunk to the largest size a crop can need), so that loader
    processes forked later share it and no file is decoded twice; a file that fails to decode
    is then skipped the same way, by the item that asks for it.
    """

    def __init__(
        self,
        files: Sequence[Path],
        size: int,
        seed: int = 0,
        scale: tuple[float, float] = (1.0, 1.0),
        repeat: int = 1,
        preload: bool = False,
    ) -> None:
        self.files, self.size, self.seed, self.scale = list(files), size, seed, scale
        self.repeat = max(1, int(repeat))
        self.epoch = 0
        self.images: list[torch.Tensor | None] | None = [self._preload(p) for p in self.files] if preload else None

    def __len__(self) -> int:
        return len(self.files) * self.repeat

    def _preload(self, path: Path) -> torch.Tensor | None:
        try:
            image = load_tensor(path, "training")
        except Exception:  # counted when an item asks for it, as without preloading
            return None
        h, w = image.shape[-2:]
        most = math.ceil(self.size * max(self.scale))  # the largest short side random_crop can ask for
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
        generator = torch.Generator().manual_seed(hash((self.seed, self.epoch, index)) & 0x7FFF_FFFF)
        for tries in range(len(self.files)):
            image = self._load((index + tries) % len(self.files))
            if image is None:
                continue
            return random_crop(image, self.size, generator, self.scale)[0], tries
        raise ConfigError("no image in the training folder could be decoded")


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
    images: torch.Tensor  # (B, 3, S, S) in [0, 1]
    bad: int  # files that failed to decode and were replaced in this batch


def _collate(items: list[tuple[torch.Tensor, int]]) -> Batch:
    return Batch(torch.stack([image for image, _ in items]), sum(bad for _, bad in items))


class Batches:
    """Endless batches in a fixed order: epoch after epoch, resumable at any (epoch, batch)."""

    def __init__(self, dataset: CropDataset, batch_size: int, seed: int, workers: int = 2) -> None:
        rank, world = rank_and_world()
        if len(dataset) < batch_size * world:
            raise ConfigError(
                f"the training folder has {len(dataset)} readable images, fewer than one batch per process "
                f"({batch_size} x {world}); lower --batch-size or add images"
            )
        self.dataset = dataset
        self.sampler = ResumableSampler(dataset, batch_size, seed, rank, world)
        self.loader = DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=self.sampler,
            collate_fn=_collate,
            num_workers=workers,
            persistent_workers=False,
            pin_memory=torch.cuda.is_available(),
        )
        self.per_epoch = self.sampler.batches_per_epoch()

    def from_step(self, step: int) -> Iterator[tuple[int, Batch]]:
        """(epoch, batch) pairs starting at the ``step``-th batch of the whole run (0-based)."""
        epoch, start = divmod(step, self.per_epoch)
        while True:
            self.sampler.set_epoch(epoch)
            self.dataset.epoch = epoch
            self.sampler.start = start
            for batch in self.loader:
                yield epoch, batch
            epoch, start = epoch + 1, 0


def steps_for(epochs: float, images: int, batch_size: int, world: int = 1) -> int:
    """Optimiser steps in ``epochs`` passes over ``images`` with ``world`` processes."""
    return max(1, math.ceil(epochs * (images // (batch_size * world))))


# --- processes ------------------------------------------------------------------------------------


def rank_and_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def launched_by_torchrun() -> bool:
    return "LOCAL_RANK" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_distributed(device: str) -> torch.device | None:
    """Join the process group when started by torchrun; return this process's device, else None.

    NCCL between GPUs (one per process, by LOCAL_RANK), gloo on CPUs.
    """
    if not launched_by_torchrun():
        return None
    local = int(os.environ["LOCAL_RANK"])
    use_cuda = torch.cuda.is_available() and device in ("auto", "cuda")
    if use_cuda:
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return torch.device("cuda", local) if use_cuda else torch.device("cpu")


def close_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def is_main() -> bool:
    return rank_and_world()[0] == 0


def parameter_checksum(model: torch.nn.Module) -> float:
    """A number that differs when two copies of a model differ (sum of |w| in float64)."""
    return float(sum(p.detach().double().abs().sum() for p in model.parameters()))


def gather_floats(value: float) -> list[float]:
    """``value`` from every process (rank order); [value] without torchrun."""
    rank, world = rank_and_world()
    if world == 1:
        return [value]
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    out = [torch.zeros((), dtype=torch.float64, device=device) for _ in range(world)]
    dist.all_gather(out, torch.tensor(value, dtype=torch.float64, device=device))
    return [float(t) for t in out]


def mean_across(values: dict[str, float]) -> dict[str, float]:
    """Loss terms averaged over the processes (for logging the same numbers on every rank)."""
    rank, world = rank_and_world()
    if world == 1:
        return values
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    t = torch.tensor(list(values.values()), dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return dict(zip(values, (t / world).tolist()))


def any_across(flag: bool) -> bool:
    """True on every process when ``flag`` is True on any (a stop asked for in one stops all)."""
    rank, world = rank_and_world()
    if world == 1:
        return flag
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    t = torch.tensor(float(flag), device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


# --- randomness -----------------------------------------------------------------------------------


def rng_state() -> dict:
    """Every RNG a training step may use (torch CPU and CUDA, Python's random), for a checkpoint."""
    state = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1])}
    state["python_version"], state["python_gauss"] = random.getstate()[0], random.getstate()[2]
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate((state["python_version"], tuple(state["python"]), state["python_gauss"]))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


# --- precision ------------------------------------------------------------------------------------


TRAIN_PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def train_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for mixed precision, or None for float32 throughout.

    ``auto`` is bf16 on CUDA GPUs that have it (fp16 on older ones) and float32 elsewhere:
    training on a CPU is slow either way and bf16 there is emulated on many CPUs.
    """
    if precision == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
