#!/usr/bin/env bash
# The shapes-world miniature experiment from scratch on a CPU: train the tiny VAE and SiT / REPA / REPA-E at
# equal steps, evaluate every checkpoint (FID-vs-step curve), evaluate the final models with the demo
# settings and write their leaderboard rows.
#
#   bash scripts/reproduce_shapes.sh [OUT_DIR]        # STEPS=1000 CURVE_NUM=500 by default
#
# Outputs: OUT_DIR/{vae.safetensors, <recipe>/checkpoints, demo-<recipe>.pt, eval/*.json},
# leaderboards/shapes.csv (+ .md) rows demo:<recipe> and demo, leaderboards/shapes_fid_curve.png.
# To ship new checkpoints copy OUT_DIR/demo-*.pt to genbench/worlds/weights/ and update CHECKPOINT_SHA256
# in genbench/worlds/demo.py.
set -euo pipefail
OUT=${1:-runs/shapes}
STEPS=${STEPS:-1000}
CURVE_NUM=${CURVE_NUM:-500}
BOARD=${BOARD:-leaderboards/shapes.csv}
REF=reference_stats/shapes32.npz

python scripts/train_shapes_models.py --out "$OUT" --steps "$STEPS"

mkdir -p "$OUT/eval"
for recipe in sit repa repae; do
  for checkpoint in "$OUT/$recipe"/checkpoints/*.pt; do
    step=$((10#$(basename "$checkpoint" .pt)))
    genbench eval --model "$checkpoint" --num "$CURVE_NUM" --steps 50 --extractor shapes --ref "$REF" \
      --metrics fid --out "$OUT/eval/$recipe-$step.json"
  done
done
python scripts/plot_shapes_curve.py "$OUT/eval" --out leaderboards/shapes_fid_curve.png

for recipe in sit repa repae; do
  # the demo settings (genbench.worlds.demo.DEMO): 2000 samples, SDE 50 steps, shapes features
  genbench eval --model "$OUT/demo-$recipe.pt" --num 2000 --steps 50 --extractor shapes --ref "$REF" \
    --out "$OUT/final-$recipe.json"
  genbench leaderboard add "$OUT/final-$recipe.json" --board "$BOARD" --name "demo:$recipe"
done
genbench leaderboard add "$OUT/final-repae.json" --board "$BOARD" --name demo
genbench leaderboard show --board "$BOARD" --format md --out "${BOARD%.csv}.md"
