"""Sample sources return exactly the stored images, whatever the batching, index order or workers."""

import numpy as np
import pytest
import torch
from conftest import random_images, write_png_folder

from genbench.sources import TensorSource, open_source


@pytest.mark.parametrize("writer", [np.savez, np.savez_compressed], ids=["stored", "compressed"])
def test_npz_batches_equal_the_array(tmp_path, writer):
    images = random_images(13, 32, seed=0)
    writer(tmp_path / "s.npz", arr_0=images)
    source = open_source(tmp_path / "s.npz")
    assert len(source) == 13 and source.image_size == (32, 32)
    for workers in (0, 2):
        batches = list(source.batches(5, num_workers=workers))
        assert [b[1].tolist() for b in batches] == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9], [10, 11, 12]]
        np.testing.assert_array_equal(torch.cat([b[0] for b in batches]).permute(0, 2, 3, 1).numpy(), images)
    subset = [2, 3, 4, 9, 11]  # a rank's slice need not start at 0 or be one run
    (batch, index), = source.batches(8, indices=subset)
    np.testing.assert_array_equal(batch.permute(0, 2, 3, 1).numpy(), images[subset])


def test_folder_order_is_sorted_and_tensor_source_matches(tmp_path):
    images = random_images(4, 32, seed=1)
    write_png_folder(tmp_path / "f", images)
    (tmp_path / "f" / "000002.png").rename(tmp_path / "f" / "a_last.png")  # sorted by name, not by creation
    folder = open_source(tmp_path / "f")
    got = np.concatenate([b.permute(0, 2, 3, 1).numpy() for b, _ in folder.batches(3)])
    np.testing.assert_array_equal(got, images[[0, 1, 3, 2]])
    tensor = TensorSource(torch.from_numpy(images).permute(0, 3, 1, 2))
    np.testing.assert_array_equal(tensor.read([1, 0]), images[[1, 0]].transpose(0, 3, 1, 2))
