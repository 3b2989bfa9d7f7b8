"""Hostile and malformed input to every command: each case must end with exit code 2 (bad input) or 1 (a
failed check / an internal error), one line on stderr naming the right file, no traceback, and nothing
written. The CLI runs in this process and every error fires before a model is built, so the table is fast.

A case is (id, argv builder, expected exit code, fragment the one line must contain). Builders make their
hostile files in the test's own folder `tmp`; `ok` holds valid tiny files shared by all cases.
"""

from __future__ import annotations

import json
import os
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
    np.savez(root / "ref.npz", mu=np.zeros(4), sigma=np.eye(4), meta=np.array(json.dumps(
        {"extractor": "shapes", "weights_sha256": None, "resize_mode": "none", "count": 8})))
    write_png_folder(root / "folder" / "a", images[:2])
    write_png_folder(root / "folder" / "b", images[2:4])
    results = {"schema": 2, "metrics": {"fid": 10.0, "is": 2.0}, "provenance": {"model": "m"}}
    (root / "results.json").write_text(json.dumps(results))
    (root / "board.csv").write_text("name,kind,fid,is,source\nbase,measured,10.0,2.0,x\n")
    (root / "pairs.jsonl").write_text(json.dumps({"image": "folder/a/000000.png", "prompt": "a cat"}) + "\n")
    geneval = root / "geneval" / "00000"
    write_png_folder(geneval / "samples", images[:1])
    os.rename(geneval / "samples" / "000000.png", geneval / "samples" / "0000.png")
    (geneval / "metadata.jsonl").write_text(json.dumps(
        {"tag": "single_object", "include": [{"class": "circle", "count": 1}],
         "prompt": "a photo of a circle"}))
    return {name: root / name for name in ("samples.npz", "ref.npz", "folder", "results.json", "board.csv",
                                           "pairs.jsonl", "geneval")} | {"root": root}


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
    data[at: at + 6] = b"XXXXXX"
    return write(path, bytes(data))


def npz_corrupt_header(path: Path) -> Path:
    np.savez(path, arr_0=random_images(2, 32, seed=1))
    data = bytearray(path.read_bytes())
    at = data.index(b"{'descr'")
    data[at: at + 8] = b"{'d!scr'"
    return write(path, bytes(data))


def npz_corrupt_compressed(path: Path) -> Path:
    """np.savez_compressed whose deflate stream is garbage after the header."""
    np.savez_compressed(path, arr_0=random_images(16, 32, seed=1), arr_1=np.zeros(16, dtype=np.int64))
    data = bytearray(path.read_bytes())
    middle = len(data) // 3
    data[middle: middle + 200] = bytes(200)
    return write(path, bytes(data))


def png_zero_size(path: Path) -> Path:
    """A PNG whose header says 0x0 pixels (CRC fixed, so only the size is wrong)."""
    Image.fromarray(random_images(1, 8, seed=0)[0]).save(path)
    data = bytearray(path.read_bytes())
    ihdr = data.index(b"IHDR")
    data[ihdr + 4: ihdr + 12] = bytes(8)
    data[ihdr + 17: ihdr + 21] = zlib.crc32(bytes(data[ihdr: ihdr + 17])).to_bytes(4, "big")
    return write(path, bytes(data))


def png_bomb(path: Path, side: int = 20000) -> Path:
    """A 20000x20000 PNG of a few hundred kB (all zeros compress well): a decompression bomb."""
    import struct

    raw = zlib.compressobj(9)
    row = bytes(1 + side * 3)
    chunks = [raw.compress(row) for _ in range(side)] + [raw.flush()]
    body = b"".join(chunks)

    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + payload))
        return struct.pack(">I", len(payload)) + kind + payload + crc

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
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


def _unwritable(tmp: Path) -> Path:
    locked = tmp / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    return locked / "out.json"


CASES = [
    # ---- output paths, checked before any work ----
    Case("leaderboard-add-board-is-dir", lambda t, o: ["leaderboard", "add", o["results.json"], "--board", t],
         "is a folder"),
    Case("leaderboard-publish-out-unwritable",
         lambda t, o: ["leaderboard", "publish", "--board", o["board.csv"], "--out", _unwritable(t)],
         "locked", needs_permissions=True),
    Case("eval-out-is-dir", lambda t, o: ["eval", "--samples", o["samples.npz"], "--ref", o["ref.npz"],
                                          "--extractor", "shapes", "--metrics", "fid", "--out", t],
         "is a folder"),
    Case("ref-build-out-parent-is-file",
         lambda t, o: ["ref", "build", o["samples.npz"], "--out", o["results.json"] / "ref.npz",
                       "--extractor", "shapes"], "is a file, not a folder"),
    Case("sample-out-is-dir", lambda t, o: ["sample", "--model", "demo", "--out", t, "--num", "2"],
         "is a folder"),
    Case("train-out-is-file", lambda t, o: ["train", "--recipe", "sit", "--preset", "tiny-sit", "--data",
                                            o["samples.npz"], "--out", o["results.json"]], "is a file"),
    Case("geneval-prompts-out-is-file", lambda t, o: ["geneval", "prompts", "--out", o["results.json"]],
         "results.json: is a file"),
    Case("clip-score-out-is-dir", lambda t, o: ["clip-score", "--pairs", o["pairs.jsonl"], "--out", t],
         "is a folder"),
    Case("probe-out-is-dir", lambda t, o: ["probe", "--features", "encoder:shapes", "--data",
                                           o["samples.npz"], "--out", t], "is a folder"),
    Case("tokenizers-board-is-dir", lambda t, o: ["tokenizers", "compare", "--vae", "demo:sit", "--data",
                                                  o["samples.npz"], "--board", t], "is a folder"),
]


def _files(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*")}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input(case: Case, ok, tmp_path, capsys, monkeypatch):
    if case.needs_permissions and os.geteuid() == 0:
        pytest.skip("running as root, who may write into a read-only folder")
    monkeypatch.setenv("GENBENCH_CACHE", str(tmp_path / "cache"))  # no weights: nothing can be downloaded
    monkeypatch.chdir(tmp_path)
    argv = case.argv(tmp_path, ok)
    before, ok_before = _files(tmp_path), _files(ok["root"])
    code, out, err = run_main(capsys, monkeypatch, *argv)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == case.code, err or out
    assert len(lines) == 1, err
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
    code, _, err = run_main(capsys, monkeypatch, "leaderboard", "add", ok["results.json"], "--board",
                            tmp_path / "b.csv")
    assert code == 1 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "internal error: RuntimeError: kaboom second line" in err
    saved = next(tmp_path.glob("genbench-traceback-*.txt"))
    assert str(saved) in err and "Traceback" in saved.read_text() and "kaboom" in saved.read_text()

    code, _, err = run_main(capsys, monkeypatch, "leaderboard", "add", ok["results.json"], "--board",
                            tmp_path / "b.csv", "--debug")
    assert code == 1 and "Traceback (most recent call last)" in err and "broken" in err
    monkeypatch.setenv("GENBENCH_DEBUG", "1")
    code, _, err = run_main(capsys, monkeypatch, "leaderboard", "add", ok["results.json"], "--board",
                            tmp_path / "b.csv")
    assert code == 1 and "Traceback (most recent call last)" in err
    assert not (tmp_path / "b.csv").exists()


def test_worker_error_is_the_workers_one_line():
    from genbench.errors import one_line

    wrapped = ("Caught GenbenchError in DataLoader worker process 0.\nOriginal Traceback (most recent "
               "call last):\n  File \"x.py\", line 1, in f\n"
               "genbench.errors.GenbenchError: a.png: corrupt image data")
    assert one_line(wrapped) == "a.png: corrupt image data"
    assert one_line("two\nlines") == "two lines"


def test_unused(tmp_path):
    assert sys and torch and npz_corrupt_magic and npz_corrupt_header and npz_corrupt_compressed \
        and png_zero_size and png_bomb and deep_json


# --------------------------------------------------------------------------------------------------
#                                      check fails closed
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_check_fails_on_a_metric_that_is_not_a_number(value, ok, tmp_path, capsys, monkeypatch):
    results = write(tmp_path / "nan.json", '{"schema": 2, "metrics": {"fid": %s, "is": 2.0}}' % value)
    code, out, err = run_main(capsys, monkeypatch, "check", results, "--baseline", ok["board.csv"], "--row",
                              "base")
    assert code == 1 and "not a number" in out and "regression: fid" in out and "within" not in out
    code, out, _ = run_main(capsys, monkeypatch, "check", results, "--baseline", ok["board.csv"], "--row",
                            "base", "--allow-missing", "fid")
    assert code == 0 and "not a number (allowed)" in out


def test_check_fails_on_a_missing_metric_unless_allowed(ok, tmp_path, capsys, monkeypatch):
    results = write(tmp_path / "no_is.json", '{"schema": 2, "metrics": {"fid": 10.0}}')
    code, out, _ = run_main(capsys, monkeypatch, "check", results, "--baseline", ok["board.csv"], "--row",
                            "base")
    assert code == 1 and "missing" in out
    code, out, _ = run_main(capsys, monkeypatch, "check", results, "--baseline", ok["board.csv"], "--row",
                            "base", "--allow-missing", "is")
    assert code == 0 and "missing (allowed)" in out
