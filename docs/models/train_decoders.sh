#!/usr/bin/env bash
# How the shipped arbitrary-style decoders (src/stylist/models/adain_decoder.safetensors and
# wct_decoders.safetensors) were made, in two phases. Run from the repository root with the
# training photos in DATA and the paintings in STYLES; the decoders land in DEST.
#
# Phase 1, on one H100, both runs sharing it, each stopped by --time-limit:
#   AdaIN 5150 steps, WCT (all five levels) 2700 steps, batch 8, 256 px crops, bf16.
# Phase 2, WCT only, on a 2-core CPU (no GPU was lent to that session), from phase 1's file: the
#   linear relu1_1 decoder fitted by least squares and relu2_1 fine-tuned; the other three levels
#   are carried over unchanged. The shipped run was stopped by Ctrl-C at step 292 of 400 (the
#   decoder file is written on Ctrl-C). The shipped AdaIN decoder is phase 1's file as it is.
# The steps each phase reached are in the files' metadata (`train_config`, `steps`, `final_losses`).
set -uo pipefail
DATA=${DATA:-.data/train} STYLES=${STYLES:-.data/style} DEST=${DEST:-decoders}
mkdir -p "$DEST/gpu"
held_out=(--exclude-styles the_scream.jpg composition_vii.jpg)  # judged on paintings never seen

if [ "${PHASE:-1}" = 1 ]; then
  python3 -m stylist train-decoder --method adain --content "$DATA" --style "$STYLES" "${held_out[@]}" \
    -o "$DEST/gpu/adain_decoder.safetensors" --steps 40000 --batch-size 8 --image-size 256 \
    --time-limit 265 --workers 7 --log-every 50 -q > "$DEST/gpu/adain.log" 2>&1 &
  python3 -m stylist train-decoder --method wct --content "$DATA" -o "$DEST/gpu/wct_decoders.safetensors" \
    --steps 40000 --batch-size 8 --image-size 256 --time-limit 265 --workers 7 --log-every 50 -q \
    > "$DEST/gpu/wct.log" 2>&1 &
  wait
fi

# Phase 2 (CPU, WCT): small crops, no worker processes, a fixed learning rate.
python3 -m stylist train-decoder --method wct --levels relu2_1 relu1_1 --init "$DEST/gpu/wct_decoders.safetensors" \
  --content "$DATA" -o "$DEST/wct_decoders.safetensors" --steps 400 --batch-size 8 --image-size 128 \
  --lr 2e-5 --lr-decay 0 --workers 0 --log-every 20 --device cpu -q
cp "$DEST/gpu/adain_decoder.safetensors" "$DEST/adain_decoder.safetensors"
