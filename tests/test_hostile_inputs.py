"""Hostile and malformed input to every command: each case must end with exit code 2 (bad input) or 1 (a
failed check / an internal error), one line on stderr naming the right file, no traceback, and nothing
written. The CLI runs in this process and every error fires before a model is built, so the table is fast.

A case is (id, argv builder, expected exit code, fragment the one line must contain). Builders make their
hostile files in the test's own folder `tmp`; `ok` holds valid tiny files shared by all cases.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import random_images, run_main, write_png_folder
from PIL import Image

# --------------------------------------------------------------------------------------------------
#                                        valid tiny inputs
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ok(tmp_path_factory) -> dict[str, Path]:
    """Valid files the hostile cases vary one thing of."""
    root = tmp_path_factory.mktemp("ok")
    images = random_images(8, 32, seed=0)
    np.savez(root / "samples.npz", arr_0=images, arr_1=np.arange(8) % 2)
    np.savez(
        root / "ref.npz",
        mu=np.zeros(4),
        sigma=np.eye(4),
        meta=np.array(
            json.dumps({"extractor": "shapes", "weights_sha256": None, "resize_mode": "none", "count": 8})
        ),
    )
    write_png_folder(root / "folder" / "a", images[:2])
    write_png_folder(root / "folder" / "b", images[2:4])
    results = {"schema": 2, "metrics": {"fid": 10.0, "is": 2.0}, "provenance": {"model": "m"}}
    (root / "results.json").write_text(json.dumps(results))
    (root / "board.csv").write_text("name,kind,fid,is,source\nbase,measured,10.0,2.0,x\n")
    (root / "pairs.jsonl").write_text(json.dumps({"image": "folder/a/000000.png", "prompt": "a cat"}) + "\n")
    geneval = root / "geneval" / "00000"
    write_png_folder(geneval / "samples", images[:1])
    os.rename(geneval / "samples" / "000000.png", geneval / "samples" / "0000.png")
    (geneval / "metadata.jsonl").write_text(
        json.dumps(
            {
                "tag": "single_object",
                "include": [{"class": "circle", "count": 1}],
                "prompt": "a photo of a circle",
            }
        )
    )
    from genbench.models.official import model_path
    from genbench.sources import read_checkpoint

    config = read_checkpoint(model_path("demo"))["config"]  # a valid training config, as JSON text
    return {
        name: root / name
        for name in (
            "samples.npz",
            "ref.npz",
            "folder",
            "results.json",
            "board.csv",
            "pairs.jsonl",
            "geneval",
        )
    } | {"root": root, "config": config}


# --------------------------------------------------------------------------------------------------
#                                       hostile file makers
# --------------------------------------------------------------------------------------------------


def write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def npz_corrupt_magic(path: Path) -> Path:
    """A valid zip whose arr_0.npy does not start with numpy's magic string."""
    np.savez(path, arr_0=random_images(2, 32, seed=1))
    data = bytearray(path.read_bytes())
    at = data.index(b"\x93NUMPY")
    data[at : at + 6] = b"XXXXXX"
    return write(path, bytes(data))


def npz_corrupt_header(path: Path) -> Path:
    np.savez(path, arr_0=random_images(2, 32, seed=1))
    data = bytearray(path.read_bytes())
    at = data.index(b"{'descr'")
    data[at : at + 8] = b"{'d!scr'"
    return write(path, bytes(data))


def npz_corrupt_compressed(path: Path) -> Path:
    """np.savez_compressed whose deflate stream is garbage after the header."""
    np.savez_compressed(path, arr_0=random_images(16, 32, seed=1), arr_1=np.zeros(16, dtype=np.int64))
    data = bytearray(path.read_bytes())
    middle = len(data) // 3
    data[middle : middle + 200] = bytes(200)
    return write(path, bytes(data))


def png_zero_size(path: Path) -> Path:
    """A PNG whose header says 0x0 pixels (CRC fixed, so only the size is wrong)."""
    Image.fromarray(random_images(1, 8, seed=0)[0]).save(path)
    data = bytearray(path.read_bytes())
    ihdr = data.index(b"IHDR")
    data[ihdr + 4 : ihdr + 12] = bytes(8)
    data[ihdr + 17 : ihdr + 21] = zlib.crc32(bytes(data[ihdr : ihdr + 17])).to_bytes(4, "big")
    return write(path, bytes(data))


def png_bomb(path: Path, side: int = 20000) -> Path:
    """A PNG whose header says 20000x20000 pixels (1.2 GB decoded) in a file of a few hundred bytes: a
    decompression bomb as far as any reader that trusts the header can tell. Its pixel data is not complete,
    which does not matter: genbench must refuse it from the header, before decoding anything."""
    import struct

    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + payload))
        return struct.pack(">I", len(payload)) + kind + payload + crc

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    body = zlib.compress(bytes(1 + side * 3) * 16)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")
    return write(path, png)


def deep_json(depth: int = 100_000) -> str:
    return "[" * depth + "]" * depth


# --------------------------------------------------------------------------------------------------
#                                           the table
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    id: str
    argv: Callable[[Path, dict], list]  # (tmp, ok) -> argv after `genbench`
    fragment: str  # the one line must contain this (a file name or the option at fault)
    code: int = 2
    needs_permissions: bool = False  # root writes anywhere: such a case cannot fail for root
    env: dict[str, Callable[[Path], Path]] | None = None  # variables set to a file made in tmp
    needs_no_cuda: bool = False


def _unwritable(tmp: Path) -> Path:
    locked = tmp / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    return locked / "out.json"


CASES = [
    # ---- output paths, checked before any work ----
    Case(
        "leaderboard-add-board-is-dir",
        lambda t, o: ["leaderboard", "add", o["results.json"], "--board", t],
        "is a folder",
    ),
    Case(
        "leaderboard-publish-out-unwritable",
        lambda t, o: ["leaderboard", "publish", "--board", o["board.csv"], "--out", _unwritable(t)],
        "locked",
        needs_permissions=True,
    ),
    Case(
        "eval-out-is-dir",
        lambda t, o: [
            "eval",
            "--samples",
            o["samples.npz"],
            "--ref",
            o["ref.npz"],
            "--extractor",
            "shapes",
            "--metrics",
            "fid",
            "--out",
            t,
        ],
        "is a folder",
    ),
    Case(
        "ref-build-out-parent-is-file",
        lambda t, o: [
            "ref",
            "build",
            o["samples.npz"],
            "--out",
            o["results.json"] / "ref.npz",
            "--extractor",
            "shapes",
        ],
        "is a file, not a folder",
    ),
    Case(
        "sample-out-is-dir",
        lambda t, o: ["sample", "--model", "demo", "--out", t, "--num", "2"],
        "is a folder",
    ),
    Case(
        "train-out-is-file",
        lambda t, o: [
            "train",
            "--recipe",
            "sit",
            "--preset",
            "tiny-sit",
            "--data",
            o["samples.npz"],
            "--out",
            o["results.json"],
        ],
        "is a file",
    ),
    Case(
        "geneval-prompts-out-is-file",
        lambda t, o: ["geneval", "prompts", "--out", o["results.json"]],
        "results.json: is a file",
    ),
    Case(
        "clip-score-out-is-dir",
        lambda t, o: ["clip-score", "--pairs", o["pairs.jsonl"], "--out", t],
        "is a folder",
    ),
    Case(
        "probe-out-is-dir",
        lambda t, o: ["probe", "--features", "encoder:shapes", "--data", o["samples.npz"], "--out", t],
        "is a folder",
    ),
    Case(
        "tokenizers-board-is-dir",
        lambda t, o: ["tokenizers", "compare", "--vae", "demo:sit", "--data", o["samples.npz"], "--board", t],
        "is a folder",
    ),
]


# ---- hostile files, one per kind ----


def _magic(t: Path) -> Path:
    return npz_corrupt_magic(t / "magic.npz")


def _header(t: Path) -> Path:
    return npz_corrupt_header(t / "header.npz")


def _deflate(t: Path) -> Path:
    return npz_corrupt_compressed(t / "deflate.npz")


def _folder_with(t: Path, maker: Callable[[Path], Path], name: str = "bad.png") -> Path:
    folder = t / "imgs"
    write_png_folder(folder, random_images(2, 32, seed=3))
    maker(folder / name)
    return folder


def _zero_png_folder(t: Path) -> Path:
    return _folder_with(t, png_zero_size, "zero.png")


def _bomb_folder(t: Path) -> Path:
    return _folder_with(t, png_bomb, "bomb.png")


def _ref(t: Path, name: str = "badref.npz", **arrays) -> Path:
    np.savez(t / name, **arrays)
    return t / name


def _json_file(t: Path, name: str, text: str | bytes) -> Path:
    return write(t / name, text)


NOT_UTF8 = b'{"schema": 2, "metrics": {"fid": 1.0}, "provenance": {"model": "caf\xe9"}}'


def _results(t: Path, metrics: str, name: str = "res.json") -> Path:
    return write(t / name, '{"schema": 2, "metrics": ' + metrics + "}")


def _checkpoint(t: Path, state: object, name: str = "ckpt.pt") -> Path:
    torch.save(state, t / name)
    return t / name


def _pickle_checkpoint(t: Path) -> Path:
    import datetime

    return _checkpoint(t, {"config": "{}", "made": datetime.datetime(2020, 1, 1)}, "pickled.pt")


def _float_labels(t: Path) -> Path:
    np.savez(t / "floatlabels.npz", arr_0=random_images(8, 32, seed=4), arr_1=np.linspace(0, 1, 8))
    return t / "floatlabels.npz"


def _geneval_copy(t: Path, ok: dict) -> Path:
    import shutil

    return Path(shutil.copytree(ok["geneval"], t / "gen"))


def _geneval_with(t: Path, ok: dict, relative: str, data: bytes | str | Callable[[Path], Path]) -> Path:
    folder = _geneval_copy(t, ok)
    if callable(data):
        data(folder / relative)
    else:
        write(folder / relative, data)
    return folder


def _registry(t: Path, monkeypatch_text: str | bytes) -> Path:
    return write(t / "registry.json", monkeypatch_text)


def _board(t: Path, data: str | bytes) -> Path:
    return write(t / "hostile.csv", data)


EVAL = ["--extractor", "shapes", "--metrics", "fid"]

CASES += [
    # ---- eval: samples and references ----
    Case(
        "eval-npz-corrupt-magic",
        lambda t, o: ["eval", "--samples", _magic(t), "--ref", o["ref.npz"], *EVAL],
        "magic.npz: arr_0 has a corrupt .npy header",
    ),
    Case(
        "eval-npz-corrupt-header",
        lambda t, o: ["eval", "--samples", _header(t), "--ref", o["ref.npz"], *EVAL],
        "header.npz: arr_0 has a corrupt .npy header",
    ),
    Case(
        "eval-npz-corrupt-deflate",
        lambda t, o: ["eval", "--samples", _deflate(t), "--ref", o["ref.npz"], *EVAL],
        "deflate.npz",
    ),
    Case(
        "eval-png-0x0",
        lambda t, o: ["eval", "--samples", _zero_png_folder(t), "--ref", o["ref.npz"], *EVAL],
        "zero.png",
    ),
    Case(
        "eval-png-bomb-20000x20000",
        lambda t, o: ["eval", "--samples", _bomb_folder(t), "--ref", o["ref.npz"], *EVAL],
        "bomb.png",
    ),
    Case(
        "eval-ref-nan",
        lambda t, o: [
            "eval",
            "--samples",
            o["samples.npz"],
            "--ref",
            _ref(t, mu=np.full(4, np.nan), sigma=np.eye(4)),
            *EVAL,
        ],
        "badref.npz: mu/sigma hold NaN",
    ),
    Case(
        "eval-ref-misshapen",
        lambda t, o: [
            "eval",
            "--samples",
            o["samples.npz"],
            "--ref",
            _ref(t, mu=np.zeros(4), sigma=np.eye(3)),
            *EVAL,
        ],
        "badref.npz: mu (4,) and sigma (3, 3) do not fit",
    ),
    Case(
        "eval-ref-meta-is-a-list",
        lambda t, o: [
            "eval",
            "--samples",
            o["samples.npz"],
            "--ref",
            _ref(t, mu=np.zeros(4), sigma=np.eye(4), meta=np.array("[1]")),
            *EVAL,
        ],
        "badref.npz (meta)",
    ),
    Case(
        "eval-ref-truncated",
        lambda t, o: [
            "eval",
            "--samples",
            o["samples.npz"],
            "--ref",
            write(t / "cut.npz", o["ref.npz"].read_bytes()[:300]),
            *EVAL,
        ],
        "cut.npz: not a readable reference .npz",
    ),
    Case(
        "eval-ref-holds-a-pickle",
        lambda t, o: [
            "eval",
            "--samples",
            o["samples.npz"],
            "--ref",
            _ref(t, mu=np.array([{"x": 1}], dtype=object), sigma=np.eye(1)),
            *EVAL,
        ],
        "badref.npz: mu holds Python",
    ),
    Case(
        "eval-device-bogus",
        lambda t, o: [
            "eval",
            "--samples",
            o["samples.npz"],
            "--ref",
            o["ref.npz"],
            *EVAL,
            "--device",
            "bogus",
        ],
        "--device",
    ),
    Case(
        "eval-cfg-scale-nan",
        lambda t, o: ["eval", "--model", "demo", "--cfg-scale", "nan"],
        "--cfg-scale nan",
    ),
    Case(
        "eval-guidance-interval-nan",
        lambda t, o: ["eval", "--model", "demo", "--guidance-interval", "0", "nan"],
        "--guidance-interval nan",
    ),
    Case(
        "eval-samples-missing",
        lambda t, o: ["eval", "--samples", t / "none.npz", "--ref", o["ref.npz"], *EVAL],
        "none.npz: no such file",
    ),
    Case(
        "eval-kid-subsets-zero",
        lambda t, o: [
            "eval",
            "--samples",
            o["samples.npz"],
            "--ref",
            o["ref.npz"],
            *EVAL,
            "--kid-subsets",
            "0",
        ],
        "--kid-subsets",
    ),
    # ---- ref build / list / fetch ----
    Case(
        "ref-build-npz-corrupt-magic",
        lambda t, o: ["ref", "build", _magic(t), "--out", t / "r.npz", "--extractor", "shapes"],
        "magic.npz",
    ),
    Case(
        "ref-build-png-bomb",
        lambda t, o: ["ref", "build", _bomb_folder(t), "--out", t / "r.npz", "--extractor", "shapes"],
        "bomb.png",
    ),
    Case(
        "ref-build-unknown-extractor",
        lambda t, o: ["ref", "build", o["samples.npz"], "--out", t / "r.npz", "--extractor", "nope"],
        "nope",
    ),
    Case(
        "ref-list-registry-not-utf8",
        lambda t, o: ["ref", "list"],
        "registry.json",
        env={"GENBENCH_REFERENCE_REGISTRY": lambda t: _registry(t, b'{"reference_sets": "\xff"}')},
    ),
    Case(
        "ref-list-registry-deep",
        lambda t, o: ["ref", "list"],
        "registry.json",
        env={"GENBENCH_REFERENCE_REGISTRY": lambda t: _registry(t, deep_json())},
    ),
    Case(
        "ref-list-registry-wrong-type",
        lambda t, o: ["ref", "list"],
        "registry.json",
        env={"GENBENCH_REFERENCE_REGISTRY": lambda t: _registry(t, '{"reference_sets": [1, 2]}')},
    ),
    Case("ref-fetch-unknown-set", lambda t, o: ["ref", "fetch", "no-such-set"], "no-such-set"),
    # ---- sample ----
    Case(
        "sample-cfg-scale-nan",
        lambda t, o: ["sample", "--model", "demo", "--out", t / "s.npz", "--cfg-scale", "nan"],
        "--cfg-scale nan",
    ),
    Case(
        "sample-cfg-channels-99",
        lambda t, o: [
            "sample",
            "--model",
            "demo",
            "--out",
            t / "s.npz",
            "--num",
            "2",
            "--cfg-channels",
            "99",
        ],
        "--cfg-channels 99",
    ),
    Case(
        "sample-cfg-channels-negative",
        lambda t, o: ["sample", "--model", "demo", "--out", t / "s.npz", "--cfg-channels", "-1"],
        "--cfg-channels",
    ),
    Case(
        "sample-steps-zero",
        lambda t, o: ["sample", "--model", "demo", "--out", t / "s.npz", "--steps", "0"],
        "--steps",
    ),
    Case(
        "sample-num-negative",
        lambda t, o: ["sample", "--model", "demo", "--out", t / "s.npz", "--num", "-5"],
        "--num",
    ),
    Case(
        "sample-checkpoint-bare-tensor",
        lambda t, o: ["sample", "--model", _checkpoint(t, torch.zeros(3)), "--out", t / "s.npz"],
        "ckpt.pt: holds a Tensor",
    ),
    Case(
        "sample-checkpoint-without-ema",
        lambda t, o: [
            "sample",
            "--model",
            _checkpoint(t, {"config": o["config"], "model": {}}),
            "--out",
            t / "s.npz",
        ],
        "ckpt.pt: holds a NoneType",
    ),
    Case(
        "sample-checkpoint-config-wrong-type",
        lambda t, o: [
            "sample",
            "--model",
            _checkpoint(t, {"config": {"sit": 3}, "ema": {}}),
            "--out",
            t / "s.npz",
        ],
        "ckpt.pt: 'config' is dict",
    ),
    Case(
        "sample-checkpoint-config-not-json",
        lambda t, o: [
            "sample",
            "--model",
            _checkpoint(t, {"config": "{not json", "ema": {}}),
            "--out",
            t / "s.npz",
        ],
        "ckpt.pt (config)",
    ),
    Case(
        "sample-checkpoint-config-cannot-build",
        lambda t, o: [
            "sample",
            "--model",
            _checkpoint(t, {"config": '{"sit": {"name": 3}}', "ema": {}}),
            "--out",
            t / "s.npz",
        ],
        "ckpt.pt",
    ),
    Case(
        "sample-checkpoint-pickle-refused",
        lambda t, o: ["sample", "--model", _pickle_checkpoint(t), "--out", t / "s.npz"],
        "pickled.pt: cannot be read as a weights-only checkpoint (it pickles datetime.datetime",
    ),
    Case(
        "sample-checkpoint-garbage",
        lambda t, o: ["sample", "--model", write(t / "junk.pt", b"\x00" * 64), "--out", t / "s.npz"],
        "junk.pt: cannot be read",
    ),
    Case(
        "sample-manifest-corrupt",
        lambda t, o: [
            "sample",
            "--model",
            "demo",
            "--num",
            "2",
            "--steps",
            "1",
            "--out",
            write(t / "s.shards" / "manifest.json", "{oops").parent.with_suffix(".npz"),
        ],
        "manifest.json",
    ),
    # ---- train ----
    Case(
        "train-steps-negative",
        lambda t, o: [
            "train",
            "--recipe",
            "sit",
            "--preset",
            "tiny-sit",
            "--data",
            o["samples.npz"],
            "--out",
            t / "run",
            "--steps",
            "-1",
        ],
        "--steps",
    ),
    Case(
        "train-float-labels",
        lambda t, o: [
            "train",
            "--recipe",
            "sit",
            "--preset",
            "tiny-sit",
            "--data",
            _float_labels(t),
            "--out",
            t / "run",
        ],
        "floatlabels.npz (arr_1)",
    ),
    Case(
        "train-npz-corrupt-magic",
        lambda t, o: [
            "train",
            "--recipe",
            "sit",
            "--preset",
            "tiny-sit",
            "--data",
            _magic(t),
            "--out",
            t / "run",
        ],
        "magic.npz",
    ),
    Case(
        "train-config-not-utf8",
        lambda t, o: [
            "train",
            "--recipe",
            "sit",
            "--config",
            _json_file(t, "c.json", b'{"lr": "\xff"}'),
            "--data",
            o["samples.npz"],
            "--out",
            t / "run",
        ],
        "c.json: training config",
    ),
    Case(
        "train-config-deep",
        lambda t, o: [
            "train",
            "--recipe",
            "sit",
            "--config",
            _json_file(t, "c.json", deep_json()),
            "--data",
            o["samples.npz"],
            "--out",
            t / "run",
        ],
        "c.json: JSON nested too deeply",
    ),
    Case(
        "train-config-is-a-list",
        lambda t, o: [
            "train",
            "--recipe",
            "sit",
            "--config",
            _json_file(t, "c.json", "[1, 2]"),
            "--data",
            o["samples.npz"],
            "--out",
            t / "run",
        ],
        "c.json: a training config file holds",
    ),
    Case(
        "train-resume-corrupt-checkpoint",
        lambda t, o: [
            "train",
            "--recipe",
            "sit",
            "--data",
            o["samples.npz"],
            "--resume",
            "--out",
            write(t / "run" / "checkpoints" / "0000001.pt", b"garbage").parents[1],
        ],
        "0000001.pt: cannot be read",
    ),
    # ---- leaderboard add / show / publish ----
    Case(
        "add-metric-named-kind",
        lambda t, o: ["leaderboard", "add", _results(t, '{"kind": 1.0}'), "--board", t / "b.csv"],
        "metric 'kind' has the name of a board's text",
    ),
    Case(
        "add-metric-400-digit-int",
        lambda t, o: [
            "leaderboard",
            "add",
            _results(t, '{"fid": ' + "9" * 400 + "}"),
            "--board",
            t / "b.csv",
        ],
        "res.json: metric 'fid' is an integer",
    ),
    Case(
        "add-metric-5000-digit-int",
        lambda t, o: [
            "leaderboard",
            "add",
            _results(t, '{"fid": ' + "9" * 5000 + "}"),
            "--board",
            t / "b.csv",
        ],
        "res.json",
    ),
    Case(
        "add-metric-nan",
        lambda t, o: ["leaderboard", "add", _results(t, '{"fid": NaN}'), "--board", t / "b.csv"],
        "res.json: metric 'fid' nan: must be a finite number",
    ),
    Case(
        "add-metric-name-with-newline",
        lambda t, o: ["leaderboard", "add", _results(t, '{"f\\nid": 1.0}'), "--board", t / "b.csv"],
        "res.json: metric name",
    ),
    Case(
        "add-name-with-newline",
        lambda t, o: [
            "leaderboard",
            "add",
            o["results.json"],
            "--board",
            t / "b.csv",
            "--name",
            "two\nlines",
        ],
        "holds a newline",
    ),
    Case(
        "add-name-not-utf8",
        lambda t, o: [
            "leaderboard",
            "add",
            o["results.json"],
            "--board",
            t / "b.csv",
            "--name",
            b"caf\xe9".decode("utf-8", "surrogateescape"),  # how Python hands over undecodable argv bytes
        ],
        "is not valid UTF-8",
    ),
    Case(
        "eval-worker-process-error",
        lambda t, o: [
            "eval",
            "--samples",
            _folder_with(t, lambda path: write(path, b"\x89PNG\r\n\x1a\n truncated"), "cut.png"),
            "--ref",
            o["ref.npz"],
            *EVAL,
            "--num-workers",
            "1",
        ],
        "cut.png",
    ),
    Case(
        "eval-device-cuda-without-cuda",
        lambda t, o: [
            "eval",
            "--samples",
            o["samples.npz"],
            "--ref",
            o["ref.npz"],
            *EVAL,
            "--device",
            "cuda",
        ],
        "--device cuda",
        needs_no_cuda=True,
    ),
    Case(
        "add-results-schema-0",
        lambda t, o: [
            "leaderboard",
            "add",
            _json_file(t, "s0.json", '{"schema": 0}'),
            "--board",
            t / "b.csv",
        ],
        "s0.json: results schema 0",
    ),
    Case(
        "add-results-deep",
        lambda t, o: ["leaderboard", "add", _json_file(t, "deep.json", deep_json()), "--board", t / "b.csv"],
        "deep.json: JSON nested too deeply",
    ),
    Case(
        "add-results-not-utf8",
        lambda t, o: ["leaderboard", "add", _json_file(t, "latin.json", NOT_UTF8), "--board", t / "b.csv"],
        "latin.json: results file is not UTF-8",
    ),
    Case(
        "add-results-is-a-list",
        lambda t, o: ["leaderboard", "add", _json_file(t, "l.json", "[]"), "--board", t / "b.csv"],
        "l.json: a results file holds a JSON object",
    ),
    Case(
        "add-board-not-utf8",
        lambda t, o: [
            "leaderboard",
            "add",
            o["results.json"],
            "--board",
            _board(t, b"name,kind\n\xff\xfe,measured\n"),
        ],
        "hostile.csv",
    ),
    Case(
        "show-board-binary",
        lambda t, o: ["leaderboard", "show", "--board", _board(t, bytes(range(256)))],
        "hostile.csv",
    ),
    Case(
        "show-board-metric-column-text",
        lambda t, o: ["leaderboard", "show", "--board", _board(t, "name,kind,fid\na,measured,oops\n")],
        "hostile.csv: metric column 'fid'",
    ),
    Case(
        "show-sort-unknown-column",
        lambda t, o: ["leaderboard", "show", "--board", o["board.csv"], "--sort", "nope"],
        "--sort nope",
    ),
    Case(
        "publish-unknown-suffix",
        lambda t, o: ["leaderboard", "publish", "--board", o["board.csv"], "--out", t / "page.xyz"],
        "page.xyz",
    ),
    # ---- check ----
    Case(
        "check-allow-missing-unknown",
        lambda t, o: [
            "check",
            o["results.json"],
            "--baseline",
            o["board.csv"],
            "--row",
            "base",
            "--allow-missing",
            "nope",
        ],
        "--allow-missing nope",
    ),
    Case(
        "check-tol-nan",
        lambda t, o: [
            "check",
            o["results.json"],
            "--baseline",
            o["board.csv"],
            "--row",
            "base",
            "--tol",
            "fid=nan",
        ],
        "--tol",
    ),
    Case(
        "check-results-not-utf8",
        lambda t, o: [
            "check",
            _json_file(t, "latin.json", NOT_UTF8),
            "--baseline",
            o["board.csv"],
            "--row",
            "base",
        ],
        "latin.json",
    ),
    Case(
        "check-row-missing",
        lambda t, o: ["check", o["results.json"], "--baseline", o["board.csv"], "--row", "nope"],
        "board.csv: no row named 'nope'",
    ),
    # ---- geneval prompts / generate / score ----
    Case(
        "geneval-prompts-metadata-not-utf8",
        lambda t, o: [
            "geneval",
            "prompts",
            "--out",
            t / "p",
            "--metadata",
            _json_file(t, "m.jsonl", b'{"tag": "\xff"}\n'),
        ],
        "m.jsonl: prompt metadata file is not UTF-8",
    ),
    Case(
        "geneval-prompts-metadata-deep",
        lambda t, o: [
            "geneval",
            "prompts",
            "--out",
            t / "p",
            "--metadata",
            _json_file(t, "m.jsonl", deep_json() + "\n"),
        ],
        "m.jsonl:1: JSON nested too deeply",
    ),
    Case(
        "geneval-generate-cfg-nan",
        lambda t, o: ["geneval", "generate", "--out", t / "g", "--cfg-scale", "nan"],
        "--cfg-scale nan",
    ),
    Case(
        "geneval-score-threshold-nan",
        lambda t, o: [
            "geneval",
            "score",
            o["geneval"],
            "--out",
            t / "r.jsonl",
            "--detector",
            "shapes",
            "--threshold",
            "nan",
        ],
        "--threshold nan",
    ),
    Case(
        "geneval-score-threshold-above-1",
        lambda t, o: [
            "geneval",
            "score",
            o["geneval"],
            "--out",
            t / "r.jsonl",
            "--detector",
            "shapes",
            "--threshold",
            "2",
        ],
        "--threshold 2",
    ),
    Case(
        "geneval-score-generation-json-corrupt",
        lambda t, o: [
            "geneval",
            "score",
            _geneval_with(t, o, "generation.json", "{broken"),
            "--out",
            t / "r.jsonl",
            "--detector",
            "shapes",
        ],
        "generation.json: not a readable generation record JSON",
    ),
    Case(
        "geneval-score-metadata-not-utf8",
        lambda t, o: [
            "geneval",
            "score",
            _geneval_with(t, o, "00000/metadata.jsonl", b'{"tag": "\xff"}'),
            "--out",
            t / "r.jsonl",
            "--detector",
            "shapes",
        ],
        "metadata.jsonl: prompt metadata file is not UTF-8",
    ),
    Case(
        "geneval-score-png-bomb",
        lambda t, o: [
            "geneval",
            "score",
            _geneval_with(t, o, "00000/samples/0001.png", png_bomb),
            "--out",
            t / "r.jsonl",
            "--detector",
            "shapes",
        ],
        "0001.png: image too large",
    ),
    Case(
        "geneval-score-png-0x0",
        lambda t, o: [
            "geneval",
            "score",
            _geneval_with(t, o, "00000/samples/0001.png", png_zero_size),
            "--out",
            t / "r.jsonl",
            "--detector",
            "shapes",
        ],
        "0001.png",
    ),
    # ---- probe ----
    Case(
        "probe-npz-corrupt-magic",
        lambda t, o: ["probe", "--features", "encoder:shapes", "--data", _magic(t)],
        "magic.npz",
    ),
    Case(
        "probe-labels-float",
        lambda t, o: [
            "probe",
            "--features",
            "encoder:shapes",
            "--data",
            o["samples.npz"],
            "--labels",
            _float_npy(t),
        ],
        "flabels.npy",
    ),
    Case(
        "probe-test-fraction-nan",
        lambda t, o: [
            "probe",
            "--features",
            "encoder:shapes",
            "--data",
            o["samples.npz"],
            "--test-fraction",
            "nan",
        ],
        "--test-fraction",
    ),
    Case(
        "probe-labels-not-utf8",
        lambda t, o: [
            "probe",
            "--features",
            "encoder:shapes",
            "--data",
            o["samples.npz"],
            "--labels",
            _json_file(t, "l.txt", b"1\n\xff\n"),
        ],
        "l.txt: labels file is not UTF-8",
    ),
    # ---- tokenizers compare ----
    Case(
        "tokenizers-npz-corrupt-header",
        lambda t, o: ["tokenizers", "compare", "--vae", "demo:sit", "--data", _header(t)],
        "header.npz",
    ),
    Case(
        "tokenizers-labels-float",
        lambda t, o: [
            "tokenizers",
            "compare",
            "--vae",
            "demo:sit",
            "--data",
            o["samples.npz"],
            "--labels",
            _float_npy(t),
        ],
        "flabels.npy",
    ),
    # ---- clip-score ----
    Case(
        "clip-pairs-not-utf8",
        lambda t, o: ["clip-score", "--pairs", _json_file(t, "p.jsonl", b'{"x": "\xff"}')],
        "p.jsonl: pairs file is not UTF-8",
    ),
    Case(
        "clip-pairs-deep",
        lambda t, o: ["clip-score", "--pairs", _json_file(t, "p.jsonl", deep_json())],
        "p.jsonl:1: JSON nested too deeply",
    ),
    Case(
        "clip-pairs-wrong-type",
        lambda t, o: ["clip-score", "--pairs", _json_file(t, "p.jsonl", "[1]\n")],
        "p.jsonl:1",
    ),
    Case(
        "clip-geneval-metadata-deep",
        lambda t, o: ["clip-score", _geneval_with(t, o, "00000/metadata.jsonl", deep_json())],
        "metadata.jsonl",
    ),
]


def _float_npy(t: Path) -> Path:
    np.save(t / "flabels.npy", np.linspace(0, 1, 8))
    return t / "flabels.npy"


def _files(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*")}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input(case: Case, ok, tmp_path, capsys, monkeypatch):
    if case.needs_permissions and os.geteuid() == 0:
        pytest.skip("running as root, who may write into a read-only folder")
    if case.needs_no_cuda and torch.cuda.is_available():
        pytest.skip("CUDA is available here, so --device cuda is valid")
    monkeypatch.setenv("GENBENCH_CACHE", str(tmp_path / "cache"))  # no weights: nothing can be downloaded
    monkeypatch.setenv("GENBENCH_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    for name, make in (case.env or {}).items():
        monkeypatch.setenv(name, str(make(tmp_path)))
    argv = case.argv(tmp_path, ok)
    before, ok_before = _files(tmp_path), _files(ok["root"])
    code, out, err = run_main(capsys, monkeypatch, *argv)
    # stderr may also hold a progress bar's last line when the error fires mid-run (a corrupt deflate stream)
    lines = [line for line in err.splitlines() if "error" in line.lower()]
    assert code == case.code, err or out
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert case.fragment in lines[0], lines[0]
    assert "Traceback" not in err + out
    assert _files(tmp_path) == before, "something was written"
    assert _files(ok["root"]) == ok_before, "a valid input was modified"


# --------------------------------------------------------------------------------------------------
#                                        the error boundary
# --------------------------------------------------------------------------------------------------


def test_internal_error_is_one_line_with_saved_traceback(ok, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))

    def broken(*args, **kwargs):
        raise RuntimeError("kaboom\nsecond line")

    monkeypatch.setattr("genbench.cli.leaderboard.results_row", broken)
    code, _, err = run_main(
        capsys, monkeypatch, "leaderboard", "add", ok["results.json"], "--board", tmp_path / "b.csv"
    )
    assert code == 1 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "internal error: RuntimeError: kaboom second line" in err
    saved = next(tmp_path.glob("genbench-traceback-*.txt"))
    assert str(saved) in err and "Traceback" in saved.read_text() and "kaboom" in saved.read_text()

    code, _, err = run_main(
        capsys,
        monkeypatch,
        "leaderboard",
        "add",
        ok["results.json"],
        "--board",
        tmp_path / "b.csv",
        "--debug",
    )
    assert code == 1 and "Traceback (most recent call last)" in err and "broken" in err
    monkeypatch.setenv("GENBENCH_DEBUG", "1")
    code, _, err = run_main(
        capsys, monkeypatch, "leaderboard", "add", ok["results.json"], "--board", tmp_path / "b.csv"
    )
    assert code == 1 and "Traceback (most recent call last)" in err
    assert not (tmp_path / "b.csv").exists()


def test_worker_error_is_the_workers_one_line():
    from genbench.errors import one_line

    wrapped = (
        "Caught GenbenchError in DataLoader worker process 0.\nOriginal Traceback (most recent "
        'call last):\n  File "x.py", line 1, in f\n'
        "genbench.errors.GenbenchError: a.png: corrupt image data"
    )
    assert one_line(wrapped) == "a.png: corrupt image data"
    assert one_line("two\nlines") == "two lines"


# --------------------------------------------------------------------------------------------------
#                                  integrity of what genbench writes
# --------------------------------------------------------------------------------------------------


def test_atomic_writes_honour_the_umask_and_keep_an_existing_mode(tmp_path):
    from genbench.io import write_text_atomic

    old = os.umask(0o022)
    try:
        write_text_atomic(tmp_path / "new.json", "{}")
        assert (tmp_path / "new.json").stat().st_mode & 0o777 == 0o644  # was 0600 whatever the umask
        os.umask(0o077)
        write_text_atomic(tmp_path / "private.json", "{}")
        assert (tmp_path / "private.json").stat().st_mode & 0o777 == 0o600
        (tmp_path / "new.json").chmod(0o664)
        write_text_atomic(tmp_path / "new.json", "{} ")
        assert (tmp_path / "new.json").stat().st_mode & 0o777 == 0o664
        assert (tmp_path / "new.json").read_text() == "{} "
    finally:
        os.umask(old)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.json", "private.json"]  # no temp left


def test_a_symlinked_shared_board_is_written_through_and_keeps_its_mode(ok, tmp_path, capsys, monkeypatch):
    target = tmp_path / "shared" / "board.csv"
    target.parent.mkdir()
    target.write_bytes(ok["board.csv"].read_bytes())
    target.chmod(0o644)
    link = tmp_path / "mine.csv"
    link.symlink_to(target)
    code, _, err = run_main(
        capsys, monkeypatch, "leaderboard", "add", ok["results.json"], "--board", link, "--name", "new"
    )
    assert code == 0, err
    assert link.is_symlink() and link.resolve() == target
    assert target.stat().st_mode & 0o777 == 0o644
    assert target.read_text().splitlines()[-1].startswith("new,measured")


FORMULAS = ['=HYPERLINK("http://x","y")', "+1+2", "-cmd", "@SUM(A1)", "'=quoted", "\tTAB"]


@pytest.mark.parametrize("name", FORMULAS)
def test_csv_cells_cannot_run_as_spreadsheet_formulas_and_names_round_trip(
    name, ok, tmp_path, capsys, monkeypatch
):
    import csv

    board = tmp_path / "b.csv"
    code, _, err = run_main(
        capsys, monkeypatch, "leaderboard", "add", ok["results.json"], "--board", board, "--name", name
    )
    if name.startswith("\t"):  # a control character: refused, not escaped
        assert code == 2 and "control character" in err and not board.exists()
        return
    assert code == 0, err
    for text in (
        board.read_text(),
        run_main(capsys, monkeypatch, "leaderboard", "show", "--board", board, "--format", "csv")[1],
    ):
        cell = next(csv.DictReader(text.splitlines()))["name"]
        assert cell == "'" + name and cell[0] not in "=+-@"  # what a spreadsheet sees: text
    from genbench.leaderboard import read_board

    assert read_board(board)["name"].tolist() == [name]  # genbench reads the name back unchanged
    code, out, _ = run_main(
        capsys, monkeypatch, "check", ok["results.json"], "--baseline", board, "--row", name
    )
    assert code == 0, out


def test_numbers_in_text_columns_stay_numbers_and_markdown_folds_newlines(tmp_path, capsys, monkeypatch):
    board = write(tmp_path / "b.csv", 'name,kind,cfg,fid\n"two\nlines",measured,-1.5,3.0\n')
    from genbench.leaderboard import read_board, render

    table = read_board(board)
    assert table["cfg"].tolist() == ["-1.5"]
    assert "\n-1.5," in render(table, "csv") or ",-1.5," in render(table, "csv")
    markdown = render(table, "md").splitlines()
    assert (
        markdown[2].startswith("| two lines† |") and len(markdown) == 5
    )  # header, rule, 1 row, blank, legend


def test_cached_reference_sets_are_verified_on_every_use_cheaply(tmp_path, monkeypatch):
    """A replaced cached file is refused when `--ref NAME` uses it (not only by `ref fetch`); an unchanged
    one costs a stat, not a hash: the record keeps size, mtime and SHA-256 of every file --ref reads."""
    import genbench.reference_sets as sets
    from genbench.errors import GenbenchError

    monkeypatch.setenv("GENBENCH_CACHE", str(tmp_path / "cache"))
    source = tmp_path / "edm2.pkl"
    with open(source, "wb") as handle:
        pickle.dump({"fid": {"mu": np.zeros(4), "sigma": np.eye(4)}, "num_images": 10}, handle)
    registry = write(
        tmp_path / "registry.json",
        json.dumps({"reference_sets": {"tiny": {"url": source.as_uri(), "format": "edm2-pkl"}}}),
    )
    monkeypatch.setenv("GENBENCH_REFERENCE_REGISTRY", str(registry))
    converted = sets.reference_paths("tiny")  # fetched on first use
    assert [p.name for p in converted] == ["tiny.inception.npz"]

    hashed = []
    real = sets.sha256_file
    monkeypatch.setattr(sets, "sha256_file", lambda path: hashed.append(Path(path).name) or real(path))
    assert sets.reference_paths("tiny") == converted and hashed == []  # unchanged: no file is read
    os.utime(converted[0])  # touched, same bytes: hashed once, accepted, recorded again
    assert sets.reference_paths("tiny") == converted and hashed == ["tiny.inception.npz"]
    assert sets.reference_paths("tiny") == converted and hashed == ["tiny.inception.npz"]

    np.savez(converted[0], mu=np.ones(4), sigma=np.eye(4))  # replaced by other statistics
    with pytest.raises(GenbenchError, match="tiny.inception.npz: SHA-256 .* does not match the recorded"):
        sets.reference_paths("tiny")


def _tiny_train(*args) -> list[str]:
    return ["train", "--recipe", "sit", "--preset", "tiny-sit", "--device", "cpu", *map(str, args)]


def test_resumed_training_logs_each_step_once_and_refuses_other_data(tmp_path, capsys, monkeypatch):
    data = tmp_path / "data.npz"
    np.savez(data, arr_0=random_images(16, 32, seed=5), arr_1=np.arange(16) % 4)
    config = write(
        tmp_path / "c.json",
        json.dumps(
            {
                "recipe": "sit",
                "sit": {"name": "SiT-T/2"},
                "vae": {"preset": "tiny-f4d4"},
                "encoder": None,
                "resolution": 32,
                "num_classes": None,
                "batch_size": 4,
                "lpips": False,
                "log_every": 1,
                "checkpoint_every": 2,
                "latent_norm": "none",
                "ema_decay": 0.5,
            }
        ),
    )
    run = tmp_path / "run"
    common = ["train", "--recipe", "sit", "--data", data, "--out", run, "--device", "cpu"]
    code, _, err = run_main(capsys, monkeypatch, *common, "--config", config, "--steps", "2")
    assert code == 0, err
    # a run killed after logging steps 3 and 4 (and half of a line) but before its step-4 checkpoint
    with open(run / "log.jsonl", "a") as log:
        log.write('{"step": 3, "loss": 1.0}\n{"step": 4, "loss": 1.0}\n{"step": 5, "lo')
    code, _, err = run_main(capsys, monkeypatch, *common, "--resume", "--steps", "4")
    assert code == 0, err
    steps = [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]

    other = tmp_path / "other.npz"
    np.savez(other, arr_0=random_images(16, 32, seed=6), arr_1=np.arange(16) % 4)
    code, _, err = run_main(
        capsys,
        monkeypatch,
        "train",
        "--recipe",
        "sit",
        "--data",
        other,
        "--out",
        run,
        "--device",
        "cpu",
        "--resume",
        "--steps",
        "6",
    )
    assert code == 2 and f"--data {other}: is not the data" in err and "0000004.pt" in err
    assert len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["0000002.pt", "0000004.pt"]

    state = torch.load(run / "checkpoints" / "0000004.pt", weights_only=True)
    for damage, message in (
        (lambda st: st.pop("ema"), "0000006.pt: holds a NoneType where a state dict"),
        (lambda st: st.pop("rng"), "0000006.pt: incomplete or damaged training checkpoint"),
    ):
        damaged = dict(state)
        damage(damaged)
        torch.save(damaged, run / "checkpoints" / "0000006.pt")
        code, _, err = run_main(capsys, monkeypatch, *common, "--resume", "--steps", "8")
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def _build_and_die_while_writing(argv: list[str]) -> None:
    """In a forked child: `genbench ref build`, SIGKILLed after its output .npz is half written."""
    real_savez = np.savez

    def savez_then_killed(file, **arrays):
        real_savez(file, **arrays)
        with open(file, "r+b") as handle:  # the kill lands mid-write: only the first bytes are on disk
            handle.truncate(200)
        os.kill(os.getpid(), signal.SIGKILL)

    np.savez = savez_then_killed
    sys.argv = ["genbench", *map(str, argv)]
    from genbench.cli import main

    main()


def test_ref_build_killed_while_writing_leaves_no_file_and_a_rerun_completes(tmp_path, capsys, monkeypatch):
    """`ref build` writes atomically: SIGKILLed in the middle of writing its .npz (the moment a plain write
    would leave a truncated file), it leaves no output at all, and the same command run again gives the
    uninterrupted result."""
    import multiprocessing

    from genbench.reference import ReferenceStats

    data = tmp_path / "data.npz"
    np.savez(data, arr_0=random_images(64, 32, seed=7))
    build = ["ref", "build", data, "--extractor", "shapes", "--device", "cpu", "--out"]
    assert run_main(capsys, monkeypatch, *build, tmp_path / "straight.npz")[0] == 0
    # spawn, not fork: a child forked after this process has run torch's thread pool can hang in it
    child = multiprocessing.get_context("spawn").Process(
        target=_build_and_die_while_writing, args=([*build, tmp_path / "ref.npz"],)
    )
    child.start()
    child.join(timeout=120)
    assert child.exitcode == -signal.SIGKILL
    assert not (tmp_path / "ref.npz").exists()  # only the half-written temporary file beside it
    assert run_main(capsys, monkeypatch, *build, tmp_path / "ref.npz")[0] == 0
    expected, rerun = (
        ReferenceStats.load(tmp_path / "straight.npz"),
        ReferenceStats.load(tmp_path / "ref.npz"),
    )
    for name, (mu, sigma) in expected.gaussians.items():
        np.testing.assert_array_equal(rerun.gaussians[name][0], mu)
        np.testing.assert_array_equal(rerun.gaussians[name][1], sigma)
    np.testing.assert_array_equal(rerun.rows["pool"], expected.rows["pool"])


def test_a_corrupt_download_is_blamed_on_its_url_not_a_deleted_temporary_file(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GENBENCH_CACHE", str(tmp_path / "cache"))
    source = write(tmp_path / "edm2.pkl", b"\x80\x04not really a pickle")
    registry = write(
        tmp_path / "registry.json",
        json.dumps({"reference_sets": {"broken": {"url": source.as_uri(), "format": "edm2-pkl"}}}),
    )
    monkeypatch.setenv("GENBENCH_REFERENCE_REGISTRY", str(registry))
    code, _, err = run_main(capsys, monkeypatch, "ref", "fetch", "broken")
    errors = [line for line in err.splitlines() if "error" in line]  # beside the fetcher's progress lines
    assert code == 2 and len(errors) == 1 and "Traceback" not in err
    assert f"{source.as_uri()} (downloaded for 'broken'): not an EDM2 reference pickle" in err
    assert ".part" not in err and not list((tmp_path / "cache" / "reference").glob("broken*"))


def test_a_corrupt_shard_on_resume_is_blamed_on_the_shard(tmp_path, capsys, monkeypatch):
    out = tmp_path / "s.npz"
    sample = [
        "sample",
        "--model",
        "demo",
        "--num",
        "2",
        "--steps",
        "1",
        "--shard-size",
        "1",
        "--device",
        "cpu",
        "--no-grid",
        "--out",
        out,
    ]
    code, _, err = run_main(capsys, monkeypatch, *sample)
    assert code == 0, err
    shard = tmp_path / "s.shards" / "shard-00001.npz"
    shard.write_bytes(shard.read_bytes()[:100])  # a shard file cut short (written by hand, or a disk fault)
    out.unlink()
    code, _, err = run_main(capsys, monkeypatch, *sample)
    errors = [line for line in err.splitlines() if "error" in line]  # beside the progress bar's last line
    assert code == 2 and len(errors) == 1 and "Traceback" not in err
    assert "shard-00001.npz: not a readable sample shard .npz" in err and "delete it and re-run" in err
    assert not out.exists()
