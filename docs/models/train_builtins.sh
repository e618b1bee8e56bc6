#!/usr/bin/env bash
# How the built-in feed-forward styles were trained: one `stylist train` per painting, all four
# sharing one GPU at once, each stopped by --time-limit (the steps reached are in each model's
# metadata: `stylist info starry-night`). Run from the repository root with the training photos
# in DATA and the paintings in STYLES; the models land in DEST.
set -uo pipefail
DATA=${DATA:-.data/train} STYLES=${STYLES:-.data/style} DEST=${DEST:-built-in} LIMIT=${LIMIT:-340}
mkdir -p "$DEST"
for pair in starry-night:starry_night great-wave:great_wave the-scream:the_scream composition-vii:composition_vii; do
  name=${pair%%:*} painting=${pair##*:}
  python3 -m stylist train --style "$STYLES/$painting.jpg" --data "$DATA" -o "$DEST/$name.safetensors" \
    --steps 20000 --time-limit "$LIMIT" --workers 2 --half --checkpoint-every 1000 --preview-every 1000 \
    --overwrite -q > "$DEST/$name.log" 2>&1 &
done
wait
tail -n 1 "$DEST"/*.log
