"""Metrics that name their extractor (FD-DINOv2, CMMD, any metric @EXTRACTOR), stand-in extractors, bootstrap
intervals and FD-infinity in `genbench eval`, each cross-checked against a brute-force computation written
here on the same features."""

import json

import numpy as np
import pytest
import scipy.linalg
import torch
from conftest import run_main
from genbench.metrics.spec import MetricOptions
from test_extractors_extra import clip_folder, dinov2_folder  # noqa: F401  (fixtures)

from genbench.backbones import build_extractor
from genbench.errors import GenbenchError
from genbench.evaluate import build_reference, evaluate_by_name, plan_metrics
from genbench.reference import ReferenceStats
from genbench.sources import open_source


def brute_fd(x: np.ndarray, y: np.ndarray) -> float:
    """Fréchet distance of the Gaussians of rows x and y, scipy's sqrtm (EDM2's formula)."""
    x, y = x.astype(np.float64), y.astype(np.float64)
    sx, sy = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    root = scipy.linalg.sqrtm(sx @ sy).real
    return float(((x.mean(0) - y.mean(0)) ** 2).sum() + np.trace(sx + sy - 2 * root))


def brute_cmmd(x: np.ndarray, y: np.ndarray) -> float:
    """CMMD as the paper's code: 1000 * V-statistic MMD^2, RBF kernel sigma = 10, diagonals included."""
    def mean_kernel(a, b):
        squared = ((a[:, None, :].astype(np.float64) - b[None, :, :]) ** 2).sum(-1)
        return np.exp(-squared / (2 * 10.0**2)).mean()

    return 1000 * (mean_kernel(x, x) + mean_kernel(y, y) - 2 * mean_kernel(x, y))


def brute_density_coverage(real: np.ndarray, fake: np.ndarray, k: int = 5) -> tuple[float, float]:
    """Naeem et al. 2020 with prdc's conventions: k-th neighbour radius (self excluded), strict <."""
    real_real = np.linalg.norm(real[:, None].astype(np.float64) - real[None], axis=-1)
    radii = np.sort(real_real, axis=1)[:, k]  # column 0 is the point itself
    real_fake = np.linalg.norm(real[:, None].astype(np.float64) - fake[None], axis=-1)
    density = (real_fake < radii[:, None]).sum() / (k * fake.shape[0])
    coverage = (real_fake.min(axis=1) < radii).mean()
    return float(density), float(coverage)


def shapes_rows(path) -> np.ndarray:
    """Pool rows of the shipped shapes extractor, computed directly on the npz's images."""
    extractor = build_extractor("shapes")
    with np.load(path) as data:
        images = torch.from_numpy(data["arr_0"]).permute(0, 3, 1, 2).contiguous()
    return extractor(images)["pool"].double().numpy()


def test_fd_dinov2_cmmd_density_coverage_run_end_to_end_with_shapes_standing_in(
    shapes_world, capsys, monkeypatch
):
    from genbench.extractors.shapes_features import ShapesFeatures

    passes = []
    forward = ShapesFeatures.forward
    monkeypatch.setattr(ShapesFeatures, "forward", lambda self, x: passes.append(len(x)) or forward(self, x))
    out = shapes_world / "results.json"
    code, stdout, stderr = run_main(
        capsys, monkeypatch, "eval", "--samples", shapes_world / "samples.npz",
        "--ref", shapes_world / "ref.npz",
        "--extractor", "shapes", "--metrics", "fid,fd_dinov2,cmmd,density_coverage,pr,pr@dinov2",
        "--extractor-for", "dinov2=shapes", "--extractor-for", "clip=shapes", "--out", out,
    )
    assert code == 0, stderr
    assert passes == [60]  # one extractor, one pass over the samples, for every metric
    document = json.loads(out.read_text())
    metrics, provenance = document["metrics"], document["provenance"]

    sample = shapes_rows(shapes_world / "samples.npz")
    reference = shapes_rows(shapes_world / "ref_images.npz")
    # 60 samples of 128-d features: singular covariances, where sqrtm's and an eigen-based root agree to ~1e-6
    assert metrics["fd_dinov2"] == pytest.approx(brute_fd(sample, reference), rel=1e-5)
    assert metrics["fid"] == metrics["fd_dinov2"]  # the same extractor stood in
    assert metrics["cmmd"] == pytest.approx(brute_cmmd(sample, reference), rel=1e-6)
    density, coverage = brute_density_coverage(reference, sample)
    assert metrics["density"] == pytest.approx(density, abs=1e-12)
    assert metrics["coverage"] == pytest.approx(coverage, abs=1e-12)
    assert metrics["precision_dinov2"] == metrics["precision"]
    assert metrics["recall_dinov2"] == metrics["recall"]
    assert metrics["fd_dinov2"] > 0 and metrics["density"] > 0

    # Nobody can mistake these for DINOv2 / CLIP numbers.
    assert provenance["stand_ins"] == {"dinov2": "shapes", "clip": "shapes"}
    assert provenance["extractors"]["shapes"]["stands_in_for"] == ["dinov2", "clip"]
    assert "stand-in" in provenance["note"] and "fd_dinov2" in provenance["note"]
    assert "cmmd" in provenance["note"] and "precision_dinov2" in provenance["note"]
    assert "fid" not in provenance["note"].split(" computed")[0].split(", ")  # fid is the run's own
    assert "stand-in" in stdout.replace("\n", " ")


def test_real_dinov2_clip_and_shapes_in_one_run_each_with_its_reference(
    shapes_world, dinov2_folder, clip_folder, capsys, monkeypatch  # noqa: F811
):
    """FID on shapes (its reference file), FD-DINOv2 and CMMD on tiny saved DINOv2/CLIP models whose
    reference features come from the reference images (arr_0) of an ADM-style npz."""
    out = shapes_world / "three.json"
    code, _, stderr = run_main(
        capsys, monkeypatch, "eval", "--samples", shapes_world / "samples.npz",
        "--ref", shapes_world / "ref.npz", "--ref", shapes_world / "ref_images.npz", "--extractor", "shapes",
        "--metrics", "fid,fd_dinov2,cmmd,fd@clip", "--weights-for", f"dinov2={dinov2_folder}",
        "--weights-for", f"clip={clip_folder}", "--batch-size", "32", "--out", out,
    )
    assert code == 0, stderr
    document = json.loads(out.read_text())
    metrics, provenance = document["metrics"], document["provenance"]

    def rows(name, weights, path):
        extractor = build_extractor(name, weights)
        with np.load(path) as data:
            images = torch.from_numpy(data["arr_0"]).permute(0, 3, 1, 2).contiguous()
        return extractor(images)["pool"].double().numpy()

    samples, refs = shapes_world / "samples.npz", shapes_world / "ref_images.npz"
    dino = rows("dinov2", dinov2_folder, samples), rows("dinov2", dinov2_folder, refs)
    clip = rows("clip", clip_folder, samples), rows("clip", clip_folder, refs)
    assert metrics["fd_dinov2"] == pytest.approx(brute_fd(*dino), rel=1e-5)
    assert metrics["cmmd"] == pytest.approx(brute_cmmd(*clip), rel=1e-5)
    assert metrics["fd_clip"] == pytest.approx(brute_fd(*clip), rel=1e-5)
    assert metrics["fid"] == pytest.approx(brute_fd(shapes_rows(samples), shapes_rows(refs)), rel=1e-5)
    assert "stand_ins" not in provenance
    records = provenance["extractors"]
    assert set(records) == {"shapes", "dinov2", "clip"}
    assert records["dinov2"]["resize_mode"] == "torch-bicubic-antialias-224"
    assert records["dinov2"]["keys"] == ["fd_dinov2"] and records["clip"]["keys"] == ["cmmd", "fd_clip"]
    assert records["dinov2"]["reference"]["features_from_images"] is True
    assert records["shapes"]["reference"]["path"] == str(shapes_world / "ref.npz")
    assert provenance["extractor"] == "shapes"  # the first extractor's fields stay at the top level


class MomentFeatures(torch.nn.Module):
    """A 6-d test extractor: per-channel mean and standard deviation of the pixels."""

    name, resize_mode, weights_sha256 = "moments", "none", "0" * 64
    feature_dims = {"pool": 6}

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        x = images.float() / 255
        return {"pool": torch.cat([x.mean(dim=(2, 3)), x.std(dim=(2, 3))], dim=1)}


def test_bootstrap_intervals_match_a_brute_force_bootstrap(shapes_world):
    extractor = MomentFeatures()
    samples = open_source(shapes_world / "samples.npz")
    reference = build_reference(open_source(shapes_world / "ref_images.npz"), extractor)
    options = MetricOptions(bootstrap=40, bootstrap_seed=3, dc_k=3)
    values, provenance = evaluate_by_name(samples, reference, ["fid", "cmmd@moments", "density_coverage"],
                                          extractor, options=options)

    images = torch.from_numpy(np.load(shapes_world / "samples.npz")["arr_0"]).permute(0, 3, 1, 2)
    x = extractor(images)["pool"]
    x, y = x.double().numpy(), reference.rows["pool"].astype(np.float64)
    generator = torch.Generator().manual_seed(3)
    draws = {"fid": [], "cmmd_moments": [], "coverage": []}
    for _ in range(40):
        resample = x[torch.randint(0, len(x), (len(x),), generator=generator).numpy()]
        draws["fid"].append(brute_fd(resample, y))
        draws["cmmd_moments"].append(brute_cmmd(resample, y))
        draws["coverage"].append(brute_density_coverage(y, resample, k=3)[1])
    for key, resampled in draws.items():
        low, high = np.quantile(resampled, [0.025, 0.975]) - (np.mean(resampled) - values[key])
        assert values[f"{key}_ci_low"] == pytest.approx(low, rel=1e-6, abs=1e-9)
        assert values[f"{key}_ci_high"] == pytest.approx(high, rel=1e-6, abs=1e-9)
        assert values[f"{key}_ci_low"] < values[key] < values[f"{key}_ci_high"]
    assert values["fid"] == pytest.approx(brute_fd(x, y), rel=1e-6)
    assert provenance["metric_options"]["bootstrap"] == 40


def test_fd_infinity_matches_a_brute_force_fit_and_refuses_too_few_samples(shapes_world):
    extractor = MomentFeatures()
    samples = open_source(shapes_world / "ref_images.npz")  # 80 images: the fit starts at 8 > 6 dimensions
    reference = build_reference(open_source(shapes_world / "samples.npz"), extractor)
    options = MetricOptions(fd_infinity=True)
    values, _ = evaluate_by_name(samples, reference, ["fid"], extractor, options=options)

    x = extractor(torch.from_numpy(np.load(shapes_world / "ref_images.npz")["arr_0"]).permute(0, 3, 1, 2))
    x, y = x["pool"].double().numpy(), reference.rows["pool"].astype(np.float64)
    sizes = np.linspace(8, 80, 15).astype(int)  # dgm-eval: from max(N // 10, 2) to N, 15 points
    generator = torch.Generator().manual_seed(0)
    fds = [brute_fd(x[torch.randperm(80, generator=generator)[:n].numpy()], y) for n in sizes]
    slope, intercept = np.polyfit(1 / sizes, fds, 1)
    assert values["fid_infinity"] == pytest.approx(intercept, rel=1e-6)

    few = open_source(np.load(shapes_world / "samples.npz")["arr_0"][:40])  # fit from 4 rows of 6-d
    with pytest.raises(GenbenchError, match="not more than its 6 feature dimensions"):
        evaluate_by_name(few, reference, ["fid"], extractor, options=MetricOptions(fd_infinity=True))


def test_bootstrap_and_fd_infinity_through_the_cli(shapes_world, capsys, monkeypatch):
    out = shapes_world / "ci.json"
    code, _, stderr = run_main(
        capsys, monkeypatch, "eval", "--samples", shapes_world / "samples.npz",
        "--ref", shapes_world / "ref.npz",
        "--extractor", "shapes", "--metrics", "fid,fd_dinov2", "--extractor-for", "dinov2=shapes",
        "--bootstrap", "5", "--out", out,
    )
    assert code == 0, stderr
    metrics = json.loads(out.read_text())["metrics"]
    assert set(metrics) == {"fid", "fd_dinov2", "fid_ci_low", "fid_ci_high", "fd_dinov2_ci_low",
                            "fd_dinov2_ci_high"}
    assert metrics["fid_ci_low"] < metrics["fid"] < metrics["fid_ci_high"]
    code, _, stderr = run_main(
        capsys, monkeypatch, "eval", "--samples", shapes_world / "samples.npz",
        "--ref", shapes_world / "ref.npz",
        "--extractor", "shapes", "--metrics", "fid", "--fd-infinity",
    )
    assert code == 2 and "use at least 1930 samples" in stderr and "Traceback" not in stderr


def test_planning_names_extractors_and_refuses_bad_requests(shapes_world, capsys, monkeypatch):
    names = ["fid", "fd_dinov2", "cmmd", "pr@dinov2", "cmmd@clip"]
    plan = plan_metrics(names, "inception", {"clip": "shapes"})
    assert [(r.extractor, r.runs_on, r.key_suffix) for r in plan] == [
        ("inception", "inception", ""), ("dinov2", "dinov2", ""), ("clip", "shapes", ""),
        ("dinov2", "dinov2", "_dinov2"), ("clip", "shapes", ""),
    ]
    with pytest.raises(GenbenchError, match="unknown metric 'fdd'"):
        plan_metrics(["fdd@dinov2"], "inception")
    with pytest.raises(GenbenchError, match="unknown extractor 'vgg'"):
        plan_metrics(["fd@vgg"], "inception")

    base = ["eval", "--samples", shapes_world / "samples.npz", "--extractor", "shapes"]
    cases = [
        (["--ref", shapes_world / "ref.npz", "--metrics", "fd@dinov2,fd_dinov2", "--extractor-for",
          "dinov2=shapes"], "gives fd_dinov2 twice"),
        (["--ref", shapes_world / "ref.npz", "--metrics", "fd_dinov2", "--extractor-for", "dinov2"],
         "write NAME=VALUE"),
    ]
    stats_only = ReferenceStats.load(shapes_world / "ref.npz")
    stats_only.meta["extractor"] = "inception"
    stats_only.save(shapes_world / "inception_only.npz")
    cases.append((["--ref", shapes_world / "inception_only.npz", "--metrics", "fd_dinov2", "--extractor-for",
                   "dinov2=shapes"], "no reference statistics for the 'shapes' extractor"))
    for extra, message in cases:
        code, _, stderr = run_main(capsys, monkeypatch, *base, *extra)
        assert code == 2 and message in stderr and "Traceback" not in stderr, stderr
