"""`class_acc`: top-1 agreement of an extractor's logits with the samples' labels (ADM's arr_1), against a
hand computation (numpy argmax), Inception's 1008 -> 1000 class map, the CLI end to end (results file,
board, check, demo default) and its bad inputs."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_main
from genbench.metrics.class_accuracy import class_accuracy, class_logits, imagenet_logits
from genbench.metrics.inception_classes import INCEPTION_LOGITS, INCEPTION_NODE_OF_CLASS

from genbench.errors import GenbenchError
from genbench.leaderboard import metric_direction, read_board
from genbench.results import load_results
from genbench.sources import FolderSource, NpzSource

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "reference_stats" / "shapes32.npz"


def test_class_accuracy_equals_numpy_argmax():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(257, 20)).astype(np.float32)
    labels = rng.integers(0, 20, size=257)
    labels[:100] = logits[:100].argmax(axis=1)  # some right for sure, the rest right by chance (1 in 20)
    expected = float(np.mean(np.argmax(logits, axis=1) == labels))
    assert 100 / 257 < expected < 1
    assert class_accuracy(torch.from_numpy(logits), labels) == pytest.approx(expected, abs=1e-12)
    assert class_accuracy(torch.from_numpy(logits), torch.from_numpy(labels.astype(np.int32))) == expected


@pytest.mark.parametrize("labels, message", [
    (np.array([0.0, 1.0, 2.0]), "must be integers, got torch.float64"),
    (np.array([True, False, True]), "must be integers, got torch.bool"),
    (np.array([0, 1, 5]), r"must lie in 0..4 \(the classifier's 5 classes\); found 5"),
    (np.array([0, -1, 2]), "found -1"),
    (np.array([0, 1]), r"3 samples but class labels of shape \(2,\)"),
])
def test_bad_labels_are_refused(labels, message):
    with pytest.raises(ValueError, match=message):
        class_accuracy(torch.zeros(3, 5), labels)


def test_inception_class_map_is_the_graphs_label_map():
    """The 2015-12-05 graph's label map (imagenet_2012_challenge_label_map_proto.pbtxt) starts
    {target_class: 449, "n01440764"}, {target_class: 450, "n01443537"}: tench (class 0) is node 449 and
    goldfish (class 1) node 450; nodes 1..1000 are the 1000 classes, each once."""
    assert INCEPTION_LOGITS == 1008 and len(INCEPTION_NODE_OF_CLASS) == 1000
    assert sorted(INCEPTION_NODE_OF_CLASS) == list(range(1, 1001))
    assert INCEPTION_NODE_OF_CLASS[:2] == (449, 450)
    logits = torch.randn(6, 1008, generator=torch.Generator().manual_seed(0))
    mapped = imagenet_logits(logits)
    assert mapped.shape == (6, 1000)
    for c in (0, 1, 281, 999):
        assert torch.equal(mapped[:, c], logits[:, INCEPTION_NODE_OF_CLASS[c]])
    assert torch.equal(class_logits(logits), mapped) and torch.equal(class_logits(mapped), mapped)


def test_inception_logits_outside_the_classes_never_win():
    """A sample whose largest logit is node 0 or 1001-1007 (no class) is judged on the 1000 class nodes."""
    logits = torch.zeros(3, 1008)
    logits[:, 0], logits[:, 1005] = 50.0, 60.0  # unused nodes, largest overall
    classes = torch.tensor([0, 1, 999])
    for row, c in enumerate(classes.tolist()):
        logits[row, INCEPTION_NODE_OF_CLASS[c]] = 10.0
    assert class_accuracy(class_logits(logits), classes) == 1.0
    # the naive reading "drop node 0, nodes 1..1000 are classes 0..999" gets every one wrong
    assert class_accuracy(logits[:, 1:1001], classes) == 0.0


def test_real_inception_finds_the_cat_in_chelsea():
    """With the real weights, the bundled photo of a tabby (skimage's chelsea) lands in ImageNet's cat
    classes 281-285 (tabby, tiger cat, Persian, Siamese, Egyptian cat) through the class map."""
    from skimage import data

    from genbench.backbones import build_extractor

    try:
        extractor = build_extractor("inception").eval()
    except GenbenchError as error:  # tests run offline: only a cached copy of the real weights can be used
        pytest.skip(f"the real Inception weights are not cached ({str(error)[:120]})")
    image = torch.from_numpy(data.chelsea()[:, 25:325].copy()).permute(2, 0, 1)[None]
    with torch.no_grad():
        logits = extractor(image)["logits"]
    assert 281 <= int(class_logits(logits).argmax()) <= 285


# ----------------------------------------------------------------------------------- sources and the CLI


@pytest.fixture(scope="module")
def world_samples(tmp_path_factory):
    """48 shapes-world images with their labels, 12 of them relabelled to a wrong class, as an ADM npz; and
    the hand-computed class_acc: numpy argmax of the shapes extractor's logits against the stored labels."""
    from genbench.backbones import build_extractor
    from genbench.worlds.shapes import ShapesWorld

    images, labels, _ = ShapesWorld(32).sample(48, seed=3)
    labels = labels.copy()
    labels[::4] = (labels[::4] + 7) % 20
    path = tmp_path_factory.mktemp("class_acc") / "samples.npz"
    np.savez(path, arr_0=images.transpose(0, 2, 3, 1), arr_1=labels)
    with torch.no_grad():
        logits = build_extractor("shapes").eval()(torch.from_numpy(images))["logits"].numpy()
    expected = float(np.mean(np.argmax(logits, axis=1) == labels))
    return path, images, labels, expected


def test_npz_source_reads_labels_and_refuses_bad_ones(tmp_path, world_samples):
    path, images, labels, _ = world_samples
    assert np.array_equal(NpzSource(path).class_labels(), labels)
    nhwc = images.transpose(0, 2, 3, 1)
    np.savez(tmp_path / "none.npz", arr_0=nhwc)
    np.savez(tmp_path / "float.npz", arr_0=nhwc, arr_1=labels.astype(np.float32))
    np.savez(tmp_path / "short.npz", arr_0=nhwc, arr_1=labels[:-1])
    for name, message in [("none.npz", "none.npz: has no arr_1 (class labels)"),
                          ("float.npz", "float.npz (arr_1): expected 48 non-negative integer labels (one per "
                                        "image), found float32 of shape (48,)"),
                          ("short.npz", "short.npz (arr_1): expected 48 non-negative integer labels (one per "
                                        "image), found int64 of shape (47,)")]:
        with pytest.raises(GenbenchError, match=re.escape(message)):
            NpzSource(tmp_path / name).class_labels()
    folder = tmp_path / "pngs"
    folder.mkdir()
    from PIL import Image

    Image.fromarray(nhwc[0]).save(folder / "0.png")
    with pytest.raises(GenbenchError, match="pngs: has no class labels"):
        FolderSource(folder).class_labels()


def test_cli_class_acc_equals_the_hand_computation_and_reaches_board_and_check(tmp_path, capsys, monkeypatch,
                                                                               world_samples):
    path, _, _, expected = world_samples
    assert 0.5 < expected < 0.8  # 12 of 48 labels are wrong on purpose; the classifier gets most others
    out = tmp_path / "results.json"
    code, stdout, stderr = run_main(capsys, monkeypatch, "eval", "--samples", path, "--ref", REFERENCE,
                                    "--extractor", "shapes", "--metrics", "class_acc,fid", "--device", "cpu",
                                    "--out", out)
    assert code == 0, stderr
    metrics = load_results(out)["metrics"]
    assert metrics["class_acc"] == pytest.approx(expected, abs=1e-12) and "class_acc" in stdout
    assert metric_direction("class_acc") == 1
    board = tmp_path / "board.csv"
    code, _, stderr = run_main(capsys, monkeypatch, "leaderboard", "add", out, "--board", board,
                               "--name", "mine")
    assert code == 0, stderr
    assert read_board(board).iloc[-1]["class_acc"] == pytest.approx(expected)
    code, stdout, _ = run_main(capsys, monkeypatch, "check", out, "--baseline", board, "--row", "mine")
    assert code == 0 and "class_acc" in stdout
    # 0.03 less than the baseline is beyond class_acc's absolute default tolerance of 0.02: a regression
    document = json.loads(out.read_text())
    document["metrics"]["class_acc"] = expected - 0.03
    worse = tmp_path / "worse.json"
    worse.write_text(json.dumps(document))
    code, stdout, _ = run_main(capsys, monkeypatch, "check", worse, "--baseline", board, "--row", "mine")
    assert code == 1 and "regression" in stdout


def test_cli_class_acc_bootstrap_interval(tmp_path, capsys, monkeypatch, world_samples):
    path, _, _, expected = world_samples
    out = tmp_path / "results.json"
    code, _, stderr = run_main(capsys, monkeypatch, "eval", "--samples", path, "--ref", REFERENCE,
                               "--extractor", "shapes", "--metrics", "class_acc", "--bootstrap", "50",
                               "--device", "cpu", "--out", out)
    assert code == 0, stderr
    metrics = load_results(out)["metrics"]
    assert metrics["class_acc_ci_low"] < expected < metrics["class_acc_ci_high"]
    # the binomial standard error at n = 48 is about 0.07: a 95% interval a few tenths wide, not 0
    assert 0.1 < metrics["class_acc_ci_high"] - metrics["class_acc_ci_low"] < 0.5


@pytest.mark.parametrize("arrays, message", [
    ({}, "has no arr_1 (class labels)"),
    ({"arr_1": "float"}, "(arr_1): expected 48 non-negative integer labels (one per image), found float64"),
    ({"arr_1": "out_of_range"}, "class labels must lie in 0..19 (the classifier's 20 classes); found 25"),
])
def test_cli_bad_labels_are_one_line_errors_without_output(tmp_path, capsys, monkeypatch, world_samples,
                                                           arrays, message):
    path, images, labels, _ = world_samples
    stored = {"float": labels.astype(np.float64), "out_of_range": np.where(labels == 3, 25, labels)}
    bad = tmp_path / "bad.npz"
    np.savez(bad, arr_0=images.transpose(0, 2, 3, 1), **{k: stored[v] for k, v in arrays.items()})
    out = tmp_path / "results.json"
    code, _, stderr = run_main(capsys, monkeypatch, "eval", "--samples", bad, "--ref", REFERENCE,
                               "--extractor", "shapes", "--metrics", "fid,class_acc", "--device", "cpu",
                               "--out", out)
    assert code == 2 and "Traceback" not in stderr and not out.exists()
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]  # after a progress line
    assert len(errors) == 1 and str(bad) in errors[0] and message in errors[0], stderr


def test_eval_demo_prints_class_acc_by_default(tmp_path, capsys, monkeypatch):
    """`genbench eval --model demo...` without --metrics adds class_acc to the usual list; the sampler's
    labels (arr_1) flow through to it (reduced count; KID subsets sized to fit)."""
    out = tmp_path / "results.json"
    code, stdout, stderr = run_main(capsys, monkeypatch, "eval", "--model", "demo:sit", "--num", "40",
                                    "--steps", "4", "--kid-subset-size", "10", "--device", "cpu",
                                    "--out", out)
    assert code == 0, stderr
    metrics = load_results(out)["metrics"]
    assert {"fid", "sfid", "is", "precision", "recall", "kid", "class_acc"} <= set(metrics)
    assert 0 <= metrics["class_acc"] <= 1 and "class_acc" in stdout
    samples = np.load(out.with_suffix(".samples.npz"))
    assert np.array_equal(np.sort(samples["arr_1"]), np.sort(np.arange(40) % 20))  # balanced labels
