"""Linear probes of frozen representations: feature sources, labels, and one probe run over a data set.

Feature specs (`genbench probe --features SPEC`):

- `sit:CKPT[:layer=L][:t=T]`: CKPT is a genbench checkpoint, demo:NAME or an official model name (`genbench
  models list`, fetched on first use). The SiT's block-L output (1-based, default the REPA alignment depth)
  at noise level t (default 0.25; t = 0 is clean), tokens average-pooled to [N, hidden]. The input is
  noised as in training, x_t = (1 - t) norm(z) + t eps, with z the VAE posterior mean and eps drawn per
  image from (seed, image index), so a feature does not depend on batching. The class input is the null
  class: the true label would leak into the features.
- `vae:TOKENIZER[:pool=K]`: the VAE posterior mean, flattened, or average-pooled to K x K first. TOKENIZER
  is a `genbench tokenizers` spec (genbench checkpoint, demo:NAME, PRESET:PATH). Latents are standardised
  (training mean and std) before the k-NN as well as the linear probe.
- `encoder:NAME[:feature=F][:weights=PATH]`: a registered backbone's (genbench.backbones) extractor feature F
  (default `pool`: Inception pool3, DINOv2, the `shapes` network), or, for a backbone that is only a REPA
  target (`dinov2-vit-b`, `tiny`), its tokens average-pooled.

CKPT is a genbench checkpoint or a shipped demo name (demo, demo:sit, demo:repa, demo:repae).
Accuracies are reported in percent (metrics.probe computes fractions).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from genbench.errors import GenbenchError
from genbench.extraction import FeatureFn, stream_features
from genbench.metrics.linear_probe import knn_accuracy, linear_probe, standardise
from genbench.sources import FolderSource, SampleSource, check_labels, read_npz, read_text

SPEC_OPTIONS = {"sit": {"layer", "t"}, "vae": {"pool"}, "encoder": {"feature", "weights"}}
SPEC_HELP = "sit:CKPT[:layer=L][:t=T], vae:TOKENIZER[:pool=K] or encoder:NAME[:feature=F][:weights=PATH]"
DEFAULT_T = 0.25
KNN_K = 20

# images uint8 [N, 3, H, W], sample index [N] -> {feature key: float32 [N, D]}


@dataclass(frozen=True)
class FeatureSpec:
    kind: str  # sit | vae | encoder
    target: str  # checkpoint, tokenizer spec or encoder name
    options: dict[str, str] = field(default_factory=dict)
    text: str = ""


def parse_feature_spec(spec: str) -> FeatureSpec:
    """`kind:target[:key=value...]`; the target may itself hold colons (demo:repa, f8d4:path)."""
    kind, _, rest = spec.partition(":")
    if kind not in SPEC_OPTIONS or not rest:
        raise GenbenchError(f"--features {spec}: expected {SPEC_HELP}")
    parts = rest.split(":")
    options = {}
    while parts and "=" in parts[-1]:
        key, _, value = parts.pop().partition("=")
        if key not in SPEC_OPTIONS[kind]:
            raise GenbenchError(f"--features {spec}: unknown option '{key}' for {kind}; "
                                f"use {', '.join(sorted(SPEC_OPTIONS[kind]))}")
        options[key] = value
    if not parts or not parts[0]:
        raise GenbenchError(f"--features {spec}: no checkpoint or encoder name before the options")
    return FeatureSpec(kind, ":".join(parts), options, spec)


def _option(spec: FeatureSpec, key: str, default: float, kind: type = float) -> float:
    """A numeric spec option, or `default` when absent."""
    text = spec.options.get(key)
    if text is None:
        return default
    try:
        return kind(text)
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise GenbenchError(f"--features {spec.text}: {key}={text} is not {what}") from None


# --------------------------------------------------------------------------------------------------
#                                         Feature sources
# --------------------------------------------------------------------------------------------------


def parse_layers(text: str, depth: int) -> list[int]:
    """"all" or "2,5,8" -> 1-based block numbers, checked against the depth."""
    if text == "all":
        return list(range(1, depth + 1))
    try:
        layers = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise GenbenchError(f"--layers {text}: give 'all' or block numbers like 2,4,8") from None
    if not layers or any(not 1 <= layer <= depth for layer in layers):
        raise GenbenchError(f"--layers {text}: this SiT has blocks 1..{depth}")
    return layers


def sit_features(spec: FeatureSpec, layers: str | None, seed: int, device: str) -> tuple[FeatureFn, dict]:
    """Pooled block outputs {"layer{L}": [N, hidden]} of a genbench SiT checkpoint (see module doc)."""
    from genbench.io import sha256_file
    from genbench.models.official import load_model
    from genbench.pixels import to_signed_range
    from genbench.sampling.generate import per_sample_randn, sample_generators
    from genbench.training.losses import LinearInterpolant

    loaded = load_model(spec.target)  # a checkpoint, demo name or registered official model
    path = loaded.path
    if loaded.vae is None:
        raise GenbenchError(f"{path}: this checkpoint has no VAE; the SiT probe needs a latent model")
    sit, vae = loaded.sit.to(device), loaded.vae.to(device)
    if sit.y_embedder.embedding_table.num_embeddings <= sit.num_classes:
        raise GenbenchError(f"{path}: the SiT has no null class (class_dropout_prob 0); probing with true "
                            "labels would leak them into the features")
    depth = len(sit.blocks)
    chosen = parse_layers(layers or spec.options.get("layer") or str(sit.encoder_depth), depth)
    t = _option(spec, "t", DEFAULT_T)
    if not 0.0 <= t <= 1.0:
        raise GenbenchError(f"--features {spec.text}: t={t} must lie in [0, 1] (0 = clean, 1 = noise)")
    pooled: dict[str, torch.Tensor] = {}
    for layer in chosen:
        sit.blocks[layer - 1].register_forward_hook(
            lambda _module, _inputs, h, key=f"layer{layer}": pooled.__setitem__(key, h.float().mean(dim=1)))

    @torch.no_grad()
    def features(images: torch.Tensor, index: torch.Tensor) -> dict[str, torch.Tensor]:
        z = sit.latent_norm.normalize(vae.encode(to_signed_range(images.to(device))).mean)
        if z.shape[-1] != sit.grid_size * sit.patch_size:
            raise GenbenchError(f"{path}: images of {images.shape[-1]} px give {z.shape[-1]}-px latents but "
                                f"the SiT reads {sit.grid_size * sit.patch_size}; use its training size")
        eps = per_sample_randn(sample_generators(seed, index.tolist(), device), tuple(z.shape[1:]), device)
        t_batch = torch.full((z.shape[0],), t, device=device)
        x_t, _ = LinearInterpolant.interpolate(z, eps, t_batch)
        null = torch.full((z.shape[0],), sit.num_classes, device=device, dtype=torch.long)
        pooled.clear()
        sit(x_t, t_batch, null)
        return dict(pooled)

    provenance = {"model": str(path), "checkpoint_sha256": sha256_file(path), "layers": chosen, "t": t,
                  "depth": depth}
    return features, provenance


def vae_features(spec: FeatureSpec, device: str) -> tuple[FeatureFn, dict]:
    """{"latent": [N, C*h*w]} posterior means, optionally average-pooled to pool x pool."""
    from genbench.models.tokenizer_adapters import encode_mean, load_tokenizer

    pool = int(_option(spec, "pool", 0, int))
    if pool < 0:
        raise GenbenchError(f"--features {spec.text}: pool={pool} must be positive (or 0: no pooling)")
    tokenizer = load_tokenizer(spec.target)
    vae = tokenizer.vae.to(device)

    def features(images: torch.Tensor, index: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"latent": pooled_latents(encode_mean(vae, images.to(device)), pool)}

    return features, {"tokenizer": tokenizer.description, "pool": pool}


def pooled_latents(z: torch.Tensor, pool: int) -> torch.Tensor:
    """[N, C, h, w] -> [N, C*pool*pool] (adaptive average pool) or [N, C*h*w] with pool 0."""
    if pool:
        z = F.adaptive_avg_pool2d(z, pool)
    return z.float().flatten(1)


def encoder_features(spec: FeatureSpec, resolution: int, device: str) -> tuple[FeatureFn, dict]:
    """A registered backbone's extractor feature (`feature=`, default `pool`), else, for a backbone that is
    only a REPA target, its mean token."""
    from genbench.backbones import BACKBONES, build_encoder, build_extractor

    weights = spec.options.get("weights")
    backbone = BACKBONES.get(spec.target.partition(":")[0])
    if backbone is None:
        raise GenbenchError(f"--features {spec.text}: unknown encoder '{spec.target}'; registered backbones "
                            f"{', '.join(sorted(BACKBONES))}")
    if backbone.extractor is not None:
        feature = spec.options.get("feature", "pool")
        if feature not in backbone.features:  # checked before the weights load
            raise GenbenchError(f"--features {spec.text}: extractor {spec.target} has no feature "
                                f"'{feature}'; choose from {', '.join(backbone.features)}")
        extractor = build_extractor(spec.target, weights).eval().to(device)

        @torch.no_grad()
        def from_extractor(images: torch.Tensor, index: torch.Tensor) -> dict[str, torch.Tensor]:
            return {feature: extractor(images.to(device))[feature].float()}

        return from_extractor, {"extractor": extractor.name, "feature": feature,
                                "weights_sha256": extractor.weights_sha256}
    if "feature" in spec.options:
        raise GenbenchError(f"--features {spec.text}: encoder {spec.target} gives tokens only; drop feature=")
    encoder = build_encoder(spec.target, resolution, weights).eval().to(device)

    @torch.no_grad()
    def from_encoder(images: torch.Tensor, index: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"tokens": encoder(images.to(device)).float().mean(dim=1)}

    return from_encoder, {"encoder": spec.target}


def build_features(spec: FeatureSpec, resolution: int, layers: str | None = None, seed: int = 0,
                   device: str = "cpu") -> tuple[FeatureFn, dict]:
    """(feature function, provenance) for a parsed spec; `layers` ("all", "2,4") only for SiT specs."""
    if layers is not None and spec.kind != "sit":
        raise GenbenchError(f"--layers applies to sit: features only, not {spec.kind}:")
    if spec.kind == "sit":
        return sit_features(spec, layers, seed, device)
    if spec.kind == "vae":
        return vae_features(spec, device)
    return encoder_features(spec, resolution, device)


def extract_features(source: SampleSource, features: FeatureFn, batch_size: int = 64,
                     cache_dir: Path | None = None) -> dict[str, np.ndarray]:
    """One pass over `source` -> {key: float32 [N, D]} in sample order. With `cache_dir` the rows stream into
    `.npy` memory maps there, so a large set is never held in memory during extraction."""
    out: dict[str, np.ndarray] = {}
    for rows_by_key, index in stream_features(source, features, batch_size, producer="the probed network",
                                              fix="check the checkpoint"):
        for key, rows in rows_by_key.items():
            rows = rows.float().cpu().numpy()
            if key not in out:
                shape = (len(source), rows.shape[1])
                out[key] = (np.zeros(shape, np.float32) if cache_dir is None else np.lib.format.open_memmap(
                    Path(cache_dir) / f"{key}.npy", mode="w+", dtype=np.float32, shape=shape))
            out[key][index.numpy()] = rows
    return out


# --------------------------------------------------------------------------------------------------
#                                           Labels
# --------------------------------------------------------------------------------------------------


def _label_array(values: np.ndarray, count: int, where: str) -> np.ndarray:
    return check_labels(where, np.asarray(values), count)


def read_labels(data: Path, count: int, labels: Path | None = None,
                required: bool = True) -> np.ndarray | None:
    """int64 [count] class labels: from `labels` (.npy, .npz arr_1, .txt one per line), else the data's ADM
    .npz `arr_1` (shapes-world exports carry it), else its class subfolders (sorted names -> 0, 1, ...).
    Where none of these exist: an error, or None when not `required`."""
    if labels is not None:
        if not labels.is_file():
            raise GenbenchError(f"{labels}: labels file not found")
        if labels.suffix == ".npz":
            return read_labels(labels, count)
        try:
            if labels.suffix == ".npy":
                values = np.load(labels, allow_pickle=False)
            else:
                values = np.loadtxt(read_text(labels, "labels").splitlines(), dtype=np.int64, ndmin=1)
        except (ValueError, OSError, EOFError) as error:
            raise GenbenchError(f"{labels}: not a readable labels file ({error}); give .npy, .npz (arr_1) or "
                                "one integer per line") from error
        return _label_array(values, count, str(labels))
    if data.suffix == ".npz":
        archive = read_npz(data, "labels", optional=["arr_1"])
        if "arr_1" in archive:
            return _label_array(archive["arr_1"], count, f"{data} (arr_1)")
    elif data.is_dir():
        parts = [file.relative_to(data).parts for file in FolderSource(data).files]
        if all(len(p) >= 2 for p in parts):
            names = sorted({p[0] for p in parts})
            return _label_array(np.array([names.index(p[0]) for p in parts]), count, str(data))
    if required:
        raise GenbenchError(f"{data}: no labels (no arr_1 in the .npz, no class subfolders); "
                            "pass --labels FILE")
    return None


# --------------------------------------------------------------------------------------------------
#                                           Probing
# --------------------------------------------------------------------------------------------------


def split_indices(count: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (train, test) index split of `count` rows."""
    test = int(round(test_fraction * count))
    if not 0 < test < count:
        raise GenbenchError(f"--test-fraction {test_fraction}: leaves no train or test rows of {count} "
                            "images; use more images or another fraction")
    order = np.random.default_rng(seed).permutation(count)
    return np.sort(order[test:]), np.sort(order[:test])


def probe_scores(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray,
                 standardise_knn: bool = False, seed: int = 0, num_classes: int | None = None
                 ) -> dict[str, float]:
    """Linear-probe and k-NN top-1/top-5 in percent, plus the chosen inverse regularisation C."""
    try:
        probe = linear_probe(train_x, train_y, test_x, test_y, seed=seed, num_classes=num_classes)
        train_t, test_t = torch.from_numpy(np.asarray(train_x)), torch.from_numpy(np.asarray(test_x))
        if standardise_knn:
            train_t, test_t = standardise(train_t.double(), test_t.double())
        knn1, knn5 = knn_accuracy(train_t, train_y, test_t, test_y, k=min(KNN_K, len(train_y)),
                                  num_classes=num_classes)
    except ValueError as error:
        raise GenbenchError(f"probe: {error}") from error
    return {"probe_top1": 100 * probe.top1, "probe_top5": 100 * probe.top5,
            "knn_top1": 100 * knn1, "knn_top5": 100 * knn5, "probe_c": probe.c}


@dataclass
class ProbeRun:
    """Scores per feature key (one per SiT block in a sweep) and what produced them."""

    scores: dict[str, dict[str, float]]
    provenance: dict

    def metrics(self) -> dict[str, float]:
        """Flat results-file metrics: `probe_top1` ... for one key, `layer3/probe_top1` ... for several."""
        if len(self.scores) == 1:
            return dict(next(iter(self.scores.values())))
        return {f"{key}/{name}": value for key, scores in self.scores.items()
                for name, value in scores.items()}


@dataclass
class ProbeData:
    """Images and their labels; `test` None means a seeded split of `train` by `test_fraction`."""

    train: SampleSource
    train_labels: np.ndarray
    test: SampleSource | None = None
    test_labels: np.ndarray | None = None
    test_fraction: float = 0.2


def run_probe(spec_text: str, data: ProbeData, layers: str | None = None, seed: int = 0, batch_size: int = 64,
              device: str = "cpu", cache_dir: Path | None = None) -> ProbeRun:
    """Features from the spec, then the linear probe and k-NN on each feature key. `seed` fixes the split,
    the regularisation sweep's held-out rows and the SiT's noise."""
    if data.test is not None and data.train.image_size != data.test.image_size:
        raise GenbenchError(f"{data.test.description}: images are {data.test.image_size}, the training "
                            f"images {data.train.image_size}; use one size")
    spec = parse_feature_spec(spec_text)
    features, provenance = build_features(spec, data.train.image_size[0], layers, seed, device)
    train_rows = extract_features(data.train, features, batch_size, _subdir(cache_dir, "train"))
    if data.test is None:
        train_index, test_index = split_indices(len(data.train), data.test_fraction, seed)
        test_rows = {key: rows[test_index] for key, rows in train_rows.items()}
        train_rows = {key: rows[train_index] for key, rows in train_rows.items()}
        train_y, test_y = data.train_labels[train_index], data.train_labels[test_index]
    else:
        test_rows = extract_features(data.test, features, batch_size, _subdir(cache_dir, "test"))
        train_y, test_y = data.train_labels, data.test_labels
    num_classes = int(max(train_y.max(), test_y.max())) + 1
    scores = {key: probe_scores(train_rows[key], train_y, test_rows[key], test_y,
                                standardise_knn=spec.kind == "vae", seed=seed, num_classes=num_classes)
              for key in train_rows}
    provenance = {"features": spec_text, **provenance, "num_train": len(train_y), "num_test": len(test_y),
                  "num_classes": num_classes, "seed": seed, "knn": {"k": KNN_K, "temperature": 0.07},
                  "feature_dims": {key: int(rows.shape[1]) for key, rows in train_rows.items()}}
    return ProbeRun(scores, provenance)


def _subdir(cache_dir: Path | None, name: str) -> Path | None:
    if cache_dir is None:
        return None
    (Path(cache_dir) / name).mkdir(parents=True, exist_ok=True)
    return Path(cache_dir) / name


def layer_curve(run: ProbeRun, metric: str = "probe_top1") -> dict[int, float]:
    """{block number: accuracy} of a SiT sweep."""
    return {int(key.removeprefix("layer")): scores[metric] for key, scores in run.scores.items()}


def plot_layer_curves(curves: dict[str, dict[int, float]], path: Path, title: str,
                      num_test: int | None = None, chance: float | None = None,
                      ylabel: str = "linear-probe top-1 (%)") -> Path:
    """Accuracy-by-block lines (REPA's figure), one per model, as a PNG written atomically. With `num_test`
    each point carries +-1 binomial standard error of a test-set accuracy; `chance` draws a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from genbench.io import atomic_write

    figure, axes = plt.subplots(figsize=(5.5, 3.8))
    for label, curve in curves.items():
        blocks = sorted(curve)
        accuracy = np.array([curve[b] for b in blocks])
        error = None if num_test is None else 100 * np.sqrt(accuracy / 100 * (1 - accuracy / 100) / num_test)
        axes.errorbar(blocks, accuracy, yerr=error, marker="o", capsize=3, label=label)
    if chance is not None:
        axes.axhline(chance, color="grey", linestyle="--", linewidth=1, label="chance")
    axes.set_xlabel("SiT block")
    axes.set_ylabel(ylabel)
    axes.set_title(title, fontsize=10)
    axes.set_xticks(sorted({b for curve in curves.values() for b in curve}))
    axes.set_ylim(bottom=0)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    with atomic_write(path, suffix=".png") as tmp:
        figure.savefig(tmp, dpi=120)
    plt.close(figure)
    return Path(path)
