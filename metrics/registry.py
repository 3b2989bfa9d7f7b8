"""The metric registry, and the one table of column directions, decimals and tolerances.

Each metric (`metrics.spec.MetricSpec`) names the extractor feature it reads, whether it needs Gaussian
statistics or the kept feature rows, and which extractor it reads when it has its own (FD-DINOv2 reads
`dinov2`, CMMD `clip`; the others read the run's extractor), so an evaluation runs each extractor once and
extracts each feature set once for all metrics. `class_acc` also reads the samples' class labels.
`BOARD_COLUMNS` declares the board columns that no registered metric outputs (tokenizer, probe and GenEval
columns); `column_spec` finds any column's declaration."""

from __future__ import annotations

from .class_accuracy import class_accuracy, class_logits
from .frechet import frechet_distance
from .inception_score import inception_score
from .kid import kernel_inception_distance
from .mmd import cmmd
from .prdc import density_coverage
from .precision_recall import precision_recall
from .spec import Column, Compute, Direction, FeatureSide, MetricOptions, MetricSpec, Tolerance

LOWER, HIGHER = Direction.LOWER, Direction.HIGHER


def _frechet(feature: str, key: str) -> Compute:
    def compute(sample: FeatureSide, ref: FeatureSide | None, options: MetricOptions,
                device: str | None) -> dict[str, float]:
        assert ref is not None
        mu1, sigma1 = sample.gaussian(feature)
        mu2, sigma2 = ref.gaussian(feature)
        return {key: frechet_distance(mu1, sigma1, mu2, sigma2)}

    return compute


def _is(sample: FeatureSide, ref: FeatureSide | None, options: MetricOptions,
        device: str | None) -> dict[str, float]:
    mean, std = inception_score(sample.features("logits"), split_size=options.is_split_size)
    return {"is": mean, "is_std": std}


def _pr(sample: FeatureSide, ref: FeatureSide | None, options: MetricOptions,
        device: str | None) -> dict[str, float]:
    assert ref is not None
    precision, recall = precision_recall(ref.features("pool"), sample.features("pool"), k=options.pr_k,
                                         device=device)
    return {"precision": precision, "recall": recall}


def _kid(sample: FeatureSide, ref: FeatureSide | None, options: MetricOptions,
         device: str | None) -> dict[str, float]:
    assert ref is not None
    mean, std = kernel_inception_distance(
        sample.features("pool"), ref.features("pool"), num_subsets=options.kid_subsets,
        subset_size=options.kid_subset_size, seed=options.seed,
    )
    return {"kid": mean, "kid_std": std}


def _cmmd(sample: FeatureSide, ref: FeatureSide | None, options: MetricOptions,
          device: str | None) -> dict[str, float]:
    assert ref is not None
    return {"cmmd": cmmd(sample.features("pool"), ref.features("pool"), unbiased=options.cmmd_unbiased)}


def _density_coverage(sample: FeatureSide, ref: FeatureSide | None, options: MetricOptions,
                      device: str | None) -> dict[str, float]:
    assert ref is not None
    density, coverage = density_coverage(ref.features("pool"), sample.features("pool"), k=options.dc_k,
                                         device=device)
    return {"density": density, "coverage": coverage}


def _class_acc(sample: FeatureSide, ref: FeatureSide | None, options: MetricOptions,
               device: str | None) -> dict[str, float]:
    return {"class_acc": class_accuracy(class_logits(sample.features("logits")), sample.class_labels())}


METRICS: dict[str, MetricSpec] = {}

# Columns of boards and results that no registered metric outputs.
BOARD_COLUMNS = (
    Column("rfid", LOWER, decimals=2),
    Column("psnr", HIGHER, decimals=2),
    Column("ssim", HIGHER, tolerance=Tolerance(0.01)),
    Column("lpips", LOWER, tolerance=Tolerance(0.01)),
    Column("probe", HIGHER, decimals=1, tolerance=Tolerance(0.5)),
    Column("probe_top5", decimals=1),
    Column("knn_top1", decimals=1),
    Column("geneval", HIGHER),
    Column("clip_score", HIGHER),
    *(Column(name, decimals=0) for name in ("encode_ips", "decode_ips")),
    # sizes, shown as 256 rather than 256.000
    *(Column(name, decimals=0) for name in ("latent_channels", "latent_dim", "latent_h", "latent_w",
                                            "resolution")),
)
# Families of columns by name prefix (FD on any extractor, GenEval's per-task scores), for columns that
# have no declaration of their own.
COLUMN_FAMILIES = (Column("fd_", LOWER), Column("geneval_", HIGHER))


def columns() -> dict[str, Column]:
    """Every declared column by name: registered metrics' outputs, then BOARD_COLUMNS."""
    declared = [column for spec in METRICS.values() for column in spec.outputs]
    return {column.name: column for column in (*declared, *BOARD_COLUMNS)}


def column_spec(name: str) -> Column | None:
    """The declaration of column `name` (its own, else its family's), or None for an undeclared column."""
    declared = columns().get(name)
    if declared is not None:
        return declared
    return next((family for family in COLUMN_FAMILIES if name.startswith(family.name)), None)


def register(spec: MetricSpec) -> MetricSpec:
    """Add a metric to METRICS; its name and its output columns must be new."""
    if spec.name in METRICS:
        raise ValueError(f"metric '{spec.name}' is registered already")
    taken = sorted({column.name for column in spec.outputs} & columns().keys())
    if taken:
        raise ValueError(f"metric '{spec.name}' outputs {', '.join(taken)}, declared already")
    METRICS[spec.name] = spec
    return spec


for _spec in (
    MetricSpec("fid", _frechet("pool", "fid"), (Column("fid", LOWER, decimals=2),), "pool", "stats"),
    MetricSpec("fd", _frechet("pool", "fd"), (Column("fd", LOWER),), "pool", "stats"),
    MetricSpec("fd_dinov2", _frechet("pool", "fd_dinov2"),  # EDM2's FD-DINOv2
               (Column("fd_dinov2", LOWER),), "pool", "stats", extractor="dinov2"),
    MetricSpec("sfid", _frechet("spatial", "sfid"), (Column("sfid", LOWER, decimals=2),), "spatial", "stats"),
    MetricSpec("is", _is, (Column("is", HIGHER, decimals=1), Column("is_std")), "logits", "rows",
               reference=False, min_samples=lambda options: 1),
    MetricSpec("pr", _pr, (Column("precision", HIGHER, decimals=2, tolerance=Tolerance(0.02)),
                           Column("recall", HIGHER, decimals=2, tolerance=Tolerance(0.02))), "pool", "rows",
               min_samples=lambda options: options.pr_k + 1),
    MetricSpec("kid", _kid, (Column("kid", LOWER, decimals=4), Column("kid_std")), "pool", "rows",
               min_samples=lambda options: options.kid_subset_size or 2),
    MetricSpec("cmmd", _cmmd, (Column("cmmd", LOWER),), "pool", "rows", extractor="clip"),
    MetricSpec("density_coverage", _density_coverage, (Column("density", HIGHER), Column("coverage", HIGHER)),
               "pool", "rows", min_samples=lambda options: options.dc_k + 1),
    MetricSpec("class_acc", _class_acc, (Column("class_acc", HIGHER, tolerance=Tolerance(0.02)),),
               "logits", "rows", reference=False, min_samples=lambda options: 1, labels=True),
):
    register(_spec)
