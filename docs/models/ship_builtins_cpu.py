"""Ship built-in styles retrained by docs/models/retrain_builtins_cpu.sh into src/stylist/models.

    python docs/models/ship_builtins_cpu.py RUNS --seconds starry-night=1450 the-scream=760 ...

Copies RUNS/NAME.safetensors for each NAME given, in float16 as the built-in styles are stored (a
run resumed before `stylist train --resume` kept --half came out float32), and adds to its
metadata what `stylist train` did not record there: the training time (wall-clock seconds
between the run's start and its end, from the runs' file times, when it was given: runs started
before `train_seconds` was recorded lack it) and the hardware.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from safetensors import safe_open
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parent.parent.parent


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", type=Path, help="the folder of the runs")
    p.add_argument("--seconds", nargs="+", required=True, metavar="NAME=S", help="each model's training seconds")
    p.add_argument("--hardware", default="a 2-core CPU shared with other work (no GPU was available)")
    p.add_argument("--dest", type=Path, default=ROOT / "src" / "stylist" / "models")
    args = p.parse_args()
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


if __name__ == "__main__":
    main()
