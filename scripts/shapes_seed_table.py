"""The miniature experiment's table (README, "SiT vs REPA vs REPA-E on shapes") from its results files.

    python scripts/shapes_seed_table.py runs/shapes sit repa repae [--seeds 0,1]

For each recipe and seed (seed 0 is `<recipe>`, seed k `<recipe>-seed<k>`) it reads the files
scripts/reproduce_shapes.sh writes: `final-<run>.json` (all metrics, 2,000 samples), `final-<run>-ci.json`
(FID and class accuracy with 95% bootstrap intervals on the same samples) and `final-<run>-cfg4.json`; then a
row per recipe with the mean over seeds and, in brackets, the lowest and highest seed. Prints markdown.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from genbench.results import load_results


def _interval(metrics: dict, key: str, digits: int) -> str:
    low, high = metrics.get(f"{key}_ci_low"), metrics.get(f"{key}_ci_high")
    value = f"{metrics[key]:.{digits}f}"
    return value if low is None else f"{value} [{low:.{digits}f}, {high:.{digits}f}]"


def seed_row(out: Path, recipe: str, seed: int) -> tuple[str, dict[str, float]]:
    run = recipe if seed == 0 else f"{recipe}-seed{seed}"
    full = load_results(out / f"final-{run}.json")["metrics"]
    ci = load_results(out / f"final-{run}-ci.json")["metrics"]
    cfg = load_results(out / f"final-{run}-cfg4.json")["metrics"]
    cells = [recipe, str(seed), _interval(ci, "fid", 2), f"{full['sfid']:.2f}", f"{full['is']:.1f}",
             f"{full['precision']:.2f}", f"{full['recall']:.2f}", f"{full['kid']:.4f}",
             _interval(ci, "class_acc", 3), _interval(cfg, "fid", 2), _interval(cfg, "class_acc", 3)]
    values = {"fid": ci["fid"], "class_acc": ci["class_acc"], "cfg_fid": cfg["fid"],
              "cfg_class_acc": cfg["class_acc"]}
    return "| " + " | ".join(cells) + " |", values


def mean_row(recipe: str, values: list[dict[str, float]]) -> str:
    def summary(key: str, digits: int) -> str:
        column = [v[key] for v in values]
        mean = sum(column) / len(column)
        return f"**{mean:.{digits}f}** [{min(column):.{digits}f}, {max(column):.{digits}f}]"

    cells = [f"**{recipe}**", "mean", summary("fid", 2), "", "", "", "", "", summary("class_acc", 3),
             summary("cfg_fid", 2), summary("cfg_class_acc", 3)]
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("recipes", nargs="+")
    parser.add_argument("--seeds", default="0,1")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    print("| recipe | seed | FID [95%] | sFID | IS | precision | recall | KID | class_acc [95%] | "
          "CFG 4: FID [95%] | CFG 4: class_acc [95%] |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for recipe in args.recipes:
        values = []
        for seed in seeds:
            row, numbers = seed_row(args.out, recipe, seed)
            print(row)
            values.append(numbers)
        if len(seeds) > 1:
            print(mean_row(recipe, values))


if __name__ == "__main__":
    main()
