"""Benchmark feature extraction.

1. Throughput: genbench's Inception pass (pool + bias-free logits + sFID spatial, one forward) vs
   torch-fidelity's own extraction loop (its FeatureExtractorInceptionV3 over a DataLoader, features
   "2048" and "logits_unbiased"), on the same images and the same weights file, in the same run,
   interleaved, best of `--repeats` (other processes' load only ever slows a run down). Each lever is a
   row of its own: genbench without channels-last (its fused resize and inference mode only; features
   bit-identical to torch-fidelity's, asserted), genbench as shipped (channels-last; features equal to
   float32 round-off, asserted), another batch size, one thread for both, and PNG decoding in DataLoader
   workers (decode alone, against the network's rate).
2. Memory: peak RSS of `genbench.extraction.extract` (statistics only, the FID path) over an ADM .npz of
   `--small` vs `--large` images of 256 x 256, each in a fresh process: it must not grow with the count.

    python scripts/bench_features.py [--images 32] [--small 2000] [--large 8000] [--rss-extractor pool]
        [--device cpu] [--weights PATH] [--repeats 3] [--tiny]

Without --weights a randomly initialised Inception (same architecture and cost) is used. On a CPU,
Inception manages a few images/s, so the RSS runs default to `--rss-extractor pool`: a stand-in that
average-pools the image (the data path - npz memory map, batching, float64 statistics, kept rows - is
genbench's own either way); pass `--rss-extractor inception` on a GPU. `--tiny` runs every row on a few
small images (the test suite's smoke run). The last line printed is the headline ratio; `uptime`'s load
averages are printed beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

import genbench  # noqa: F401  (torchvision shim before torch-fidelity)
from genbench.extraction import extract
from genbench.extractors.inception import InceptionFeatures, random_inception_state_dict
from genbench.sources import open_source

# float32 round-off of a different summation order inside the convolutions (channels-last): bound on
# max |a - b| / max |b| over the pool features.
CHANNELS_LAST_TOLERANCE = 1e-5


class PoolFeatures(torch.nn.Module):
    """A cheap stand-in extractor: 8x8 average-pooled pixels as 192-d 'pool' features."""

    name, resize_mode, weights_sha256 = "pool-stand-in", "none", "none"
    feature_dims = {"pool": 192}

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"pool": torch.nn.functional.adaptive_avg_pool2d(images.float(), 8).flatten(1)}


def write_npz(path: Path, count: int, size: int = 256) -> None:
    rng = np.random.default_rng(0)
    np.savez(path, arr_0=rng.integers(0, 256, (count, size, size, 3), dtype=np.uint8))


def best_rates(runs: dict[str, tuple[Callable[[], object], int]], count: int, repeats: int, device: str
               ) -> dict[str, float]:
    """{name: best images/s} over `repeats` interleaved rounds; runs[name] = (fn, threads)."""
    default_threads = torch.get_num_threads()
    rates = dict.fromkeys(runs, 0.0)
    for _ in range(repeats):
        for name, (fn, threads) in runs.items():
            torch.set_num_threads(threads)
            start = time.perf_counter()
            fn()
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            rates[name] = max(rates[name], count / (time.perf_counter() - start))
    torch.set_num_threads(default_threads)
    return rates


def throughput(npz: Path, weights: str, device: str, batch_size: int, repeats: int, tmp: Path) -> float:
    """Print one row per lever; return genbench's ratio to torch-fidelity (same threads and batch)."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    source = open_source(npz)
    count, threads = len(source), torch.get_num_threads()
    shipped = InceptionFeatures.from_weights(weights).to(device)
    nchw = InceptionFeatures.from_weights(weights, channels_last=False).to(device)
    peer = FeatureExtractorInceptionV3("inception-v3-compat", ["2048", "logits_unbiased"],
                                       feature_extractor_weights_path=weights).to(device).eval()
    images = torch.from_numpy(np.load(npz)["arr_0"]).permute(0, 3, 1, 2).contiguous()

    def peer_pass() -> torch.Tensor:
        out = []
        with torch.no_grad():  # torch-fidelity's own loop: DataLoader batches, no_grad
            for batch in torch.utils.data.DataLoader(images, batch_size=batch_size):
                out.append(peer(batch.to(device))[0].cpu())
        return torch.cat(out)

    def ours(model: torch.nn.Module, batch: int = batch_size) -> Callable[[], torch.Tensor]:
        return lambda: extract(source, model, [], ["pool"], batch_size=batch, device=device).rows["pool"]

    # Same numbers first: the resize and every feature of the NCHW path bit for bit, channels-last to
    # float32 round-off.
    reference = peer_pass()
    exact, shipped_pool = ours(nchw)(), ours(shipped)()
    assert torch.equal(exact, reference), "genbench NCHW features differ from torch-fidelity's"
    deviation = float((shipped_pool - reference).abs().max() / reference.abs().max())
    assert deviation < CHANNELS_LAST_TOLERANCE, f"channels-last features deviate by {deviation:.2e}"
    print(f"features: genbench NCHW == torch-fidelity bit for bit; channels-last max relative deviation "
          f"{deviation:.1e} (< {CHANNELS_LAST_TOLERANCE:g}), {count} images {source.image_size[0]}px")

    half = max(1, batch_size // 2)
    runs = {
        "torch-fidelity": (peer_pass, threads),
        "genbench NCHW (fused resize, inference mode)": (ours(nchw), threads),
        "genbench (channels-last, as shipped)": (ours(shipped), threads),
        f"genbench, batch {half} instead of {batch_size}": (ours(shipped, half), threads),
    }
    if threads > 1:
        runs |= {"torch-fidelity, 1 thread": (peer_pass, 1), "genbench, 1 thread": (ours(shipped), 1)}
    ours(shipped)(), peer_pass()  # warm-up (allocator, oneDNN primitive caches)
    rates = best_rates(runs, count, repeats, device)
    base = rates["torch-fidelity"]
    print(f"{'variant':<48} {'img/s':>8} {'vs torch-fidelity':>18}   ({device}, {threads} threads, batch "
          f"{batch_size}, best of {repeats} interleaved)")
    for name, rate in rates.items():
        peer_rate = rates["torch-fidelity, 1 thread"] if "1 thread" in name else base
        print(f"{name:<48} {rate:>8.2f} {'x%.2f' % (rate / peer_rate):>18}")
    decode_row(tmp, source, count, min(2, os.cpu_count() or 1), rates["genbench (channels-last, as shipped)"])
    return rates["genbench (channels-last, as shipped)"] / base


def decode_row(tmp: Path, source, count: int, workers: int, network_rate: float) -> None:
    """PNG decoding alone, in the main process vs DataLoader workers, against the network's rate."""
    from PIL import Image

    folder = tmp / "png"
    folder.mkdir(exist_ok=True)
    for images, index in source.batches(64):
        for image, i in zip(images.permute(0, 2, 3, 1).numpy(), index.tolist(), strict=True):
            Image.fromarray(image).save(folder / f"{i:06d}.png")
    pngs = open_source(folder)

    def decode(num_workers: int) -> Callable[[], None]:
        return lambda: [None for _ in pngs.batches(16, num_workers=num_workers)]

    rates = best_rates({"main": (decode(0), 1), "workers": (decode(workers), 1)}, count, 2, "cpu")
    print(f"PNG decode alone: {rates['main']:.0f} img/s in the main process, {rates['workers']:.0f} img/s "
          f"with {workers} DataLoader workers; the network runs at {network_rate:.2f} img/s, so decoding is "
          f"{100 * network_rate / rates['main']:.1f}% of a run's time without workers")


def load_averages() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


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


def main(argv: list[str] | None = None) -> float | None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--small", type=int, default=2000)
    parser.add_argument("--large", type=int, default=8000)
    parser.add_argument("--rss-extractor", choices=["pool", "inception"], default="pool")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--weights")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(),
                        help="CPU threads for both (default: torch's); a 1-thread pair is added when > 1")
    parser.add_argument("--tiny", action="store_true",
                        help="2 images of 64 px, 1 round, 1 thread, RSS at 20 vs 40 images")
    parser.add_argument("--rss-child", nargs=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    size = 256
    if args.tiny:
        args.images, args.small, args.large, args.repeats, args.batch_size, size = 2, 20, 40, 1, 2, 64
        args.threads = 1
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        weights = args.weights
        if weights is None:
            weights = str(tmp / "inception-random.pth")
            torch.save(random_inception_state_dict(), weights)
        if args.rss_child:
            return rss_child(args.rss_child[0], args.rss_extractor, weights, args.device)
        write_npz(tmp / "throughput.npz", args.images, size)
        ratio = throughput(tmp / "throughput.npz", weights, args.device, args.batch_size, args.repeats, tmp)
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
        print(f"genbench vs torch-fidelity Inception extraction: x{ratio:.2f} ({args.images} images "
              f"{size}px, "
              f"{args.device}, {torch.get_num_threads()} threads, batch {args.batch_size}, best of "
              f"{args.repeats} interleaved; {load_averages()})")
        return ratio


if __name__ == "__main__":
    main()
