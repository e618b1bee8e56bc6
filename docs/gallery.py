"""Render the README's gallery and preset samples with the public API.

    python docs/gallery.py                 # everything (about 30 minutes on a 2-core CPU)
    python docs/gallery.py blend masked    # some of it

Each result goes to docs/images/gallery/NAME.jpg; the seconds each took and the settings
are printed, for the captions.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from PIL import Image

import stylist

ROOT = Path(__file__).resolve().parents[1]
EX = ROOT / "examples"
OUT = ROOT / "docs" / "images" / "gallery"
PHOTO = EX / "content" / "kodak_lighthouse_coast.jpg"
STARRY, WAVE, SCREAM = (EX / "style" / f"{n}.jpg" for n in ("starry_night", "great_wave", "the_scream"))
MASKS = [EX / "masks" / "sky.png", EX / "masks" / "land_and_sea.png"]
# Figurative paintings and portraits, none of them in the quality benchmark's sample: the photos are
# Kodak's and scikit-image's (content/, unrestricted / CC0), the paintings public domain (paintings/).
DATA = ROOT.parent / "shared" / "data"
GIRL, CAPS = DATA / "content" / "kodak_girl_red_hat.jpg", DATA / "content" / "kodak_caps.jpg"
CAT, ASTRONAUT = EX / "content" / "cat_chelsea.jpg", EX / "content" / "astronaut_eileen_collins.jpg"
DEGAS = DATA / "paintings" / "edgar-degas__baletnyi-klass.jpg"
VERMEER = DATA / "paintings" / "johannes-vermeer__molochnitsa.jpg"
RENOIR = DATA / "paintings" / "pierre-auguste-renoir__bal-du-moulin-de-la-galette.jpg"
# The defaults before issue 15 (relu5_1 among the style layers), for the before/after rows.
BEFORE = {"style_layers": ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")}

# name -> (styles, keyword options of stylist.transfer[, photo]). Default settings at 512 px unless said.
RUNS: dict[str, tuple] = {
    "starry_night": ([STARRY], {}),
    "great_wave": ([WAVE], {}),
    "the_scream": ([SCREAM], {}),
    "blend": ([STARRY, WAVE], {"style_weights": (0.5, 0.5)}),
    "luminance": ([STARRY], {"preserve_color": "luminance"}),
    "histogram": ([STARRY], {"preserve_color": "histogram"}),
    "masked": ([STARRY, SCREAM], {"masks": MASKS}),
    # The presets, at 256 px so that even the 7000-step one finishes in minutes on a CPU.
    "preset_gatys2016": ([STARRY], {"preset": "gatys2016", "size": 256}),
    "preset_lab-adam": ([STARRY], {"preset": "lab-adam", "size": 256}),
    "preset_lbfgs-short": ([STARRY], {"preset": "lbfgs-short", "size": 256}),
    "preset_vanilla-tv": ([STARRY], {"preset": "vanilla-tv", "size": 256}),
    # Figurative pairs, today's defaults and the ones before issue 15.
    "fig_degas": ([DEGAS], {}, GIRL),
    "fig_degas_before": ([DEGAS], BEFORE, GIRL),
    "fig_vermeer": ([VERMEER], {}, ASTRONAUT),
    "fig_vermeer_before": ([VERMEER], BEFORE, ASTRONAUT),
    "fig_renoir": ([RENOIR], {}, CAPS),
    "fig_renoir_before": ([RENOIR], BEFORE, CAPS),
    "fig_cat_wave": ([WAVE], {}, CAT),
    "fig_cat_wave_before": ([WAVE], BEFORE, CAT),
}


def render(name: str) -> None:
    styles, options, *photo = RUNS[name]
    start = time.perf_counter()
    # 512 px unless said: the CPU default where bf16 is fast (fp32-only CPUs default to 384 px).
    style = styles if len(styles) > 1 else styles[0]
    image = stylist.transfer(photo[0] if photo else PHOTO, style, **{"size": 512, **options})
    seconds = time.perf_counter() - start
    image.save(OUT / f"{name}.jpg", quality=90)
    shown = {k: (v if k != "masks" else [p.name for p in v]) for k, v in options.items()}
    print(
        f"{name}: {image.width}x{image.height}, {seconds:.0f} s, styles {[p.name for p in styles]}, {shown}", flush=True
    )


def quickstart() -> None:
    """docs/images/quickstart.jpg (photo | painting | the README's first command's result, 256 px high)
    and quickstart_384.jpg (the same at 384 px in float32, what a CPU without fast bfloat16 gives)."""
    start = time.perf_counter()
    result = stylist.transfer(PHOTO, STARRY, size=512)
    print(f"quickstart: {result.width}x{result.height}, {time.perf_counter() - start:.0f} s", flush=True)
    panels = [Image.open(PHOTO).convert("RGB"), Image.open(STARRY).convert("RGB"), result]
    panels = [p.resize((round(p.width * 256 / p.height), 256), Image.Resampling.LANCZOS) for p in panels]
    strip = Image.new("RGB", (sum(p.width for p in panels) + 8 * (len(panels) - 1), 256), "white")
    x = 0
    for p in panels:
        strip.paste(p, (x, 0))
        x += p.width + 8
    strip.save(OUT.parent / "quickstart.jpg", quality=90)
    start = time.perf_counter()
    small = stylist.transfer(PHOTO, STARRY, size=384, precision="fp32")
    print(f"quickstart_384: {small.width}x{small.height}, {time.perf_counter() - start:.0f} s", flush=True)
    small.save(OUT.parent / "quickstart_384.jpg", quality=90)


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    names = sys.argv[1:] or [*RUNS, "quickstart"]
    unknown = [n for n in names if n not in RUNS and n != "quickstart"]
    if unknown:
        sys.exit(f"unknown: {', '.join(unknown)}; choose from {', '.join(RUNS)}")
    for name in names:
        if name == "quickstart":
            quickstart()
        else:
            render(name)
