"""Shared fixtures. Importing genbench first applies the torchvision compatibility shim, so tests can
import torch-fidelity, timm and open_clip directly."""

import genbench  # noqa: F401
