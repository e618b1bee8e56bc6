"""Write the model card and sample image of every built-in feed-forward style.

    python docs/models/make_cards.py

Everything a card states about training (steps, losses, settings) is read from the model
file's own metadata; the samples are made here with ``stylist.load_model`` on the CPU from the
bundled photographs, which the networks never saw in training (they were trained on BSDS500).
"""

from __future__ import annotations

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
}
HEIGHT = 256  # px of each tile in the sample strip


def sample(name: str) -> Path:
    model = stylist.load_model(name, device="cpu")
    painting = Image.open(ROOT / "examples" / "style" / PAINTINGS[name][0]).convert("RGB")
    tiles = [_fit(painting)]
    for photo in PHOTOS:
        tiles.append(_fit(model(ROOT / "examples" / "content" / photo, size=512)))
    strip = Image.new("RGB", (sum(t.width for t in tiles) + 8 * (len(tiles) - 1), HEIGHT), "white")
    x = 0
    for tile in tiles:
        strip.paste(tile, (x, 0))
        x += tile.width + 8
    out = HERE / "images" / f"{name}_sample.jpg"
    strip.save(out, quality=90)
    return out


def _fit(im: Image.Image) -> Image.Image:
    return im.resize((round(im.width * HEIGHT / im.height), HEIGHT), Image.LANCZOS)


def card(name: str, path: Path) -> str:
    meta = read_metadata(path)
    cfg = json.loads(meta["config"])
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

The 500 colour photographs of the Berkeley Segmentation Data Set (BSDS500; Arbelaez, Maire,
Fowlkes and Malik, TPAMI 2011), 384x288 px. Berkeley distributes BSDS500 for **non-commercial
research and educational use only**. A network trained on it carries that restriction in
spirit: use this model for research, teaching and personal experiments, not in a commercial
product. To train a network free of it, run the same command on your own photographs or on
COCO (`stylist train --style painting.jpg --data coco/train2017 -o mine.safetensors`).

## Settings

| setting | value |
|---|---|
| steps | {meta["steps"]} (batch {cfg["batch_size"]}, so about \
{int(meta["steps"]) * cfg["batch_size"] // int(meta["images"])} passes over the {meta["images"]} photos), \
stopped by a time limit of {cfg["time_limit"]:.0f} s |
| crops | {cfg["image_size"]}x{cfg["image_size"]} px, random position, flipped half the time |
| painting size for the style targets | long side {cfg["style_size"] or 2 * cfg["image_size"]} px |
| optimiser | Adam, learning rate {cfg["lr"]} |
| loss network | {cfg["weights"]} (VGG-19, Caffe weights), {cfg.get("precision")} precision (bf16 autocast on the GPU) |
| content | {", ".join(cfg["content_layers"])}, weight {cfg["content_weight"]} |
| style | {", ".join(cfg["style_layers"])}, each 1/{len(cfg["style_layers"])}, weight {cfg["style_weight"]} |
| total variation | mean squared neighbour difference, weight {cfg["tv_weight"]} |
| network | {meta["norm"]} normalisation, width {meta["width"]} (32/64/128 channels), 1.68 M parameters |
| hardware | one NVIDIA H100, shared with five other training runs |
| final losses (weighted, last batch) | \
content {losses["content"]:.2f}, style {losses["style"]:.2f}, TV {losses["tv"]:.2f} |
| Stylist / PyTorch | {meta["stylist_version"]} / {meta["torch_version"]} |

The losses are Stylist's: `mean` normalisation and each VGG layer divided by its mean
activation over the training photos (see `stylist/feedforward.py`). With them the recipe's style
weight of 40 let the painting's texture cover the photo's shapes; 10 keeps both (a comparison
of 40, 20 and 10 is in [README.md](README.md)).

![loss curve](images/{name}_losses.png)

*Loss terms over the first 1000 steps (running means). The curve was written every 1000 steps
and the run then stopped at its time limit before step 2000, so the later steps are not in it;
the final values above are the model's own record.*

## Limits

Trained for about {int(meta["steps"]) * cfg["batch_size"] // 1000}k images in \
{cfg["time_limit"] / 60:.0f} minutes, far less than the paper's
two epochs of COCO (160k images): strokes are clear, but fine detail is softer than a longer
run would give, and a thin band along the image borders is sometimes darker. The network sees
{cfg["image_size"]} px crops, so its strokes have a fixed size in pixels: at 2000 px and above they look small
(scale the photo down with `--size`).
"""


def main() -> None:
    for name, path in builtin_models().items():
        if name not in PAINTINGS:
            continue
        sample(name)
        (HERE / f"{name}.md").write_text(card(name, path))
        print(f"wrote docs/models/{name}.md")


if __name__ == "__main__":
    main()
