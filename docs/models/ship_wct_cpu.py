"""Ship the CPU fine-tuned WCT decoders (docs/models/retrain_wct_cpu.sh): their weights as they are,
their metadata made portable (no machine's paths) and every training phase recorded (``phases``:
where, how long, what changed), since the run's file only knows its own.

    python docs/models/ship_wct_cpu.py FILE [FILE ...] --notes NOTE [NOTE ...] [--out OUT]

FILEs: the decoder files of the CPU runs in the order they ran, each started from the one before
(``INIT`` of retrain_wct_cpu.sh); the last one's weights are shipped. NOTEs say what each changed.
OUT: the shipped decoders' file.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from safetensors import safe_open
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parents[2]
PHOTOS = "../shared/data/photos and ../shared/data/train less the quality benchmark's photos (3,374)"
# The phases before this script existed, from the card (docs/models/wct.md) and the shipped file's metadata.
EARLIER = [
    {
        "phase": 1,
        "where": "one NVIDIA H100",
        "levels": ["relu5_1", "relu4_1", "relu3_1", "relu2_1", "relu1_1"],
        "photos": "../shared/data/train (500)",
        "steps": 2700,
        "seconds": 268.0,
    },
    {
        "phase": 2,
        "where": "a 2-core CPU",
        "levels": ["relu2_1", "relu1_1 (least squares)"],
        "photos": "../shared/data/train (500)",
        "steps": 292,
        "seconds": 2891.0,
    },
]


def read(path: Path) -> tuple[dict, dict]:
    with safe_open(str(path), "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, f.metadata()


def phase(number: int, meta: dict, note: str) -> dict:
    config = json.loads(meta["train_config"])
    return {
        "phase": number,
        "where": "a 2-core CPU shared with other training",
        "levels": config["levels"],
        "photos": PHOTOS,
        "lr": config["lr"],
        "grid_weight": config.get("grid_weight", 0.0),
        "steps": int(meta["steps"]),
        "seconds": float(meta["train_seconds"]),
        "note": note,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", type=Path, help="the decoder files of the CPU runs, in order")
    p.add_argument("--notes", nargs="+", required=True, help="what each run changed, one per file")
    p.add_argument("--out", type=Path, default=ROOT / "src" / "stylist" / "models" / "wct_decoders.safetensors")
    args = p.parse_args()
    if len(args.notes) != len(args.runs):
        p.error("give one --notes entry per run file")
    phases = list(EARLIER)
    for path, note in zip(args.runs, args.notes):
        phases.append(phase(len(phases) + 1, read(path)[1], note))
    tensors, meta = read(args.runs[-1])
    config = json.loads(meta["train_config"])
    config["content"] = [PHOTOS]
    config["init"] = "the phase before (see phases)"
    meta["train_config"] = json.dumps(config)
    meta["phases"] = json.dumps(phases)
    meta["steps"] = str(sum(ph["steps"] for ph in phases))
    meta["train_seconds"] = str(round(sum(ph["seconds"] for ph in phases), 1))
    save_file(tensors, str(args.out), meta)
    print(f"wrote {args.out}: {meta['steps']} steps in {len(phases)} phases, {meta['train_seconds']} s")


if __name__ == "__main__":
    main()
