#!/usr/bin/env bash
# Retrain Stylist's one-pass models on one GPU in one call (issue 16), about 8 minutes in all:
#   - the AdaIN decoder, on the shared photos and paintings (sampled per artist, the held-out
#     paintings of benchmarks/heldout_paintings.csv left out), fine-tuned from the shipped file
#     with an identity term (--identity-weight, a departure from Huang and Belongie: it keeps
#     --alpha 0 a reconstruction), once per weight in ADAIN_IDENTITY;
#   - the WCT decoders on the photos, fine-tuned from the shipped file at lr 5e-5 (a gentler start than
#     the 1e-4 they were trained with; relu1_1 refitted by least squares);
#   - the four built-in styles fine-tuned on the larger photo set, and two new ones from random
#     weights: Monet's Water Lilies and Seurat's La Grande Jatte (style layers relu1_1..relu4_1,
#     as docs/models/retrain_builtins_cpu.sh).
# All nine jobs share the GPU at once, each stopped by --time-limit LIMIT seconds. The results
# (models, loss curves, previews, sample grids, model cards, logs) are packed into one tar, split
# into parts of at most 15 MiB under $OUT (the device tool brings back 8 files of 16 MiB at most),
# with summary.md beside them.
#
# Data: the parts of docs/models/make_archive.py in $PARTS (default .data); on the device each
# call carries one part, and the parts of earlier calls stay on the warm machine (see
# docs/models/README.md, "Retraining on a GPU"). Run from the repository root:
#   OUT=/some/folder bash docs/models/retrain_gpu.sh            # on the GPU
#   OUT=/tmp/r PARTS=/tmp/smoke bash docs/models/retrain_gpu.sh --smoke   # CPU, 64 px, 3 steps a job
set -uo pipefail
SMOKE=0
[ "${1:-}" = "--smoke" ] && SMOKE=1
OUT=${OUT:?give OUT, the folder the results go to}
PARTS=${PARTS:-.data}
WORK=${WORK:-/tmp/stylist-retrain}
ADAIN_IDENTITY=${ADAIN_IDENTITY:-2 8}
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 STYLIST_CACHE=$WORK/cache
# Nine processes (and their loaders) share 16 cores: one thread each, the GPU does the work.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} MKL_NUM_THREADS=${MKL_NUM_THREADS:-1}
T0=$(date +%s)
say() { echo "[$(($(date +%s) - T0)) s] $*" | tee -a "$OUT/retrain.log"; }
mkdir -p "$OUT"
rm -rf "$WORK" && mkdir -p "$WORK/ckpt"
R=$WORK/results
mkdir -p "$R/decoders" "$R/built-in" "$R/logs" "$R/cards/images"

# --- 1. the data and the loss network -------------------------------------------------------------------
python3 -c "import stylist.cli, stylist.train_decoders, stylist.feedforward, safetensors, matplotlib, tqdm
from PIL import features; assert features.check('webp'), 'Pillow without WebP'" >> "$OUT/retrain.log" 2>&1 ||
  { say "Stylist or a package it needs does not import here (see retrain.log); carry it as wheels"; exit 2; }
found=$(ls "$PARTS"/stylist-train-part*.tar 2>/dev/null | wc -l)
for part in "$PARTS"/stylist-train-part*.tar; do
  [ -f "$part" ] && { tar -xf "$part" -C "$WORK" || { say "cannot unpack $part"; exit 2; }; }
done
D=$WORK/stylist-data
want=$(sed -n 's/^parts: \([0-9]*\).*/\1/p' "$D/MANIFEST.txt" 2>/dev/null)
if [ -z "$want" ] || [ "$found" != "$want" ]; then
  say "found $found of ${want:-?} parts of the training data in $PARTS (MANIFEST.txt is in part 1); carry the missing ones"
  exit 2
fi
cat "$D/MANIFEST.txt" >> "$OUT/retrain.log"
python3 docs/models/make_archive.py --rebuild-vgg "$D" >> "$OUT/retrain.log" 2>&1 || { say "no VGG-19 cache"; exit 2; }
if [ $SMOKE = 1 ]; then
  LIMIT=${LIMIT:-600} STEPS=3 SIZE=64 BATCH=2 WORKERS=0 LOG=1 PREVIEW=2 HW="the CPU (smoke test)"
  RUN=(--device cpu --precision fp32)
else
  python3 -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" || { say "no GPU visible"; exit 2; }
  LIMIT=${LIMIT:-390} STEPS=200000 SIZE=256 BATCH=8 WORKERS=1 LOG=25 PREVIEW=1000
  HW="one NVIDIA H200, shared with eight other training runs"
  RUN=()
fi
say "data ready: $(ls "$D/photos" "$D/train" | grep -c webp) photos, $(ls "$D/paintings" | grep -c webp) paintings"

# --- 2. nine training runs at once ---------------------------------------------------------------------------
job() {  # job NAME COMMAND...: in the background, logged to logs/NAME.log, stopped at LIMIT + 90 s at the latest
  local name=$1
  shift
  (timeout -s INT -k 20 $((LIMIT + 90)) "$@" > "$R/logs/$name.log" 2>&1
   echo "$name exit $?" >> "$R/logs/status.txt") &
}
decoder=(python3 -m stylist train-decoder --content "$D/photos" "$D/train" --steps "$STEPS" --batch-size "$BATCH"
  --image-size "$SIZE" --time-limit "$LIMIT" --workers "$WORKERS" --log-every "$LOG" --content-zoom 1 1.25
  --checkpoint-every 0 --preview-every "$PREVIEW" "${RUN[@]}" -q)
for w in $ADAIN_IDENTITY; do
  job "adain_id$w" "${decoder[@]}" --method adain --style "$D/paintings" --style-csv "$D/paintings.csv" \
    --exclude-styles benchmarks/heldout_paintings.csv --style-zoom 1 1.5 --identity-weight "$w" \
    --init src/stylist/models/adain_decoder.safetensors --checkpoint "$WORK/ckpt/adain_id$w.ckpt" \
    -o "$R/decoders/adain_id$w.safetensors"
done
job wct "${decoder[@]}" --method wct --levels relu5_1 relu4_1 relu3_1 relu2_1 relu1_1 --lr 5e-5 \
  --init src/stylist/models/wct_decoders.safetensors --checkpoint "$WORK/ckpt/wct.ckpt" \
  -o "$R/decoders/wct.safetensors"
for spec in starry-night:examples/style/starry_night.jpg:init great-wave:examples/style/great_wave.jpg:init \
  the-scream:examples/style/the_scream.jpg:init composition-vii:examples/style/composition_vii.jpg:init \
  water-lilies:examples/style/water_lilies.jpg:new la-grande-jatte:examples/style/la_grande_jatte.jpg:new; do
  IFS=: read -r name painting init <<< "$spec"
  from=(--init "$name")
  [ "$init" = new ] && from=()
  job "$name" python3 -m stylist train --style "$painting" --content "$D/photos" "$D/train" \
    -o "$R/built-in/$name.safetensors" --steps "$STEPS" --time-limit "$LIMIT" --batch-size "$BATCH" \
    --image-size "$SIZE" --style-size 512 --style-layers relu1_1 relu2_1 relu3_1 relu4_1 --workers "$WORKERS" \
    --half "${from[@]}" "${RUN[@]}" \
    --checkpoint "$WORK/ckpt/$name.ckpt" --checkpoint-every 0 --preview-every "$PREVIEW" --overwrite -q
done
say "nine runs started (time limit $LIMIT s each)"
wait
say "training done: $(tr '\n' ' ' < "$R/logs/status.txt")"

# --- 3. cards, samples, the first look ---------------------------------------------------------------------
for f in "$R"/built-in/*_losses.png; do cp "$f" "$R/cards/images/"; done
for f in examples/style/*.jpg; do [ -f "$D/styles/$(basename "$f")" ] || cp "$f" "$D/styles/"; done
python3 docs/models/make_cards.py --models "$R/built-in" --paintings "$D/styles" --out "$R/cards" --hardware "$HW" \
  > "$R/logs/cards.log" 2>&1 || say "make_cards failed (see logs/cards.log)"
python3 docs/models/retrain_report.py "$R/decoders" --size "$SIZE" --styles "$D/styles/water_lilies.jpg" \
  > "$R/summary.md" 2> "$R/logs/report.log" || say "retrain_report failed (see logs/report.log)"
{
  echo
  echo "## Runs"
  for f in "$R"/logs/*.log; do echo "- $(basename "$f" .log): $(tail -n 1 "$f" | cut -c1-300)"; done
} >> "$R/summary.md"
cp "$R/summary.md" "$OUT/summary.md"

# --- 4. one tar, in parts the device tool brings back ------------------------------------------------------
tar -cf "$WORK/results.tar" -C "$R" . && split -b 15M -d "$WORK/results.tar" "$OUT/results.tar.part"
say "results: $(du -m "$WORK/results.tar" | cut -f1) MB in $(ls "$OUT"/results.tar.part* | wc -l) parts; \
join them with: cat results.tar.part* > results.tar"
cat "$OUT/summary.md"
