"""One-command GPU benchmark of where genbench users spend their time, side by side in one run, with random
weights (nothing is downloaded). Writes a markdown table and a JSON file; prints each row as it finishes.

    python scripts/bench_gpu.py --out docs/bench_gpu        # one H100/H200-class GPU, under 8 minutes
    python scripts/bench_gpu.py --tiny --out /tmp/bench     # the same code paths on a CPU, in seconds

Rows (each runs in its own try/except: a failure is recorded and the run goes on; a global time budget
skips what no longer fits):

1. Inception extraction of 50,000 256x256 images (uint8 already on the device): genbench fp32 (TF32 off)
   vs torch-fidelity's FeatureExtractorInceptionV3 on the same weights; genbench bf16 and bf16 +
   torch.compile, with their FID deviation from genbench fp32 on the same images.
2. A whole 50k evaluation from an ADM .npz on disk: read, features, statistics, FID, sFID, IS, P/R against
   10,000 reference rows, KID, in exact fp32 (goal: under 60 s); the reference is built beforehand.
3. SiT-XL/2 sampling at 256 px (32x32x4 latents), SDE 250 steps, CFG 1.8 on t in [0, 0.7], batch 64 as
   REPA's generate.py: a plain loop written the way REPA's euler_maruyama_sampler runs (float64 state, the
   model in fp32 with TF32 on, as its DiT-derived script sets), vs genbench fp32, bf16, bf16 + compile
   (goal: >= 1.5x the plain loop).
4. A REPA-E training step (SiT-XL/2 + f8d4 VAE + PatchGAN discriminator + DINOv2-B targets, LPIPS off: no
   VGG weights offline): images/s and peak memory, fp32 vs bf16 + compile, at the largest batch that fits.

`--tiny` shrinks every size (a few 64 px images, SiT-T/2, tiny VAE and DINOv2, 3 sampling steps) and
compiles with the `eager` backend (dynamo tracing without inductor code generation), so the suite can run
it on a CPU in seconds and the script cannot rot before a GPU is available.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch

import genbench  # noqa: F401  (torchvision shim before torch-fidelity)


@dataclasses.dataclass(frozen=True)
class Sizes:
    """Every size a row uses: the GPU run's and --tiny's."""

    images: int  # extraction and whole-evaluation sample count
    reference: int  # reference rows for P/R and KID
    resolution: int  # extraction image size
    extract_batch: int
    kid_subset: int
    is_split: int
    sit: str
    vae: str
    sit_resolution: int
    sample_batch: int
    sample_steps: int
    train_batches: tuple[int, ...]  # tried largest first
    train_steps: int  # timed steps after the warm-up
    dinov2: dict  # transformers Dinov2Config overrides
    compile_backend: str
    budget_s: float
    warmup: bool = True  # an untimed pass first (compilation, allocator, cuDNN autotuning)


GPU = Sizes(images=50_000, reference=10_000, resolution=256, extract_batch=500, kid_subset=1000,
            is_split=5000, sit="SiT-XL/2", vae="f8d4", sit_resolution=256, sample_batch=64,
            sample_steps=250, train_batches=(256, 128, 64, 32, 16), train_steps=5, dinov2={},
            compile_backend="inductor", budget_s=460.0)
TINY = Sizes(images=4, reference=4, resolution=64, extract_batch=4, kid_subset=2, is_split=2,
             sit="SiT-T/2", vae="tiny-f8d4", sit_resolution=32, sample_batch=2, sample_steps=3,
             train_batches=(4, 2), train_steps=1,
             dinov2=dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                         image_size=28),
             compile_backend="eager", budget_s=300.0, warmup=False)


# --------------------------------------------------------------------------------------------------
#                                          Bookkeeping
# --------------------------------------------------------------------------------------------------


class Report:
    """Rows of the table, printed as they come and written (markdown + JSON) after each one."""

    columns = ("section", "row", "throughput", "unit", "vs", "batch", "peak_gb", "seconds", "note")

    def __init__(self, out: Path, sizes: Sizes, device: str, tiny: bool):
        self.out, self.sizes, self.device, self.start = out, sizes, device, time.perf_counter()
        self.rows: list[dict] = []
        self.meta = {"tiny": tiny, "device": device, "device_name": _device_name(device),
                     "torch": torch.__version__, "python": platform.python_version(),
                     "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                     "sizes": dataclasses.asdict(sizes)}
        print("| " + " | ".join(self.columns) + " |\n|" + "---|" * len(self.columns), flush=True)

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def left(self) -> float:
        return self.sizes.budget_s - self.elapsed()

    def add(self, section: str, row: str, **values) -> dict:
        record = {"section": section, "row": row, **values}
        self.rows.append(record)
        print("| " + " | ".join(_cell(record.get(c)) for c in self.columns) + " |", flush=True)
        self.write()
        return record

    def run(self, section: str, row: str, needs_s: float, fn: Callable[[], dict]) -> dict | None:
        """fn() -> the row's values; an exception or too little time left becomes a row saying so."""
        if self.left() < needs_s:
            return self.add(section, row, note=f"skipped: {self.left():.0f} s of the budget left, needs "
                                               f"~{needs_s:.0f} s")
        limit = max(1, int(self.left()))

        def stop(signum, frame):  # a row that overruns the budget is stopped, not waited for
            raise TimeoutError(f"stopped at the end of the time budget ({limit} s into the row)")

        previous = signal.signal(signal.SIGALRM, stop)
        try:
            try:
                signal.alarm(limit)
                values = fn()
            finally:
                signal.alarm(0)
                signal.signal(signal.SIGALRM, previous)
        except Exception as error:  # noqa: BLE001  (an unattended run records the failure and goes on)
            detail = traceback.format_exception_only(type(error), error)[-1].strip()
            _free(self.device)
            return self.add(section, row, error=detail[:300], note=f"failed: {detail[:120]}")
        return self.add(section, row, **values)

    def write(self) -> None:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        payload = {"meta": {**self.meta, "wall_s": round(self.elapsed(), 1)}, "rows": self.rows}
        _write_text(self.out.with_suffix(".json"), json.dumps(payload, indent=1, default=str))
        header = (f"GPU benchmark ({'tiny, ' if self.meta['tiny'] else ''}{self.meta['device_name']}, torch "
                  f"{self.meta['torch']}, {self.meta['date']}; wall {self.elapsed():.0f} s)\n\n")
        table = ["| " + " | ".join(self.columns) + " |", "|" + "---|" * len(self.columns)]
        table += ["| " + " | ".join(_cell(r.get(c)) for c in self.columns) + " |" for r in self.rows]
        _write_text(self.out.with_suffix(".md"), header + "\n".join(table) + "\n")


def _write_text(path: Path, text: str) -> None:
    from genbench.io import write_text_atomic

    write_text_atomic(path, text)


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "/")


def _device_name(device: str) -> str:
    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(device)
    return f"CPU ({os.cpu_count()} cores: {platform.processor() or platform.machine()})"


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def _free(device: str) -> None:
    import gc

    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()


@contextlib.contextmanager
def peak_memory(device: str) -> Iterator[dict]:
    """{'peak_gb': ...} filled on exit: the device's allocator high-water mark (CUDA only)."""
    result: dict = {}
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(device)
    try:
        yield result
    finally:
        if device.startswith("cuda"):
            result["peak_gb"] = torch.cuda.max_memory_allocated(device) / 2**30


@contextlib.contextmanager
def tf32(enabled: bool) -> Iterator[None]:
    """TF32 matmuls and convolutions on or off (CUDA; a no-op elsewhere)."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def compiled(module: torch.nn.Module, backend: str) -> torch.nn.Module:
    return torch.compile(module, backend=backend)


@contextlib.contextmanager
def compile_backend(backend: str) -> Iterator[None]:
    """Make library code's plain torch.compile(module) (the Trainer's) use `backend`."""
    original = torch.compile
    torch.compile = lambda module, **kwargs: original(module, **{"backend": backend, **kwargs})
    try:
        yield
    finally:
        torch.compile = original


def timed(device: str, fn: Callable[[], object]) -> tuple[float, object]:
    _sync(device)
    start = time.perf_counter()
    value = fn()
    _sync(device)
    return time.perf_counter() - start, value


# --------------------------------------------------------------------------------------------------
#                                  1-2. Extraction and evaluation
# --------------------------------------------------------------------------------------------------


def make_images(count: int, resolution: int, seed: int, brightness: float, device: str) -> torch.Tensor:
    """uint8 [count, 3, R, R]: smooth random scenes (8x8 noise upsampled) plus pixel noise, scaled by
    `brightness` so that two sets differ in distribution (a non-trivial FID)."""
    generator = torch.Generator(device).manual_seed(seed)
    chunks = []
    for start in range(0, count, 1000):
        n = min(1000, count - start)
        coarse = torch.rand(n, 3, 8, 8, generator=generator, device=device)
        smooth = torch.nn.functional.interpolate(coarse, size=(resolution, resolution), mode="bilinear")
        noise = torch.rand(n, 3, resolution, resolution, generator=generator, device=device)
        chunks.append(((0.7 * smooth + 0.3 * noise) * 255 * brightness).to(torch.uint8))
    return torch.cat(chunks)


def run_features(model: torch.nn.Module, images: torch.Tensor, batch: int, peer: bool = False
                 ) -> torch.Tensor:
    """pool features [N, 2048] of `images` (on the model's device) in batches."""
    out = []
    with torch.inference_mode():
        for start in range(0, images.shape[0], batch):
            features = model(images[start:start + batch])
            out.append((features[0] if peer else features["pool"]).float())
    return torch.cat(out)


def fid_of(features: torch.Tensor, reference: torch.Tensor) -> float:
    from genbench.metrics.bootstrap import gaussian_of
    from genbench.metrics.frechet import frechet_distance

    return frechet_distance(*gaussian_of(features.cpu().double()), *gaussian_of(reference.cpu().double()))


def extraction_rows(report: Report, sizes: Sizes, device: str, weights: Path) -> None:
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    from genbench.extractors.inception import InceptionFeatures

    section = f"Inception, {sizes.images:,} images {sizes.resolution}px"
    images = make_images(sizes.images, sizes.resolution, seed=1, brightness=0.8, device=device)
    reference_images = make_images(sizes.reference, sizes.resolution, seed=2, brightness=1.0, device=device)
    state: dict = {}

    def genbench_row(name: str, precision: str, compile_it: bool, channels_last: bool = True) -> dict:
        model = InceptionFeatures.from_weights(weights, channels_last=channels_last, precision=precision)
        model = model.eval().to(device)
        runner = compiled(model, sizes.compile_backend) if compile_it else model
        with tf32(False), peak_memory(device) as memory:
            if sizes.warmup:
                run_features(runner, images[:sizes.extract_batch], sizes.extract_batch)  # compiles
            seconds, features = timed(device, lambda: run_features(runner, images, sizes.extract_batch))
            reference = run_features(runner, reference_images, sizes.extract_batch)
        fid = fid_of(features, reference)
        values = {"throughput": sizes.images / seconds, "unit": "img/s", "batch": sizes.extract_batch,
                  "seconds": seconds, "fid": fid, **memory}
        if name == "genbench fp32":
            state.update(fp32=values["throughput"], fid=fid, features=features)
            values["note"] = f"FID vs the reference set {fid:.4f} (TF32 off)"
        else:
            base = state.get("fp32")
            values["vs"] = f"x{values['throughput'] / base:.2f} vs genbench fp32" if base else None
            if "fid" in state:
                values["fid_deviation"] = fid - state["fid"]
                values["max_feature_diff"] = float((features - state["features"]).abs().max())
                values["note"] = (f"FID {fid:.4f}, {fid - state['fid']:+.2e} vs fp32; max |pool diff| "
                                  f"{values['max_feature_diff']:.2e}")
        return values

    def peer_row() -> dict:
        peer = FeatureExtractorInceptionV3("inception-v3-compat", ["2048", "logits_unbiased"],
                                           feature_extractor_weights_path=str(weights)).eval().to(device)
        with tf32(False), peak_memory(device) as memory:
            if sizes.warmup:
                run_features(peer, images[:sizes.extract_batch], sizes.extract_batch, peer=True)
            seconds, features = timed(device, lambda: run_features(peer, images, sizes.extract_batch, True))
        values = {"throughput": sizes.images / seconds, "unit": "img/s", "batch": sizes.extract_batch,
                  "seconds": seconds, **memory}
        if "fp32" in state:
            values["vs"] = f"genbench fp32 x{state['fp32'] / values['throughput']:.2f} of this"
            diff = float((features - state["features"]).abs().max())
            values["note"] = f"same weights, TF32 off; max |pool diff| vs genbench fp32 {diff:.2e}"
        return values

    per_pass = 60.0 if not report.meta["tiny"] else 5.0
    report.run(section, "genbench fp32", per_pass, lambda: genbench_row("genbench fp32", "fp32", False))
    report.run(section, "torch-fidelity fp32", per_pass, peer_row)
    report.run(section, "genbench bf16", per_pass, lambda: genbench_row("genbench bf16", "bf16", False))
    report.run(section, "genbench bf16 + compile", 2 * per_pass,
               lambda: genbench_row("genbench bf16 + compile", "bf16", True))
    state.clear()
    _free(device)


def evaluation_row(report: Report, sizes: Sizes, device: str, weights: Path, tmp: Path) -> None:
    from genbench.metrics.spec import MetricOptions

    from genbench.evaluate import build_reference, evaluate_by_name
    from genbench.extractors.inception import InceptionFeatures
    from genbench.sources import open_source

    section = f"whole evaluation, {sizes.images:,} samples"

    def write_npz(path: Path, count: int, seed: int, brightness: float) -> None:
        images = make_images(count, sizes.resolution, seed, brightness, device)
        np.savez(path, arr_0=images.permute(0, 2, 3, 1).cpu().numpy())

    def run() -> dict:
        write_npz(tmp / "samples.npz", sizes.images, 1, 0.8)
        write_npz(tmp / "reference.npz", sizes.reference, 2, 1.0)
        extractor = InceptionFeatures.from_weights(weights)
        workers = min(8, os.cpu_count() or 1) if device.startswith("cuda") else 0
        with tf32(False), peak_memory(device) as memory:
            reference = build_reference(open_source(tmp / "reference.npz"), extractor,
                                        sizes.extract_batch, device, workers)
            options = MetricOptions(kid_subset_size=sizes.kid_subset, is_split_size=sizes.is_split)
            seconds, (metrics, provenance) = timed(device, lambda: evaluate_by_name(
                open_source(tmp / "samples.npz"), reference, ["fid", "sfid", "is", "pr", "kid"], extractor,
                sizes.extract_batch, device, workers, options))
        timings = provenance["timings"]
        return {"throughput": sizes.images / seconds, "unit": "img/s", "batch": sizes.extract_batch,
                "seconds": seconds, "vs": "goal < 60 s" if not report.meta["tiny"] else None,
                "metrics": metrics, "timings": timings, **memory,
                "note": (f"exact fp32; features {timings['extract_samples_s']:.1f} s, metrics "
                         f"{timings['metrics_s']:.1f} s; FID {metrics['fid']:.3f} sFID {metrics['sfid']:.3f} "
                         f"IS {metrics['is']:.3f} P {metrics['precision']:.3f} R {metrics['recall']:.3f} "
                         f"KID {metrics['kid']:.4f}; {workers} reader workers")}

    report.run(section, "genbench eval fid,sfid,is,pr,kid", 90.0 if not report.meta["tiny"] else 5.0, run)
    for name in ("samples.npz", "reference.npz"):
        (tmp / name).unlink(missing_ok=True)
    _free(device)


# --------------------------------------------------------------------------------------------------
#                                          3. Sampling
# --------------------------------------------------------------------------------------------------


@torch.no_grad()
def plain_repa_sde(model: torch.nn.Module, latents: torch.Tensor, labels: torch.Tensor, num_steps: int,
                   cfg_scale: float, guidance_low: float, guidance_high: float, null_label: int
                   ) -> torch.Tensor:
    """The SDE sampler written as REPA's generate.py runs it (samplers.py euler_maruyama_sampler): float64
    state, time grid linspace(1, 0.04, N) + [0], the batch doubled with the null label inside the guidance
    interval, CFG on the drift, diffusion 2t, one noise-free last step; the model called in the latents'
    dtype, with batch-level torch.randn_like noise."""
    dtype = latents.dtype
    t_steps = torch.cat([torch.linspace(1.0, 0.04, num_steps, dtype=torch.float64),
                         torch.zeros(1, dtype=torch.float64)])
    null = torch.full_like(labels, null_label)
    x = latents.to(torch.float64)

    def drift(x_cur: torch.Tensor, t_cur: torch.Tensor) -> torch.Tensor:
        guided = cfg_scale > 1.0 and guidance_low <= float(t_cur) <= guidance_high
        model_input = torch.cat([x_cur, x_cur]) if guided else x_cur
        y = torch.cat([labels, null]) if guided else labels
        time_input = torch.ones(model_input.shape[0], device=x_cur.device, dtype=torch.float64) * t_cur
        v = model(model_input.to(dtype), time_input.to(dtype), y).to(torch.float64)
        t = time_input.view(-1, 1, 1, 1)
        score = ((t - 1) * v - model_input) / t  # linear path: alpha = 1 - t, sigma = t
        d = v - 0.5 * (2 * t) * score
        if guided:
            d_cond, d_uncond = d.chunk(2)
            d = d_uncond + cfg_scale * (d_cond - d_uncond)
        return d

    for t_cur, t_next in zip(t_steps[:-2], t_steps[1:-1], strict=True):
        dt = t_next - t_cur
        noise = torch.randn_like(x) * torch.sqrt(torch.abs(dt))
        x = x + drift(x, t_cur) * dt + torch.sqrt(2 * t_cur) * noise
    t_cur, t_next = t_steps[-2], t_steps[-1]
    return x + drift(x, t_cur) * (t_next - t_cur)  # the mean of the last step


def build_sampling_sit(sizes: Sizes, device: str) -> torch.nn.Module:
    from genbench.models import build_sit

    torch.manual_seed(0)
    model = build_sit(sizes.sit, input_size=sizes.sit_resolution // 8, in_channels=4, z_dim=0)
    # A fresh SiT outputs exactly 0 (adaLN-Zero); give the output layer weights so the numbers mean something.
    torch.nn.init.normal_(model.final_layer.linear.weight, std=0.02)
    torch.nn.init.normal_(model.final_layer.adaLN_modulation[-1].weight, std=0.02)
    return model.to(device).eval()


def sampling_rows(report: Report, sizes: Sizes, device: str) -> None:
    from genbench.sampling.generate import SampleSettings, sample_batch

    section = (f"{sizes.sit} sampling {sizes.sit_resolution}px, SDE {sizes.sample_steps} steps, CFG 1.8 on "
               f"[0, 0.7]")
    model = build_sampling_sit(sizes, device)
    latent = sizes.sit_resolution // 8
    labels = torch.arange(sizes.sample_batch, device=device) % 1000
    state: dict = {}
    tiny = report.meta["tiny"]

    def settings(precision: str, steps: int) -> SampleSettings:
        return SampleSettings(num_samples=sizes.sample_batch, latent_shape=(4, latent, latent),
                              sampler="sde", num_steps=steps, cfg_scale=1.8, guidance_interval=(0.0, 0.7),
                              precision=precision)

    def plain_row() -> dict:
        latents = torch.randn(sizes.sample_batch, 4, latent, latent, device=device)

        def run(steps: int) -> torch.Tensor:
            return plain_repa_sde(model, latents, labels, steps, 1.8, 0.0, 0.7, 1000)

        with tf32(True), peak_memory(device) as memory:
            if sizes.warmup:
                run(2)  # one guided and one unguided step
            seconds, _ = timed(device, lambda: run(sizes.sample_steps))
        state["plain"] = sizes.sample_batch / seconds
        return {"throughput": state["plain"], "unit": "img/s", "batch": sizes.sample_batch,
                "seconds": seconds, **memory, "note": "REPA generate.py's loop, fp32 model, TF32 on"}

    def genbench_row(precision: str, compile_it: bool) -> dict:
        runner = compiled(model, sizes.compile_backend) if compile_it else model
        indices = list(range(sizes.sample_batch))
        with tf32(True), peak_memory(device) as memory:
            if sizes.warmup:  # one guided and one unguided step: compiles both batch shapes
                sample_batch(runner, settings(precision, 2), indices, labels, device)
            seconds, latents = timed(device, lambda: sample_batch(
                runner, settings(precision, sizes.sample_steps), indices, labels, device))
        rate = sizes.sample_batch / seconds
        values = {"throughput": rate, "unit": "img/s", "batch": sizes.sample_batch, "seconds": seconds,
                  **memory, "note": "per-sample noise (seed, index); TF32 on"}
        if "plain" in state:
            goal = "" if tiny else " (goal >= 1.5)"
            values["vs"] = f"x{rate / state['plain']:.2f} vs plain loop{goal}"
        if precision == "fp32" and not compile_it:
            state["latents"] = latents
        elif "latents" in state:
            diff = (latents - state["latents"]).abs().max()
            values["note"] += f"; max |latent diff| vs genbench fp32 {diff:.3g}"
        return values

    per_run = 40.0 if not tiny else 5.0
    report.run(section, "plain loop (REPA generate.py) fp32", per_run, plain_row)
    report.run(section, "genbench fp32", per_run, lambda: genbench_row("fp32", False))
    report.run(section, "genbench bf16", per_run, lambda: genbench_row("bf16", False))
    report.run(section, "genbench bf16 + compile", 3 * per_run, lambda: genbench_row("bf16", True))
    state.clear()
    _free(device)


# --------------------------------------------------------------------------------------------------
#                                        4. REPA-E training
# --------------------------------------------------------------------------------------------------


def random_dinov2(folder: Path, overrides: dict) -> Path:
    """A randomly initialised DINOv2 ViT-B/14 (or a smaller config) saved as a local Hugging Face folder."""
    from transformers import Dinov2Config, Dinov2Model

    if not (folder / "config.json").is_file():
        torch.manual_seed(0)
        Dinov2Model(Dinov2Config(**overrides)).save_pretrained(folder)
    return folder


def training_rows(report: Report, sizes: Sizes, device: str, tmp: Path) -> None:
    from genbench.training.data import ImageDataset
    from genbench.training.recipes import PRESETS, TrainConfig, Trainer

    section = f"REPA-E step: {sizes.sit} + {sizes.vae} VAE + discriminator + DINOv2"
    tiny = report.meta["tiny"]
    dinov2 = random_dinov2(tmp / "dinov2", sizes.dinov2)
    data = tmp / "train.npz"
    if not data.exists():
        images = make_images(max(sizes.train_batches), sizes.sit_resolution, 3, 1.0, "cpu")
        np.savez(data, arr_0=images.permute(0, 2, 3, 1).numpy(),
                 arr_1=np.arange(len(images)) % 1000)
    dataset = ImageDataset(data, sizes.sit_resolution)
    state: dict = {}

    def trainer(batch: int, mixed: str, compile_it: bool) -> Trainer:
        values = {**PRESETS["repae-sit-xl-2-f8d4"], "sit": {"name": sizes.sit}, "vae": {"preset": sizes.vae},
                  "encoder": {"name": "dinov2-vit-b", "weights": str(dinov2)},
                  "resolution": sizes.sit_resolution,
                  "num_classes": 1000, "batch_size": batch, "lpips": False, "mixed_precision": mixed,
                  "compile": compile_it, "log_every": 10**9, "checkpoint_every": 10**9}
        return Trainer(TrainConfig.from_dict(values, "bench_gpu"), dataset, device)

    def measure(batch: int, mixed: str, compile_it: bool) -> dict:
        with compile_backend(sizes.compile_backend), tf32(mixed == "bf16"), peak_memory(device) as memory:
            run = trainer(batch, mixed, compile_it)
            for _ in range(2 if sizes.warmup else 0):  # warm-up (and compilation)
                run.train_step()
            seconds, _ = timed(device, lambda: [run.train_step() for _ in range(sizes.train_steps)])
        _free(device)
        return {"throughput": batch * sizes.train_steps / seconds, "unit": "img/s", "batch": batch,
                "seconds": seconds / sizes.train_steps, **memory}

    def fits(batch: int, mixed: str) -> bool:
        """Whether one eager step at `batch` fits (an OOM shows within seconds, without compiling)."""
        try:
            with tf32(mixed == "bf16"):
                trainer(batch, mixed, False).train_step()
            return True
        except torch.OutOfMemoryError:
            return False
        finally:
            _free(device)

    def largest(mixed: str, compile_it: bool, batches: tuple[int, ...]) -> dict:
        """Measured at the largest batch (largest first) whose eager step fits; OOMs are noted."""
        too_big = []
        for batch in batches:
            if not fits(batch, mixed):
                too_big.append(batch)
                continue
            values = measure(batch, mixed, compile_it)
            values["note"] = (f"largest batch that fits of {list(batches)}"
                              + (f" (OOM at {too_big})" if too_big else "") + "; seconds per step")
            return values
        raise RuntimeError(f"out of memory at every batch size {list(batches)}")

    def fast_row() -> dict:
        values = largest("bf16", True, sizes.train_batches)
        state["batch"], state["fast"] = values["batch"], values["throughput"]
        return values

    def fp32_row() -> dict:
        batches = tuple(b for b in sizes.train_batches if b <= state.get("batch", max(sizes.train_batches)))
        values = largest("no", False, batches)
        if "fast" in state:
            values["vs"] = f"bf16 + compile x{state['fast'] / values['throughput']:.2f} of this"
        values["note"] += "; TF32 off"
        return values

    per_row = 150.0 if not tiny else 10.0
    report.run(section, "bf16 + compile", per_row, fast_row)
    report.run(section, "fp32", per_row * 0.6, fp32_row)
    state.clear()
    _free(device)


# --------------------------------------------------------------------------------------------------
#                                             Main
# --------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true",
                        help="tiny sizes on the CPU (the test suite runs this)")
    parser.add_argument("--device", help="default: cuda (cpu with --tiny)")
    parser.add_argument("--out", type=Path, default=Path("bench_gpu"),
                        help="writes OUT.md and OUT.json (default ./bench_gpu.*)")
    parser.add_argument("--budget", type=float, help="seconds for the whole run (rows that no longer fit "
                        "are skipped); default 460 on a GPU")
    parser.add_argument("--only", default="extraction,evaluation,sampling,training",
                        help="comma-separated sections to run")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    sizes = TINY if args.tiny else GPU
    if args.budget is not None:
        sizes = dataclasses.replace(sizes, budget_s=args.budget)
    device = args.device or ("cpu" if args.tiny else "cuda")
    if device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("bench_gpu: no CUDA device here; run with --tiny for the CPU smoke run")
    if args.tiny:
        torch.set_num_threads(1)
    report = Report(args.out, sizes, device, args.tiny)
    sections = {s.strip() for s in args.only.split(",")}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        weights = tmp / "inception-random.pth"
        from genbench.extractors.inception import random_inception_state_dict

        torch.save(random_inception_state_dict(), weights)
        if "extraction" in sections:
            extraction_rows(report, sizes, device, weights)
        if "evaluation" in sections:
            evaluation_row(report, sizes, device, weights, tmp)
        if "sampling" in sections:
            sampling_rows(report, sizes, device)
        if "training" in sections:
            training_rows(report, sizes, device, tmp)
    report.write()
    print(f"wrote {args.out.with_suffix('.md')} and {args.out.with_suffix('.json')} in "
          f"{report.elapsed():.0f} s", flush=True)
    return {"meta": report.meta, "rows": report.rows}


if __name__ == "__main__":
    main()
