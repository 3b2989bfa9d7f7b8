"""Benchmark feature extraction.

1. Throughput: genbench's Inception pass (pool + bias-free logits + sFID spatial, one forward) vs
   torch-fidelity's own extraction loop (its FeatureExtractorInceptionV3 over a DataLoader, features
   "2048" and "logits_unbiased"), on the same images and the same weights file, in the same run.
2. Memory: peak RSS of `genbench.evaluate.extract` (statistics only, the FID path) over an ADM .npz of
   `--small` vs `--large` images of 256 x 256, each in a fresh process: it must not grow with the count.

    python scripts/bench_features.py [--images 64] [--small 2000] [--large 8000] [--rss-extractor pool]
        [--device cpu] [--weights PATH]

Without --weights a randomly initialised Inception (same architecture and cost) is used. On a CPU,
Inception manages a few images/s, so the RSS runs default to `--rss-extractor pool`: a stand-in that
average-pools the image (the data path - npz memory map, batching, float64 statistics, kept rows - is
genbench's own either way); pass `--rss-extractor inception` on a GPU.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import genbench  # noqa: F401  (torchvision shim before torch-fidelity)
from genbench.evaluate import extract
from genbench.extractors.inception import InceptionFeatures, random_inception_state_dict
from genbench.sources import open_source


class PoolFeatures(torch.nn.Module):
    """A cheap stand-in extractor: 8x8 average-pooled pixels as 192-d 'pool' features."""

    name, resize_mode, weights_sha256 = "pool-stand-in", "none", "none"
    feature_dims = {"pool": 192}

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"pool": torch.nn.functional.adaptive_avg_pool2d(images.float(), 8).flatten(1)}


def write_npz(path: Path, count: int, size: int = 256) -> None:
    rng = np.random.default_rng(0)
    np.savez(path, arr_0=rng.integers(0, 256, (count, size, size, 3), dtype=np.uint8))


def throughput(npz: Path, weights: str, device: str, batch_size: int, repeats: int) -> None:
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    source = open_source(npz)
    ours = InceptionFeatures.from_weights(weights).to(device)
    peer = FeatureExtractorInceptionV3("inception-v3-compat", ["2048", "logits_unbiased"],
                                       feature_extractor_weights_path=weights).to(device)
    images = torch.from_numpy(np.load(npz)["arr_0"]).permute(0, 3, 1, 2).contiguous()
    loader = torch.utils.data.DataLoader(images, batch_size=batch_size)

    def run_peer() -> None:
        with torch.no_grad():
            for batch in loader:
                peer(batch.to(device))

    def run_ours() -> None:
        extract(source, ours, ["pool", "spatial"], ["logits"], batch_size=batch_size, device=device)

    run_ours(), run_peer()  # warm-up (allocator, caches)
    timings = {"genbench": 0.0, "torch-fidelity": 0.0}
    for _ in range(repeats):  # interleaved, best of `repeats`: robust to load from other processes
        for name, fn in (("genbench", run_ours), ("torch-fidelity", run_peer)):
            start = time.perf_counter()
            fn()
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            timings[name] = max(timings[name], len(source) / (time.perf_counter() - start))
    print(f"throughput on {len(source)} images ({device}): genbench {timings['genbench']:.2f} img/s "
          f"(pool+logits+spatial), torch-fidelity {timings['torch-fidelity']:.2f} img/s (2048+logits); "
          f"ratio x{timings['genbench'] / timings['torch-fidelity']:.2f}")


def rss_child(npz: str, extractor: str, weights: str, device: str) -> None:
    model = PoolFeatures() if extractor == "pool" else InceptionFeatures.from_weights(weights)
    # Statistics only (the FID/sFID path). Metrics that need rows (P/R, KID, IS) also keep 4 bytes per
    # feature per image: 8 KiB/image for pool3, by design.
    extract(open_source(npz), model, ["pool"], [], batch_size=64, device=device)
    print(json.dumps({"peak_rss_mb": peak_rss_mb()}))


def peak_rss_mb() -> float:
    """This process's resident-memory high-water mark. VmHWM belongs to the address space that exec
    created; getrusage's ru_maxrss would also carry the parent's peak across fork+exec on Linux."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--small", type=int, default=2000)
    parser.add_argument("--large", type=int, default=8000)
    parser.add_argument("--rss-extractor", choices=["pool", "inception"], default="pool")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--weights")
    parser.add_argument("--rss-child", nargs=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        weights = args.weights
        if weights is None:
            weights = str(tmp / "inception-random.pth")
            torch.save(random_inception_state_dict(), weights)
        if args.rss_child:
            return rss_child(args.rss_child[0], args.rss_extractor, weights, args.device)
        write_npz(tmp / "throughput.npz", args.images)
        throughput(tmp / "throughput.npz", weights, args.device, args.batch_size, args.repeats)
        peaks = {}
        for count in (args.small, args.large):
            write_npz(tmp / f"{count}.npz", count)
            out = subprocess.run([sys.executable, __file__, "--rss-child", str(tmp / f"{count}.npz"),
                                  "--rss-extractor", args.rss_extractor, "--weights", weights,
                                  "--device", args.device], capture_output=True, text=True, check=True)
            peaks[count] = json.loads(out.stdout.strip().splitlines()[-1])["peak_rss_mb"]
        print(f"peak RSS ({args.rss_extractor} extractor, 256x256 npz): {args.small} images "
              f"{peaks[args.small]:.0f} MB, {args.large} images {peaks[args.large]:.0f} MB; ratio "
              f"x{peaks[args.large] / peaks[args.small]:.3f} (npz files "
              f"{args.small * 196_608 / 2**20:.0f} MB vs {args.large * 196_608 / 2**20:.0f} MB)")


if __name__ == "__main__":
    main()
