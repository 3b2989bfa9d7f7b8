#!/usr/bin/env bash
# GenEval's whole loop on the shapes world, offline: prompts (the shapes suite, seed 0, 100 draws per task:
# 166 prompts of all six tasks, 4 images each) -> images -> GenEval scores with 95% prompt-bootstrap
# intervals and failure kinds -> CLIP score with the world's tiny CLIP -> board rows. Images come from
#   world        the world's own scene of every prompt (64 px): the ceiling of the checks;
#   demo:sit|repa|repae   the class-conditional demo models (32 px; only single_object / colors prompts);
#   demo-t2i     the miniature text-to-image model (64 px, every prompt, CFG on the null caption), also
#                scored on the held-out and the seen prompts separately.
#
#   bash scripts/geneval_shapes.sh [OUT_DIR]
#
# Outputs: OUT_DIR/<model>/ (GenEval layout), OUT_DIR/<model>.jsonl + .json, rows of
# leaderboards/geneval_shapes.csv and the tables of leaderboards/geneval_shapes.md. The tiny CLIP is built
# into $CLIP (scripts/train_shapes_clip.py) when it is not there yet.
set -euo pipefail
OUT=${1:-runs/geneval_shapes}
BOARD=${BOARD:-leaderboards/geneval_shapes.csv}
CLIP=${CLIP:-runs/shapes-clip}
T2I_CFG=${T2I_CFG:-4.0}
T2I_STEPS=${T2I_STEPS:-25}
MODELS=${MODELS:-world demo:sit demo:repa demo:repae demo-t2i}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} MKL_NUM_THREADS=${MKL_NUM_THREADS:-1}
start=$SECONDS

[ -f "$CLIP/open_clip_model.safetensors" ] || python scripts/train_shapes_clip.py --out "$CLIP"
for split in held-out seen; do
  genbench geneval prompts --world shapes --seed 0 --per-task 100 --split "$split" --out "$OUT/prompts-$split"
done

board_rows=()
score() {  # score DIR NAME SUFFIX [score args]: GenEval scores and the CLIP score of the same images
  local dir=$1 name=$2 results=$1$3
  shift 3
  genbench geneval score "$dir" --detector shapes --out "$results.jsonl" "$@"
  # the CLIP score over the pairs scored here: clip-score's per-prompt means weighted by their images
  python - "$results.json" "$results.jsonl" "$dir.clip.json" <<'PY'
import json, sys
from genbench.results import load_results, write_results
geneval, clip = load_results(sys.argv[1]), load_results(sys.argv[3])
scored = {json.loads(line)["prompt"] for line in open(sys.argv[2])}
rows = [r for r in clip["provenance"]["clip_score"]["per_prompt"] if r["prompt"] in scored]
mean = sum(r["clip_score"] * r["images"] for r in rows) / sum(r["images"] for r in rows)
provenance = geneval["provenance"] | {"clip_score": {"model": clip["provenance"]["extractor"],
                                                     "weights_sha256": clip["provenance"]["weights_sha256"]}}
write_results(sys.argv[1], geneval["metrics"] | {"clip_score": mean}, provenance)
PY
  genbench leaderboard add "$results.json" --board "$BOARD" --name "$name"
  board_rows+=("$name=$results.json")
}

for model in $MODELS; do
  dir="$OUT/${model/:/-}"
  args=(--per-task 100 --steps 50)
  if [ "$model" = demo-t2i ]; then args=(--per-task 100 --sampler ode --steps "$T2I_STEPS" --cfg-scale "$T2I_CFG"); fi
  genbench geneval generate --model "$model" --out "$dir" "${args[@]}"
  genbench clip-score "$dir" --model clip:shapes-tiny/genbench --weights "$CLIP" --out "$dir.clip.json" \
    > /dev/null
  score "$dir" "$model" ""
  if [ "$model" = demo-t2i ]; then
    for split in held-out seen; do
      score "$dir" "$model ($split prompts)" "-$split" --prompts "$OUT/prompts-$split/evaluation_metadata.jsonl"
    done
  fi
done
python scripts/geneval_shapes_table.py "${board_rows[@]}" --out "${BOARD%.csv}.md" > /dev/null
echo "geneval_shapes: $((SECONDS - start)) s for ${MODELS// /, }"
