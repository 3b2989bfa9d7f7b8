#!/usr/bin/env bash
# Rebuilds the shapes world's miniature text-to-image model, genbench/worlds/weights/demo-t2i.pt, on a CPU
# with genbench's own training code:
#   1. 6,000 captioned 64 px world scenes of the training prompts (seed 1; held-out combinations never
#      captioned, see genbench/geneval/t2i.py);
#   2. genbench train --recipe sit --preset t2i-shapes (TextSiT-M/2, joint attention, pixel space,
#      batch 16, STEPS steps on one thread);
#   3. the slim EMA checkpoint and its SHA-256 (put it in genbench.geneval.t2i.T2I_SHA256).
#
#   bash scripts/train_geneval_t2i.sh [OUT_DIR]        # STEPS=1250 by default: 28 min on one thread of the shared 2-core machine
set -euo pipefail
OUT=${1:-runs/t2i}
STEPS=${STEPS:-1250}
DEST=${DEST:-genbench/worlds/weights/demo-t2i.pt}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} MKL_NUM_THREADS=${MKL_NUM_THREADS:-1}
start=$SECONDS
mkdir -p "$OUT"
if [ ! -f "$OUT/captions.npz" ]; then
  python -c "from genbench.geneval.t2i import write_caption_set; write_caption_set('$OUT/captions.npz', 6000, seed=1)"
fi
genbench train --recipe sit --preset t2i-shapes --data "$OUT/captions.npz" --out "$OUT/run" --steps "$STEPS"
python -c "from genbench.models.checkpoints import export_slim_checkpoint; export_slim_checkpoint('$OUT/run', '$DEST')"
sha256sum "$DEST"
echo "train_geneval_t2i: $((SECONDS - start)) s"
