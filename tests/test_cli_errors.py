"""Every bad input to `genbench eval` gives one readable line naming the file, exit code 2, no traceback,
and no results file left behind."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import random_images, write_png_folder

from genbench.cli import main
from genbench.extractors.inception import INCEPTION_WEIGHTS, random_inception_state_dict
from genbench.fetch import registered_file


def run_cli(args, capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["genbench", *map(str, args)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    captured = capsys.readouterr()
    return exit_info.value.code, captured.err


@pytest.fixture(scope="module")
def valid(tmp_path_factory, inception_weights):
    root = tmp_path_factory.mktemp("valid")
    np.savez(root / "samples.npz", arr_0=random_images(4, 32, seed=0))
    np.savez(root / "ref.npz", mu=np.zeros(2048), sigma=np.eye(2048), mu_s=np.zeros(2023),
             sigma_s=np.eye(2023))
    return {"samples": root / "samples.npz", "ref": root / "ref.npz", "weights": inception_weights}


def bad_sample_cases(tmp_path):
    """name -> (samples path, expected message fragment)."""
    images = random_images(4, 32, seed=1)
    np.savez(tmp_path / "no_arr0.npz", images=images)
    np.savez(tmp_path / "float.npz", arr_0=images.astype(np.float32) / 127.5 - 1)
    np.savez(tmp_path / "gray.npz", arr_0=images[..., 0])
    np.savez(tmp_path / "nchw.npz", arr_0=images.transpose(0, 3, 1, 2).copy())
    np.savez(tmp_path / "full.npz", arr_0=images)
    data = (tmp_path / "full.npz").read_bytes()
    (tmp_path / "truncated.npz").write_bytes(data[: len(data) // 2])
    mixed = tmp_path / "mixed"
    write_png_folder(mixed, images[:2])
    write_png_folder(mixed / "sub", random_images(1, 64, seed=2))
    (tmp_path / "empty").mkdir()
    corrupt = tmp_path / "corrupt"
    write_png_folder(corrupt, images[:2])
    (corrupt / "000001.png").write_bytes(b"not a png at all")
    cut = tmp_path / "cut"
    write_png_folder(cut, images[:2])
    png = (cut / "000001.png").read_bytes()
    (cut / "000001.png").write_bytes(png[: len(png) // 2])
    return {
        "missing": (tmp_path / "nope.npz", "no such file"),
        "no_arr0": (tmp_path / "no_arr0.npz", "has no 'arr_0' array (found images)"),
        "float": (tmp_path / "float.npz", "images are float32, expected uint8"),
        "gray": (tmp_path / "gray.npz", "grayscale"),
        "nchw": (tmp_path / "nchw.npz", "looks like NCHW"),
        "truncated": (tmp_path / "truncated.npz", "truncated or corrupt"),
        "mixed_sizes": (mixed, "images of different sizes"),
        "empty": (tmp_path / "empty", "no .png/.jpg/.jpeg images"),
        "corrupt_file": (corrupt, "000001.png: not a readable image"),
        "truncated_png": (cut, "000001.png: corrupt image data"),
    }


CASES = ["missing", "no_arr0", "float", "gray", "nchw", "truncated", "mixed_sizes", "empty", "corrupt_file",
         "truncated_png"]


@pytest.mark.parametrize("case", CASES)
def test_bad_samples(case, tmp_path, valid, capsys, monkeypatch):
    samples, fragment = bad_sample_cases(tmp_path)[case]
    out = tmp_path / "results.json"
    code, err = run_cli(["eval", "--samples", samples, "--ref", valid["ref"], "--weights", valid["weights"],
                         "--metrics", "fid", "--out", out], capsys, monkeypatch)
    assert code == 2
    assert fragment in err and str(samples.name) in err
    assert "Traceback" not in err and not out.exists()


def test_too_few_samples_for_kid(tmp_path, valid, capsys, monkeypatch):
    # an explicit subset size is a requirement (the default shrinks to the rows there are, as clean-fid)
    args = ["eval", "--samples", valid["samples"], "--ref", valid["ref"], "--weights", valid["weights"],
            "--metrics", "kid", "--kid-subset-size", 1000, "--out", tmp_path / "r.json"]
    code, err = run_cli(args, capsys, monkeypatch)
    assert code == 2 and "'kid' needs at least 1000" in err and not (tmp_path / "r.json").exists()


def test_unknown_metric(valid, capsys, monkeypatch):
    code, err = run_cli(["eval", "--samples", valid["samples"], "--ref", valid["ref"], "--metrics", "fud"],
                        capsys, monkeypatch)
    assert code == 2 and "unknown metric 'fud'" in err


def test_weights_missing_wrong_checksum_and_wrong_keys(tmp_path, valid, capsys, monkeypatch):
    monkeypatch.setenv("GENBENCH_CACHE", str(tmp_path / "cache"))
    base = ["eval", "--samples", valid["samples"], "--ref", valid["ref"], "--metrics", "fid"]
    code, err = run_cli(base, capsys, monkeypatch)
    weights = registered_file(INCEPTION_WEIGHTS)
    assert code == 2 and weights.url in err and str(tmp_path / "cache") in err  # (tests run offline)

    (tmp_path / "cache").mkdir(exist_ok=True)
    (tmp_path / "cache" / weights.path).write_bytes(b"something else")
    code, err = run_cli(base, capsys, monkeypatch)
    assert code == 2 and "does not match the registry's 6726825d" in err

    torch.save({"fc.weight": torch.zeros(3)}, tmp_path / "other.pth")
    code, err = run_cli([*base, "--weights", tmp_path / "other.pth"], capsys, monkeypatch)
    assert code == 2 and "not Inception-v3 weights" in err and "other.pth" in err


def test_reference_with_mismatched_dimensions(tmp_path, valid, capsys, monkeypatch):
    np.savez(tmp_path / "ref10.npz", mu=np.zeros(10), sigma=np.eye(10))
    code, err = run_cli(["eval", "--samples", valid["samples"], "--ref", tmp_path / "ref10.npz", "--weights",
                         valid["weights"], "--metrics", "fid"], capsys, monkeypatch)
    assert code == 2 and "'pool' statistics have 10 dimensions, the extractor gives 2048" in err


def test_nan_features_are_an_error(tmp_path, valid, capsys, monkeypatch):
    state = random_inception_state_dict()
    state["Conv2d_1a_3x3.conv.weight"][0, 0, 0, 0] = float("nan")
    torch.save(state, tmp_path / "nan.pth")
    args = ["eval", "--samples", valid["samples"], "--ref", valid["ref"], "--weights", tmp_path / "nan.pth",
            "--metrics", "fid", "--out", tmp_path / "r.json"]
    code, err = run_cli(args, capsys, monkeypatch)
    assert code == 2 and "non-finite 'pool' features" in err and not (tmp_path / "r.json").exists()


def test_real_process_prints_one_line_and_no_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "genbench", "eval", "--samples", str(tmp_path / "x.npz"),
                             "--ref", str(tmp_path / "r.npz")], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "x.npz: no such file" in result.stderr
