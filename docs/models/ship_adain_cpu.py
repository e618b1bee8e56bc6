"""Ship the CPU-retrained AdaIN decoder (docs/models/retrain_adain_cpu.sh): its weights as they are,
its metadata made portable (data folders relative to the repository, as ``../shared/data/...``) and
every training stage recorded (``stages``: steps, seconds and what changed), since the file of the
last stage only knows its own.

    python docs/models/ship_adain_cpu.py RUNS [OUT]    # OUT: src/stylist/models/adain_decoder.safetensors

With RUNS/run3 (stage 3, the grid loss) the stages before it are read from the file it started from
(``--stage2``, the decoder shipped before it, which records stages 1 and 2).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from safetensors import safe_open
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parents[2]


def portable(text: str, data: str) -> str:
    return text.replace(data, "../shared/data")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", type=Path, help="the folder holding run1/ and run2/")
    shipped = ROOT / "src" / "stylist" / "models" / "adain_decoder.safetensors"
    p.add_argument("out", nargs="?", type=Path, default=shipped)
    p.add_argument("--data", default="/work/shared/data", help="the data folder the runs read (in their metadata)")
    p.add_argument("--stage2", type=Path, default=shipped, help="stage 3: the stage-2 decoder file it started from")
    args = p.parse_args()
    if (args.runs / "run3" / "adain_cpu.safetensors").exists():
        return ship_stage3(args)
    metas = []
    for run in ("run1", "run2"):
        with safe_open(str(args.runs / run / "adain_cpu.safetensors"), "pt") as f:
            metas.append(f.metadata())
            if run == "run2":
                tensors = {k: f.get_tensor(k) for k in f.keys()}
    last = metas[1]
    done = [{"steps": int(m["steps"]), "seconds": float(m["train_seconds"])} for m in metas]
    stages = [
        {"stage": 1, "init": "the WCT decoders' relu4_1 level (docs/models/adain_from_wct.py)", "pixel_weight": 1},
        {"stage": 2, "init": "stage 1's file", "pixel_weight": 50},
    ]
    stages = [{**s, "identity_weight": 4, **d} for s, d in zip(stages, done)]
    meta = {k: portable(v, args.data) for k, v in last.items()}
    write(tensors, meta, stages, "stage 1's file (see stages)", args.out)


def write(tensors: dict, meta: dict, stages: list[dict], init: str, out: Path) -> None:
    """The decoder file with every stage recorded and the totals of steps and seconds."""
    config = json.loads(meta["train_config"])
    config["init"] = init
    meta["train_config"] = json.dumps(config)
    meta["stages"] = json.dumps(stages)
    meta["steps"] = str(sum(s["steps"] for s in stages))
    meta["train_seconds"] = str(round(sum(s["seconds"] for s in stages), 1))
    save_file(tensors, str(out), meta)
    print(f"wrote {out}: {meta['steps']} steps, {meta['train_seconds']} s on {meta['train_device']}")


def ship_stage3(args: argparse.Namespace) -> None:
    with safe_open(str(args.stage2), "pt") as f:
        stages = json.loads(f.metadata()["stages"])
    with safe_open(str(args.runs / "run3" / "adain_cpu.safetensors"), "pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
        meta = {k: portable(v, args.data) for k, v in f.metadata().items()}
    config = json.loads(meta["train_config"])
    stages.append(
        {
            "stage": 3,
            "init": "stage 2's file",
            "pixel_weight": config["pixel_weight"],
            "identity_weight": config["identity_weight"],
            "grid_weight": config["grid_weight"],
            # The run that made the shipped file used the term's first form on the identity part.
            "grid_on": "the stylised output and the decoded photo itself (since then: the decoded photo's error)",
            "steps": int(meta["steps"]),
            "seconds": float(meta["train_seconds"]),
        }
    )
    write(tensors, meta, stages, "stage 2's file (see stages)", args.out)


if __name__ == "__main__":
    main()
