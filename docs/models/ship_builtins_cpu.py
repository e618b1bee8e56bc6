"""Ship built-in styles retrained by docs/models/retrain_builtins_cpu.sh into src/stylist/models.

    python docs/models/ship_builtins_cpu.py RUNS --seconds starry-night=1450 the-scream=760 ...

Copies RUNS/NAME.safetensors for each NAME given, in float16 as the built-in styles are stored (a
run resumed before `stylist train --resume` kept --half came out float32), and adds to its
metadata what `stylist train` did not record there: the training time (wall-clock seconds
between the run's start and its end, from the runs' file times, when it was given: runs started
before `train_seconds` was recorded lack it) and the hardware.

    python docs/models/ship_builtins_cpu.py RUNS --grid-stage starry-night the-scream ...

ships the runs of docs/models/grid_builtins_cpu.sh, a short fine-tune of the shipped networks with
the grid loss: their weights, with the shipped file's record kept (its training config, photos and
settings) and the stage added to it: ``grid_stage`` (steps, seconds, learning rate, grid weight,
final losses), and the steps and seconds counted in the totals.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from safetensors import safe_open
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parent.parent.parent


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", type=Path, help="the folder of the runs")
    p.add_argument("--seconds", nargs="+", default=[], metavar="NAME=S", help="each model's training seconds")
    p.add_argument("--grid-stage", nargs="+", default=[], metavar="NAME", help="ship these grid-stage runs")
    p.add_argument("--hardware", default="a 2-core CPU shared with other work (no GPU was available)")
    p.add_argument("--dest", type=Path, default=ROOT / "src" / "stylist" / "models")
    args = p.parse_args()
    for name in args.grid_stage:
        ship_grid_stage(args.runs / f"{name}.safetensors", args.dest / f"{name}.safetensors")
    for item in args.seconds:
        name, seconds = item.split("=")
        src = args.runs / f"{name}.safetensors"
        with safe_open(str(src), framework="pt") as f:
            meta = dict(f.metadata())
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        tensors = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in tensors.items()}
        meta["dtype"] = "float16"
        meta.setdefault("train_seconds", str(round(float(seconds), 1)))
        meta["train_hardware"] = args.hardware
        dest = args.dest / src.name
        save_file(tensors, str(dest), meta)
        print(f"wrote {dest}: {meta['steps']} steps, {float(meta['train_seconds']) / 60:.0f} min")


def ship_grid_stage(run: Path, dest: Path) -> None:
    with safe_open(str(dest), framework="pt") as f:
        meta = dict(f.metadata())
    with safe_open(str(run), framework="pt") as f:
        stage = dict(f.metadata())
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    if "grid_stage" in meta:
        raise SystemExit(f"{dest}: already has a grid stage; ship from the file before it")
    config = json.loads(stage["config"])
    meta["grid_stage"] = json.dumps(
        {
            "steps": int(stage["steps"]),
            "seconds": float(stage["train_seconds"]),
            "lr": config["lr"],
            "grid_weight": config["grid_weight"],
            "final_losses": json.loads(stage["final_losses"]),
        }
    )
    meta["final_losses"] = stage["final_losses"]  # the shipped weights' own
    meta["steps"] = str(int(meta["steps"]) + int(stage["steps"]))
    meta["train_seconds"] = str(round(float(meta["train_seconds"]) + float(stage["train_seconds"]), 1))
    tensors = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in tensors.items()}
    save_file(tensors, str(dest), meta)
    print(f"wrote {dest}: {meta['steps']} steps in all, the last {stage['steps']} with the grid loss")


if __name__ == "__main__":
    main()
