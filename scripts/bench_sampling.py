"""Sampler throughput: images/s of genbench's sampling path (per-sample noise, interval CFG, SDE or ODE) on
a randomly initialised SiT, fp32 against bf16 autocast, each with and without torch.compile. The latents
are timed, not the VAE decode. Ratios are against fp32 eager, measured in the same run.

    python scripts/bench_sampling.py                                   # CPU, tiny SiT-M/2 at 64 px
    python scripts/bench_sampling.py --device cuda --config SiT-XL/2 --resolution 256 --batch-size 64
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import genbench  # noqa: F401  (torchvision shim)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="SiT-M/2", help="SiT registry name (SiT-XL/2, SiT-B/2, ...)")
    parser.add_argument("--resolution", type=int, default=64, help="image resolution; latents are res / 8")
    parser.add_argument("--latent-channels", type=int, default=4)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--sampler", choices=("sde", "ode"), default="sde")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--cfg-scale", type=float, default=1.8)
    parser.add_argument("--guidance-interval", type=float, nargs=2, default=(0.0, 0.7))
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per row (median reported)")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile rows")
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads (1: on a shared 2-core box, 2 contended threads are far slower)")
    return parser.parse_args()


def time_sampling(model, settings, args) -> tuple[float, torch.Tensor]:
    """(median images/s over `repeats` runs after one warm-up, the latents of the last run)."""
    from genbench.sampling.generate import sample_batch

    indices = list(range(args.batch_size))
    labels = torch.arange(args.batch_size) % 1000
    latents = sample_batch(model, settings, indices, labels, args.device)  # warm-up (and compilation)
    rates = []
    for _ in range(args.repeats):
        _synchronize(args.device)
        start = time.perf_counter()
        latents = sample_batch(model, settings, indices, labels, args.device)
        _synchronize(args.device)
        rates.append(args.batch_size / (time.perf_counter() - start))
    return statistics.median(rates), latents


def _synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    try:
        from genbench.models import build_sit
    except ImportError as error:
        print(f"note: genbench.models unavailable ({error}); no SiT row to run")
        return
    from genbench.sampling.generate import SampleSettings

    torch.manual_seed(0)
    latent_size = args.resolution // 8
    model = build_sit(args.config, input_size=latent_size, in_channels=args.latent_channels, z_dim=0)
    # A fresh SiT outputs exactly 0 (adaLN-Zero); give the output layer weights so the numbers mean something.
    torch.nn.init.normal_(model.final_layer.linear.weight, std=0.02)
    torch.nn.init.normal_(model.final_layer.adaLN_modulation[-1].weight, std=0.02)
    model = model.to(args.device).eval()
    params = sum(p.numel() for p in model.parameters()) / 1e6
    print(f"{args.config} ({params:.0f}M params), {args.resolution}px -> latents {args.latent_channels}x"
          f"{latent_size}x{latent_size}, {args.sampler} {args.steps} steps, cfg {args.cfg_scale} on "
          f"t in {list(args.guidance_interval)}, batch {args.batch_size}, device {args.device}, "
          f"torch {torch.__version__}")

    def settings(precision: str) -> SampleSettings:
        shape = (args.latent_channels, latent_size, latent_size)
        return SampleSettings(num_samples=args.batch_size, latent_shape=shape, sampler=args.sampler,
                              num_steps=args.steps, cfg_scale=args.cfg_scale,
                              guidance_interval=tuple(args.guidance_interval), precision=precision)

    rows = [("fp32", "fp32", model), ("bf16 autocast", "bf16", model)]
    if not args.no_compile:
        try:
            compiled = torch.compile(model)
            rows += [("fp32 + compile", "fp32", compiled), ("bf16 + compile", "bf16", compiled)]
        except Exception as error:  # noqa: BLE001  (report whatever stops compile, then carry on)
            print(f"note: torch.compile unavailable here: {type(error).__name__}: {error}")

    baseline, reference = None, None
    print(f"{'variant':<16} {'images/s':>10} {'vs fp32':>8} {'max|dx| vs fp32':>16}")
    for name, precision, module in rows:
        try:
            rate, latents = time_sampling(module, settings(precision), args)
        except Exception as error:  # noqa: BLE001
            print(f"{name:<16} failed: {type(error).__name__}: {str(error).splitlines()[0][:200]}")
            continue
        if baseline is None:
            baseline, reference = rate, latents
        diff = (latents - reference).abs().max().item()
        print(f"{name:<16} {rate:>10.3f} {rate / baseline:>7.2f}x {diff:>16.3g}")


if __name__ == "__main__":
    main()
