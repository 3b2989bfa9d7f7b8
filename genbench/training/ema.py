"""Exponential moving average of a model's parameters AND buffers (REPA-E's update_ema): float buffers such
as the latent BatchNorm's running statistics are averaged like parameters, integer ones copied."""

from __future__ import annotations

import copy

import torch
from torch import nn


def make_ema(model: nn.Module) -> nn.Module:
    """A frozen copy of `model` in eval mode, to be stepped with `update_ema`."""
    return copy.deepcopy(model).eval().requires_grad_(False)


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, decay: float = 0.9999) -> None:
    """ema <- decay * ema + (1 - decay) * model, for parameters and floating-point buffers."""
    ema_params = dict(ema.named_parameters())
    for name, param in model.named_parameters():
        ema_params[name].mul_(decay).add_(param.detach(), alpha=1 - decay)
    ema_buffers = dict(ema.named_buffers())
    for name, buffer in model.named_buffers():
        if buffer.is_floating_point():
            ema_buffers[name].mul_(decay).add_(buffer, alpha=1 - decay)
        else:
            ema_buffers[name].copy_(buffer)


def short_run_warning(decay: float, steps: int, limit: float = 0.05) -> str | None:
    """A warning when an EMA started from the initial model still holds more than `limit` of it after
    `steps` updates (decay ** steps): REPA's 0.9999 suits 400K steps, but over 1,000 it keeps 90% of the
    random initialisation in the weights that sampling uses."""
    kept = decay**steps
    if kept <= limit:
        return None
    return (f"EMA decay {decay} over {steps} steps keeps {kept:.0%} of the initial weights in the EMA model "
            f"that sampling uses; for this run length set ema_decay <= {limit ** (1 / steps):.4g} "
            "(--config)")
