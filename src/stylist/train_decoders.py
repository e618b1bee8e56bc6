"""Training the arbitrary-style decoders: AdaIN's (Huang and Belongie 2017) and WCT's (Li et al. 2017).

AdaIN's decoder learns to turn AdaIN-transformed relu4_1 features into an image whose features
match that target (content loss) and whose statistics match the painting's (mean/std style loss);
WCT's decoders learn to reconstruct photographs from each level's features (pixel plus feature
loss). The departures from the papers are listed in :mod:`stylist.arbitrary`.

The module is silent: it prints nothing and writes no file. Training reports through
``callback(progress)``; the CLI writes checkpoints, previews, loss curves and the decoder file.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .arbitrary import adain
from .decoders import (
    ADAIN_LEVEL,
    LEVELS,
    METHODS,
    WCT_LEVELS,
    Decoder,
    Encoder,
    WCTDecoders,
    _load_cached,
    new_decoder,
)
from .errors import ConfigError, StylistError
from .image import load_tensor, resize_long_side
from .losses import mean_std
from .optimize import resolve_device
from .training import (
    TRAIN_PRECISIONS,
    Batches,
    CropDataset,
    find_images,
    gather_floats,
    init_distributed,
    is_main,
    mean_across,
    rank_and_world,
    rng_state,
    seed_everything,
    set_rng_state,
    train_dtype,
)

ADAIN_STYLE_LAYERS = LEVELS[:4]  # Huang and Belongie's style loss layers


@dataclass
class DecoderTrainConfig:
    """Every option of ``stylist train-decoder``; the CLI builds its flags from these fields."""

    # adain (decoder trained with content and style losses; needs paintings) or wct (five decoders
    # trained to reconstruct photographs; needs photographs only).
    method: str = "adain"
    # Folder of photographs, searched recursively (Huang and Belongie used MS-COCO).
    content: str = ""
    # AdaIN: folder of paintings, searched recursively (Huang and Belongie used WikiArt).
    style: str | None = None
    # File names of paintings to leave out of training, to judge the decoder on styles it never saw.
    exclude_styles: tuple[str, ...] = ()
    # Optimiser steps in all (Huang and Belongie: 160000 at batch 8).
    steps: int = 10000
    # Images per step (per process under torchrun).
    batch_size: int = 8
    # Side of the square training crops, px (the papers: 256).
    image_size: int = 256
    # Photos: short side resized to image_size times a factor drawn from this range, then cropped.
    content_scale: tuple[float, ...] = (1.0, 1.5)
    # Paintings: the same, over a wider range (heavy crops and scales: a few paintings go further).
    style_scale: tuple[float, ...] = (1.0, 3.0)
    # Adam step (the papers: 1e-4).
    lr: float = 1e-4
    # Learning rate at step s is lr / (1 + lr_decay * s) (Huang and Belongie's schedule).
    lr_decay: float = 5e-5
    # AdaIN: weight of the content loss on the AdaIN target at relu4_1.
    content_weight: float = 1.0
    # AdaIN: weight of the mean/std style loss at relu1_1..relu4_1 (the paper: 10).
    style_weight: float = 10.0
    # WCT: weight of the pixel reconstruction loss.
    pixel_weight: float = 1.0
    # WCT: weight lambda of the feature reconstruction loss (Li et al.: 1).
    feature_weight: float = 1.0
    # WCT: the levels to train a decoder for.
    levels: tuple[str, ...] = WCT_LEVELS
    # Start from the weights of this decoder file instead of random ones (fine-tuning). WCT: the
    # file's levels that are not in --levels are carried over unchanged into the result.
    init: str | None = None
    # AdaIN: weight of an identity loss, decoder(photo's own relu4_1) against the photo (pixel MSE
    # plus relu4_1 MSE). 0 is the paper's objective; see docs/models/adain.md for when to add it.
    identity_weight: float = 0.0
    # Seed for the initial weights and the order and placement of the crops.
    seed: int = 0
    # auto (cuda, then cpu), or an explicit torch device such as cpu or cuda:1.
    device: str = "auto"
    # Mixed precision: auto (bf16 on GPUs that have it, else fp16 on GPUs, fp32 on CPUs), fp32, bf16 or fp16.
    precision: str = "auto"
    # Processes decoding and cropping images (0: in the training process itself).
    workers: int = 4
    # Stop (and save) after this many seconds of training even before --steps; None = no limit.
    time_limit: float | None = None
    # Report (and average the losses over processes) every N steps.
    log_every: int = 10

    def validate(self) -> None:
        """Raise ConfigError (one line) for a value Stylist cannot use."""
        if self.method not in METHODS:
            raise ConfigError(f"unknown --method '{self.method}': use one of {', '.join(METHODS)}")
        if not self.content:
            raise ConfigError("give --content DIR, a folder of photographs")
        if self.method == "adain" and not self.style:
            raise ConfigError("--method adain needs --style DIR, a folder of paintings")
        for name in ("steps", "batch_size", "log_every"):
            if getattr(self, name) <= 0:
                raise ConfigError(
                    f"--{name.replace('_', '-')} must be a positive whole number; got {getattr(self, name)}"
                )
        if self.image_size < 32 or self.image_size % 16:
            raise ConfigError(f"--image-size must be a multiple of 16, at least 32; got {self.image_size}")
        for name in ("content_scale", "style_scale"):
            lo_hi = getattr(self, name)
            if len(lo_hi) != 2 or not (0 < lo_hi[0] <= lo_hi[1]):
                raise ConfigError(
                    f"--{name.replace('_', '-')} takes two numbers LOW HIGH with 0 < LOW <= HIGH; got {' '.join(map(str, lo_hi))}"
                )
        for name in ("lr", "content_weight", "style_weight", "pixel_weight"):
            if not (getattr(self, name) > 0 and math.isfinite(getattr(self, name))):
                raise ConfigError(f"--{name.replace('_', '-')} must be a positive number; got {getattr(self, name)}")
        for name in ("lr_decay", "feature_weight", "identity_weight"):
            if not (getattr(self, name) >= 0 and math.isfinite(getattr(self, name))):
                raise ConfigError(f"--{name.replace('_', '-')} must be zero or positive; got {getattr(self, name)}")
        if any(lv not in LEVELS for lv in self.levels) or not self.levels:
            raise ConfigError(f"--levels takes some of {', '.join(WCT_LEVELS)}; got {' '.join(self.levels)}")
        if self.method == "wct" and tuple(self.levels) == (LINEAR_LEVEL,):
            raise ConfigError(
                f"--levels {LINEAR_LEVEL} alone leaves nothing to train (its decoder is fitted by least squares); add a deeper level"
            )
        if self.precision not in TRAIN_PRECISIONS:
            raise ConfigError(f"unknown precision '{self.precision}': use one of {', '.join(TRAIN_PRECISIONS)}")
        if self.workers < 0:
            raise ConfigError(f"--workers must be 0 or more; got {self.workers}")
        if self.time_limit is not None and not self.time_limit > 0:
            raise ConfigError(f"--time-limit must be a positive number of seconds; got {self.time_limit}")


@dataclass
class TrainProgress:
    """What the training callback receives after every step."""

    step: int  # steps done, 1-based, counted from the start of the run (resumed runs included)
    total: int  # --steps
    epoch: int  # pass over the photographs
    losses: (
        dict[str, float] | None
    )  # weighted terms and total, averaged over processes; every log_every steps, else None
    lr: float
    elapsed: float  # seconds of training in this process (not counting earlier, resumed parts)
    bad_files: int  # files that failed to decode so far (replaced by others)
    checkpoint: Callable[[], dict] = field(repr=False)  # the run's state, for stylist.checkpoint and resume
    preview: Callable[[], torch.Tensor] = field(repr=False)  # a grid image (1, 3, H, W) of the last batch


@dataclass
class TrainResult:
    model: Decoder | WCTDecoders  # the trained decoder(s), float32 (unwrapped from DDP)
    step: int
    stopped: str  # done | time | callback
    elapsed: float
    device: str
    precision: str
    checkpoint: Callable[[], dict] = field(repr=False)


TrainCallback = Callable[[TrainProgress], "bool | None"]
CHECKPOINT_KIND = "stylist.train-decoder"
# Folders with at most this many images are decoded once up front and kept in memory (shared by
# the loader processes): a few hundred photos cost ~200 MB, and no JPEG is decoded twice.
PRELOAD_LIMIT = 5000
EPOCH_STEPS = 500
LINEAR_LEVEL = "relu1_1"  # its decoder is a single convolution: fitted by least squares (fit_linear_decoder)
LINEAR_FIT_PHOTOS = 64  # photos in that fit: 64 x ~27k pixels for 577 unknowns per colour


def train_decoder(
    cfg: DecoderTrainConfig, callback: TrainCallback | None = None, resume: dict | None = None
) -> TrainResult:
    """Train an AdaIN decoder or the WCT decoders; ``resume`` is a checkpoint dict to carry on from.

    Runs under torchrun as well (one process per GPU, the data split between them); each process
    calls ``callback``, and only the caller decides which one writes files (rank 0).
    """
    cfg.validate()
    device = init_distributed(cfg.device) or _train_device(cfg.device)
    seed_everything(cfg.seed)
    model = _initial_model(cfg).to(device, memory_format=_memory_format(device))
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed crop size: let cuDNN pick its fastest kernels once
    linear = cfg.method == "wct" and LINEAR_LEVEL in cfg.levels
    if linear:
        model[LINEAR_LEVEL].requires_grad_(False)  # fitted by least squares below, not trained
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.lr)
    dtype = train_dtype(cfg.precision, device)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    start = _restore(resume, cfg, model, opt, scaler)
    if linear and resume is None:
        fit_linear_decoder(model[LINEAR_LEVEL], find_images(cfg.content, "--content")[0], cfg.image_size, cfg.seed)
    net = _wrap(model, device)
    encoder = Encoder(ADAIN_LEVEL if cfg.method == "adain" else max(cfg.levels, key=LEVELS.index)).to(
        device, memory_format=_memory_format(device)
    )
    batches, bad0 = _data(cfg, start)
    state = {"step": start, "model": model, "opt": opt, "scaler": scaler, "cfg": cfg}
    checkpoint = lambda: _checkpoint(state)  # noqa: E731
    losses_fn = _adain_losses if cfg.method == "adain" else _wct_losses
    t0, bad, stopped, last = time.perf_counter(), bad0, "done", {}
    for step in range(start + 1, cfg.steps + 1):
        epoch, images, bad_now = _next_batch(batches, device)
        lr = _set_lr(opt, cfg, step - 1)
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            terms, last = losses_fn(net, encoder, images, cfg)
        total = sum(terms.values())
        opt.zero_grad(set_to_none=True)
        scaler.scale(total).backward()
        scaler.step(opt)
        scaler.update()
        state["step"], bad = step, bad + bad_now
        logged = _log(terms, total, step, cfg)
        stopped = _should_stop(cfg, step, t0)
        progress = TrainProgress(
            step, cfg.steps, epoch, logged, lr, time.perf_counter() - t0, bad, checkpoint, _previewer(cfg, last)
        )
        if callback is not None and callback(progress):
            stopped = "callback"
        if stopped != "done":
            break
    model.eval()
    return TrainResult(
        model, state["step"], stopped, time.perf_counter() - t0, str(device), _dtype_name(dtype), checkpoint
    )


def _initial_model(cfg: DecoderTrainConfig) -> Decoder | WCTDecoders:
    """Random weights, or those of ``cfg.init``; only --levels are trained (the rest frozen)."""
    if cfg.init is None:
        return new_decoder(cfg.method, cfg.levels)
    model = copy.deepcopy(_load_cached(cfg.method, cfg.init)).train()
    if cfg.method == "wct":
        missing = [lv for lv in cfg.levels if lv not in model.levels]
        if missing:
            raise ConfigError(
                f"{cfg.init}: has no decoder for {', '.join(missing)}; --levels must be among {', '.join(model.levels)}"
            )
        for lv in model.levels:
            model[lv].requires_grad_(lv in cfg.levels)
        return model
    return model.requires_grad_(True)


def fit_linear_decoder(
    decoder: Decoder, photos: Sequence[Path], side: int, seed: int = 0, count: int = LINEAR_FIT_PHOTOS
) -> None:
    """Set the relu1_1 decoder (one 3x3 convolution, linear) to its least-squares optimum on pixels
    over ``count`` of the ``photos`` (long side ``side``), and freeze it.

    A departure from Li et al., who trained it by gradient descent on pixel plus feature loss like
    the deeper decoders. The decoder is linear, so the pixel loss has a closed-form minimum; on
    Stylist's scaled features the relu1_1 feature term outweighs the pixel term some 40 times, and
    gradient descent stalled near 17 dB where the least-squares fit reconstructs at 40 dB or more.
    """
    conv = decoder.net[-1]
    encoder = Encoder(LINEAR_LEVEL).to(conv.weight.device)
    order = torch.randperm(len(photos), generator=torch.Generator().manual_seed(seed))[:count]
    n = conv.in_channels * 9 + 1
    gram = torch.zeros(n, n, dtype=torch.float64)
    cross = torch.zeros(n, 3, dtype=torch.float64)
    with torch.no_grad():
        for i in order.tolist():
            photo = resize_long_side(load_tensor(photos[i]), side).to(conv.weight.device)
            cols = _patches(encoder(photo)[LINEAR_LEVEL])
            gram += (cols.T @ cols).double().cpu()
            cross += (cols.T @ photo[0].reshape(3, -1).T).double().cpu()
        ridge = 1e-6 * gram.diagonal().mean() * torch.eye(n, dtype=torch.float64)  # keeps the solve well posed
        solution = torch.linalg.solve(gram + ridge, cross).float()  # (n, 3): weights then bias
        conv.weight.copy_(solution[:-1].T.reshape(3, conv.in_channels, 3, 3))
        conv.bias.copy_(solution[-1])
    decoder.requires_grad_(False)


def _patches(features: torch.Tensor) -> torch.Tensor:
    """(H*W, C*9 + 1): each pixel's reflection-padded 3x3 neighbourhood (as the decoder sees it), and a 1 for the bias."""
    cols = F.unfold(F.pad(features, (1, 1, 1, 1), mode="reflect"), 3)[0].T
    return torch.cat([cols, torch.ones(cols.shape[0], 1, dtype=cols.dtype, device=cols.device)], 1)


def _train_device(name: str) -> torch.device:
    """auto: the GPU if there is one, else the CPU (training on MPS is not tested)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return resolve_device(name)


def _memory_format(device: torch.device) -> torch.memory_format:
    # NHWC: cuDNN's fastest layout for bf16/fp16 convolutions; CPUs keep the default layout.
    return torch.channels_last if device.type == "cuda" else torch.contiguous_format


def _dtype_name(dtype: torch.dtype | None) -> str:
    return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]


def _wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """DistributedDataParallel under torchrun (gradients averaged over processes), else the model itself."""
    if rank_and_world()[1] == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def _set_lr(opt: torch.optim.Optimizer, cfg: DecoderTrainConfig, done: int) -> float:
    lr = cfg.lr / (1.0 + cfg.lr_decay * done)
    for group in opt.param_groups:
        group["lr"] = lr
    return lr


@dataclass
class _Streams:
    content: object  # iterator of (epoch, Batch)
    style: object | None


def _data(cfg: DecoderTrainConfig, start: int) -> tuple[_Streams, int]:
    """Batches of photo crops (and painting crops for AdaIN) positioned at step ``start``; files skipped."""
    photos, skipped = find_images(cfg.content, "--content")
    per_step = cfg.batch_size * rank_and_world()[1]
    # Loader processes start afresh every epoch (a pause of a second or so): a small folder is
    # listed several times over so that an epoch lasts at least EPOCH_STEPS steps.
    content = _batches(
        photos, cfg.image_size, cfg.content_scale, cfg, cfg.seed, math.ceil(EPOCH_STEPS * per_step / len(photos))
    )
    style = None
    if cfg.method == "adain":
        paintings, more = find_images(cfg.style, "--style")
        paintings = [p for p in paintings if p.name not in set(cfg.exclude_styles)]
        if not paintings:
            raise ConfigError(f"{cfg.style}: every painting is excluded by --exclude-styles")
        skipped += more
        # Few paintings: repeat the list so that an epoch of paintings is as long as one of photos
        # (each repeat gets its own crops), rather than one short epoch per step.
        repeat = math.ceil(max(len(content.dataset), per_step) / len(paintings))
        style = _batches(paintings, cfg.image_size, cfg.style_scale, cfg, cfg.seed + 1, repeat)
    streams = _Streams(content.from_step(start), style.from_step(start) if style else None)
    return streams, skipped


def _batches(
    files: list, size: int, scale: Sequence[float], cfg: DecoderTrainConfig, seed: int, repeat: int
) -> Batches:
    dataset = CropDataset(files, size, seed, (scale[0], scale[1]), repeat=repeat, preload=len(files) <= PRELOAD_LIMIT)
    return Batches(dataset, cfg.batch_size, seed, cfg.workers)


def _next_batch(streams: _Streams, device: torch.device) -> tuple[int, dict[str, torch.Tensor], int]:
    fmt = _memory_format(device)
    epoch, batch = next(streams.content)
    images, bad = {"content": batch.images.to(device, non_blocking=True).contiguous(memory_format=fmt)}, batch.bad
    if streams.style is not None:
        _, sbatch = next(streams.style)
        images["style"], bad = (
            sbatch.images.to(device, non_blocking=True).contiguous(memory_format=fmt),
            bad + sbatch.bad,
        )
    return epoch, images, bad


def _adain_losses(
    net: nn.Module, encoder: Encoder, images: dict[str, torch.Tensor], cfg: DecoderTrainConfig
) -> tuple[dict, dict]:
    """Huang and Belongie's objective: content loss between the output's relu4_1 and the AdaIN
    target t, plus the mean/std style loss at relu1_1..relu4_1 (squared errors, as in their code)."""
    with torch.no_grad():
        fc = encoder(images["content"])[ADAIN_LEVEL]
        fs = encoder(images["style"])
        t = adain(fc, fs[ADAIN_LEVEL])
    out = net(t)
    fo = encoder(out)
    content = F.mse_loss(fo[ADAIN_LEVEL].float(), t)
    style = 0.0
    for layer in ADAIN_STYLE_LAYERS:
        (om, osd), (sm, ssd) = mean_std(fo[layer]), mean_std(fs[layer])
        style = style + F.mse_loss(om, sm) + F.mse_loss(osd, ssd)
    terms = {"content": cfg.content_weight * content, "style": cfg.style_weight * style}
    if cfg.identity_weight > 0:
        terms["identity"] = cfg.identity_weight * _identity_loss(net, encoder, images["content"], fc)
    return terms, {"content": images["content"], "style": images["style"], "output": out}


def _identity_loss(net: nn.Module, encoder: Encoder, photo: torch.Tensor, fc: torch.Tensor) -> torch.Tensor:
    """The photo decoded from its own relu4_1 against the photo: pixels and relu4_1 features.

    Not in Huang and Belongie's objective. Trained on stylised targets alone, a decoder never sees
    unstyled features, and with few paintings it paints every photo in their palette even at
    alpha 0; this term keeps alpha 0 a reconstruction (as the identity losses of later
    arbitrary-style papers do).
    """
    out = net(fc)
    return F.mse_loss(out.float(), photo) + F.mse_loss(encoder(out, ADAIN_LEVEL)[ADAIN_LEVEL].float(), fc.float())


def _wct_losses(
    net: nn.Module, encoder: Encoder, images: dict[str, torch.Tensor], cfg: DecoderTrainConfig
) -> tuple[dict, dict]:
    """Li et al.'s objective for each level's decoder: pixel plus feature reconstruction error."""
    x = images["content"]
    with torch.no_grad():
        feats = encoder(x)
    outs = net({lv: feats[lv] for lv in cfg.levels})
    terms = {}
    for level, out in outs.items():
        pixel = F.mse_loss(out.float(), x)
        feature = F.mse_loss(encoder(out, level)[level].float(), feats[level].float())
        terms[level] = cfg.pixel_weight * pixel + cfg.feature_weight * feature
    return terms, {"content": x, **outs}


def _log(
    terms: dict[str, torch.Tensor], total: torch.Tensor, step: int, cfg: DecoderTrainConfig
) -> dict[str, float] | None:
    """The loss terms as floats on logging steps (a GPU sync, so not every step), else None."""
    if step % cfg.log_every and step != cfg.steps:
        return None
    values = {k: float(v.detach()) for k, v in terms.items()} | {"total": float(total.detach())}
    values = mean_across(values)
    if not all(math.isfinite(v) for v in values.values()):
        raise StylistError(f"the loss became {values['total']} at step {step}; lower --lr or use --precision fp32")
    return values


def _should_stop(cfg: DecoderTrainConfig, step: int, t0: float) -> str:
    """'time' once --time-limit has passed (checked on logging steps, agreed by every process)."""
    if cfg.time_limit is None or step % cfg.log_every:
        return "done"
    slowest = max(gather_floats(time.perf_counter() - t0))
    return "time" if slowest > cfg.time_limit else "done"


def _previewer(cfg: DecoderTrainConfig, last: dict[str, torch.Tensor]) -> Callable[[], torch.Tensor]:
    """A grid of the last batch (up to 4 rows): photo, painting, result (AdaIN) or photo and each
    level's reconstruction (WCT, coarse to fine)."""

    def preview() -> torch.Tensor:
        cols = ["content", "style", "output"] if cfg.method == "adain" else ["content", *cfg.levels]
        rows = [
            torch.cat([last[c][i].detach().float().clamp(0, 1) for c in cols], dim=-1)
            for i in range(min(4, last["content"].shape[0]))
        ]
        return torch.cat(rows, dim=-2).unsqueeze(0).cpu()

    return preview


def _checkpoint(state: dict) -> dict:
    model, opt = state["model"], state["opt"]
    return {
        "kind": CHECKPOINT_KIND,
        "config": asdict(state["cfg"]),
        "step": state["step"],
        "model": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "optimizer": opt.state_dict(),
        "scaler": state["scaler"].state_dict(),
        "rng": rng_state(),
        "world": rank_and_world()[1],
    }


# Options a resumed run may change: none alters the state it carries on from.
RESUME_MAY_CHANGE = ("steps", "device", "precision", "workers", "time_limit", "log_every", "content", "style")


def resume_config(saved: dict, given: dict) -> DecoderTrainConfig:
    """The checkpoint's options with those ``given`` (field -> value) that a resume may change."""
    if saved.get("kind") != CHECKPOINT_KIND:
        raise StylistError("not a checkpoint of stylist train-decoder")
    config = dict(saved["config"])
    for key, value in given.items():
        if key in RESUME_MAY_CHANGE:
            config[key] = value
        elif key in config and _norm(config[key]) != _norm(value):
            raise ConfigError(
                f"--{key.replace('_', '-')} cannot change on --resume (the checkpoint has {config[key]!r}); start a new run instead"
            )
    return DecoderTrainConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in config.items()})


def _norm(value: object) -> object:
    return tuple(value) if isinstance(value, (list, tuple)) else value


def _restore(
    resume: dict | None,
    cfg: DecoderTrainConfig,
    model: nn.Module,
    opt: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
) -> int:
    """Load a checkpoint into the fresh model and optimiser; the step to carry on from (0 for none)."""
    if resume is None:
        return 0
    if resume.get("kind") != CHECKPOINT_KIND or resume["config"]["method"] != cfg.method:
        raise StylistError("the checkpoint is not one of this method's decoder training")
    model.load_state_dict(resume["model"])
    opt.load_state_dict(resume["optimizer"])
    if resume.get("scaler"):
        scaler.load_state_dict(resume["scaler"])
    if resume.get("world", 1) == rank_and_world()[1]:
        set_rng_state(resume["rng"])  # another process count draws differently anyway
    if resume["step"] >= cfg.steps:
        raise ConfigError(f"the checkpoint is already at step {resume['step']}; give --steps above it to train on")
    return int(resume["step"])


def is_writer() -> bool:
    """True in the process that writes files (rank 0, or the only one)."""
    return is_main()
