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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from .arbitrary import adain
from .datasets import Batch, Batches, CropDataset, excluded_names, gather_images, sampling_weights
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
from .devices import TRAIN_PRECISIONS, memory_format, train_dtype
from .errors import ConfigError, StylistError
from .image import load_tensor, resize_long_side
from .losses import grid_loss, mean_std
from .training import (  # noqa: F401  (TrainProgress, TrainResult: the names callers import from here)
    OPTIONS_ADDED_SINCE,
    FitConfig,
    TrainCallback,
    TrainProgress,
    TrainResult,
    check_checkpoint,
    fit,
    is_main,
    process_device,
    rank_and_world,
    resume_options,
    seed_everything,
)

ADAIN_STYLE_LAYERS = LEVELS[:4]  # Huang and Belongie's style loss layers


@dataclass
class DecoderTrainConfig:
    """Every option of ``stylist train-decoder``; the CLI builds its flags from these fields."""

    # adain (decoder trained with content and style losses; needs paintings) or wct (five decoders
    # trained to reconstruct photographs; needs photographs only).
    method: str = "adain"
    # Folders of photographs, searched recursively (Huang and Belongie used MS-COCO).
    content: tuple[str, ...] = ()
    # AdaIN: folders of paintings, searched recursively (Huang and Belongie used WikiArt).
    style: tuple[str, ...] = ()
    # AdaIN: a CSV saying how often each painting is drawn: a column file (path relative to the CSV,
    # or file name) and a column artist (every artist equally often) or weight (each painting in
    # proportion to it); see stylist.datasets.sampling_weights. None = every painting equally often.
    style_csv: str | None = None
    # Paintings to leave out of training, to judge the decoder on styles it never saw: file names,
    # or CSV files whose file column lists them.
    exclude_styles: tuple[str, ...] = ()
    # Optimiser steps in all (Huang and Belongie: 160000 at batch 8).
    steps: int = 10000
    # Images per step (per process under torchrun).
    batch_size: int = 8
    # Side of the square training crops, px (the papers: 256).
    image_size: int = 256
    # Photos: short side resized to image_size times a factor drawn from this range, then cropped.
    content_zoom: tuple[float, ...] = (1.0, 1.5)
    # Paintings: the same, over a wider range (heavy crops and scales: a few paintings go further).
    style_zoom: tuple[float, ...] = (1.0, 3.0)
    # Adam step (the papers: 1e-4).
    lr: float = 1e-4
    # Learning rate at step s is lr / (1 + lr_decay * s) (Huang and Belongie's schedule).
    lr_decay: float = 5e-5
    # AdaIN: weight of the content loss on the AdaIN target at relu4_1.
    content_weight: float = 1.0
    # AdaIN: weight of the mean/std style loss at relu1_1..relu4_1 (the paper: 10).
    style_weight: float = 10.0
    # WCT: weight of the pixel reconstruction loss; AdaIN: of the identity term's pixel part.
    pixel_weight: float = 1.0
    # WCT: weight lambda of the feature reconstruction loss (Li et al.: 1); AdaIN: of the identity
    # term's relu4_1 part.
    feature_weight: float = 1.0
    # WCT: the levels to train a decoder for.
    levels: tuple[str, ...] = WCT_LEVELS
    # Start from the weights of this decoder file instead of random ones (fine-tuning). WCT: the
    # file's levels that are not in --levels are carried over unchanged into the result.
    init: str | None = None
    # AdaIN: weight of an identity loss, decoder(photo's own relu4_1) against the photo: WCT's
    # reconstruction loss, --pixel-weight x pixel MSE + --feature-weight x relu4_1 MSE. 0 is the
    # paper's objective; see docs/models/adain.md for when to add it.
    identity_weight: float = 0.0
    # Weight of the grid loss (losses.grid_loss) at the period of the decoder's upsampling (8 px from
    # relu4_1): on the error of a reconstruction (WCT, AdaIN's identity term), which it leaves free
    # to match the photo, and on AdaIN's stylised output itself. It keeps the decoder from drawing
    # stripes on that grid, which VGG-measured losses cannot see. Not in either paper (flagged
    # departure); 0 turns it off.
    grid_weight: float = 1000.0
    # Seed for the initial weights and the order and placement of the crops.
    seed: int = 0
    # auto (cuda, then cpu), or an explicit torch device such as cpu or cuda:1.
    device: str = "auto"
    # Mixed precision: auto (bf16 on GPUs that have it, else fp16 on GPUs, fp32 on CPUs), fp32, bf16 or fp16.
    precision: str = "auto"
    # Processes decoding and cropping images (0: in the training process itself; at most the CPUs
    # this process may use).
    workers: int = 4
    # Stop (and save) after this many seconds of training even before --steps; None = no limit.
    time_limit: float | None = None
    # Report (and average the losses over processes) every N steps.
    log_every: int = 10

    def __post_init__(self) -> None:
        # One folder may be given as a string (the API before several folders, and older checkpoints).
        self.content = _folders(self.content)
        self.style = _folders(self.style)

    def validate(self) -> None:
        """Raise ConfigError (one line) for a value Stylist cannot use."""
        if self.method not in METHODS:
            raise ConfigError(f"unknown --method '{self.method}': use one of {', '.join(METHODS)}")
        if not self.content:
            raise ConfigError("give --content DIR, a folder of photographs")
        if self.method == "adain" and not self.style:
            raise ConfigError("--method adain needs --style DIR, a folder of paintings")
        if self.style_csv is not None and self.method != "adain":
            raise ConfigError("--style-csv weighs paintings, which only --method adain trains on; leave it out")
        for name in ("steps", "batch_size", "log_every"):
            if getattr(self, name) <= 0:
                raise ConfigError(
                    f"--{name.replace('_', '-')} must be a positive whole number; got {getattr(self, name)}"
                )
        if self.image_size < 32 or self.image_size % 16:
            raise ConfigError(f"--image-size must be a multiple of 16, at least 32; got {self.image_size}")
        for name in ("content_zoom", "style_zoom"):
            lo_hi = getattr(self, name)
            if len(lo_hi) != 2 or not (0 < lo_hi[0] <= lo_hi[1]):
                raise ConfigError(
                    f"--{name.replace('_', '-')} takes two numbers LOW HIGH with 0 < LOW <= HIGH; "
                    f"got {' '.join(map(str, lo_hi))}"
                )
        for name in ("lr", "content_weight", "style_weight", "pixel_weight"):
            if not (getattr(self, name) > 0 and math.isfinite(getattr(self, name))):
                raise ConfigError(f"--{name.replace('_', '-')} must be a positive number; got {getattr(self, name)}")
        for name in ("lr_decay", "feature_weight", "identity_weight", "grid_weight"):
            if not (getattr(self, name) >= 0 and math.isfinite(getattr(self, name))):
                raise ConfigError(f"--{name.replace('_', '-')} must be zero or positive; got {getattr(self, name)}")
        if any(lv not in LEVELS for lv in self.levels) or not self.levels:
            raise ConfigError(f"--levels takes some of {', '.join(WCT_LEVELS)}; got {' '.join(self.levels)}")
        if self.method == "wct" and tuple(self.levels) == (LINEAR_LEVEL,):
            raise ConfigError(
                f"--levels {LINEAR_LEVEL} alone leaves nothing to train "
                "(its decoder is fitted by least squares); add a deeper level"
            )
        if self.precision not in TRAIN_PRECISIONS:
            raise ConfigError(f"unknown precision '{self.precision}': use one of {', '.join(TRAIN_PRECISIONS)}")
        if self.workers < 0:
            raise ConfigError(f"--workers must be 0 or more; got {self.workers}")
        if self.time_limit is not None and not self.time_limit > 0:
            raise ConfigError(f"--time-limit must be a positive number of seconds; got {self.time_limit}")


def _folders(value: str | Sequence[str] | None) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


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
    """Train an AdaIN decoder or the WCT decoders with :func:`stylist.training.fit`.

    ``resume`` is a checkpoint dict to carry on from (see :func:`resume_config`). Runs under torchrun
    as well (one process per GPU, the data split between them); each process calls ``callback``, and
    only the caller decides which one writes files (rank 0). The result's model is the trained
    decoder(s), float32, eval mode; ``progress.preview()`` gives a grid of the last batch.
    """
    cfg.validate()
    if resume is not None:
        _check_resume(resume, cfg)
    device = process_device(cfg.device)
    seed_everything(cfg.seed)
    fmt = memory_format(device)
    # torch's stubs of Module.to omit memory_format (hence the ignore)
    model = _initial_model(cfg).to(device, memory_format=fmt)  # type: ignore[call-overload]
    linear = cfg.method == "wct" and LINEAR_LEVEL in cfg.levels
    if linear:
        model[LINEAR_LEVEL].requires_grad_(False)  # fitted by least squares below, not trained
        if resume is None:
            photos = gather_images(cfg.content, "--content")[0]
            fit_linear_decoder(model[LINEAR_LEVEL], photos, cfg.image_size, cfg.seed)
    deepest = ADAIN_LEVEL if cfg.method == "adain" else max(cfg.levels, key=LEVELS.index)
    # torch's stubs of Module.to omit memory_format (hence the ignore)
    encoder = Encoder(deepest).to(device, memory_format=fmt)  # type: ignore[call-overload]
    batches, skipped = _data(cfg)
    last: dict[str, torch.Tensor] = {}  # the last batch and its outputs, for the preview

    def loss_fn(net: nn.Module, images: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        terms, shown = (_adain_losses if cfg.method == "adain" else _wct_losses)(net, encoder, images, cfg)
        last.clear()
        last.update(shown)
        terms["total"] = sum(terms.values())
        return terms

    fit_config = FitConfig(
        steps=cfg.steps,
        lr=cfg.lr,
        device=device,
        dtype=train_dtype(cfg.precision, device),
        lr_decay=cfg.lr_decay,
        log_every=cfg.log_every,
        time_limit=cfg.time_limit,
        kind=CHECKPOINT_KIND,
        config=asdict(cfg),
        skipped=skipped,
        memory_format=fmt,
    )
    return fit(model, loss_fn, batches, fit_config, callback, resume, preview=_previewer(cfg, last))


def _initial_model(cfg: DecoderTrainConfig) -> Decoder | WCTDecoders:
    """Random weights, or those of ``cfg.init``; only --levels are trained (the rest frozen)."""
    if cfg.init is None:
        return new_decoder(cfg.method, cfg.levels)
    model = copy.deepcopy(_load_cached(cfg.method, cfg.init)).train()
    if cfg.method == "wct":
        model = cast(WCTDecoders, model)  # a wct decoder file holds WCTDecoders
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
    conv = cast(nn.Conv2d, decoder.net[-1])  # the relu1_1 decoder ends in its one convolution
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
        cast(torch.Tensor, conv.bias).copy_(solution[-1])  # the convolution has a bias
    decoder.requires_grad_(False)


def _patches(features: torch.Tensor) -> torch.Tensor:
    """(H*W, C*9 + 1): each pixel's reflection-padded 3x3 neighbourhood (as the decoder sees it).

    The last column is a 1 for the bias.
    """
    cols = F.unfold(F.pad(features, (1, 1, 1, 1), mode="reflect"), 3)[0].T
    return torch.cat([cols, torch.ones(cols.shape[0], 1, dtype=cols.dtype, device=cols.device)], 1)


def _data(cfg: DecoderTrainConfig) -> tuple[Callable[[int], Iterator[tuple[int, Batch]]], int]:
    """(batches(step): photo crops, and painting crops for AdaIN, from step ``step`` on; files skipped)."""
    # Every folder and CSV is read before any loader is made: a bad one is then the only line printed.
    photos, skipped = gather_images(cfg.content, "--content")
    paintings: list[Path] = []
    weights = None
    if cfg.method == "adain":
        paintings, more = gather_images(cfg.style, "--style")  # validate(): adain has a style folder
        excluded = excluded_names(cfg.exclude_styles)
        paintings = [p for p in paintings if p.stem not in excluded]
        if not paintings:
            raise ConfigError(f"{' '.join(cfg.style)}: every painting is excluded by --exclude-styles")
        skipped += more
        weights = sampling_weights(paintings, cfg.style_csv) if cfg.style_csv else None
    per_step = cfg.batch_size * rank_and_world()[1]
    # Loader processes start afresh every epoch (a pause of a second or so): a small folder is
    # listed several times over so that an epoch lasts at least EPOCH_STEPS steps.
    content = _batches(
        photos, cfg.image_size, cfg.content_zoom, cfg, cfg.seed, math.ceil(EPOCH_STEPS * per_step / len(photos))
    )
    style = None
    if paintings:
        # Few paintings: repeat the list so that an epoch of paintings is as long as one of photos
        # (each repeat gets its own crops), rather than one short epoch per step.
        repeat = math.ceil(max(len(content.dataset), per_step) / len(paintings))
        style = _batches(paintings, cfg.image_size, cfg.style_zoom, cfg, cfg.seed + 1, repeat, weights)

    def batches(start: int) -> Iterator[tuple[int, Batch]]:
        photo_batches = content.from_step(start)
        painting_batches = style.from_step(start) if style is not None else None
        # The crop batches hold one tensor each (see datasets.Batches), named here.
        for epoch, batch in photo_batches:
            if painting_batches is None:
                yield epoch, Batch({"content": cast(torch.Tensor, batch.images)}, batch.bad)
                continue
            _, paintings_batch = next(painting_batches)
            images = {"content": cast(torch.Tensor, batch.images), "style": cast(torch.Tensor, paintings_batch.images)}
            yield epoch, Batch(images, batch.bad + paintings_batch.bad)

    return batches, skipped


def _batches(
    files: list,
    size: int,
    zoom: Sequence[float],
    cfg: DecoderTrainConfig,
    seed: int,
    repeat: int,
    weights: list[float] | None = None,
) -> Batches:
    preload = len(files) <= PRELOAD_LIMIT
    dataset = CropDataset(files, size, seed, (zoom[0], zoom[1]), repeat=repeat, preload=preload, weights=weights)
    return Batches(dataset, cfg.batch_size, seed, cfg.workers)


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
    style: float | torch.Tensor = 0.0
    for layer in ADAIN_STYLE_LAYERS:
        (om, osd), (sm, ssd) = mean_std(fo[layer]), mean_std(fs[layer])
        style = style + F.mse_loss(om, sm) + F.mse_loss(osd, ssd)
    terms = {"content": cfg.content_weight * content, "style": cfg.style_weight * style}
    grid = grid_loss(out, grid_period(ADAIN_LEVEL))
    if cfg.identity_weight > 0:
        identity, decoded = _identity_loss(net, encoder, images["content"], fc, cfg)
        terms["identity"] = cfg.identity_weight * identity
        grid = grid + grid_loss(decoded.float() - images["content"], grid_period(ADAIN_LEVEL))
    if cfg.grid_weight > 0:
        terms["grid"] = cfg.grid_weight * grid
    return terms, {"content": images["content"], "style": images["style"], "output": out}


def _identity_loss(
    net: nn.Module, encoder: Encoder, photo: torch.Tensor, fc: torch.Tensor, cfg: DecoderTrainConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """The photo decoded from its own relu4_1 against the photo: pixels and relu4_1 features, weighed
    as in WCT's reconstruction loss (``cfg.pixel_weight``, ``cfg.feature_weight``).

    Not in Huang and Belongie's objective. Trained on stylised targets alone, a decoder never sees
    unstyled features, and with few paintings it paints every photo in their palette even at
    alpha 0; this term keeps alpha 0 a reconstruction (as the identity losses of later
    arbitrary-style papers do). Returns (the loss, the decoded photo).
    """
    out = net(fc)
    pixel = F.mse_loss(out.float(), photo)
    feature = F.mse_loss(encoder(out, ADAIN_LEVEL)[ADAIN_LEVEL].float(), fc.float())
    return cfg.pixel_weight * pixel + cfg.feature_weight * feature, out


def _wct_losses(
    net: nn.Module, encoder: Encoder, images: dict[str, torch.Tensor], cfg: DecoderTrainConfig
) -> tuple[dict, dict]:
    """Li et al.'s objective for each level's decoder: pixel plus feature reconstruction error; and the
    grid loss on each level's reconstruction error, summed over the levels as one term."""
    x = images["content"]
    with torch.no_grad():
        feats = encoder(x)
    outs = net({lv: feats[lv] for lv in cfg.levels})
    terms, grid = {}, torch.zeros((), device=x.device)
    for level, out in outs.items():
        pixel = F.mse_loss(out.float(), x)
        feature = F.mse_loss(encoder(out, level)[level].float(), feats[level].float())
        terms[level] = cfg.pixel_weight * pixel + cfg.feature_weight * feature
        grid = grid + grid_loss(out.float() - x, grid_period(level))
    if cfg.grid_weight > 0:  # one term for all levels, shown beside them
        terms["grid"] = cfg.grid_weight * grid
    return terms, {"content": x, **outs}


def grid_period(level: str) -> int:
    """The period of a decoder's upsampling grid from ``level``, px: relu1_1 1 (none) ... relu4_1 8, relu5_1 16."""
    return 2 ** LEVELS.index(level)


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


# Options a resumed run may change: none alters the state it carries on from.
RESUME_MAY_CHANGE = ("steps", "device", "precision", "workers", "time_limit", "log_every", "content", "style")


def resume_config(saved: dict, given: dict) -> DecoderTrainConfig:
    """The checkpoint's options with those ``given`` (field -> value) that a resume may change.

    ConfigError (one line) for a file that is not a current checkpoint of ``stylist train-decoder``,
    or when ``given`` changes an option outside :data:`RESUME_MAY_CHANGE`.
    """
    check_checkpoint(saved, CHECKPOINT_KIND, "stylist train-decoder")
    return DecoderTrainConfig(**resume_options(saved["config"], given, RESUME_MAY_CHANGE, OPTIONS_ADDED_SINCE))


def _check_resume(state: dict, cfg: DecoderTrainConfig) -> None:
    check_checkpoint(state, CHECKPOINT_KIND, "stylist train-decoder")
    if state["config"]["method"] != cfg.method:
        raise StylistError("the checkpoint is not one of this method's decoder training")
    if state["step"] >= cfg.steps:
        raise ConfigError(f"the checkpoint is already at step {state['step']}; give --steps above it to train on")
