"""Image-to-number cross-checks of the Inception pipeline against torch-fidelity on the same images and
the same (randomly initialised) weights file, plus the sFID layer and the reference-stats round trip."""

import json

import numpy as np
import pytest
import torch
import torch_fidelity
from conftest import random_images, write_png_folder
from genbench.metrics.spec import MetricOptions

from genbench.evaluate import build_reference, evaluate_by_name
from genbench.extraction import extract
from genbench.extractors.inception import InceptionFeatures
from genbench.reference import ReferenceStats
from genbench.sources import open_source

N = 10  # Inception runs at a few images/s on this CPU: keep the sets tiny


@pytest.fixture(scope="module")
def image_sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    write_png_folder(root / "samples", random_images(N, 32, seed=1, brightness=0.7))
    write_png_folder(root / "reference", random_images(N, 32, seed=2))
    return root / "samples", root / "reference"


@pytest.fixture(scope="module")
def extractor(inception_weights):
    return InceptionFeatures.from_weights(inception_weights)


@pytest.fixture(scope="module")
def reference_stats(image_sets, extractor):
    return build_reference(open_source(image_sets[1]), extractor, batch_size=8)


def test_fid_is_kid_equal_torch_fidelity_on_same_images_and_weights(
    image_sets, extractor, reference_stats, inception_weights
):
    samples, reference = image_sets
    ref_stats = reference_stats
    options = MetricOptions(is_split_size=N // 2, kid_subset_size=5, kid_subsets=5, seed=3)
    ours, provenance = evaluate_by_name(
        open_source(samples), ref_stats, ["fid", "is", "kid"], extractor, batch_size=8, options=options
    )
    peer = torch_fidelity.calculate_metrics(
        input1=str(samples),
        input2=str(reference),
        cuda=False,
        fid=True,
        isc=True,
        kid=True,
        feature_extractor="inception-v3-compat",
        feature_extractor_weights_path=inception_weights,
        samples_shuffle=False,
        isc_splits=2,
        kid_subset_size=5,
        kid_subsets=5,
        rng_seed=3,
        save_cpu_ram=True,
        verbose=False,
        cache=False,
        batch_size=8,
    )
    assert ours["fid"] == pytest.approx(peer["frechet_inception_distance"], rel=1e-5)
    assert ours["is"] == pytest.approx(peer["inception_score_mean"], rel=1e-5)
    assert ours["kid"] == pytest.approx(peer["kernel_inception_distance_mean"], rel=1e-4)
    assert ours["fid"] > 1.0 and ours["is"] > 1.005  # the random network gives non-degenerate numbers
    assert provenance["samples"]["count"] == N and "50,000" in provenance["note"]


def test_spatial_features_are_mixed_6d_branch1x1_first_7_channels_in_hwc_order(extractor):
    images = torch.from_numpy(random_images(2, 32, seed=4)).permute(0, 3, 1, 2).contiguous()
    captured = {}
    hook = extractor.net.Mixed_6d.register_forward_hook(
        lambda module, args, output: captured.update(input=args[0], output=output)
    )
    features = extractor(images)
    hook.remove()
    branch = extractor.net.Mixed_6d.branch1x1(captured["input"])  # conv -> BN -> ReLU on the block input
    assert branch.shape == (2, 192, 17, 17)
    expected = branch[:, :7].permute(0, 2, 3, 1).reshape(2, -1)  # NHWC flattening, as ADM's mixed_6/conv
    torch.testing.assert_close(features["spatial"], expected)
    # ... which is also the first 7 channels of the Mixed_6d concat (TF's mixed_6/conv slice).
    torch.testing.assert_close(captured["output"][:, :7], branch[:, :7])
    assert features["spatial"].shape == (2, 2023) and features["spatial"][0, 1] == branch[0, 1, 0, 0]


def test_reference_round_trip_and_adm_layout(tmp_path, reference_stats, extractor):
    stats = reference_stats
    stats.save(tmp_path / "ref.npz")
    with np.load(tmp_path / "ref.npz") as data:  # ADM's keys, plus pool rows and meta
        assert {"mu", "sigma", "mu_s", "sigma_s", "pool", "meta"} <= set(data.files)
        assert data["mu"].shape == (2048,) and data["sigma_s"].shape == (2023, 2023)
        meta = json.loads(str(data["meta"]))
    assert meta["extractor"] == "inception" and meta["count"] == N
    loaded = ReferenceStats.load(tmp_path / "ref.npz")
    np.testing.assert_array_equal(loaded.gaussians["pool"][1], stats.gaussians["pool"][1])
    loaded.check_compatible(extractor)


def test_adm_reference_batch_without_features_uses_its_images(
    tmp_path, image_sets, extractor, reference_stats
):
    """An ADM reference batch: arr_0 + mu/sigma/mu_s/sigma_s, no pool rows: P/R extracts arr_0."""
    source = open_source(image_sets[1])
    built = reference_stats
    images = np.concatenate([b.permute(0, 2, 3, 1).numpy() for b, _ in source.batches(8)])
    (mu, sigma), (mu_s, sigma_s) = built.gaussians["pool"], built.gaussians["spatial"]
    np.savez(tmp_path / "adm.npz", arr_0=images, mu=mu, sigma=sigma, mu_s=mu_s, sigma_s=sigma_s)
    adm = ReferenceStats.load(tmp_path / "adm.npz")
    assert adm.meta["extractor"] == "inception" and not adm.rows
    samples = open_source(np.asarray(images[:5]))  # few samples: this test is about the reference side
    via_images, provenance = evaluate_by_name(samples, adm, ["fid", "pr"], extractor, batch_size=8)
    via_rows, _ = evaluate_by_name(samples, built, ["fid", "pr"], extractor, batch_size=8)
    assert via_images == pytest.approx(via_rows, rel=1e-6)
    assert provenance["timings"]["extract_reference_s"] > 0  # arr_0 was extracted
    assert via_images["precision"] == 1.0  # the samples are reference images: inside the real manifold


def test_npz_and_folder_sources_give_identical_features(tmp_path, extractor):
    images = random_images(6, 32, seed=5)
    np.savez(tmp_path / "s.npz", arr_0=images)
    np.savez_compressed(tmp_path / "c.npz", arr_0=images)
    from conftest import write_png_folder as write

    write(tmp_path / "folder", images)
    rows = [
        extract(open_source(p), extractor, [], ["pool"], batch_size=4).rows["pool"]
        for p in (tmp_path / "s.npz", tmp_path / "c.npz", tmp_path / "folder")
    ]
    torch.testing.assert_close(rows[0], rows[1], rtol=0, atol=0)
    torch.testing.assert_close(rows[0], rows[2], rtol=0, atol=0)
