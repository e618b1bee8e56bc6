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
    "composition-viii": (
        "composition_viii.jpg",
        "Wassily Kandinsky, *Composition VIII*, 1923, oil on canvas, Solomon R. Guggenheim Museum, New York",
    ),
}
HEIGHT = 256  # px of each tile in the sample strip


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
        "its TRAINING_SOURCES.md; for training only, not redistributed), all carried at 256 px on the short side"
    )
    return text


def card(name: str, path: Path, hardware: str) -> str:
    meta = read_metadata(path)
    cfg = json.loads(meta["config"])
    init = cfg.get("init")
    start = (
        f"fine-tuned from the previous built-in `{init}` (1963-1974 steps on BSDS500 alone)"
        if init
        else "trained from random weights"
    )
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
(Bridgeman v. Corel) or the EU (DSM Directive, art. 14). File: `examples/style/{painting}`, sha256
`{meta["style_sha256"]}` (the copy trained on); provenance in `examples/SOURCES.md`.

## Training data and its licence

{training_data(meta, cfg)}. Berkeley distributes BSDS500 for **non-commercial
research and educational use only**. A network trained on it carries that restriction in
spirit: use this model for research, teaching and personal experiments, not in a commercial
product. To train a network free of it, run the same command on your own photographs or on
COCO (`stylist train --style painting.jpg --data coco/train2017 -o mine.safetensors`).

## Settings

| setting | value |
|---|---|
| steps | {meta["steps"]} (batch {cfg["batch_size"]}, so about \
{int(meta["steps"]) * cfg["batch_size"] / int(meta["images"]):.1f} passes over the {meta["images"]} photos), \
{start}, stopped by a time limit of {cfg["time_limit"]:.0f} s |
| crops | {cfg["image_size"]}x{cfg["image_size"]} px, random position, flipped half the time |
| painting size for the style targets | long side {cfg["style_size"] or 2 * cfg["image_size"]} px |
| optimiser | Adam, learning rate {cfg["lr"]} |
| loss network | {cfg["weights"]} (VGG-19, Caffe weights), {cfg.get("precision")} precision (bf16 autocast on the GPU) |
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
of 40, 20 and 10 is in [README.md](README.md)).

![loss curve](images/{name}_losses.png)

*Loss terms over the run (running means), as `stylist train` wrote them beside the model
(`NAME_losses.csv`); the final values above are the model's own record.*

## Limits

Trained for about {int(meta["steps"]) * cfg["batch_size"] // 1000}k images in \
{cfg["time_limit"] / 60:.0f} minutes, far less than the paper's
two epochs of COCO (160k images): strokes are clear, but fine detail is softer than a longer
run would give, and a thin band along the image borders is sometimes darker. The network sees
{cfg["image_size"]} px crops, so its strokes have a fixed size in pixels: at 2000 px and above they look small
(scale the photo down with `--size`).
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=Path, help="a folder of NAME.safetensors [default: the built-in styles]")
    parser.add_argument("--paintings", type=Path, default=ROOT / "examples" / "style", help="the paintings' folder")
    parser.add_argument("--out", type=Path, default=HERE, help="where the cards (and images/) go")
    parser.add_argument("--hardware", default="one NVIDIA H100, shared with five other training runs")
    args = parser.parse_args()
    models = {p.stem: p for p in sorted(args.models.glob("*.safetensors"))} if args.models else builtin_models()
    for name, path in models.items():
        if name not in PAINTINGS:
            continue
        sample(name, path, args.paintings, args.out)
        (args.out / f"{name}.md").write_text(card(name, path, args.hardware))
        print(f"wrote {args.out / (name + '.md')}")


if __name__ == "__main__":
    main()
