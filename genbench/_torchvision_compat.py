"""Make a CUDA-linked torchvision wheel importable next to a CPU-only torch.

PyPI's torchvision 0.28.0 wheel is built against CUDA; beside the CPU build of torch its C extension
fails to load, so the `torchvision::nms` / `torchvision::qnms` schemas are never registered and
`import torchvision` dies in its meta registrations ("operator torchvision::nms does not exist"). That
also breaks timm, open_clip and torch-fidelity. Registering the two schemas first is enough: torchvision's
Python code then imports, and only its compiled ops (which genbench never uses) stay unavailable.

Inactive wherever torchvision's extension loads (a matching GPU install): we try to load it first.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import torch

_SCHEMA = "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor"
_library: torch.library.Library | None = None  # kept alive: dropping it unregisters the schemas


def patch_torchvision_ops() -> bool:
    """Register missing torchvision op schemas if its C extension cannot load. Returns True if patched."""
    global _library
    if "torchvision" in sys.modules or _library is not None:
        return False
    spec = importlib.util.find_spec("torchvision")
    if spec is None or spec.origin is None:
        return False
    extension = next(Path(spec.origin).parent.glob("_C*.so"), None)
    if extension is not None:
        try:
            torch.ops.load_library(str(extension))
            return False
        except OSError:
            pass
    _library = torch.library.Library("torchvision", "DEF")
    for op in ("nms", "qnms"):
        _library.define(op + _SCHEMA)
    return True
