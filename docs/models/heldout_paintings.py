"""Choose the paintings kept out of every training run, to judge the models on styles they never saw.

    python docs/models/heldout_paintings.py [--data ../shared/data]   # writes benchmarks/heldout_paintings.csv

The rule, deterministic and independent of the machine:

1. Candidates are the artists of the shared ``paintings.csv`` whose every painting is labelled
   (figurative or not, checked by eye) in ``benchmarks/quality_paintings.csv``, with at most
   three paintings each (no one artist weighs much), leaving out ``unknown`` (the same hand may be
   elsewhere) and the artists of the built-in styles and of ``style/``: van Gogh, Monet, Munch,
   Kandinsky, Hokusai, Mondrian, Turner and Matisse.
2. The candidates are ordered by the SHA-256 of ``stylist-heldout:<artist>`` and taken, with all
   of their paintings, until there are at least ``MINIMUM`` paintings with each label making up
   at least a third of them.

Every painting of a chosen artist is held out, so the training paintings share no artist with
the held-out ones. ``benchmarks/quality.py --labels benchmarks/heldout_paintings.csv`` samples
its pairs from this list; ``stylist train-decoder --exclude-styles benchmarks/heldout_paintings.csv``
leaves them out of training.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
LABELS = ROOT / "benchmarks" / "quality_paintings.csv"
OUT = ROOT / "benchmarks" / "heldout_paintings.csv"
# Artists of the built-in styles and of the shared style/ folder (and the bundled examples).
TRAINED_ARTISTS = {
    "Vincent van Gogh",
    "Claude Monet",
    "Edvard Munch",
    "Wassily Kandinsky",
    "Katsushika Hokusai",
    "Piet Mondrian",
    "J. M. W. Turner",
    "Henri Matisse",
    "unknown",
}
MINIMUM = 60
MOST_PER_ARTIST = 3


def default_data() -> Path:
    """$STYLIST_DATA, or shared/data beside or inside the checkout, or /work/shared/data (as benchmarks/quality.py)."""
    if os.environ.get("STYLIST_DATA"):
        return Path(os.environ["STYLIST_DATA"])
    candidates = (ROOT.parent / "shared" / "data", ROOT / "shared" / "data", Path("/work/shared/data"))
    return next((d for d in candidates if (d / "paintings.csv").is_file()), candidates[0])


def choose(paintings_csv: Path, labels_csv: Path = LABELS) -> list[dict[str, str]]:
    """The held-out rows (file name, artist, title, year, label), in the order they were chosen."""
    with open(labels_csv, newline="", encoding="utf-8") as f:
        labels = {row["file"]: row["label"] for row in csv.DictReader(f)}
    by_artist: dict[str, list[dict[str, str]]] = defaultdict(list)
    with open(paintings_csv, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            by_artist[row["artist"]].append(row)
    candidates = [
        artist
        for artist, rows in by_artist.items()
        if artist not in TRAINED_ARTISTS
        and len(rows) <= MOST_PER_ARTIST
        and all(Path(r["file"]).name in labels for r in rows)
    ]
    candidates.sort(key=lambda a: hashlib.sha256(f"stylist-heldout:{a}".encode()).hexdigest())
    chosen: list[dict[str, str]] = []
    for artist in candidates:
        for r in by_artist[artist]:
            name = Path(r["file"]).name
            chosen.append(
                {"file": name, "artist": artist, "title": r["title"], "year": r["year"], "label": labels[name]}
            )
        figurative = sum(r["label"] == "figurative" for r in chosen)
        if len(chosen) >= MINIMUM and min(figurative, len(chosen) - figurative) * 3 >= len(chosen):
            break
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=default_data(), help="the shared data folder")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    rows = choose(args.data / "paintings.csv")
    with open(args.out, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, ["file", "artist", "title", "year", "label"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(sorted(rows, key=lambda r: r["file"]))
    figurative = sum(r["label"] == "figurative" for r in rows)
    artists = len({r["artist"] for r in rows})
    print(f"wrote {args.out}: {len(rows)} paintings by {artists} artists, {figurative} figurative")


if __name__ == "__main__":
    main()
