"""genbench: ADM-exact evaluation and reference training/sampling for image generative models."""

from genbench._torchvision_compat import patch_torchvision_ops

patch_torchvision_ops()

__version__ = "0.1.0"
