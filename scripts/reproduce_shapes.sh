#!/usr/bin/env bash
# The shapes-world miniature experiment from scratch on a CPU: the tokenizer (with its pre-trained
# discriminator), SiT / REPA / REPA-E at equal steps for each seed, REPA-E ablations, every seed-0 checkpoint
# evaluated (FID / class accuracy vs step, REPA-E's latent scale), and every final model evaluated with the
# demo settings, without and with CFG, with bootstrap intervals, into leaderboard rows.
#
#   bash scripts/reproduce_shapes.sh [OUT_DIR]
#   # STEPS=4000 SEEDS=0,1 CURVE_NUM=500 NUM=2000 CFG=4 DEMO=<run shipped as `demo`> by default
#
# Outputs: OUT_DIR/{train.npz, vae.safetensors, discriminator.pt, <run>/checkpoints, demo-<run>.pt,
# eval/*.json, final-*.json}, leaderboards/shapes.csv (+ .md) rows demo:<recipe>, seed<k>:<recipe>,
# ablation:<name>, each also @cfg<CFG>, and demo,
# leaderboards/shapes_fid_curve.png. To ship new checkpoints copy OUT_DIR/demo-{sit,repa,repae}.pt to
# genbench/worlds/weights/, update CHECKPOINT_SHA256 (and DEFAULT_RECIPE) in genbench/worlds/demo.py.
set -euo pipefail
OUT=${1:-runs/shapes}
STEPS=${STEPS:-4000}
SEEDS=${SEEDS:-0,1}
CURVE_NUM=${CURVE_NUM:-500}
NUM=${NUM:-2000}
CFG=${CFG:-4}
DEMO=${DEMO:-repa}
# REPA-E ablations (rows of the board): a 10x smaller VAE learning rate, and the VAE pass with batch-statistics
# BatchNorm (a documented deviation from upstream, TrainConfig.vae_pass_batch_stats)
ABLATIONS=${ABLATIONS:-"repae-vaelr1e-5=vae_lr:1e-5;repae-bnbatch=vae_pass_batch_stats:true"}
BOARD=${BOARD:-leaderboards/shapes.csv}
REF=reference_stats/shapes32.npz
SAMPLING=(--steps 50 --extractor shapes --ref "$REF")

python scripts/train_shapes_models.py --out "$OUT" --steps "$STEPS" --seeds "$SEEDS" --ablations "$ABLATIONS"

mkdir -p "$OUT/eval"
for recipe in sit repa repae; do
  for checkpoint in "$OUT/$recipe"/checkpoints/*.pt; do
    step=$((10#$(basename "$checkpoint" .pt)))
    genbench eval --model "$checkpoint" --num "$CURVE_NUM" "${SAMPLING[@]}" --metrics fid,class_acc \
      --out "$OUT/eval/$recipe-$step.json"
  done
done
python scripts/plot_shapes_curve.py "$OUT/eval" --out leaderboards/shapes_fid_curve.png --latent-scale "$OUT/repae"

for model in "$OUT"/demo-*.pt; do
  run=$(basename "$model" .pt)
  run=${run#demo-}
  # board names: demo:<recipe> for seed 0, seed<k>:<recipe> for seed k, ablation:<name> for the ablations
  case $run in
    *-seed*) name="seed${run##*-seed}:${run%-seed*}" ;;
    sit|repa|repae) name="demo:$run" ;;
    *) name="ablation:$run" ;;
  esac
  # the demo settings (genbench.worlds.demo.DEMO): 2000 samples, SDE 50 steps, shapes features
  genbench eval --model "$model" --num "$NUM" "${SAMPLING[@]}" --metrics fid,sfid,is,pr,kid,class_acc \
    --out "$OUT/final-$run.json"
  genbench leaderboard add "$OUT/final-$run.json" --board "$BOARD" --name "$name"
  # 95% intervals of FID and class accuracy on the same samples (P/R and KID would redo their k-NN radii
  # and subset draws for each of the 200 resamples)
  genbench eval --samples "$OUT/final-$run.samples.npz" --extractor shapes --ref "$REF" --metrics fid,class_acc \
    --bootstrap 200 --out "$OUT/final-$run-ci.json"
  genbench eval --model "$model" --num "$NUM" "${SAMPLING[@]}" --cfg-scale "$CFG" --metrics fid,class_acc \
    --bootstrap 200 --out "$OUT/final-$run-cfg$CFG.json"
  genbench leaderboard add "$OUT/final-$run-cfg$CFG.json" --board "$BOARD" --name "$name@cfg$CFG"
done
genbench leaderboard add "$OUT/final-$DEMO.json" --board "$BOARD" --name demo
genbench leaderboard show --board "$BOARD" --format md --out "${BOARD%.csv}.md"
