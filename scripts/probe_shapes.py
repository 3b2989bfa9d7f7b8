"""Tokenizers and representations of the `shapes` demo models: what REPA and REPA-E changed.

    python scripts/probe_shapes.py [--work runs/probe_shapes] [--num 4000] [--seed 3]

(a) `genbench tokenizers compare` of the tiny VAE before end-to-end tuning (demo:sit's, the pre-trained one)
    and after it (demo:repae's) on held-out images, ShapesWorld(32).export_npz(n=--num, seed=--seed) (the
    reference set uses seed 0, the models trained on seed 1), rFID with the `shapes` extractor, into
    leaderboards/tokenizers_shapes.csv and .md (the board is rebuilt);
(b) the layer sweep: linear-probe top-1 accuracy of the 20 shapes classes from each SiT block's pooled
    tokens at t = 0.25 (`genbench probe --features sit:demo:NAME:t=0.25 --layers all`) for demo:sit,
    demo:repa and demo:repae, plotted in leaderboards/shapes_probe_layers.png; the numbers go to
    WORK/probe_layers.json.

One thread by default: the probe's small L-BFGS problems run several times slower with two threads on a
shared 2-core machine. A few minutes on a CPU.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

import genbench  # noqa: F401  (torchvision shim)
from genbench.io import write_text_atomic
from genbench.leaderboard import append_row, read_board, render
from genbench.probe import ProbeData, layer_curve, plot_layer_curves, read_labels, run_probe
from genbench.sources import open_source
from genbench.tokenizer_comparison import CompareSettings, compare_tokenizers, load_lpips
from genbench.worlds import ShapesWorld

ROOT = Path(__file__).resolve().parents[1]
BOARD = ROOT / "leaderboards" / "tokenizers_shapes.csv"
FIGURE = ROOT / "leaderboards" / "shapes_probe_layers.png"
TOKENIZERS = ("demo:sit", "demo:repae")  # the pre-trained tiny VAE, and the one REPA-E tuned end to end
MODELS = {"SiT": "demo:sit", "REPA": "demo:repa", "REPA-E": "demo:repae"}
NOISE_LEVEL = 0.25


def compare(data: Path, labels: np.ndarray, description: str) -> None:
    source = open_source(data)
    source.description = description  # the board names the data set, not this machine's path
    lpips, note = load_lpips()
    settings = CompareSettings(extractor="shapes", batch_size=256, seed=0)
    table = compare_tokenizers(TOKENIZERS, source, labels, lpips, note, settings)
    BOARD.unlink(missing_ok=True)
    for row in table.to_dict("records"):
        append_row(BOARD, row)
    board = read_board(BOARD)
    notes = f"\nData: {description}. Notes: {board['notes'].iloc[0]}.\n"
    write_text_atomic(BOARD.with_suffix(".md"), render(board.drop(columns=["source", "notes"]), "md") + notes)
    print(table.drop(columns=["source", "notes"]).T.to_string())
    print(f"wrote {BOARD} and {BOARD.with_suffix('.md')}")


def sweep(data: Path, labels: np.ndarray, work: Path) -> None:
    source = open_source(data)
    curves, results = {}, {}
    for label, model in MODELS.items():
        run = run_probe(f"sit:{model}:t={NOISE_LEVEL}", ProbeData(source, labels), layers="all", seed=0,
                        batch_size=256)
        curve = layer_curve(run)
        curves[f"{label} ({model})"] = curve
        results[model] = {"scores": run.scores, "provenance": run.provenance}
        print(label, "top-1 % by block:", {block: round(curve[block], 2) for block in sorted(curve)})
    provenance = run.provenance
    title = (f"shapes: probe of SiT blocks, t={NOISE_LEVEL}, {provenance['num_train']} train / "
             f"{provenance['num_test']} test images")
    plot_layer_curves(curves, FIGURE, title, num_test=provenance["num_test"],
                      chance=100 / provenance["num_classes"])
    write_text_atomic(work / "probe_layers.json", json.dumps(results, indent=2) + "\n")
    print(f"wrote {FIGURE} and {work / 'probe_layers.json'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "probe_shapes")
    parser.add_argument("--num", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=3, help="World stream of the held-out images.")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.time()
    data = args.work / f"shapes32_seed{args.seed}_{args.num}.npz"
    if not data.exists():
        ShapesWorld(32).export_npz(data, n=args.num, seed=args.seed)
    labels = read_labels(data, args.num)
    compare(data, labels, f"ShapesWorld(32).export_npz(n={args.num}, seed={args.seed}), held out")
    sweep(data, labels, args.work)
    print(f"done in {time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
