"""The PNG grid that eval and sample write next to their output."""

import numpy as np
from PIL import Image

from genbench.grid import grid_path, image_grid, write_grid
from genbench.sources import open_source


def test_grid_tiles_images_row_major_with_padding():
    images = np.random.default_rng(0).integers(0, 256, (10, 3, 5, 7), dtype=np.uint8)
    grid = image_grid(images)
    assert grid.shape == (2 + 3 * 7, 2 + 4 * 9, 3)  # 10 images: 4 columns, 3 rows, 2 px padding
    for i, image in enumerate(images):
        top, left = 2 + (i // 4) * 7, 2 + (i % 4) * 9
        np.testing.assert_array_equal(grid[top : top + 5, left : left + 7], image.transpose(1, 2, 0))
    assert (grid[2 + 2 * 7 : 2 + 2 * 7 + 5, 2 + 2 * 9 :] == 255).all()  # empty cells stay white


def test_write_grid_takes_the_first_64(tmp_path):
    images = np.random.default_rng(1).integers(0, 256, (70, 8, 8, 3), dtype=np.uint8)
    np.savez(tmp_path / "s.npz", arr_0=images)
    path = write_grid(open_source(tmp_path / "s.npz"), grid_path(tmp_path / "s.npz"))
    assert path == tmp_path / "s.grid.png"
    grid = np.asarray(Image.open(path))
    assert grid.shape == (2 + 8 * 10, 2 + 8 * 10, 3)
    np.testing.assert_array_equal(grid[2 + 7 * 10 : 2 + 7 * 10 + 8, 2 + 7 * 10 : 2 + 7 * 10 + 8], images[63])
