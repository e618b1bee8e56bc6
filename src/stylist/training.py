"""The one training loop, and what every trained method shares: torchrun, RNG state, the
checkpoint layout and the resume rules. The data side (image folders, sampling weights, crops,
resumable batches) is :mod:`stylist.datasets`; its names are re-exported here.

Feed-forward style networks (:mod:`stylist.feedforward`) and arbitrary-style decoders
(:mod:`stylist.train_decoders`) train the same way, through :func:`fit`: random square crops
from a folder tree of photographs, batches in an order fixed by the seed and the epoch (so a
resumed run sees exactly the batches the unbroken run would have seen), one process per GPU
under ``torchrun`` with the data split between them, and checkpoints that carry the RNG states.
Each method supplies its model, a ``loss_fn(model, images) -> {term: tensor, ..., "total": tensor}``
and its batches; :func:`fit` owns everything else.

Unreadable files never stop a run: a file that is not an image is dropped when the folder
is scanned, and one that fails to decode later is replaced in its batch by the next
readable one and counted (:attr:`Batch.bad`), so the trainer can report it.
"""

from __future__ import annotations

import copy
import math
import os
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

# The data side lives in datasets.py; its names stay importable from here (their old home).
from .datasets import (  # noqa: F401
    IMAGE_SUFFIXES,
    Batch,
    Batches,
    CropDataset,
    ResumableSampler,
    find_images,
    gather_images,
    random_crop,
    rank_and_world,
    steps_for,
)
from .devices import TRAIN_PRECISIONS, train_dtype  # noqa: F401  (old import path)
from .errors import ConfigError

# --- processes ------------------------------------------------------------------------------------


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
    """Leave the process group, all processes together.

    The barrier first: a process that tore its group down while the main one was still writing the
    model closed gloo's connections under a peer that still held them, and now and then one of them
    aborted at exit ("terminate called without an active exception", SIGABRT), failing the run.
    """
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
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


# --- the checkpoint layout and the resume rules ---------------------------------------------------------

# Layout of a training checkpoint (what fit writes), stored under "layout" (checkpoint.py's own
# "version" is the file format's): bumped whenever a key's meaning changes, so that an older file is
# refused in one line instead of resuming into a different state. Layout 1: before fit, no key.
CHECKPOINT_LAYOUT = 2


def plain_config(config: dict) -> dict:
    """A config dict with tuples as lists (what torch.load(weights_only=True) and JSON both take)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in config.items()}


def _same(a: object, b: object) -> bool:
    # Tuples come back from a checkpoint or a JSON manifest as lists.
    norm = lambda v: list(v) if isinstance(v, (list, tuple)) else v  # noqa: E731
    return norm(a) == norm(b)


def check_checkpoint(state: object, kind: str, command: str, layout: int | None = CHECKPOINT_LAYOUT) -> dict:
    """``state`` if it is a checkpoint of ``kind`` in the current layout; ConfigError (one line) otherwise.

    ``command`` names what writes such checkpoints (for the message); ``layout`` None skips the
    layout check (optimisation checkpoints have their own layout).
    """
    if not isinstance(state, dict) or state.get("kind") != kind:
        raise ConfigError(f"not a checkpoint of {command}")
    if layout is not None and state.get("layout", 1) != layout:
        raise ConfigError(
            f"this checkpoint of {command} has layout {state.get('layout', 1)}, which this Stylist "
            f"(layout {layout}) cannot resume; start afresh"
        )
    return state


# Training options added to the losses after runs were saved without them, each with the value that
# keeps such a run's objective when it resumes (not today's default): the grid loss (losses.grid_loss).
OPTIONS_ADDED_SINCE = {"grid_weight": 0.0}


def resume_options(saved: dict, given: dict, may_change: Sequence[str], added: dict | None = None) -> dict:
    """The checkpoint's options (``saved``) with those ``given`` that a resumed run may change.

    The one resume-compatibility rule of every method: an option outside ``may_change`` must keep
    the checkpoint's value (it would change the state the run carries on from); ConfigError (one
    line, naming the flag and both values) otherwise. ``added`` (option -> value, usually
    :data:`OPTIONS_ADDED_SINCE`) fills in options a checkpoint predates.
    """
    saved = {**(added or {}), **saved}
    options = dict(saved)
    for key, value in given.items():
        if key in may_change:
            options[key] = value
        elif key in saved and not _same(saved[key], value):
            flag = "--" + key.replace("_", "-")
            raise ConfigError(
                f"{flag} cannot change on resume: the checkpoint was made with {flag} {plain_value(saved[key])} "
                f"but this run has {plain_value(value)}; a resumed run keeps every option but "
                f"{', '.join('--' + k.replace('_', '-') for k in may_change)}; start a new run instead"
            )
    return {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}


def plain_value(value: object) -> object:
    return list(value) if isinstance(value, (tuple, list)) else value


def cpu_copy(obj: Any) -> Any:
    """A state tree with every tensor copied to the CPU (a checkpoint must not change as the run goes on,
    and must load on any machine)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: cpu_copy(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(cpu_copy(v) for v in obj)
    return copy.copy(obj)


# --- the one training loop ---------------------------------------------------------------------------


@dataclass
class FitConfig:
    """How :func:`fit` runs; each method builds it from its own config (not a set of CLI flags)."""

    steps: int  # optimiser steps in all, counted from the start of the run (resumed parts included)
    lr: float  # Adam's step size
    device: torch.device
    dtype: torch.dtype | None = None  # autocast dtype (devices.train_dtype); float16 adds a GradScaler
    lr_decay: float = 0.0  # learning rate at step s: lr / (1 + lr_decay * s) (Huang and Belongie's schedule)
    log_every: int = 1  # losses averaged over processes, checked and recorded every N steps (a GPU sync)
    time_limit: float | None = None  # seconds; checked on logging steps, agreed by every process
    kind: str = ""  # the checkpoint's kind, e.g. "stylist.train"
    config: dict = field(default_factory=dict)  # the method's options, stored in the checkpoint
    extra: dict = field(default_factory=dict)  # method state a resume needs (stored under "extra")
    skipped: int = 0  # files already skipped (unreadable at the folder scan)
    memory_format: torch.memory_format = torch.contiguous_format  # of the images given to loss_fn


@dataclass
class TrainProgress:
    """What the callback receives after every training step, from every method."""

    step: int  # steps done, 1-based, counted from the start of the run (resumed runs included)
    total: int
    epoch: int  # 0-based pass over the photographs
    losses: dict[str, float] | None  # weighted terms and total, averaged over processes; None off logging steps
    lr: float
    elapsed: float  # seconds of training in this process (not counting earlier, resumed parts)
    images_per_s: float  # over all processes, since the run (or the resumed part) began
    skipped: int  # files skipped so far: unreadable at the scan plus failed decodes (replaced by others)
    checkpoint: Callable[[], dict] = field(repr=False)  # the run's state, for stylist.checkpoint and resume
    preview: Callable[..., torch.Tensor] | None = field(repr=False, default=None)  # the method's preview
    history: list[dict] = field(repr=False, default_factory=list)  # every logged step's losses (not a copy)
    first_step: int = 0  # the step this run (or its resumed part) started from
    time_limit: float | None = None  # FitConfig.time_limit, seconds

    @property
    def seconds_left(self) -> float | None:
        """Seconds until the run ends: at this part's pace to ``total``, or sooner by the time limit;
        None before a step's pace is known."""
        done = self.step - self.first_step
        if done <= 0 or self.elapsed <= 0:
            return None
        left = (self.total - self.step) * self.elapsed / done
        if self.time_limit is not None:
            left = min(left, max(0.0, self.time_limit - self.elapsed))
        return left

    @property
    def bad_files(self) -> int:
        """The decoder trainer's old name for :attr:`skipped`."""
        return self.skipped


@dataclass
class TrainResult:
    """What :func:`fit` (and each method's train function) returns."""

    model: nn.Module  # the trained model (unwrapped from DDP), eval mode
    step: int
    stopped: str  # done | time | callback
    elapsed: float
    history: list[dict]
    state: dict = field(repr=False)  # the final checkpoint: resume it with more steps
    device: str = "cpu"
    precision: str = "fp32"
    metadata: dict[str, str] = field(default_factory=dict)  # what a method's model file stores beside the weights
    train_seconds: float = 0.0  # seconds of training in all, resumed parts included (elapsed: this process's)

    def checkpoint(self) -> dict:
        return self.state


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during training; ``state`` is the run's checkpoint at the last finished step."""

    def __init__(self, state: dict) -> None:
        super().__init__("interrupted")
        self.state = state


TrainCallback = Callable[[TrainProgress], "bool | None"]
LossFn = Callable[[nn.Module, Any], dict[str, torch.Tensor]]


def process_device(name: str) -> torch.device:
    """This process's device: one GPU per process under torchrun, else :func:`devices.resolve_device`."""
    from .devices import resolve_device

    return init_distributed(name) or resolve_device(name)


def _to_device(images: Any, device: torch.device, fmt: torch.memory_format) -> Any:
    if isinstance(images, dict):
        return {k: _to_device(v, device, fmt) for k, v in images.items()}
    return images.to(device, non_blocking=True).contiguous(memory_format=fmt)


def _wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """DistributedDataParallel under torchrun (gradients averaged over processes), else the model itself."""
    if rank_and_world()[1] == 1:
        return model
    return nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def fit(
    model: nn.Module,
    loss_fn: LossFn,
    batches: Callable[[int], Iterator[tuple[int, Batch]]],
    config: FitConfig,
    callback: TrainCallback | None = None,
    resume: dict | None = None,
    *,
    preview: Callable[..., torch.Tensor] | None = None,
) -> TrainResult:
    """Train ``model`` (on ``config.device``) with Adam until ``config.steps``, the time limit or a stop.

    ``batches(step)`` gives (epoch, :class:`Batch`) pairs from the ``step``-th batch of the run on
    (a resumed run must see the batches the unbroken run would have seen); ``loss_fn(net, images)``
    returns the weighted loss terms with their sum as ``"total"``, where ``net`` is ``model`` or its
    DDP wrapper (call ``net``, not ``model``: the gradient averaging lives on the wrapper) and
    ``images`` the batch's images on the device. The loss runs under autocast in ``config.dtype``;
    with float16 the gradients go through a GradScaler (bf16 and fp32 need none).

    ``callback(progress)`` after every step: True stops the run (``stopped="callback"``). Ctrl-C
    raises :class:`Interrupted` carrying the checkpoint of the last finished step. ``resume`` is
    such a checkpoint (checked by the method with :func:`check_checkpoint`): weights, optimiser,
    scaler, step, history and RNG states are restored, so the run ends as the unbroken one would.
    StylistError when a loss becomes infinite or NaN.
    """
    from .devices import dtype_name
    from .errors import StylistError

    device, dtype = config.device, config.dtype
    world = rank_and_world()[1]
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed crop size: let cuDNN pick its fastest kernels once
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=config.lr)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    step, history, skipped, earlier = 0, [], config.skipped, 0.0
    if resume is not None:
        model.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
        scaler.load_state_dict(resume["scaler"])
        step, history, skipped = int(resume["step"]), list(resume["history"]), int(resume["skipped"])
        earlier = float(resume.get("seconds", 0.0))  # checkpoints before it was recorded: not counted
        if resume["world"] == world:
            set_rng_state(resume["rng"])  # another process count draws differently anyway
    net = _wrap(model, device)
    model.train()

    def checkpoint() -> dict:
        return cpu_copy(
            {
                "kind": config.kind,
                "layout": CHECKPOINT_LAYOUT,
                "config": plain_config(config.config),
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scaler": scaler.state_dict(),
                "step": step,
                "history": list(history),
                "skipped": skipped,
                "rng": rng_state(),
                "world": world,
                "extra": config.extra,
                "seconds": earlier + time.perf_counter() - start,  # training time in all, for the model file
            }
        )

    start, seen, stopped, first = time.perf_counter(), 0, "done", step
    try:
        for epoch, batch in batches(step) if step < config.steps else ():
            images = _to_device(batch.images, device, config.memory_format)
            lr = config.lr / (1.0 + config.lr_decay * step)
            for group in optimizer.param_groups:
                group["lr"] = lr
            with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                terms = loss_fn(net, images)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(terms["total"]).backward()
            scaler.step(optimizer)
            scaler.update()
            step, skipped = step + 1, skipped + batch.bad
            seen += len(next(iter(batch.images.values())) if isinstance(batch.images, dict) else batch.images) * world
            losses = None
            if step % config.log_every == 0 or step == config.steps:
                losses = mean_across({k: float(v.detach()) for k, v in terms.items()})
                if not all(math.isfinite(v) for v in losses.values()):
                    raise StylistError(
                        f"the training loss became {losses['total']} at step {step}; lower --lr or the loss weights, "
                        "or use --precision fp32"
                    )
                history.append({"step": step, **losses})
            elapsed = time.perf_counter() - start
            progress = TrainProgress(
                step,
                config.steps,
                epoch,
                losses,
                lr,
                elapsed,
                seen / max(elapsed, 1e-9),
                skipped,
                checkpoint,
                preview,
                history,
                first,
                config.time_limit,
            )
            if callback is not None and callback(progress):
                stopped = "callback"
                break
            if step >= config.steps:
                break
            # Every process stops at the same step: the check is agreed on logging steps only (a sync).
            if config.time_limit is not None and losses is not None and any_across(elapsed >= config.time_limit):
                stopped = "time"
                break
    except KeyboardInterrupt:
        raise Interrupted(checkpoint()) from None
    state = checkpoint()
    model.eval()
    elapsed = time.perf_counter() - start
    return TrainResult(
        model,
        step,
        stopped,
        elapsed,
        history,
        state,
        str(device),
        dtype_name(dtype),
        train_seconds=earlier + elapsed,
    )
