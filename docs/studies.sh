#!/bin/bash
# Makes the figures of docs/studies.md: every study on the bundled lighthouse photo and The Starry Night,
# at 128 px and 60 iterations (a few minutes each on a 2-core CPU). The full outputs (every image,
# metrics.csv, report.html) go to studies/; the grids and loss plots are copied to docs/images/studies/.
# Re-running skips the cells already finished.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-studies}
for name in ratio style-weight tv layers optimizers init pooling backbones methods; do
  stylist study "$name" --content examples/content/kodak_lighthouse_coast.jpg --style examples/style/starry_night.jpg \
    -o "$OUT/$name" --size 128 --iterations 60
  python - "$OUT/$name" "docs/images/studies/$name" <<'PY'
import sys
from pathlib import Path
from PIL import Image
src, dst = Path(sys.argv[1]), sys.argv[2]
Image.open(src / "grid.png").convert("RGB").save(dst + ".jpg", quality=85)
if (src / "spectra.png").exists():
    Image.open(src / "spectra.png").convert("RGB").save(dst + "_spectra.png", optimize=True)
if src.name in ("ratio", "optimizers"):  # the loss plots docs/studies.md shows
    Image.open(src / "losses.png").convert("RGB").save(dst + "_losses.png", optimize=True)
PY
done
