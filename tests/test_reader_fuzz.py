"""Property-based fuzz of genbench's readers (genbench.sources): whatever bytes a file holds, a reader
returns a value of the promised shape or raises GenbenchError, never another exception. Examples are
bounded (50 each) so the whole file runs in seconds."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from genbench.errors import GenbenchError
from genbench.sources import (
    NpzSource,
    _spreadsheet_text,
    decode_rgb,
    parse_json,
    read_csv,
    read_json,
    read_npz,
    spreadsheet_safe,
)

FUZZ = settings(max_examples=50, deadline=None)


def _valid_npz(compressed: bool) -> bytes:
    buffer = io.BytesIO()
    images = np.random.default_rng(0).integers(0, 256, (6, 8, 8, 3), dtype=np.uint8)
    (np.savez_compressed if compressed else np.savez)(buffer, arr_0=images, arr_1=np.arange(6))
    return buffer.getvalue()


NPZ = {False: _valid_npz(False), True: _valid_npz(True)}


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


PNG = _png()


def mutated(original: bytes) -> st.SearchStrategy[bytes]:
    """`original` truncated anywhere and/or with up to 8 bytes overwritten at any offsets."""
    edits = st.lists(st.tuples(st.integers(0, len(original) - 1), st.integers(0, 255)), max_size=8)

    @st.composite
    def build(draw) -> bytes:
        data = bytearray(original)
        for at, value in draw(edits):
            data[at] = value
        return bytes(data[: draw(st.integers(0, len(data)))])

    return build()


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def _write(folder: Path, data: bytes, suffix: str) -> Path:
    path = folder / f"fuzzed{suffix}"
    path.write_bytes(data)
    return path


@FUZZ
@given(compressed=st.booleans(), data=st.data())
def test_npz_readers_return_arrays_or_one_genbench_error(folder, compressed, data):
    path = _write(folder, data.draw(mutated(NPZ[compressed])), ".npz")
    try:
        arrays = read_npz(path, "fuzzed", ["arr_0"], optional=["arr_1"])
        assert isinstance(arrays["arr_0"], np.ndarray)
    except GenbenchError as error:
        assert str(path) in str(error)
    try:
        source = NpzSource(path)
        for images, _ in source.batches(4):
            assert images.dtype.is_floating_point is False and images.shape[1] == 3
    except GenbenchError as error:
        assert str(path) in str(error)


@FUZZ
@given(data=mutated(PNG))
def test_image_reader_returns_rgb_or_one_genbench_error(folder, data):
    path = _write(folder, data, ".png")
    try:
        image = decode_rgb(path)
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    except GenbenchError as error:
        assert str(path) in str(error)


JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4),
                                                                                        inner, max_size=4),
                           max_leaves=30)


@FUZZ
@given(value=JSON_VALUES, depth=st.integers(0, 3000))
def test_json_reader_returns_an_object_or_one_genbench_error(folder, value, depth):
    text = "[" * depth + json.dumps(value) + "]" * depth
    path = _write(folder, text.encode(), ".json")
    try:
        document = read_json(path, "fuzzed", dict)
        assert isinstance(document, dict) and depth == 0
    except GenbenchError as error:
        assert str(path) in str(error) and "\n" not in str(error)


@FUZZ
@given(data=st.binary(max_size=512))
def test_json_reader_on_arbitrary_bytes(folder, data):
    path = _write(folder, data, ".json")
    try:
        assert isinstance(read_json(path, "fuzzed", (dict, list)), (dict, list))
    except GenbenchError as error:
        assert str(path) in str(error)


@FUZZ
@given(data=st.one_of(st.binary(max_size=512), st.text(max_size=300).map(str.encode)))
def test_csv_reader_returns_a_table_or_one_genbench_error(folder, data):
    from genbench.leaderboard import read_board

    path = _write(folder, data, ".csv")
    try:
        board = read_board(path)
        assert {"name", "kind"} <= set(board.columns)
    except GenbenchError as error:
        assert str(path) in str(error)
    try:
        read_csv(path, "fuzzed", ["name"])
    except GenbenchError as error:
        assert str(path) in str(error)


@FUZZ
@given(text=st.text(max_size=20))
def test_spreadsheet_safe_cells_never_start_a_formula_and_round_trip(text):
    safe = spreadsheet_safe(text)
    assert _spreadsheet_text(safe) == text
    try:
        float(safe)
    except ValueError:
        assert not safe[:1] or safe[0] not in "=+-@\t\r"


def test_parse_json_refuses_what_python_cannot_convert():
    with pytest.raises(GenbenchError, match="x.json: not valid JSON"):
        parse_json('{"fid": ' + "9" * 5000 + "}", "x.json")
