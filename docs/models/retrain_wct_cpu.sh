#!/usr/bin/env bash
# Fine-tune the WCT decoders on the larger photo set on the CPU (issue 16, sessions without a GPU),
# resumable across sessions.
#
# The shipped decoders were trained on the 500 BSDS500 photos (docs/models/wct.md). This run goes on
# from them (--init) on the shared photos less the quality benchmark's (PHOTOS, as
# docs/models/retrain_builtins_cpu.sh links them) for the levels WCT runs by default, relu4_1,
# relu3_1 and relu2_1 (relu1_1 is a least-squares fit already at 42 dB; relu5_1, left out by
# default, is carried over unchanged), at 128 px crops, lr 1e-4 fixed, with the grid loss
# (--grid-weight, train_decoders.DecoderTrainConfig) that takes out the shipped decoders' stripes on
# their 8 px upsampling grid.
#
#   PHOTOS=/path/to/photos RUNS=/path/to/run bash docs/models/retrain_wct_cpu.sh   # starts or resumes
#
# Each call trains for LIMIT seconds at most and saves. INIT: the decoder file to start from. The
# shipped decoders came from three such runs, each from the one before (wct.md, phases 3-5): 374
# steps at lr 5e-5 without the grid loss, 1071 with it on the decoded image (its first form), 825
# as here (the term on the reconstruction error).
set -euo pipefail
PHOTOS=${PHOTOS:?folder of training photos} RUNS=${RUNS:?folder for the run}
LIMIT=${LIMIT:-1800} INIT=${INIT:-src/stylist/models/wct_decoders.safetensors}
mkdir -p "$RUNS"
out=$RUNS/wct_cpu.safetensors
if [ -f "$out.ckpt" ]; then
  nice -n 5 python -m stylist train-decoder --resume "$out.ckpt" --time-limit "$LIMIT" --content "$PHOTOS" \
    -o "$out" --overwrite -q >> "$RUNS/train.log" 2>&1
else
  nice -n 5 python -m stylist train-decoder --method wct --levels relu4_1 relu3_1 relu2_1 \
    --init "$INIT" --content "$PHOTOS" -o "$out" --steps 20000 --grid-weight 1000 \
    --batch-size 8 --image-size 128 --content-zoom 1 1.25 --lr 1e-4 --lr-decay 0 --device cpu --precision bf16 \
    --log-every 10 --checkpoint-every 50 --preview-every 100 --workers 1 --time-limit "$LIMIT" -q \
    > "$RUNS/train.log" 2>&1
fi
tail -n 1 "$RUNS/train.log"
