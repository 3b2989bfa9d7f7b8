#!/usr/bin/env bash
# GenEval checks on the shapes world, offline: the world's own images (the checks' ceiling at 32 px) and
# the three shipped demo models, on every prompt a class label can express (4 kinds x 5 colours + the 4
# single-object prompts, 4 images each), scored with the shapes detector.
#
#   bash scripts/geneval_shapes.sh [OUT_DIR]
#
# Outputs: OUT_DIR/<model>/ (GenEval layout), OUT_DIR/<model>.jsonl + .json, and the rows of
# leaderboards/geneval_shapes.csv (+ .md).
set -euo pipefail
OUT=${1:-runs/geneval_shapes}
BOARD=${BOARD:-leaderboards/geneval_shapes.csv}

for model in world demo:sit demo:repa demo:repae; do
  dir="$OUT/${model/:/-}"
  genbench geneval generate --model "$model" --out "$dir" --per-task 100 --steps 50
  genbench geneval score "$dir" --detector shapes --out "$dir.jsonl"
  genbench leaderboard add "$dir.json" --board "$BOARD" --name "$model"
done
genbench leaderboard show --board "$BOARD" --format md --out "${BOARD%.csv}.md"
