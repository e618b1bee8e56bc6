"""Quality benchmark: every method over a fixed, seeded sample of photo-painting pairs.

For each pair it runs one method through the public API (``stylist.transfer``, ``stylist.load_model``,
``stylist.api.arbitrary``), measures the result with :mod:`stylist.quality` (structure kept, copying,
style closeness, colour closeness, and a few second opinions), and writes into ``--out``:

- ``pairs.csv``: one row per pair (photo, painting, label, the measures, seconds);
- ``summary.json`` and ``summary.md``: median and worst 10 % of each measure, for all pairs and for the
  figurative and non-figurative ones, and the count of pairs whose result is structurally closer to the
  painting than to the photo (copying >= structure);
- ``sheet-<measure>.jpg``: photo | painting | result of the worst pairs for each measure, labelled;
- ``results/<id>.jpg``: each result, to look at.

The sample: photos from ``content/`` (every fourth pair) and ``photos/`` of the data folder; paintings
from ``benchmarks/quality_paintings.csv`` (labels checked by eye; see docs/quality.md), alternately
figurative and not, the artist drawn first so that no artist (Monet) dominates. The first k pairs of a
sample are the same whatever ``--pairs`` is. The bundled examples' paintings are not in the list (but
Monet's Water Lilies, bundled later; see docs/quality.md).
``apply`` measures each built-in model against its own painting (the sample's photos only); ``given``
measures results made elsewhere, named in ``--pairs-file`` (columns photo, painting, label, result).

    PYTHONPATH=src python benchmarks/quality.py --method arbitrary --set method=wct --out /tmp/q-wct
    PYTHONPATH=src python benchmarks/quality.py --method apply --model the-scream
    PYTHONPATH=src python benchmarks/quality.py --method transfer --set style_layers='["relu1_1","relu2_1"]'
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import random
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image, ImageDraw

import stylist
from stylist import quality
from stylist.api import arbitrary as api_arbitrary
from stylist.feedforward import builtin_models
from stylist.image import load_tensor, to_pil, to_tensor

HERE = Path(__file__).resolve().parent
LABELS = HERE / "quality_paintings.csv"
# The shared data folder: $STYLIST_DATA, or ../shared/data beside the checkout, or shared/data inside it.
DATA_CANDIDATES = (HERE.parent.parent / "shared" / "data", HERE.parent / "shared" / "data", Path("/work/shared/data"))
# Which side of each measure is bad, for "worst 10 %" and the contact sheets.
WORSE = {
    "structure": "low",
    "copying": "high",
    "style": "high",
    "colour": "high",
    "structure_ssim": "low",
    "copying_ssim": "high",
    "style_meanstd": "high",
    "psnr": "low",
}
SHEET_ROWS = 4
THUMB = 160


@dataclass
class Pair:
    id: int
    photo: Path
    painting: Path
    label: str  # figurative, non-figurative, or given (pairs from --pairs-file)
    result: Path | None = None  # --method given: a result made elsewhere


# --- the sample ----------------------------------------------------------------------------------------


def read_labels(path: Path) -> dict[str, dict[str, list[str]]]:
    """{label: {artist: [painting file names]}} from a CSV of file, artist, label."""
    groups: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            groups[row["label"]][row["artist"]].append(row["file"])
    return groups


def photo_files(data: Path) -> tuple[list[Path], list[Path]]:
    content = sorted((data / "content").glob("*.jpg"))
    with open(data / "photos.csv", newline="") as f:
        photos = [data / row["file"] for row in csv.DictReader(f)]
    return content, sorted(photos)


def default_data() -> Path:
    if os.environ.get("STYLIST_DATA"):
        return Path(os.environ["STYLIST_DATA"])
    return next((d for d in DATA_CANDIDATES if (d / "photos.csv").is_file()), DATA_CANDIDATES[0])


def sample_pairs(n: int, seed: int, data: Path, labels: Path = LABELS) -> list[Pair]:
    """``n`` pairs: even ids figurative, odd ids not; every fourth photo from content/. Prefix-stable:
    every shuffle is drawn before the loop, and pair i's painting from a generator seeded by (seed, i)."""
    rng = random.Random(seed)
    content, photos = photo_files(data)
    rng.shuffle(content)
    rng.shuffle(photos)
    groups = read_labels(labels)
    artists = {}
    for label in ("figurative", "non-figurative"):
        names = sorted(groups[label])
        rng.shuffle(names)
        artists[label] = names
    pairs = []
    for i in range(n):
        label = "figurative" if i % 2 == 0 else "non-figurative"
        artist = artists[label][(i // 2) % len(artists[label])]
        painting = random.Random(f"{seed}:{i}").choice(sorted(groups[label][artist]))
        photo = content[(i // 4) % len(content)] if i % 4 == 0 else photos[(i - i // 4 - 1) % len(photos)]
        pairs.append(Pair(i, photo, data / "paintings" / painting, label))
    return pairs


def read_pairs_file(path: Path) -> list[Pair]:
    """Pairs from a CSV with columns photo, painting and optionally label and result (a result made
    elsewhere, for ``--method given``): calibration cases, held-out paintings."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return [
        Pair(
            i,
            Path(r["photo"]),
            Path(r["painting"]),
            r.get("label") or "given",
            Path(r["result"]) if r.get("result") else None,
        )
        for i, r in enumerate(rows)
    ]


# --- the methods ---------------------------------------------------------------------------------------


def parse_sets(items: list[str]) -> dict:
    """``key=value`` options; values read as JSON where they parse (numbers, lists, true), else text."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            sys.exit(f"--set takes key=value; got '{item}'")
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = value
        out[key.strip()] = tuple(parsed) if isinstance(parsed, list) else parsed
    return out


Runner = Callable[[Pair], torch.Tensor]


def transfer_runner(size: int, options: dict) -> Runner:
    def run(pair: Pair) -> torch.Tensor:
        return to_tensor(stylist.transfer(pair.photo, pair.painting, size=size, **options))

    return run


def arbitrary_runner(size: int, options: dict) -> Runner:
    def run(pair: Pair) -> torch.Tensor:
        return to_tensor(api_arbitrary(pair.photo, pair.painting, size=size, **options))

    return run


def apply_runner(size: int, model: stylist.StyleModel, options: dict) -> Runner:
    def run(pair: Pair) -> torch.Tensor:
        return model(load_tensor(pair.photo, "photo"), size=size, **options)

    return run


def given_runner(pair: Pair) -> torch.Tensor:
    if pair.result is None:
        sys.exit(f"--method given needs a result column in --pairs-file (pair {pair.id} has none)")
    return load_tensor(pair.result, "result")


def model_painting(model: stylist.StyleModel, data: Path) -> Path:
    """The painting a built-in model was trained on, from its metadata's style_name."""
    name = model.metadata.get("style_name", "")
    for folder in (
        Path(stylist.__file__).parent / "examples" / "style",
        HERE.parent / "examples" / "style",
        data / "style",
    ):
        if (folder / name).is_file():
            return folder / name
    sys.exit(f"cannot find the painting '{name}' of model {model.name}: give it with --painting")


# --- measuring and writing -----------------------------------------------------------------------------


def run_pairs(pairs: list[Pair], runner: Runner, out: Path, resume: bool) -> list[dict]:
    """Run and measure every pair, one CSV row each (written as it goes, so a stopped run resumes)."""
    (out / "results").mkdir(parents=True, exist_ok=True)
    csv_path = out / "pairs.csv"
    rows = read_rows(csv_path) if resume and csv_path.is_file() else []
    done = {int(r["id"]) for r in rows}
    fields = ["id", "label", "photo", "painting", *quality.MEASURES, *quality.EXTRA_MEASURES, "seconds"]
    if not rows:
        with open(csv_path, "w", newline="") as f:
            csv.DictWriter(f, fields).writeheader()
    net = quality.default_network()
    for pair in pairs:
        if pair.id in done:
            continue
        t0 = time.perf_counter()
        result = runner(pair).float().clamp(0, 1)
        seconds = time.perf_counter() - t0
        m = quality.measure(result, load_tensor(pair.photo, "photo"), load_tensor(pair.painting, "painting"), net)
        to_pil(result).save(out / "results" / f"{pair.id:03d}.jpg", quality=92)
        row = {"id": pair.id, "label": pair.label, "photo": str(pair.photo), "painting": str(pair.painting)}
        row.update({k: round(v, 4) for k, v in m.items()})
        row["seconds"] = round(seconds, 2)
        with open(csv_path, "a", newline="") as f:
            csv.DictWriter(f, fields).writerow(row)
        rows.append(row)
        print(f"pair {pair.id}: " + " ".join(f"{k} {row[k]}" for k in (*quality.MEASURES, "seconds")), flush=True)
    return sorted(rows, key=lambda r: int(r["id"]))


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def worst_decile(values: list[float], side: str) -> float:
    """The value at the bad 10 % point: the 10th percentile for low-is-bad, the 90th for high-is-bad."""
    v = sorted(values)
    k = min(len(v) - 1, max(0, math.ceil(0.1 * len(v)) - 1))
    return v[k] if side == "low" else v[len(v) - 1 - k]


def summarise(rows: list[dict]) -> dict:
    groups = {"all": rows}
    for label in sorted({r["label"] for r in rows}):
        groups[label] = [r for r in rows if r["label"] == label]
    out = {}
    for name, group in groups.items():
        if not group:
            continue
        g: dict = {"pairs": len(group)}
        for m, side in WORSE.items():
            values = [float(r[m]) for r in group if math.isfinite(float(r[m]))]
            if values:
                g[m] = {"median": statistics.median(values), "worst10": worst_decile(values, side)}
        g["closer_to_painting"] = sum(float(r["copying"]) >= float(r["structure"]) for r in group)
        g["copying_flagged"] = sum(float(r["copying"]) >= quality.COPYING_FLAG for r in group)
        g["seconds_median"] = statistics.median(float(r["seconds"]) for r in group)
        out[name] = g
    return out


def markdown(title: str, command: str, summary: dict) -> str:
    lines = [f"# {title}", "", f"`{command}`", ""]
    head = "| group | pairs | structure | copying | style | colour | closer to painting | copying flagged | s/pair |"
    lines += [head, "|---|---|---|---|---|---|---|---|---|"]
    for name, g in summary.items():
        cells = [f"{g[m]['median']:.3f} ({g[m]['worst10']:.3f})" for m in quality.MEASURES]
        lines.append(
            f"| {name} | {g['pairs']} | "
            + " | ".join(cells)
            + f" | {g['closer_to_painting']} | {g['copying_flagged']} | {g['seconds_median']:.1f} |"
        )
    lines += [
        "",
        "median (worst 10 %); closer to painting: pairs with copying >= structure;"
        f" copying flagged: pairs with copying >= {quality.COPYING_FLAG}.",
    ]
    return "\n".join(lines) + "\n"


def thumb(path_or_image: Path | Image.Image) -> Image.Image:
    im = Image.open(path_or_image) if isinstance(path_or_image, Path) else path_or_image
    im = im.convert("RGB")
    im.thumbnail((THUMB, THUMB))
    return im


def contact_sheet(rows: list[dict], measure: str, out: Path, results: Path) -> Path:
    """photo | painting | result of the worst ``SHEET_ROWS`` pairs by ``measure``, each row labelled."""
    reverse = WORSE[measure] == "high"
    worst = sorted(rows, key=lambda r: float(r[measure]), reverse=reverse)[:SHEET_ROWS]
    label_h, pad = 30, 4
    sheet = Image.new("RGB", (3 * (THUMB + pad) + pad, len(worst) * (THUMB + label_h + pad) + pad), "white")
    draw = ImageDraw.Draw(sheet)
    for j, r in enumerate(worst):
        y = pad + j * (THUMB + label_h + pad)
        text = (
            f"#{r['id']} {r['label']}  structure {float(r['structure']):.2f}  copying {float(r['copying']):.2f}"
            f"  style {float(r['style']):.2f}  colour {float(r['colour']):.1f}\n"
            f"{Path(r['photo']).stem[:40]} | {Path(r['painting']).stem[:48]}"
        )
        draw.multiline_text((pad, y), text, fill="black", spacing=1)
        images = (Path(r["photo"]), Path(r["painting"]), results / f"{int(r['id']):03d}.jpg")
        for k, src in enumerate(images):
            sheet.paste(thumb(src), (pad + k * (THUMB + pad), y + label_h))
    path = out / f"sheet-{measure}.jpg"
    sheet.save(path, quality=85)
    return path


def write_outputs(rows: list[dict], out: Path, title: str, meta: dict) -> dict:
    summary = summarise(rows)
    record = {**meta, "summary": summary}
    (out / "summary.json").write_text(json.dumps(record, indent=2) + "\n")
    (out / "summary.md").write_text(markdown(title, meta["command"], summary))
    for m in quality.MEASURES:
        contact_sheet(rows, m, out, out / "results")
    return record


# --- command line --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--method", choices=("transfer", "apply", "arbitrary", "given"), default="arbitrary")
    p.add_argument("--pairs", type=int, default=24, help="pairs in the sample (default 24)")
    p.add_argument("--size", type=int, default=256, help="long side of the results, px (default 256)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sample (default 0)")
    p.add_argument("--out", type=Path, help="output folder (default /tmp/stylist-quality/<method>)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a method option (repeat)")
    p.add_argument("--config", type=Path, help="a JSON file of method options (--set overrides it)")
    p.add_argument(
        "--model", default="starry-night", help=f"apply: a built-in ({', '.join(builtin_models())}) or a file"
    )
    p.add_argument("--painting", type=Path, help="apply: the model's painting (default: from its metadata)")
    p.add_argument("--data", type=Path, default=default_data(), help="the shared data folder")
    p.add_argument("--labels", type=Path, default=LABELS, help="CSV of file, artist, label to sample from")
    p.add_argument("--pairs-file", type=Path, help="CSV of photo, painting[, label]: run these pairs instead")
    p.add_argument("--resume", action="store_true", help="keep the pairs already in OUT/pairs.csv")
    p.add_argument("--name", help="a name for this run (default: method and options)")
    args = p.parse_args(argv)

    options = json.loads(args.config.read_text()) if args.config else {}
    options = {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}
    options.update(parse_sets(args.set))
    pairs = (
        read_pairs_file(args.pairs_file)
        if args.pairs_file
        else sample_pairs(args.pairs, args.seed, args.data, args.labels)
    )
    if args.method == "transfer":
        runner = transfer_runner(args.size, options)
        name = args.name or "transfer"
    elif args.method == "given":
        runner = given_runner
        name = args.name or "given"
    elif args.method == "arbitrary":
        runner = arbitrary_runner(args.size, options)
        name = args.name or f"arbitrary-{options.get('method', 'adain')}"
    else:
        model = stylist.load_model(args.model)
        runner = apply_runner(args.size, model, options)
        painting = args.painting or model_painting(model, args.data)
        pairs = [Pair(q.id, q.photo, painting, "model") for q in pairs]
        name = args.name or f"apply-{Path(args.model).stem}"
    out = args.out or Path("/tmp/stylist-quality") / name
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)
    # The command that makes these rows (a --resume only rewrites the summary of rows already made).
    given_args = sys.argv[1:] if argv is None else argv
    command = "PYTHONPATH=src python benchmarks/quality.py " + " ".join(a for a in given_args if a != "--resume")
    meta = {
        "name": name,
        "command": command,
        "method": args.method,
        "options": {k: list(v) if isinstance(v, tuple) else v for k, v in options.items()},
        "pairs": len(pairs),
        "size": args.size,
        "seed": args.seed,
        "date": time.strftime("%Y-%m-%d"),
        "device": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "stylist_version": stylist.__version__,
    }
    rows = run_pairs(pairs, runner, out, args.resume)
    record = write_outputs(rows, out, f"Quality: {name}", meta)
    print(markdown(f"Quality: {name}", command, record["summary"]))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
