"""Benchmark: stylist's optimisation loop against a textbook loop, on the same inputs.

The textbook loop is written here the way the PyTorch neural-transfer tutorial sets it up:
an ``nn.Sequential`` of VGG-19 layers with loss modules slotted in after the chosen ReLUs,
out-of-place ReLUs, fp32 NCHW, and a full forward through every layer up to pool5 on
every step. It optimises the same objective as stylist's defaults (same weights,
preprocessing, layer weights, 'mean' normalisation and per-layer balance), so losses
are comparable; both loops' images are scored by the same fp32 function in the end.

Two measurements:
1. seconds per L-BFGS iteration at each size, single scale (ours in fp32 and in its
   default precision) -> ratio ours / textbook, goal <= 0.7;
2. time to quality at one size: the textbook's wall time T_ref for --steps L-BFGS
   iterations and its final loss L_ref, against the wall time our default schedule
   (multi-scale, default precision) needs to first reach L_ref -> goal <= T_ref / 3.

Run: python benchmarks/optimize.py   (about 12 minutes on a 2-core CPU; results table in docs/benchmarks.md)
Smoke: python benchmarks/optimize.py --sizes 128 --quality-size 128 --steps 20 --iterations 30 --out /tmp/o.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from stylist.image import fit_size, load_tensor, resize, resize_long_side
from stylist.optimize import (
    Objective,
    TransferConfig,
    build_network,
    evaluate,
    resolve_device,
    resolve_precision,
    stylize,
)
from stylist.vgg import layer_names
from stylist.weights import PREPROCESSING, load_weights

ROOT = Path(__file__).resolve().parent.parent
CONTENT = ROOT / "examples/content/kodak_lighthouse_coast.jpg"
STYLE = ROOT / "examples/style/starry_night.jpg"
SPEED_GOAL = 0.7  # ours / textbook seconds per iteration
QUALITY_GOAL = 1 / 3  # ours / textbook wall time to the textbook's final loss


# --- the textbook loop ---------------------------------------------------------------------


class Normalize(nn.Module):
    """RGB [0, 1] -> the weights' own input (for vgg19-caffe: BGR, 0..255, mean pixel removed)."""

    def __init__(self, pre: dict) -> None:
        super().__init__()
        self.bgr = pre["bgr"]
        mean, std = torch.tensor(pre["mean"]).view(1, 3, 1, 1), torch.tensor(pre["std"]).view(1, 3, 1, 1)
        self.register_buffer("mean", mean.flip(1) if self.bgr else mean)
        self.register_buffer("std", std.flip(1) if self.bgr else std)
        self.pixel_max = pre["pixel_max"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flip(1) if self.bgr else x
        return (x * self.pixel_max - self.mean) / self.std


def plain_gram(f: torch.Tensor) -> torch.Tensor:
    b, c, h, w = f.shape
    flat = f.view(b * c, h * w)
    return flat @ flat.t() / (b * c * h * w)


class ContentTerm(nn.Module):
    """Transparent layer that stores weight * mean((F/s - P/s)^2) and passes its input on."""

    def __init__(self, target: torch.Tensor, scale: float, weight: float) -> None:
        super().__init__()
        self.target, self.scale, self.weight = target.detach() / scale, scale, weight
        self.loss = torch.zeros(())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.loss = self.weight * (x / self.scale - self.target).pow(2).mean()
        return x


class StyleTerm(nn.Module):
    """Transparent layer that stores weight * ||G(F/s) - A||^2 and passes its input on."""

    def __init__(self, style_features: torch.Tensor, scale: float, weight: float) -> None:
        super().__init__()
        self.target = plain_gram(style_features.detach() / scale)
        self.scale, self.weight = scale, weight
        self.loss = torch.zeros(())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.loss = self.weight * (plain_gram(x / self.scale) - self.target).pow(2).sum()
        return x


def vgg_layer(name: str, state: dict[str, torch.Tensor], pooling: str) -> nn.Module:
    if name.startswith("conv"):
        w = state[f"{name}.weight"]
        conv = nn.Conv2d(w.shape[1], w.shape[0], 3, padding=1)
        conv.weight.data.copy_(w)
        conv.bias.data.copy_(state[f"{name}.bias"])
        return conv
    if name.startswith("relu"):
        return nn.ReLU(inplace=False)  # in place would overwrite what the loss modules saw
    return nn.MaxPool2d(2, 2) if pooling == "max" else nn.AvgPool2d(2, 2)


def build_textbook(
    cfg: TransferConfig, content: torch.Tensor, style: torch.Tensor, device: torch.device
) -> tuple[nn.Sequential, list[nn.Module]]:
    """Grow the network layer by layer; at each loss layer, targets come from the VGG layers so far."""
    assert cfg.normalization == "mean" and cfg.tv_weight == 0, "the textbook loop implements the default objective only"
    loaded = load_weights(cfg.weights, cfg.weights_preprocessing)
    content_w = {n: 1 / len(cfg.content_layers) for n in cfg.content_layers}
    style_w = {n: 1 / len(cfg.style_layers) for n in cfg.style_layers}
    norm = Normalize(PREPROCESSING[loaded.preprocessing]).to(device)
    model = nn.Sequential(norm)
    # The same layer modules without the loss modules: the painting's size differs from the photo's,
    # so it cannot pass through the content terms.
    trunk = nn.Sequential(norm)
    terms: list[nn.Module] = []
    for name in layer_names(loaded.arch):  # every layer up to pool5: no truncation
        layer = vgg_layer(name, loaded.state, cfg.pooling).to(device)
        model.add_module(name, layer)
        trunk.add_module(name, layer)
        if name not in content_w and name not in style_w:
            continue
        with torch.no_grad():
            fc = trunk(content)
            # Stylist's layer balance: the weight source's feature norms (measured on the photo without a table).
            table = loaded.feature_norms if cfg.pooling == "max" else None
            scale = (table[name] if table else max(float(fc.clamp_min(0).mean()), 1e-6)) if cfg.layer_balance else 1.0
            if name in content_w:
                terms.append(ContentTerm(fc, scale, cfg.content_weight * content_w[name]))
                model.add_module(f"content_{name}", terms[-1])
            if name in style_w:
                terms.append(StyleTerm(trunk(style), scale, cfg.style_weight * style_w[name]))
                model.add_module(f"style_{name}", terms[-1])
    return model.requires_grad_(False).eval(), terms


def run_textbook(
    model: nn.Sequential, terms: list[nn.Module], x0: torch.Tensor, steps: int, device: torch.device
) -> tuple[torch.Tensor, list[float], list[float]]:
    """``steps`` L-BFGS iterations from x0; returns the image, each step's loss and its end time."""
    img = x0.clone().requires_grad_(True)
    # max_iter=1 makes one step() one iteration and one forward/backward, as in our loop; the
    # tutorial's max_iter=20 runs the same iterations in batches of 20. Tolerances are 0 as in
    # ours: with size-independent 'mean' losses the per-pixel gradients fall below the default
    # 1e-7 and L-BFGS would silently stop moving. Everything else is the tutorial's default.
    opt = torch.optim.LBFGS([img], lr=1.0, max_iter=1, history_size=100, tolerance_grad=0.0, tolerance_change=0.0)

    def closure() -> torch.Tensor:
        with torch.no_grad():
            img.clamp_(0, 1)  # the tutorial clamps at the start of each evaluation
        opt.zero_grad()
        model(img)
        loss = sum(t.loss for t in terms)
        loss.backward()
        return loss

    losses, times = [], []
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        losses.append(float(opt.step(closure).detach()))
        sync(device)
        times.append(time.perf_counter() - start)
    with torch.no_grad():
        img.clamp_(0, 1)
    return img.detach(), losses, times


# --- helpers -------------------------------------------------------------------------------


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"CPU: {line.split(':', 1)[1].strip()}"
    except OSError:
        pass
    return f"CPU: {platform.processor() or platform.machine()}"


def inputs(long_side: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Content and style tensors resized exactly as stylize does at a single scale."""
    c = load_tensor(str(CONTENT))
    hw = fit_size(*c.shape[-2:], long_side)
    return resize(c, hw).to(device), resize_long_side(load_tensor(str(STYLE)), max(hw)).to(device)


def per_step(times: list[float], warmup: int) -> float:
    """Median seconds per iteration after the warm-up (robust to hiccups on shared machines)."""
    return statistics.median(b - a for a, b in zip(times[warmup - 1 : -1], times[warmup:]))


# --- measurements --------------------------------------------------------------------------


def time_per_iteration(size: int, args: argparse.Namespace, device: torch.device) -> dict:
    n = args.warmup + args.timed
    c, s = inputs(size, device)
    best: dict[str, float] = {}
    for _ in range(args.repeats):  # interleaved, so slow spells of the machine hit all three
        model, terms = build_textbook(TransferConfig(), c, s, device)
        times = run_textbook(model, terms, c, n, device)[2]
        best["textbook"] = min(best.get("textbook", float("inf")), per_step(times, args.warmup))
        for precision in ("fp32", "auto"):
            cfg = TransferConfig(
                size=size,
                iterations=n,
                multiscale=False,
                early_stop_patience=0,
                precision=precision,
                device=str(device),
            )
            history = stylize(str(CONTENT), str(STYLE), cfg).history
            best[precision] = min(
                best.get(precision, float("inf")), per_step([h["seconds"] for h in history], args.warmup)
            )
    row = {
        "size": list(c.shape[-2:]),
        "textbook_s_per_iter": best["textbook"],
        "ours_fp32_s_per_iter": best["fp32"],
        "ours_default_s_per_iter": best["auto"],
        "ours_default_precision": resolve_precision("auto", device),
        "ratio_fp32": best["fp32"] / best["textbook"],
        "ratio_default": best["auto"] / best["textbook"],
    }
    row["goal_met_fp32"], row["goal_met_default"] = row["ratio_fp32"] <= SPEED_GOAL, row["ratio_default"] <= SPEED_GOAL
    return row


def first_reach(
    snaps: list, target: float, score, hw: tuple[int, int], device: torch.device, stride: int = 10
) -> int | None:
    """Index of the first snapshot whose fp32 loss is <= target, or None.

    Scores every ``stride``-th snapshot (and the last) until one passes, then the skipped ones
    before it, so the answer is the first one below target unless the loss dipped and rose
    again inside a skipped stretch.
    """
    scored: dict[int, float] = {}

    def loss(i: int) -> float:
        if i not in scored:
            with torch.no_grad():  # a callback stop returns the image resized to full size
                scored[i] = float(score(resize(snaps[i][3], hw).to(device))["total"])
        return scored[i]

    last = -1
    for i in range(len(snaps)):
        if (i + 1) % stride and i != len(snaps) - 1:
            continue
        if loss(i) <= target:
            return next(j for j in range(last + 1, i + 1) if loss(j) <= target)
        last = i
    return None


def ours_to(cfg: TransferConfig, target: float, score, device: torch.device) -> dict:
    """Run stylize with ``cfg``, snapshotting every iteration; score afterwards, off the clock."""
    snaps: list[tuple[float, int, int, torch.Tensor]] = []

    def keep(p) -> None:
        snaps.append((time.perf_counter() - start, p.step, p.level, p.image))

    sync(device)
    start = time.perf_counter()
    result = stylize(str(CONTENT), str(STYLE), cfg, keep)
    wall = time.perf_counter() - start
    hw = tuple(result.image.shape[-2:])
    i = first_reach(snaps, target, score, hw, device)
    reached = None
    if i is not None:
        t, step, level, img = snaps[i]
        loss = evaluate(resize(img, hw), str(CONTENT), str(STYLE), cfg, str(device))["total"]
        reached = {"wall_s": t, "step": step, "level": level, "size": list(img.shape[-2:]), "loss": loss}
    levels = [h["level"] for h in result.history]
    return {
        "config": {
            "iterations": cfg.iterations,
            "multiscale": cfg.multiscale,
            "precision": result.precision,
            "early_stop_patience": cfg.early_stop_patience,
        },
        "iterations_per_level": [levels.count(lv) for lv in range(max(levels) + 1)],
        "stopped": result.stopped,
        "wall_s": wall,
        "final_loss": evaluate(result.image, str(CONTENT), str(STYLE), cfg, str(device))["total"],
        # The loop's own last loss, in its own precision (the objective is evaluate()'s).
        "final_loss_in_loop": result.history[-1]["total"],
        "reached_textbook_loss": reached,
    }


def time_to_quality(size: int, args: argparse.Namespace, device: torch.device) -> dict:
    cfg = TransferConfig(size=size, device=str(device))
    if args.iterations:
        cfg.iterations = args.iterations
    # Textbook: the clock includes loading images and weights and building the targets, as ours does.
    sync(device)
    start = time.perf_counter()
    c, s = inputs(size, device)
    model, terms = build_textbook(cfg, c, s, device)
    ref_img, ref_losses, ref_times = run_textbook(model, terms, c, args.steps, device)
    t_ref = time.perf_counter() - start
    setup = t_ref - ref_times[-1]
    l_ref = evaluate(ref_img, str(CONTENT), str(STYLE), cfg, str(device))["total"]

    # One fp32 scorer, the same Objective that evaluate() builds (evaluate rebuilds the network
    # on every call, ~1 s each here); the images reported are re-scored by evaluate() itself.
    score = Objective(build_network(cfg, device), cfg, c, [s], precision="fp32")
    runs = {"default": ours_to(cfg, l_ref, score, device)}
    # Diagnostic, not the goal: the same loop at one scale (see docs/benchmarks.md).
    runs["single_scale"] = ours_to(replace(cfg, multiscale=False), l_ref, score, device)
    for run in runs.values():
        run["ratio"] = run["reached_textbook_loss"]["wall_s"] / t_ref if run["reached_textbook_loss"] else None
        # The other way round: when the textbook's loss (the image after k steps) first got to ours' final.
        k = next((k for k, v in enumerate(ref_losses) if k and v <= run["final_loss"]), None)
        run["textbook_wall_s_to_this_final_loss"] = setup + ref_times[k - 1] if k else None
    return {
        "size": list(ref_img.shape[-2:]),
        "textbook": {
            "steps": args.steps,
            "wall_s": t_ref,
            "loop_s": ref_times[-1],
            "final_loss": l_ref,
            # Its own loss at the content photo: equal to evaluate() there when the objectives agree.
            "initial_loss": ref_losses[0],
            "initial_loss_evaluate": evaluate(c, str(CONTENT), str(STYLE), cfg, str(device))["total"],
            "loss_every_50": ref_losses[::50] + [ref_losses[-1]],
        },
        "ours": runs,
        "ratio": runs["default"]["ratio"],
        "goal_met": bool(runs["default"]["ratio"] is not None and runs["default"]["ratio"] <= QUALITY_GOAL),
    }


def markdown(report: dict) -> str:
    lines = [
        "| size (HxW) | textbook s/iter | ours fp32 s/iter | ratio | ours default s/iter | ratio | goal <= 0.7 |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in report["per_iteration"]:
        met = "met" if r["goal_met_default"] else "missed"
        lines.append(
            f"| {r['size'][0]}x{r['size'][1]} | {r['textbook_s_per_iter']:.3f} | {r['ours_fp32_s_per_iter']:.3f} "
            f"| {r['ratio_fp32']:.2f} "
            f"| {r['ours_default_s_per_iter']:.3f} ({r['ours_default_precision']}) | {r['ratio_default']:.2f} "
            f"| fp32 {'met' if r['goal_met_fp32'] else 'missed'}, default {met} |"
        )
    q = report.get("time_to_quality")
    if q:
        tb = q["textbook"]
        lines += [
            "",
            "| loop | wall s | final fp32 loss | first at/below textbook's loss | ratio to textbook "
            "| textbook s to this final loss |",
            "|---|---|---|---|---|---|",
        ]
        lines.append(
            f"| textbook, {tb['steps']} L-BFGS steps, fp32 | {tb['wall_s']:.1f} | {tb['final_loss']:.3f} | | | |"
        )
        for name, run in q["ours"].items():
            hit, back = run["reached_textbook_loss"], run["textbook_wall_s_to_this_final_loss"]
            reach, ratio = (
                (f"{hit['wall_s']:.1f} s (step {hit['step']}, loss {hit['loss']:.3f})", f"{run['ratio']:.2f}")
                if hit
                else ("never", "-")
            )
            back_s = f"{back:.1f}" if back is not None else "not reached"
            label = f"ours {name} ({sum(run['iterations_per_level'])} its, {run['config']['precision']})"
            lines.append(f"| {label} | {run['wall_s']:.1f} | {run['final_loss']:.3f} | {reach} | {ratio} | {back_s} |")
        lines.append(
            "\ntime-to-quality goal (default schedule, <= 1/3 of the textbook's time): "
            f"{'met' if q['goal_met'] else 'missed'}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[256, 512], help="long sides for the per-iteration timing"
    )
    parser.add_argument(
        "--quality-size", type=int, default=512, help="long side for the time-to-quality run (0 skips it)"
    )
    parser.add_argument("--steps", type=int, default=300, help="textbook L-BFGS steps in the time-to-quality run")
    parser.add_argument(
        "--iterations", type=int, default=None, help="override our schedule's iterations (smoke runs only)"
    )
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--timed", type=int, default=20, help="timed iterations per loop and size")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved repeats; the fastest is kept")
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--out", type=Path, default=None, help="JSON path; default benchmarks/results/optimize-{cpu,cuda}.json"
    )
    args = parser.parse_args()
    device = resolve_device(args.device)
    args.out = args.out or ROOT / f"benchmarks/results/optimize-{device.type}.json"
    torch.manual_seed(0)

    report: dict = {
        "device": device_name(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        # Other work on the machine skews every number here; the load average shows whether there was any.
        "loadavg_at_start": os.getloadavg(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["python", *sys.argv]),
        "content": str(CONTENT.relative_to(ROOT)),
        "style": str(STYLE.relative_to(ROOT)),
        "goals": {"time_per_iteration_ratio": SPEED_GOAL, "time_to_quality_ratio": QUALITY_GOAL},
        "per_iteration": [],
    }
    for size in args.sizes:
        report["per_iteration"].append(time_per_iteration(size, args, device))
        print(json.dumps(report["per_iteration"][-1]), flush=True)
    if args.quality_size:
        report["time_to_quality"] = time_to_quality(args.quality_size, args, device)
    report["loadavg_at_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(markdown(report))
    print(f"\nwritten {args.out}")


if __name__ == "__main__":
    main()
