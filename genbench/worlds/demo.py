"""The `shapes` world's demo: shipped checkpoints by name and the settings of `genbench eval --model demo`.

`demo` is the best-measured model (DEFAULT_RECIPE); `demo:sit`, `demo:repa` and `demo:repae` name each
recipe's checkpoint (scripts/train_shapes_models.py): SiT, REPA and REPA-E (upstream's whole regulariser)
trained at equal steps (4,000) and seed 0 from the issue-14 tokenizer.
Checkpoints are slim genbench checkpoints ({ema, vae, config, step}, read weights-only) checked against
their SHA-256 before use. The reference side is `reference_stats/shapes32.npz`: `genbench ref build` with
the `shapes` extractor on ShapesWorld(32).export_npz(n=5000, seed=0); the models trained on seed 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from genbench.errors import GenbenchError
from genbench.io import package_file
from genbench.sources import read_checkpoint
from genbench.weights import verify_sha256

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
REFERENCE_PATH = package_file("genbench.reference_stats", "shapes32.npz")
REFERENCE_SHA256 = "0fccf02558390793fdb57c873a42d68f155bde4df969fcf4051fab033af5ec49"
CHECKPOINT_SHA256 = {
    "sit": "d8c7028c311a0f855c114bafb0109d143a52bbdc713bd58e51af29126f9c3404",
    "repa": "34036bca8cdf7eceed930f8a709f2699a8b1cc6e3794f152b8bdd4a81f3d85b6",
    "repae": "07140eabfdc5e3d82d4e40a78d04be5f069299b14e584c521e349a1f6917f2a4",
}
DEFAULT_RECIPE = "repa"  # the best-measured of the shipped models (README, leaderboards/shapes.md)


@dataclass(frozen=True)
class DemoSettings:
    """What `genbench eval --model demo` runs unless an option overrides it."""

    num: int = 2000
    sampler: str = "sde"
    steps: int = 50
    extractor: str = "shapes"


DEMO = DemoSettings()


def demo_recipe(name: str) -> str | None:
    """"demo" -> DEFAULT_RECIPE, "demo:sit" -> "sit", ...; None when `name` is not a demo name."""
    if name == "demo":
        return DEFAULT_RECIPE
    if not name.startswith("demo:"):
        return None
    recipe = name.removeprefix("demo:")
    if recipe not in CHECKPOINT_SHA256:
        choices = "|".join(f"demo:{r}" for r in CHECKPOINT_SHA256)
        raise GenbenchError(f"--model {name}: unknown demo; use demo or {choices}")
    return recipe


def resolve_demo_model(name: str) -> Path:
    """The shipped checkpoint of a demo name, after checking its SHA-256."""
    recipe = demo_recipe(name)
    if recipe is None:
        raise GenbenchError(f"{name}: not a demo model name (demo, demo:sit, demo:repa, demo:repae)")
    path = WEIGHTS_DIR / f"demo-{recipe}.pt"
    if not path.is_file():
        raise GenbenchError(f"{path}: demo checkpoint missing; rebuild it with "
                            "scripts/train_shapes_models.py")
    verify_sha256(path, CHECKPOINT_SHA256[recipe])
    return path


def describe_demo(name: str) -> str:
    """One line naming the checkpoint a demo name evaluates: its recipe and training step."""
    recipe = demo_recipe(name)
    step = int(read_checkpoint(resolve_demo_model(name))["step"])
    chosen = " (the best-measured recipe, leaderboards/shapes.md)" if name == "demo" else ""
    return f"{name}: the {recipe} recipe's checkpoint demo-{recipe}.pt after {step:,} training steps{chosen}"


def demo_reference() -> Path:
    """reference_stats/shapes32.npz after checking its SHA-256."""
    if not REFERENCE_PATH.is_file():
        raise GenbenchError(f"{REFERENCE_PATH}: shapes reference statistics missing; rebuild them with "
                            "`genbench ref build` (see scripts/reproduce_shapes.sh)")
    verify_sha256(REFERENCE_PATH, REFERENCE_SHA256)
    return REFERENCE_PATH
