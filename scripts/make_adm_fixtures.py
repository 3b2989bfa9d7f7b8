"""Golden numbers from openai/guided-diffusion's own `evaluations/evaluator.py`, for tests/test_adm_parity.py.

Run where TensorFlow is installed (it need not be genbench's environment), with the evaluator's file:

    python3 -m venv /tmp/tfenv && /tmp/tfenv/bin/pip install tensorflow-cpu numpy scipy requests tqdm
    /tmp/tfenv/bin/python scripts/make_adm_fixtures.py PATH/evaluations/evaluator.py --out tests/fixtures/adm

The evaluator is imported from that path and run as is (its `np.bool` is aliased to `bool` under NumPy
1.24-1.26, which lack it); nothing of it is copied. Its Inception graph is not needed: the feature rows are
generated here from fixed seeds (`case_features`, `fid_features`, `is_logits`; the tests regenerate them
from the same functions), and the script keeps only what the evaluator returns:
- P/R: `ManifoldEstimator.manifold_radii` of both sets and `compute_prec_recall`'s precision and recall;
- distances: `DistanceBlock.pairwise_distances` of a few small blocks (half graph and float32 fallback);
- FID/sFID: `compute_statistics` + `FIDStatistics.frechet_distance` (sample statistics first, as `main`);
- IS: `compute_inception_score` on softmax rows given through a stand-in session that returns its input;
- the slices TensorFlow sums matmul products in, probed with inputs whose sum depends on the order.
Only numpy is imported at module level, so the tests can import the generators without TensorFlow.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np

POOL_DIM = 2048
SPATIAL_DIM = 2023  # 17 x 17 x 7, mixed_6/conv[..., :7] flattened


def pool_like(n: int, seed: int, shift: float = 0.0, scale: float = 1.0, dim: int = POOL_DIM) -> np.ndarray:
    """Inception-pool3-like rows: non-negative averages of ReLU units with shared low-rank structure
    (the mixing matrix is the same for every call, so two seeds draw from one distribution)."""
    mix = np.random.default_rng(12345).standard_normal((32, dim)) * 0.25
    bias = np.random.default_rng(54321).uniform(-0.6, 0.2, dim)
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((n, 32)) @ mix + bias + shift
    units = np.maximum(latent[:, None, :] + 0.45 * rng.standard_normal((n, 4, dim)), 0).mean(1)
    return (units * scale).astype(np.float32)


def spatial_like(n: int, seed: int, shift: float = 0.0) -> np.ndarray:
    """mixed_6/conv-like rows: sparse ReLU outputs, larger than pool3 values."""
    rng = np.random.default_rng(seed)
    base = np.random.default_rng(777).uniform(-1.0, 0.8, SPATIAL_DIM)
    return np.maximum(base + shift + rng.standard_normal((n, SPATIAL_DIM)) * 0.9, 0).astype(np.float32)


def ties_like(n: int, seed: int, dim: int = 64) -> np.ndarray:
    """Small integers: distances are exact integers, so many land exactly on a radius."""
    return np.random.default_rng(seed).integers(0, 3, (n, dim)).astype(np.float32)


def _with_duplicates(x: np.ndarray, seed: int, copies: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = x.copy()
    src = rng.choice(len(x), copies, replace=False)
    dst = rng.choice(np.setdiff1d(np.arange(len(x)), src), copies, replace=False)
    x[dst] = x[src]
    return x


# name -> (ref rows, sample rows, evaluator batch size); the first three are issue 20's table
PR_CASES = {
    "same_distribution": dict(batch=10_000),
    "shifted": dict(batch=10_000),
    "large_values": dict(batch=10_000),
    "near_overflow": dict(batch=10_000),
    "ties": dict(batch=10_000),
    "duplicates": dict(batch=10_000),
    "above_batch": dict(batch=500),
    "above_default_batch": dict(batch=10_000),
}


def case_features(name: str) -> tuple[np.ndarray, np.ndarray]:
    """(reference rows, sample rows) of a P/R case, from fixed seeds."""
    if name == "same_distribution":
        return pool_like(1500, 1), pool_like(1500, 2)
    if name == "shifted":
        return pool_like(1500, 3), pool_like(1200, 4, shift=0.04, scale=1.1)
    if name == "large_values":  # squared norms overflow float16: the evaluator falls back to float32
        return pool_like(1000, 5, scale=16.0), pool_like(1000, 6, scale=16.0)
    if name == "near_overflow":  # half stays finite, distances up to ~5e4
        return pool_like(800, 7, scale=7.0), pool_like(700, 8, scale=7.0)
    if name == "ties":
        return ties_like(900, 9), ties_like(800, 10)
    if name == "duplicates":
        ref = _with_duplicates(pool_like(1000, 11), 12, 40)
        sample = pool_like(900, 13)
        sample[:100] = ref[200:300]  # samples that copy reference rows
        return ref, _with_duplicates(sample, 14, 30)
    if name == "above_batch":  # several row and column batches of 500
        return pool_like(1200, 15), pool_like(1300, 16, shift=0.02)
    if name == "above_default_batch":  # more rows than the default batch of 10,000 (low-dimensional)
        return pool_like(10_300, 17, dim=32), pool_like(10_100, 18, dim=32, shift=0.02)
    raise KeyError(name)


def fid_features() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(sample rows, reference rows) for FID (pool) and sFID (spatial)."""
    return {
        "fid": (pool_like(3000, 21, shift=0.03), pool_like(2600, 22)),
        "sfid": (spatial_like(3000, 23, shift=0.05), spatial_like(2600, 24)),
    }


def is_logits() -> dict[str, tuple[np.ndarray, int]]:
    """Logits [N, 1008] and split size of each IS case (N not a multiple of the split: a short last split)."""
    rng = np.random.default_rng(31)
    centres = rng.standard_normal((40, 1008)) * 3
    labels = rng.integers(0, 40, 12_000)
    logits = centres[labels] + rng.standard_normal((12_000, 1008)) * 1.5
    return {"default_split": (logits, 5000), "small_split": (logits[:2300], 700)}


def softmax64(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=1, keepdims=True)


DISTANCE_BLOCKS = {  # name -> (rows, cols): pairwise_distances(rows, cols) is stored as float32
    "pool_half": lambda: (pool_like(64, 41), pool_like(50, 42)),
    "pool_float_fallback": lambda: (pool_like(40, 43, scale=16.0), pool_like(30, 44, scale=16.0)),
    "odd_dim_half": lambda: (pool_like(33, 45, dim=2023), pool_like(47, 46, dim=2023)),
}


def _load_evaluator(path: Path):
    spec = importlib.util.spec_from_file_location("adm_evaluator", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(np, "bool"):  # evaluate_pr's np.bool: removed in NumPy 1.24, back in 2.0
        np.bool = bool
    return module


def probe_matmul_slices(tf, session, dim: int, dtype, block_rows: int, block_cols: int) -> list[int]:
    """Boundaries of the slices TensorFlow's matmul sums products in, one after the other, for blocks of
    block_rows x block_cols (oneDNN picks them by shape). Probe row p has the products +2 at 0, then +2^25
    at p and -2^25 at p+1. If p is in the first slice, the +2 meets 2^25 and is rounded away (result 0);
    from the second slice on, the large terms cancel inside their slice and the result is 2, except when p
    ends a slice (the pair straddles two). Each run of 2s starts a slice."""
    a = tf.placeholder(dtype, [None, None])
    b = tf.placeholder(dtype, [None, None])
    product = tf.matmul(a, b, False, True)
    npdtype = np.float16 if dtype == tf.float16 else np.float32
    probes = np.zeros((dim - 2, dim), np.float32)
    probes[:, 0] = 1
    for p in range(1, dim - 1):
        probes[p - 1, p], probes[p - 1, p + 1] = 4096, -4096
    cols = np.full((block_cols, dim), 8192, np.float32)
    cols[:, 0] = 2
    survived = []
    for start in range(0, dim - 2, block_rows):  # every call has the block's shape (zero rows pad)
        rows = np.zeros((block_rows, dim), np.float32)
        chunk = probes[start : start + block_rows]
        rows[: len(chunk)] = chunk
        out = session.run(product, {a: rows.astype(npdtype), b: cols.astype(npdtype)})
        survived.append(out[: len(chunk), 0] == 2)
    hit = np.concatenate(survived)
    starts = [r + 1 for r in range(len(hit)) if hit[r] and (r == 0 or not hit[r - 1])]
    return [0, *starts, dim]


class _IdentitySession:
    """Stands in for the softmax graph: returns the rows it is fed, so IS runs on given probabilities."""

    def run(self, fetch, feed_dict):
        return next(iter(feed_dict.values()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("evaluator", type=Path, help="path to guided-diffusion's evaluations/evaluator.py")
    parser.add_argument("--out", type=Path, default=Path("tests/fixtures/adm"))
    args = parser.parse_args()

    import tensorflow.compat.v1 as tf

    tf.disable_eager_execution()
    evaluator = _load_evaluator(args.evaluator)
    session = tf.Session(config=tf.ConfigProto(allow_soft_placement=True))  # the evaluator's main() session
    arrays: dict[str, np.ndarray] = {}
    meta: dict = {
        "evaluator_sha256": hashlib.sha256(args.evaluator.read_bytes()).hexdigest(),
        "tensorflow": tf.__version__,
        "numpy": np.__version__,
        "half_slices": probe_matmul_slices(tf, session, POOL_DIM, tf.float16, 1500, 1500),
        "half_slices_small": probe_matmul_slices(tf, session, POOL_DIM, tf.float16, 100, 100),
        "float_slices": probe_matmul_slices(tf, session, POOL_DIM, tf.float32, 1500, 1500),
        "float_slices_small": probe_matmul_slices(tf, session, POOL_DIM, tf.float32, 1000, 1000),
        "pr": {}, "fid": {}, "is": {},
    }
    with session.graph.as_default():
        for name, spec in PR_CASES.items():
            ref, sample = case_features(name)
            estimator = evaluator.ManifoldEstimator(session, row_batch_size=spec["batch"],
                                                    col_batch_size=spec["batch"])
            holder = type("EvaluatorStandIn", (), {"manifold_estimator": estimator})()
            precision, recall = evaluator.Evaluator.compute_prec_recall(holder, ref, sample)
            arrays[f"pr/{name}/ref_radii"] = estimator.manifold_radii(ref)[:, 0]
            arrays[f"pr/{name}/sample_radii"] = estimator.manifold_radii(sample)[:, 0]
            meta["pr"][name] = {"precision": precision, "recall": recall, "batch": spec["batch"],
                                "ref_rows": len(ref), "sample_rows": len(sample)}
            print(f"P/R {name}: precision {precision:.6f} recall {recall:.6f}", flush=True)
        block = evaluator.DistanceBlock(session)
        for name, make in DISTANCE_BLOCKS.items():
            rows, cols = make()
            arrays[f"distances/{name}"] = block.pairwise_distances(rows, cols)
    for name, (sample, ref) in fid_features().items():
        sample_stats = evaluator.Evaluator.compute_statistics(None, sample)
        ref_stats = evaluator.Evaluator.compute_statistics(None, ref)
        meta["fid"][name] = float(sample_stats.frechet_distance(ref_stats))
        print(f"{name}: {meta['fid'][name]!r}", flush=True)
    for name, (logits, split) in is_logits().items():
        holder = type("EvaluatorStandIn", (), {"sess": _IdentitySession(), "softmax": None,
                                               "softmax_input": None, "softmax_batch_size": 512})()
        probs = softmax64(logits)
        meta["is"][name] = {
            "split_size": split,
            "float64": evaluator.Evaluator.compute_inception_score(holder, probs, split),
            "float32": evaluator.Evaluator.compute_inception_score(holder, probs.astype(np.float32), split),
        }
        print(f"IS {name}: {meta['is'][name]}", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out / "adm_numbers.npz", **arrays)
    (args.out / "adm_numbers.json").write_text(json.dumps(meta, indent=1) + "\n")
    slices = {k: v for k, v in meta.items() if "slices" in k}
    print(f"wrote {args.out}/adm_numbers.npz and .json (matmul slices: {slices})", file=sys.stderr)


if __name__ == "__main__":
    main()
