"""PSNR and SSIM against scikit-image on identical uint8 images (tolerance 1e-4)."""

import numpy as np
import pytest
import torch
from genbench.metrics.image_quality import psnr, psnr_per_image, ssim, ssim_per_image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity


def _image_pairs() -> tuple[np.ndarray, np.ndarray]:
    """uint8 [6, 3, 24, 20]: random noise pairs and structured images (gradients, blocks) with noise."""
    rng = np.random.default_rng(0)
    random_a = rng.integers(0, 256, (3, 3, 24, 20), dtype=np.uint8)
    random_b = rng.integers(0, 256, (3, 3, 24, 20), dtype=np.uint8)
    yy, xx = np.mgrid[0:24, 0:20]
    gradient = np.stack([xx * 12, yy * 10, (xx + yy) * 6]).clip(0, 255)
    blocks = np.stack([((xx // 5 + yy // 6) % 2) * 200 + 20] * 3)
    structured_a = np.stack([gradient, blocks, 255 - gradient]).astype(np.float64)
    structured_b = (structured_a + rng.normal(0, 12, structured_a.shape)).round().clip(0, 255)
    a = np.concatenate([random_a, structured_a.astype(np.uint8)])
    b = np.concatenate([random_b, structured_b.astype(np.uint8)])
    return a, b


def _skimage_ssim(a: np.ndarray, b: np.ndarray) -> float:
    return structural_similarity(
        a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255, channel_axis=0
    )


def test_psnr_matches_skimage():
    a, b = _image_pairs()
    expected = [peak_signal_noise_ratio(x, y, data_range=255) for x, y in zip(a, b, strict=True)]
    np.testing.assert_allclose(psnr_per_image(a, b).numpy(), expected, rtol=0, atol=1e-4)
    assert psnr(torch.from_numpy(a), torch.from_numpy(b)) == pytest.approx(np.mean(expected), abs=1e-4)


def test_ssim_matches_skimage():
    a, b = _image_pairs()
    expected = [_skimage_ssim(x, y) for x, y in zip(a, b, strict=True)]
    assert max(expected) - min(expected) > 0.3  # random and structured pairs give very different scores
    np.testing.assert_allclose(ssim_per_image(a, b, batch_size=4).numpy(), expected, rtol=0, atol=1e-4)
    assert ssim(a, b) == pytest.approx(np.mean(expected), abs=1e-4)


def test_ssim_of_identical_images_is_one_and_psnr_infinite():
    a, _ = _image_pairs()
    assert ssim(a, a) == pytest.approx(1.0, abs=1e-12)
    assert np.isinf(psnr(a, a))


def test_bad_inputs_are_rejected():
    a, b = _image_pairs()
    with pytest.raises(ValueError, match="uint8"):
        psnr(a.astype(np.float32), b)
    with pytest.raises(ValueError, match="differ in shape"):
        ssim(a, b[:, :, :20])
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(a[:, :, :8, :8], b[:, :, :8, :8])
