"""The quality benchmark of the built-in styles, retrained against today's (issue 16), for the model cards.

    python docs/models/builtin_benchmark.py --new DIR --old DIR --out docs/models/builtin_benchmark.json
    python docs/models/builtin_benchmark.py --new DIR --keep-reference   # new models, the same references

For each NAME.safetensors in --new, ``benchmarks/quality.py --method apply`` on seeds 0 and 1 (24
photos each, 256 px, the model's own painting); the same for --old/NAME.safetensors where it exists
(the model it replaces). A new style has no predecessor: AdaIN on the same photos and painting
stands in as the reference (``--method arbitrary --pairs-file``). Each entry keeps the median and
worst 10 % of structure, style and colour distance and the lowest structure of any pair;
docs/models/make_cards.py puts them in the cards.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SEEDS = (0, 1)


def quality(args: list[str], out: Path) -> dict:
    """Run benchmarks/quality.py with ``args`` into ``out``; its summary and lowest structure."""
    cmd = [sys.executable, str(ROOT / "benchmarks" / "quality.py"), *args, "--out", str(out)]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    record = json.loads((out / "summary.json").read_text())
    with open(out / "pairs.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    s = record["summary"]["all"]
    return {
        "structure": s["structure"]["median"],
        "structure_worst10": s["structure"]["worst10"],
        "structure_lowest": min(float(r["structure"]) for r in rows),
        "style": s["style"]["median"],
        "style_worst10": s["style"]["worst10"],
        "colour": s["colour"]["median"],
        "pairs": record["pairs"],
    }


def adain_reference(apply_out: Path, work: Path) -> dict:
    """AdaIN on the photos and painting of an apply run (its pairs.csv)."""
    pairs = work / "pairs.csv"
    with open(apply_out / "pairs.csv", newline="") as f, open(pairs, "w", newline="") as g:
        w = csv.writer(g)
        w.writerow(["photo", "painting", "label"])
        for r in csv.DictReader(f):
            w.writerow([r["photo"], r["painting"], "model"])
    return quality(["--method", "arbitrary", "--pairs-file", str(pairs)], work / "adain")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--new", type=Path, required=True, help="folder of the retrained NAME.safetensors")
    p.add_argument("--old", type=Path, help="folder of the models they replace")
    p.add_argument(
        "--keep-reference",
        action="store_true",
        help="measure only the new models and keep each one's reference (old model or AdaIN) from --out",
    )
    p.add_argument("--out", type=Path, default=HERE / "builtin_benchmark.json")
    args = p.parse_args()
    if args.old is None and not args.keep_reference:
        p.error("give --old, or --keep-reference to keep the references measured before")
    results = json.loads(args.out.read_text()) if args.out.is_file() else {}
    with tempfile.TemporaryDirectory() as tmp:
        for model in sorted(args.new.glob("*.safetensors")):
            name = model.stem
            entry = {}
            for seed in SEEDS:
                work = Path(tmp) / f"{name}-{seed}"
                new = quality(["--method", "apply", "--model", str(model), "--seed", str(seed)], work / "new")
                if args.keep_reference:
                    kept = results[name][f"seed{seed}"]
                    entry[f"seed{seed}"] = {k: v for k, v in kept.items() if k != "new"} | {"new": new}
                    continue
                old_model = args.old / model.name
                if old_model.is_file():
                    before = quality(
                        ["--method", "apply", "--model", str(old_model), "--seed", str(seed)], work / "old"
                    )
                    entry[f"seed{seed}"] = {"new": new, "old": before}
                else:
                    entry[f"seed{seed}"] = {"new": new, "adain": adain_reference(work / "new", work)}
            results[name] = entry
            args.out.write_text(json.dumps(results, indent=2) + "\n")
            s0 = entry["seed0"]
            ref = s0.get("old") or s0["adain"]
            print(
                f"{name}: structure {ref['structure']:.3f} -> {s0['new']['structure']:.3f}, "
                f"style {ref['style']:.3f} -> {s0['new']['style']:.3f} "
                f"(seed 0; {'old' if 'old' in s0 else 'AdaIN'} first)"
            )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
