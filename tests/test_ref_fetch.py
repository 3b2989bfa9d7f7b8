"""`genbench ref fetch NAME` and `--ref NAME`: file:// URLs from a temporary registry
($GENBENCH_REFERENCE_REGISTRY) into a temporary cache ($GENBENCH_CACHE); never the network."""

import hashlib
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_main
from test_eval_extra import brute_fd
from test_extractors_extra import dinov2_folder  # noqa: F401  (fixture)

from genbench.backbones import build_extractor
from genbench.errors import GenbenchError
from genbench.reference import ReferenceStats
from genbench.reference_sets import read_edm2_reference, reference_paths
from genbench.worlds.shapes import ShapesWorld


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def adm_batch(path: Path, seed: int = 0) -> Path:
    """An ADM-layout reference batch: mu/sigma (pool) and mu_s/sigma_s (spatial), small dimensions."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=(6, 4)), rng.normal(size=(6, 3))
    np.savez(path, mu=rng.normal(size=4), sigma=a.T @ a, mu_s=rng.normal(size=3), sigma_s=b.T @ b)
    return path


@pytest.fixture
def env(tmp_path, monkeypatch):
    """A cache and a registry of our own; returns a function that registers NAME -> entry."""
    monkeypatch.setenv("GENBENCH_CACHE", str(tmp_path / "cache"))
    registry = tmp_path / "registry.json"
    monkeypatch.setenv("GENBENCH_REFERENCE_REGISTRY", str(registry))
    sets = {}

    def register(name: str, source: Path, **entry) -> Path:
        sets[name] = {"url": source.resolve().as_uri(), "sha256": None, **entry}
        registry.write_text(json.dumps({"reference_sets": sets}))
        return tmp_path / "cache" / "reference"

    return register


def fetch(capsys, monkeypatch, *args):
    return run_main(capsys, monkeypatch, "ref", "fetch", *args)


def test_fetch_verifies_the_published_checksum_stores_the_file_and_then_skips(env, tmp_path, capsys,
                                                                              monkeypatch):
    source = adm_batch(tmp_path / "published.npz")
    cache = env("adm-test", source, sha256=sha256(source))
    code, out, err = fetch(capsys, monkeypatch, "adm-test")
    assert code == 0, err
    assert (cache / "adm-test.npz").read_bytes() == source.read_bytes()
    record = json.loads((cache / "adm-test.json").read_text())
    assert record["sha256"] == sha256(source) and record["files"] == ["adm-test.npz"]
    assert "downloaded" in out
    assert sorted(p.name for p in cache.iterdir()) == ["adm-test.json", "adm-test.npz"]  # no temp files left

    source.unlink()  # a second fetch must not need the URL
    code, out, err = fetch(capsys, monkeypatch, "adm-test")
    assert code == 0, err
    assert "already present and verified" in out
    assert reference_paths("adm-test") == [cache / "adm-test.npz"]
    monkeypatch.setenv("COLUMNS", "250")
    code, out, _ = run_main(capsys, monkeypatch, "ref", "list")
    rows = [line.split("│") for line in out.splitlines() if "adm-test" in line]
    assert code == 0 and [row[4].strip() for row in rows] == ["yes"]  # name, resolution, images, fetched
    assert reference_paths(source) == [source]  # paths stay paths, even missing ones

    adm_batch(cache / "adm-test.npz", seed=1)  # another file where the published one was
    code, _, err = fetch(capsys, monkeypatch, "adm-test")
    assert code == 2 and "does not match the registry's" in err and "--force" in err


def test_without_a_published_checksum_the_hash_is_recorded_and_later_changes_are_caught(env, tmp_path, capsys,
                                                                                      monkeypatch):
    source = adm_batch(tmp_path / "published.npz")
    cache = env("adm-test", source)
    assert fetch(capsys, monkeypatch, "adm-test")[0] == 0
    assert json.loads((cache / "adm-test.json").read_text())["sha256"] == sha256(source)

    adm_batch(cache / "adm-test.npz", seed=1)  # the cached file is replaced behind genbench's back
    code, _, err = fetch(capsys, monkeypatch, "adm-test")
    assert code == 2 and "changed since it was fetched" in err and "--force" in err
    code, out, err = fetch(capsys, monkeypatch, "adm-test", "--force")
    assert code == 0, err
    assert (cache / "adm-test.npz").read_bytes() == source.read_bytes()


def test_checksum_mismatch_and_corrupt_downloads_leave_nothing_in_the_cache(env, tmp_path, capsys,
                                                                             monkeypatch):
    source = adm_batch(tmp_path / "published.npz")
    cache = env("adm-test", source, sha256="0" * 64)
    code, _, err = fetch(capsys, monkeypatch, "adm-test")
    assert code == 2 and "does not match the registry's 0000" in err and source.as_uri() in err
    assert "Traceback" not in err
    assert not cache.exists() or list(cache.iterdir()) == []

    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"this is an HTML error page, not an npz")
    env("adm-test", garbage)
    code, _, err = fetch(capsys, monkeypatch, "adm-test")
    assert code == 2 and "not a readable reference .npz" in err
    assert list(cache.iterdir()) == []


def test_offline_error_names_the_url_and_where_a_hand_download_goes(env, tmp_path, capsys, monkeypatch):
    missing = tmp_path / "not-there.npz"
    cache = env("adm-test", missing)
    code, _, err = fetch(capsys, monkeypatch, "adm-test")
    assert code == 2
    assert f"could not download {missing.as_uri()}" in err
    assert (f"download it by hand to {cache / 'adm-test.npz'} and run `genbench ref fetch adm-test` again"
            in err.replace("\n", ""))
    assert len(err.strip().splitlines()) <= 3 and "Traceback" not in err

    adm_batch(cache / "adm-test.npz")  # the user downloads it by hand; the URL still fails
    code, out, err = fetch(capsys, monkeypatch, "adm-test")
    assert code == 0, err
    assert json.loads((cache / "adm-test.json").read_text())["sha256"] == sha256(cache / "adm-test.npz")


def test_unknown_names_and_unfetched_sets_say_what_to_run(env, tmp_path, capsys, monkeypatch):
    env("adm-test", tmp_path / "x.npz")
    code, _, err = fetch(capsys, monkeypatch, "adm-nope")
    assert code == 2 and "not a registered reference set" in err and "adm-test" in err
    with pytest.raises(GenbenchError, match="run `genbench ref fetch adm-test`"):
        reference_paths("adm-test")
    code, _, err = run_main(capsys, monkeypatch, "eval", "--model", "demo", "--ref", "adm-test")
    assert code == 2 and "genbench ref fetch adm-test" in err


def edm2_pickle(path: Path, stats: dict, protocol: int = 4, numpy1: bool = False) -> Path:
    """EDM2's calculate_metrics.py writes pickle.dump({"num_images": n, metric: {"mu", "sigma"}})."""
    data = pickle.dumps(stats, protocol=protocol)
    if numpy1:  # what numpy 1.x wrote (protocol 2 spells globals as text lines, so renaming is safe)
        data = data.replace(b"numpy._core.", b"numpy.core.")
    path.write_bytes(data)
    return path


def gaussian(dim: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(dim + 2, dim))
    return {"mu": rng.normal(size=dim), "sigma": a.T @ a / (dim + 1)}


@pytest.mark.parametrize("protocol,numpy1", [(2, True), (2, False), (4, False), (5, False)])
def test_edm2_pickles_convert_to_one_reference_per_extractor(env, tmp_path, capsys, monkeypatch, protocol,
                                                            numpy1):
    fid, dino = gaussian(5, 0), gaussian(3, 1)
    source = edm2_pickle(tmp_path / "img64.pkl", {"num_images": 1281167, "fid": fid, "fd_dinov2": dino},
                         protocol, numpy1)
    cache = env("edm2-test", source, format="edm2-pkl")
    code, out, err = fetch(capsys, monkeypatch, "edm2-test")
    assert code == 0, err
    assert reference_paths("edm2-test") == [cache / "edm2-test.dinov2.npz", cache / "edm2-test.inception.npz"]
    expected = (("inception", fid, "tf1-bilinear"), ("dinov2", dino, "torch-bicubic-antialias-224"))
    for extractor, stats, resize in expected:
        file = cache / f"edm2-test.{extractor}.npz"
        reference = ReferenceStats.load(file)
        mu, sigma = reference.gaussians["pool"]
        np.testing.assert_array_equal(mu, stats["mu"])
        np.testing.assert_array_equal(sigma, stats["sigma"])
        assert reference.meta["extractor"] == extractor and reference.meta["resize_mode"] == resize
        assert reference.count == 1281167 and reference.meta["weights_sha256"] is None
        assert source.as_uri() in reference.meta["source"]
    assert (cache / "edm2-test.pkl").read_bytes() == source.read_bytes()


class RunsCode:
    """What a hostile pickle looks like: unpickling it calls Path.write_text."""

    def __init__(self, target: Path):
        self.target = target

    def __reduce__(self):
        return Path.write_text, (self.target, "pwned")


def test_pickles_that_would_run_code_are_refused_before_anything_runs(env, tmp_path, capsys, monkeypatch):
    proof = tmp_path / "proof.txt"
    pickle.loads(pickle.dumps(RunsCode(proof)))  # plain pickle.load would run it
    assert proof.read_text() == "pwned"
    marker = tmp_path / "marker.txt"
    hostile = edm2_pickle(tmp_path / "hostile.pkl", {"fid": {"mu": RunsCode(marker), "sigma": np.eye(2)}})
    cache = env("edm2-test", hostile, format="edm2-pkl")
    code, _, err = fetch(capsys, monkeypatch, "edm2-test")
    assert code == 2 and "not an EDM2 reference pickle" in err and "refusing pathlib" in err
    assert not marker.exists()
    assert list(cache.iterdir()) == []

    wrong = edm2_pickle(tmp_path / "wrong.pkl", {"fid": {"mu": np.zeros(3), "sigma": np.eye(2)}})
    env("edm2-test", wrong, format="edm2-pkl")
    code, _, err = fetch(capsys, monkeypatch, "edm2-test")
    assert code == 2 and "'fid' needs float arrays mu [D] and sigma [D, D]" in err
    with pytest.raises(GenbenchError, match="holds no EDM2 statistics"):
        read_edm2_reference(edm2_pickle(tmp_path / "empty.pkl", {"num_images": 3}))


def test_eval_ref_name_reads_the_converted_edm2_dinov2_statistics(env, tmp_path, capsys, monkeypatch,
                                                                  dinov2_folder):  # noqa: F811
    """FD-DINOv2 against an EDM2-style reference of a tiny DINOv2, by name, equals the brute-force FD."""
    world = ShapesWorld(32)
    world.export_npz(tmp_path / "samples.npz", n=12, seed=1)
    world.export_npz(tmp_path / "ref_images.npz", n=14, seed=2)
    extractor = build_extractor("dinov2", dinov2_folder)

    def rows(path):
        with np.load(path) as data:
            return extractor(torch.from_numpy(data["arr_0"]).permute(0, 3, 1, 2))["pool"].double().numpy()

    ref_rows, sample_rows = rows(tmp_path / "ref_images.npz"), rows(tmp_path / "samples.npz")
    stats = {"num_images": 14, "fd_dinov2": {"mu": ref_rows.mean(0), "sigma": np.cov(ref_rows, rowvar=False)}}
    env("edm2-test", edm2_pickle(tmp_path / "ref.pkl", stats), format="edm2-pkl")
    assert fetch(capsys, monkeypatch, "edm2-test")[0] == 0
    out = tmp_path / "results.json"
    code, _, err = run_main(capsys, monkeypatch, "eval", "--samples", tmp_path / "samples.npz",
                            "--ref", "edm2-test", "--metrics", "fd_dinov2", "--extractor", "dinov2",
                            "--weights", dinov2_folder, "--out", out)
    assert code == 0, err
    document = json.loads(out.read_text())
    assert document["metrics"]["fd_dinov2"] == pytest.approx(brute_fd(sample_rows, ref_rows), rel=1e-5)
    assert document["provenance"]["reference"]["path"].endswith("edm2-test.dinov2.npz")
