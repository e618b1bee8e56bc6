"""Write the model card and sample image of every built-in feed-forward style.

    python docs/models/make_cards.py                     # the shipped models -> docs/models/*.md
    python docs/models/make_cards.py --models DIR --paintings DIR --out DIR --hardware "one NVIDIA H200"

Everything a card states about training (steps, photos, losses, settings, the model it was
fine-tuned from) is read from the model file's own metadata; the samples are made here with
``stylist.load_model`` on the CPU from the bundled photographs, which the networks never saw in
training (they are not in BSDS500 or the shared photos). ``--models`` takes the model files from
a folder (as docs/models/retrain_gpu.sh writes them) instead of the installed built-in styles.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from PIL import Image

import stylist
from stylist.feedforward import builtin_models, read_metadata

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
PHOTOS = ["kodak_lighthouse_coast.jpg", "cat_chelsea.jpg", "astronaut_eileen_collins.jpg"]
PAINTINGS = {
    "starry-night": (
        "starry_night.jpg",
        "Vincent van Gogh, *The Starry Night*, 1889, oil on canvas, Museum of Modern Art, New York "
        "(Google Art Project scan)",
    ),
    "great-wave": ("great_wave.jpg", "Katsushika Hokusai, *The Great Wave off Kanagawa*, c. 1830-32, woodblock print"),
    "the-scream": (
        "the_scream.jpg",
        "Edvard Munch, *The Scream*, 1893, tempera and crayon on cardboard, National Gallery, Oslo",
    ),
    "composition-vii": (
        "composition_vii.jpg",
        "Wassily Kandinsky, *Composition VII*, 1913, oil on canvas, Tretyakov Gallery, Moscow",
    ),
    "water-lilies": ("water_lilies.jpg", "Claude Monet, *Water Lilies*, 1919, oil on canvas"),
    "la-grande-jatte": (
        "la_grande_jatte.jpg",
        "Georges Seurat, *A Sunday Afternoon on the Island of La Grande Jatte*, 1884-86, oil on canvas, "
        "Art Institute of Chicago",
    ),
}
HEIGHT = 256  # px of each tile in the sample strip
# What the samples and the benchmark's sheets show of a style beyond the shared limits (seen by eye).
NOTES = {
    "starry-night": "The previous network painted the painting's yellow stars onto faces, skies and the "
    "cat's fur; this one does not (its style loss leaves out `relu5_1`).",
    "la-grande-jatte": "It takes the painting's greens and yellows (faces too turn yellow-green) and its "
    "flat, outlined shapes, but not Seurat's dots.",
    "water-lilies": "Its strokes are short and fine in the painting's palette rather than Monet's broad "
    "brushwork, and flat areas such as skies and hair can take patches of the lily pads' green.",
}


def sample(name: str, model_path: Path, paintings: Path, out: Path) -> Path:
    model = stylist.load_model(model_path, device="cpu")
    painting = Image.open(paintings / PAINTINGS[name][0]).convert("RGB")
    tiles = [_fit(painting)]
    for photo in PHOTOS:
        tiles.append(_fit(model(ROOT / "examples" / "content" / photo, size=512)))
    strip = Image.new("RGB", (sum(t.width for t in tiles) + 8 * (len(tiles) - 1), HEIGHT), "white")
    x = 0
    for tile in tiles:
        strip.paste(tile, (x, 0))
        x += tile.width + 8
    path = out / "images" / f"{name}_sample.jpg"
    path.parent.mkdir(parents=True, exist_ok=True)
    strip.save(path, quality=90)
    return path


def _fit(im: Image.Image) -> Image.Image:
    return im.resize((round(im.width * HEIGHT / im.height), HEIGHT), Image.LANCZOS)


def training_data(meta: dict[str, str], cfg: dict) -> str:
    """Where the photos came from, from the recorded --content folders."""
    folders = cfg["data"] if isinstance(cfg["data"], list) else [cfg["data"]]
    shared = any(Path(f).name == "photos" for f in folders)
    bsds = "the 500 colour photographs of the Berkeley Segmentation Data Set (BSDS500; Arbelaez, Maire, Fowlkes and "
    bsds += "Malik, TPAMI 2011), 384x288 px"
    if not shared:
        return bsds[0].upper() + bsds[1:]
    text = (
        f"{meta['images']} photographs from {bsds}, and from Stylist's shared training photographs (`photos/`, see "
        "its TRAINING_SOURCES.md; for training only, not redistributed)"
    )
    return text


def how_started(name: str, init: str | None) -> str:
    if not init:
        return "trained from random weights"
    if init == name:
        return f"fine-tuned from the previous built-in `{init}` (1963-1974 steps on BSDS500 alone)"
    return f"started from the built-in `{init}` network (a warm start: it already renders a photo; the painting is new)"


def trained_on(cfg: dict, painting: str) -> str:
    """The painting file the run read, as the repository names it."""
    style = Path(cfg["style"])
    return (
        str(style)
        if not style.is_absolute() and style.parts[0] in ("src", "examples")
        else f"examples/style/{painting}"
    )


def how_stopped(cfg: dict, meta: dict[str, str]) -> str:
    if meta.get("stopped") == "time" and cfg.get("time_limit"):
        return f"stopped by a time limit of {cfg['time_limit']:.0f} s"
    return "run to its step count"


def training_time(cfg: dict, meta: dict[str, str]) -> float:
    """Seconds of training: the file's own record (resumed parts included), else the time limit."""
    if meta.get("train_seconds"):
        return float(meta["train_seconds"])
    return float(cfg.get("time_limit") or 0)


def no_relu5(cfg: dict) -> str:
    if "relu5_1" in cfg["style_layers"]:
        return ""
    return (
        " `relu5_1` is left out of the style loss (a departure from Johnson et al., as in `stylist transfer`'s "
        "defaults): its Gram term is what stamps the painting's objects, such as The Starry Night's stars, onto "
        "faces and skies."
    )


def measured(name: str, benchmark: dict) -> str:
    """The card's benchmark section, from docs/models/builtin_benchmark.py's JSON."""
    entry = benchmark.get(name)
    if not entry:
        return ""
    seeds = sorted(entry)
    ref_kind = "old" if "old" in entry[seeds[0]] else "adain"
    ref_name = "the previous model" if ref_kind == "old" else "AdaIN on the same painting (no previous model)"
    rows = []
    for seed in seeds:
        for kind, label in ((ref_kind, ref_name), ("new", "this model")):
            m = entry[seed][kind]
            rows.append(
                f"| {seed.replace('seed', '')} | {label} | {m['structure']:.3f} ({m['structure_worst10']:.3f}) | "
                f"{m['structure_lowest']:.3f} | {m['style']:.3f} ({m['style_worst10']:.3f}) | {m['colour']:.2f} |"
            )
    command = f"python benchmarks/quality.py --method apply --model {name} --seed 0"
    return (
        "## Measured\n\n"
        f"The quality benchmark on {entry[seeds[0]]['new']['pairs']} photos per seed (none of them in the training "
        "data), 256 px, against the model's own painting: median (worst 10 %) of the structure kept from the "
        "photo (higher is better), the lowest of any pair, and the style and colour distances to the painting "
        "(lower is better; docs/quality.md).\n\n"
        "| seed | model | structure | lowest | style | colour |\n|---|---|---|---|---|---|\n"
        + "\n".join(rows)
        + f"\n\n`{command}` (and `--seed 1`) measures the shipped model; the whole table comes from "
        "`python docs/models/builtin_benchmark.py`.\n\n"
    )


def grid_stage(meta: dict) -> str:
    """The settings row of the grid-loss fine-tune (docs/models/grid_builtins_cpu.sh), if the model had one."""
    if "grid_stage" not in meta:
        return ""
    g = json.loads(meta["grid_stage"])
    return (
        f"\n| grid stage | the last {g['steps']} of those steps: fine-tuned with the grid loss (weight "
        f"{g['grid_weight']:g}, lr {g['lr']:g}; `stylist train --grid-weight`, "
        f"[grid_builtins_cpu.sh](grid_builtins_cpu.sh)), which took out a 4 px weave the network drew; "
        f"{g['seconds'] / 60:.0f} min |"
    )


def card(name: str, path: Path, hardware: str, benchmark: dict | None = None, data_note: str = "") -> str:
    meta = read_metadata(path)
    cfg = json.loads(meta["config"])
    start = how_started(name, cfg.get("init"))
    seconds = training_time(cfg, meta)
    hardware = meta.get("train_hardware", hardware)  # recorded by docs/models/ship_builtins_cpu.py
    losses = json.loads(meta["final_losses"])
    painting, credit = PAINTINGS[name]
    size_mb = path.stat().st_size / 1e6
    return f"""# Built-in style `{name}`

A feed-forward network (Johnson et al. 2016, with instance normalisation) that paints any photo in
the manner of {credit}. `stylist apply --model {name} photo.jpg -o out.jpg` uses it; it ships
inside the package ({size_mb:.1f} MB, float16 safetensors) and works offline.

![the painting, then the network's result on three bundled photos at 512 px](images/{name}_sample.jpg)

*The painting, then three bundled photographs stylised at 512 px on the long side. None of
them was in the training data.*

## The painting

{credit}. Public domain (the artist died more than 70 years ago and the work was made before 1930);
a faithful photograph of a two-dimensional public-domain work carries no new copyright in the US
(Bridgeman v. Corel) or the EU (DSM Directive, art. 14). File: `{trained_on(cfg, painting)}`, sha256
`{meta["style_sha256"]}` (the copy trained on); provenance in `examples/SOURCES.md`.

## Training data and its licence

{training_data(meta, cfg)}.{" " + data_note if data_note else ""} Berkeley distributes BSDS500 for **non-commercial
research and educational use only**. A network trained on it carries that restriction in
spirit: use this model for research, teaching and personal experiments, not in a commercial
product. To train a network free of it, run the same command on your own photographs or on
COCO (`stylist train --style painting.jpg --content coco/train2017 -o mine.safetensors`).

## Settings

| setting | value |
|---|---|
| steps | {meta["steps"]} (batch {cfg["batch_size"]}, so about \
{int(meta["steps"]) * cfg["batch_size"] / int(meta["images"]):.1f} passes over the {meta["images"]} photos), \
{start}, {how_stopped(cfg, meta)} |{grid_stage(meta)}
| crops | {cfg["image_size"]}x{cfg["image_size"]} px, random position, flipped half the time |
| painting size for the style targets | long side {cfg["style_size"] or 2 * cfg["image_size"]} px |
| optimiser | Adam, learning rate {cfg["lr"]} |
| loss network | {cfg["weights"]} (VGG-19, Caffe weights), {cfg.get("precision")} precision |
| content | {", ".join(cfg["content_layers"])}, weight {cfg["content_weight"]} |
| style | {", ".join(cfg["style_layers"])}, each 1/{len(cfg["style_layers"])}, weight {cfg["style_weight"]} |
| total variation | mean squared neighbour difference, weight {cfg["tv_weight"]} |
| network | {meta["norm"]} normalisation, width {meta["width"]} (32/64/128 channels), 1.68 M parameters |
| hardware | {hardware} |
| final losses (weighted, last batch) | \
content {losses["content"]:.2f}, style {losses["style"]:.2f}, TV {losses["tv"]:.2f} |
| Stylist / PyTorch | {meta["stylist_version"]} / {meta["torch_version"]} |

The losses are Stylist's: `mean` normalisation and each VGG layer divided by its mean
activation over the training photos (see `stylist/feedforward.py`). With them the recipe's style
weight of 40 let the painting's texture cover the photo's shapes; 10 keeps both (a comparison
of 40, 20 and 10 is in [README.md](README.md)).{no_relu5(cfg)}

![loss curve](images/{name}_losses.png)

*Loss terms over the run (running means), as `stylist train` wrote them beside the model
(`NAME_losses.csv`); the final values above are the model's own record.*

{measured(name, benchmark or {})}## Limits

{"Fine-tuned" if cfg.get("init") == name else "Trained"} for about \
{int(meta["steps"]) * cfg["batch_size"] / 1000:.1f}k images in {seconds / 60:.0f} minutes\
{" (after about 15.7k on BSDS500)" if cfg.get("init") == name else ""}, far less than the paper's
two epochs of COCO (160k images): palette and texture come through, but fine detail is softer than a longer
run would give, and a thin band along the image borders is sometimes darker. The network sees
{cfg["image_size"]} px crops, so its strokes have a fixed size in pixels: at 2000 px and above they look small
(scale the photo down with `--size`).{" " + NOTES[name] if name in NOTES else ""}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=Path, help="a folder of NAME.safetensors [default: the built-in styles]")
    parser.add_argument("--paintings", type=Path, default=ROOT / "examples" / "style", help="the paintings' folder")
    parser.add_argument("--out", type=Path, default=HERE, help="where the cards (and images/) go")
    parser.add_argument("--hardware", default="one NVIDIA H100, shared with five other training runs")
    parser.add_argument(
        "--benchmark",
        type=Path,
        default=HERE / "builtin_benchmark.json",
        help="docs/models/builtin_benchmark.py's results",
    )
    parser.add_argument("--data-note", default="", help="a sentence added to the training data paragraph")
    parser.add_argument("--only", nargs="*", help="only these styles")
    args = parser.parse_args()
    benchmark = json.loads(args.benchmark.read_text()) if args.benchmark.is_file() else {}
    models = {p.stem: p for p in sorted(args.models.glob("*.safetensors"))} if args.models else builtin_models()
    for name, path in models.items():
        if name not in PAINTINGS or (args.only and name not in args.only):
            continue
        sample(name, path, args.paintings, args.out)
        curve = path.with_name(f"{name}_losses.png")  # written beside the model by stylist train
        if curve.is_file() and args.models:
            shutil.copyfile(curve, args.out / "images" / curve.name)
        (args.out / f"{name}.md").write_text(card(name, path, args.hardware, benchmark, args.data_note))
        print(f"wrote {args.out / (name + '.md')}")


if __name__ == "__main__":
    main()
