"""Inception-v3 in the form the ADM evaluator's TensorFlow graph computes it.

torch-fidelity's `inception-v3-compat` network reproduces the graph: TF1 legacy bilinear resize to 299
(no antialias, no half-pixel centres), (x - 128) / 128, then Inception-v3 with the 2015-12-05 weights.
One forward pass yields the three feature sets the ADM metrics read:

- `pool`    [N, 2048]  pool_3 (FID, precision/recall, KID);
- `logits`  [N, 1008]  pool_3 @ softmax weights, no bias (IS);
- `spatial` [N, 2023]  TF `mixed_6/conv` = torchvision `Mixed_6d.branch1x1` after conv-BN-ReLU, first 7 of
                       its 192 channels at 17 x 17, flattened in (H, W, C) order as ADM's NHWC tensors (sFID).

Speed (CPU, measured by scripts/bench_features.py against torch-fidelity's own forward on the same weights):
the network runs in channels-last memory layout (oneDNN's NHWC convolutions skip the reorders to and from
its blocked layout that every NCHW convolution pays), and the resize gathers uint8 rows and columns once
instead of four times in float32. The resize is bit-exact with torch-fidelity's; channels-last changes only
the order of float32 sums inside the convolutions (features within ~1e-6 relative).
`precision="bf16"` (autocast) is a GPU fast mode whose FID deviation scripts/bench_gpu.py reports.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

from genbench.errors import GenbenchError
from genbench.io import sha256_file
from genbench.weights import resolve_weights

INCEPTION_WEIGHTS = "inception-2015-12-05"  # registered file: torch-fidelity's TF 2015-12-05 weights
SPATIAL_CHANNELS = 7


INPUT_SIZE = 299
TRUNK = ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "MaxPool_1", "Conv2d_3b_1x1", "Conv2d_4a_3x3",
         "MaxPool_2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d",
         "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c", "AvgPool")  # torch-fidelity's forward, in order
PRECISIONS = ("fp32", "bf16")


class InceptionFeatures(nn.Module):
    """uint8 [N, 3, H, W] -> {"pool", "logits", "spatial"} float32, see the module docstring.

    `channels_last` (default) runs the convolutions in NHWC layout; `precision="bf16"` autocasts them."""

    name = "inception"
    resize_mode = "tf1-bilinear"
    feature_dims = {"pool": 2048, "logits": 1008, "spatial": 17 * 17 * SPATIAL_CHANNELS}

    def __init__(self, weights_path: str | Path, weights_sha256: str, channels_last: bool = True,
                 precision: str = "fp32"):
        super().__init__()
        if precision not in PRECISIONS:
            raise GenbenchError(f"Inception precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
        # torch-fidelity unpickles the file with weights_only=False; only hand it a file that the safe
        # loader has already accepted (see `from_weights`).
        self.net = FeatureExtractorInceptionV3(
            "inception-v3-compat",
            ["2048", "logits_unbiased"],
            feature_extractor_weights_path=str(weights_path),
        )
        self.channels_last, self.precision = channels_last, precision
        if channels_last:
            self.net.to(memory_format=torch.channels_last)
        self.weights_sha256 = weights_sha256
        self._spatial: torch.Tensor | None = None
        self.net.Mixed_6d.branch1x1.register_forward_hook(self._keep_spatial)

    @classmethod
    def from_weights(cls, weights: str | Path | None = None, channels_last: bool = True,
                     precision: str = "fp32") -> InceptionFeatures:
        """Load from `weights` (any file in torch-fidelity's state-dict format) or the verified cache file."""
        path = resolve_weights(INCEPTION_WEIGHTS, weights)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:
            raise GenbenchError(f"{path}: not a readable PyTorch state dict ({error})") from error
        layout = inception_layout()
        wrong = sorted(set(layout) ^ set(state)) if isinstance(state, dict) else ["(not a dict)"]
        if not wrong:
            wrong = [k for k, shape in layout.items() if state[k].shape != shape]
        if wrong:
            raise GenbenchError(
                f"{path}: not Inception-v3 weights in torch-fidelity's format ({len(wrong)} missing, "
                f"unexpected or misshapen keys, e.g. {wrong[0]}); delete it to fetch the registered file "
                f"{INCEPTION_WEIGHTS} again, or pass torch-fidelity's weights with --weights"
            )
        return cls(path, sha256_file(path), channels_last, precision)

    def _keep_spatial(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        self._spatial = output

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise GenbenchError(
                f"Inception expects uint8 images [N, 3, H, W], got {images.dtype} {tuple(images.shape)}"
            )
        x = (tf1_bilinear_resize(images, INPUT_SIZE) - 128) / 128  # as torch-fidelity: bit-exact
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            for block in TRUNK:
                x = getattr(self.net, block)(x)
            pool = x.flatten(1)
            logits = pool.mm(self.net.fc.weight.T)  # bias-free logits, as torch-fidelity's logits_unbiased
        spatial = self._spatial[:, :SPATIAL_CHANNELS].permute(0, 2, 3, 1).flatten(1).float()
        self._spatial = None
        return {"pool": pool.float(), "logits": logits.float(), "spatial": spatial}


def tf1_bilinear_resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 [N, C, H, W] -> float32 [N, C, size, size], TensorFlow 1's bilinear resize (no antialias, no
    half-pixel centres, align_corners=False) with the exact arithmetic of torch-fidelity's
    `interpolate_bilinear_2d_like_tensorflow1x` ("slow", bit-exact on CPU). The four corner gathers are made
    from two row gathers, on uint8 (exact) before the conversion to float: the values and the float
    operations are the same as upstream's, the memory traffic a fraction of it."""
    y_lo, y_hi, dy = _tf1_grid(images.shape[2], size, images.device)
    x_lo, x_hi, dx = _tf1_grid(images.shape[3], size, images.device)
    rows_lo, rows_hi = images.index_select(2, y_lo), images.index_select(2, y_hi)
    top = rows_lo.index_select(3, x_lo).float()
    top = top + (rows_lo.index_select(3, x_hi).float() - top) * dx.view(1, 1, 1, size)
    bottom = rows_hi.index_select(3, x_lo).float()
    bottom = bottom + (rows_hi.index_select(3, x_hi).float() - bottom) * dx.view(1, 1, 1, size)
    return top + (bottom - top) * dy.view(1, 1, size, 1)


def _tf1_grid(in_size: int, out_size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor,
                                                                         torch.Tensor]:
    """(low index, high index, float32 fraction) of each output pixel along one axis, as torch-fidelity."""
    grid = torch.arange(0, out_size, 1, dtype=torch.float32, device=device)
    grid = grid * torch.tensor(in_size / out_size, dtype=torch.float32)
    low = grid.long()
    return low, (low + 1).clamp_max(in_size - 1), grid - low.float()


def inception_layout() -> dict[str, torch.Size]:
    """Key -> shape of torch-fidelity's Inception state dict. torchvision's Inception-v3 (no aux head, 1008
    classes) has the same parameter names and shapes; only its pooling code differs."""
    from torchvision.models import inception_v3

    with torch.device("meta"):
        model = inception_v3(weights=None, aux_logits=False, init_weights=False, num_classes=1008)
    return {key: value.shape for key, value in model.state_dict().items()}


def random_inception_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """A randomly initialised state dict in torch-fidelity's layout, for tests and benchmarks.

    Convolutions get He-normal weights and BN unit statistics, so activations neither vanish nor explode
    through the network (PyTorch's default init collapses them: IS = 1, FID ~ 0)."""
    generator = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    for key, shape in inception_layout().items():
        if key.endswith("conv.weight"):
            fan_in = shape[1] * shape[2] * shape[3]
            state[key] = torch.randn(shape, generator=generator) * (2.0 / fan_in) ** 0.5
        elif key == "fc.weight":
            state[key] = torch.randn(shape, generator=generator)  # large logits: IS clearly above 1
        elif key.endswith(("running_var", "bn.weight")):
            state[key] = torch.ones(shape)
        elif key.endswith("num_batches_tracked"):
            state[key] = torch.zeros(shape, dtype=torch.long)
        else:
            state[key] = torch.zeros(shape)
    return state
