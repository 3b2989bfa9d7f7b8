"""FID versus training step of the shapes-world recipes, from `genbench eval` results files.

    python scripts/plot_shapes_curve.py EVAL_DIR --out leaderboards/shapes_fid_curve.png

EVAL_DIR holds `<recipe>-<step>.json` files (scripts/reproduce_shapes.sh writes them).
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from genbench.results import load_results  # noqa: E402


def read_curves(eval_dir: Path, metric: str) -> dict[str, list[tuple[int, float]]]:
    """recipe -> sorted [(step, value)] from `<recipe>-<step>.json` files."""
    curves: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for path in eval_dir.glob("*-*.json"):
        recipe, step = path.stem.rsplit("-", 1)
        curves[recipe].append((int(step), load_results(path)["metrics"][metric]))
    return {recipe: sorted(points) for recipe, points in sorted(curves.items())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("eval_dir", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--metric", default="fid")
    args = parser.parse_args()
    curves = read_curves(args.eval_dir, args.metric)
    figure, axis = plt.subplots(figsize=(5, 3.5), dpi=120)
    for recipe, points in curves.items():
        steps, values = zip(*points, strict=True)
        axis.plot(steps, values, marker="o", label=recipe)
    axis.set_xlabel("training step")
    axis.set_ylabel(f"{args.metric.upper()} (shapes features)")
    axis.set_title("shapes world: SiT vs REPA vs REPA-E")
    axis.legend()
    figure.tight_layout()
    tmp = args.out.with_suffix(".tmp.png")
    figure.savefig(tmp)
    tmp.replace(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
