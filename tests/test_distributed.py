"""`torchrun` with 2 CPU (gloo) processes gives the same results file numbers as 1 process."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import random_images


@pytest.mark.slow
def test_two_torchrun_processes_equal_one(tmp_path, inception_weights):
    np.savez(tmp_path / "samples.npz", arr_0=random_images(7, 32, seed=1))  # odd: uneven rank slices
    np.savez(tmp_path / "refimg.npz", arr_0=random_images(6, 32, seed=2))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    genbench = [sys.executable, "-m", "genbench"]
    subprocess.run(
        [
            *genbench,
            "ref",
            "build",
            str(tmp_path / "refimg.npz"),
            "--out",
            str(tmp_path / "ref.npz"),
            "--weights",
            inception_weights,
        ],
        check=True,
        env=env,
        capture_output=True,
    )
    eval_args = [
        "eval",
        "--samples",
        str(tmp_path / "samples.npz"),
        "--ref",
        str(tmp_path / "ref.npz"),
        "--weights",
        inception_weights,
        "--metrics",
        "fid,sfid,is,pr",
        "--batch-size",
        "2",
    ]
    subprocess.run(
        [*genbench, *eval_args, "--out", str(tmp_path / "one.json")], check=True, env=env, capture_output=True
    )
    torchrun = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        "29533",
    ]
    two = subprocess.run(
        [*torchrun, "-m", "genbench", *eval_args, "--out", str(tmp_path / "two.json")],
        env=env,
        capture_output=True,
        text=True,
    )
    assert two.returncode == 0, two.stderr[-2000:]
    one = json.loads((tmp_path / "one.json").read_text())
    two = json.loads((tmp_path / "two.json").read_text())
    assert two["provenance"]["world_size"] == 2 and one["provenance"]["world_size"] == 1
    # Statistics are float64 sums, equal up to summation order; with 7 samples in 2048-d the covariances
    # are rank 6, and sqrt of round-off eigenvalues (~1e-16) moves FID by ~1e-8 relative.
    for name, value in one["metrics"].items():
        assert two["metrics"][name] == pytest.approx(value, rel=1e-6), name
    assert two["metrics"]["precision"] == one["metrics"]["precision"]
    assert two["metrics"]["is"] == pytest.approx(one["metrics"]["is"], rel=1e-12)
