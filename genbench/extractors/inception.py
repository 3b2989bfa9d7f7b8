"""Inception-v3 in the form the ADM evaluator's TensorFlow graph computes it.

torch-fidelity's `inception-v3-compat` network reproduces the graph: TF1 legacy bilinear resize to 299
(no antialias, no half-pixel centres), (x - 128) / 128, then Inception-v3 with the 2015-12-05 weights.
One forward pass yields the three feature sets the ADM metrics read:

- `pool`    [N, 2048]  pool_3 (FID, precision/recall, KID);
- `logits`  [N, 1008]  pool_3 @ softmax weights, no bias (IS);
- `spatial` [N, 2023]  TF `mixed_6/conv` = torchvision `Mixed_6d.branch1x1` after conv-BN-ReLU, first 7 of
                       its 192 channels at 17 x 17, flattened in (H, W, C) order as ADM's NHWC tensors (sFID).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

from genbench.errors import GenbenchError
from genbench.io import sha256_file
from genbench.weights import WeightsSpec, resolve_weights

INCEPTION_WEIGHTS = WeightsSpec(
    name="Inception-v3 (TF 2015-12-05, torch-fidelity format)",
    filename="weights-inception-2015-12-05-6726825d.pth",
    url="https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth",
    sha256="6726825d",  # torch hub convention: the filename carries the SHA-256 prefix
)
SPATIAL_CHANNELS = 7


class InceptionFeatures(nn.Module):
    """uint8 [N, 3, H, W] -> {"pool", "logits", "spatial"} float32, see the module docstring."""

    name = "inception"
    resize_mode = "tf1-bilinear"
    feature_dims = {"pool": 2048, "logits": 1008, "spatial": 17 * 17 * SPATIAL_CHANNELS}

    def __init__(self, weights_path: str | Path, weights_sha256: str):
        super().__init__()
        # torch-fidelity unpickles the file with weights_only=False; only hand it a file that the safe
        # loader has already accepted (see `from_weights`).
        self.net = FeatureExtractorInceptionV3(
            "inception-v3-compat",
            ["2048", "logits_unbiased"],
            feature_extractor_weights_path=str(weights_path),
        )
        self.weights_sha256 = weights_sha256
        self._spatial: torch.Tensor | None = None
        self.net.Mixed_6d.branch1x1.register_forward_hook(self._keep_spatial)

    @classmethod
    def from_weights(cls, weights: str | Path | None = None) -> InceptionFeatures:
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
                f"unexpected or misshapen keys, e.g. {wrong[0]}); download {INCEPTION_WEIGHTS.url}"
            )
        return cls(path, sha256_file(path))

    def _keep_spatial(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        self._spatial = output

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise GenbenchError(
                f"Inception expects uint8 images [N, 3, H, W], got {images.dtype} {tuple(images.shape)}"
            )
        pool, logits = self.net(images)
        spatial = self._spatial[:, :SPATIAL_CHANNELS].permute(0, 2, 3, 1).flatten(1).float()
        self._spatial = None
        return {"pool": pool, "logits": logits, "spatial": spatial}


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
