"""Measure the feature-norm table of a VGG weight source (stylist.weights.WeightSource.feature_norms).

Each layer's divisor is its mean activation after the ReLU (for conv layers, the ReLU that follows
them), averaged over a fixed set of photographs, each resized to a long side of 384 px (the size of
the BSDS500 photos the decoders' relu{k}_1 values were measured on). Prints a Python dict to paste
into stylist/weights.py, rounded to 3 significant digits.

Run:  PYTHONPATH=src python benchmarks/feature_norms.py --photos /work/shared/data/content
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from stylist.image import load_tensor, resize_long_side
from stylist.vgg import VGGFeatures, layer_names, measure_feature_norms
from stylist.weights import load_weights


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", required=True, help="folder of photographs (*.jpg, *.png)")
    parser.add_argument("--weights", default="vgg19-caffe")
    parser.add_argument("--side", type=int, default=384)
    args = parser.parse_args()
    loaded = load_weights(args.weights)
    loaded.feature_norms = None  # measure, do not read the table
    names = [n for n in layer_names(loaded.arch)]
    net = VGGFeatures(names, loaded)
    files = sorted(p for p in Path(args.photos).iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    sums: dict[str, float] = dict.fromkeys(names, 0.0)
    with torch.no_grad():
        for path in files:
            norms = measure_feature_norms(net(resize_long_side(load_tensor(path), args.side)))
            for n in names:
                sums[n] += norms[n] / len(files)
    print(f"# {len(files)} photos from {args.photos}, long side {args.side} px")
    print("{" + ", ".join(f'"{n}": {float(f"{v:.3g}")}' for n, v in sums.items()) + "}")


if __name__ == "__main__":
    main()
