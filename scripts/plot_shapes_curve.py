"""FID versus training step of the shapes-world recipes, from `genbench eval` results files, and REPA-E's
latent scale over steps.

    python scripts/plot_shapes_curve.py EVAL_DIR --out leaderboards/shapes_fid_curve.png \
        [--latent-scale runs/shapes/repae]

EVAL_DIR holds `<recipe>-<step>.json` files (scripts/reproduce_shapes.sh writes them). With
--latent-scale RUN_DIR, a second panel shows, for each checkpoint of that run, the per-channel standard
deviation of the VAE's posterior means on 256 held-out world images (seed 3), averaged over channels, and the
square root of the latent BatchNorm's running variance (what the SiT divides by); the values are also
printed as JSON lines.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from genbench.results import load_results  # noqa: E402


def read_curves(eval_dir: Path, metric: str) -> dict[str, list[tuple[int, float]]]:
    """recipe -> sorted [(step, value)] from `<recipe>-<step>.json` files."""
    curves: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for path in eval_dir.glob("*-*.json"):
        recipe, step = path.stem.rsplit("-", 1)
        curves[recipe].append((int(step), load_results(path)["metrics"][metric]))
    return {recipe: sorted(points) for recipe, points in sorted(curves.items())}


@torch.no_grad()
def latent_scale_curve(run_dir: Path, num: int = 256) -> list[dict]:
    """[{step, latent_std, bn_std}] for each checkpoint of a REPA-E run (see the module docstring)."""
    from genbench.models.checkpoints import load_model_checkpoint
    from genbench.models.tokenizer_adapters import encode_mean
    from genbench.worlds import ShapesWorld

    images = torch.from_numpy(ShapesWorld(32).sample(num, seed=3)[0])
    points = []
    for checkpoint in sorted((run_dir / "checkpoints").glob("*.pt")):
        loaded = load_model_checkpoint(checkpoint)
        z = encode_mean(loaded.vae, images)
        norm = loaded.sit.latent_norm
        points.append({"step": int(checkpoint.stem), "latent_std": z.std(dim=(0, 2, 3)).mean().item(),
                       "bn_std": norm.running_var.sqrt().mean().item()})
        print(json.dumps(points[-1]), flush=True)
    return points


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("eval_dir", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--metric", default="fid")
    parser.add_argument("--latent-scale", type=Path, default=None, help="a REPA-E run directory")
    args = parser.parse_args()
    curves = read_curves(args.eval_dir, args.metric)
    if args.latent_scale is None:
        figure, axis = plt.subplots(figsize=(5, 3.5), dpi=120)
    else:
        figure, (axis, scale_axis) = plt.subplots(1, 2, figsize=(9, 3.5), dpi=120)
        points = latent_scale_curve(args.latent_scale)
        steps = [p["step"] for p in points]
        scale_axis.plot(steps, [p["latent_std"] for p in points], marker="o", label="posterior mean std")
        scale_axis.plot(steps, [p["bn_std"] for p in points], marker="s", label="latent BN running std")
        scale_axis.set_xlabel("training step")
        scale_axis.set_ylabel("per-channel std (mean over channels)")
        scale_axis.set_title("REPA-E's latent scale")
        scale_axis.legend()
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
