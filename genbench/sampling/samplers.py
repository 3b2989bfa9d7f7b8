"""Samplers for velocity models on the linear path, with REPA's time convention.

Convention (REPA / REPA-E, shared by every function here): t = 0 is data, t = 1 is noise,
x_t = (1 - t) x + t eps, and the model predicts v = eps - x. Sampling integrates from t = 1 to t = 0.
The model is called as `model(x [N, C, H, W], t [N], y [N] long) -> v [N, C, H, W]`; label `null_label`
(the SiT's `num_classes`) is the unconditional class. The state is carried in float64 and cast to the
latents' dtype for each model call, as REPA does.

Classifier-free guidance: v = v_u + s (v_c - v_u), applied only when s > 1 and low <= t <= high. Outside the
interval the model runs once per step on the conditional batch (the batch is not doubled). `cfg_channels=3`
guides only the first three channels and keeps the rest conditional (SiT's official forward_with_cfg).
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise

import torch
from torch import nn

from genbench.errors import GenbenchError

Noise = Callable[[torch.Tensor], torch.Tensor]  # x -> standard normal tensor shaped like x


def _null_label(model: nn.Module, null_label: int | None) -> int:
    return model.num_classes if null_label is None else null_label


def _check_steps(num_steps: int) -> None:
    if num_steps < 1:
        raise GenbenchError(f"--steps {num_steps}: must be at least 1")


def guided_velocity(model: nn.Module, x: torch.Tensor, t: float, y: torch.Tensor, cfg_scale: float,
                    guidance_interval: tuple[float, float], null_label: int, cfg_channels: int | None = None,
                    guidance_time: float | None = None) -> torch.Tensor:
    """v(x, t | y) in float64, x [N, C, H, W] float64, t a float. CFG applies when cfg_scale > 1 and
    low <= guidance_time <= high (guidance_time defaults to t)."""
    low, high = guidance_interval
    guidance_time = t if guidance_time is None else guidance_time
    guided = cfg_scale > 1.0 and low <= guidance_time <= high
    model_x = torch.cat([x, x]) if guided else x
    model_y = torch.cat([y, torch.full_like(y, null_label)]) if guided else y
    time = torch.full((model_x.shape[0],), t, dtype=torch.float64, device=x.device)
    v = model(model_x.to(model_dtype(model)), time.to(model_dtype(model)), model_y).to(torch.float64)
    if not guided:
        return v
    v_cond, v_uncond = v.chunk(2)
    channels = v.shape[1] if cfg_channels is None else cfg_channels
    mixed = v_uncond[:, :channels] + cfg_scale * (v_cond[:, :channels] - v_uncond[:, :channels])
    return torch.cat([mixed, v_cond[:, channels:]], dim=1)


def model_dtype(model: nn.Module) -> torch.dtype:
    """The dtype the model is called with: its parameters' dtype (float32 for a parameter-free model)."""
    parameter = next(model.parameters(), None) if isinstance(model, nn.Module) else None
    return parameter.dtype if parameter is not None else torch.float32


@torch.no_grad()
def euler_ode(model: nn.Module, z: torch.Tensor, y: torch.Tensor, num_steps: int, cfg_scale: float = 1.0,
              guidance_interval: tuple[float, float] = (0.0, 1.0), heun: bool = False,
              cfg_channels: int | None = None, null_label: int | None = None) -> torch.Tensor:
    """Probability-flow ODE dx/dt = v from t = 1 (z, noise [N, C, H, W]) to t = 0 (data); returns float64.

    Time grid: float64 linspace(1, 0, num_steps + 1). Heun (2nd order) averages the slopes at t_cur and
    t_next, except on the last step (t_next = 0), which stays an Euler step as in REPA/EDM. Whether the Heun
    slope is guided is decided by t_cur, as in REPA, so a step is guided or not as a whole.
    """
    _check_steps(num_steps)
    null = _null_label(model, null_label)

    def velocity(x: torch.Tensor, t: float, guidance_time: float) -> torch.Tensor:
        return guided_velocity(model, x, t, y, cfg_scale, guidance_interval, null, cfg_channels,
                               guidance_time)

    t_steps = torch.linspace(1.0, 0.0, num_steps + 1, dtype=torch.float64).tolist()
    x = z.to(torch.float64)
    for i, (t_cur, t_next) in enumerate(pairwise(t_steps)):
        d_cur = velocity(x, t_cur, t_cur)
        x_next = x + (t_next - t_cur) * d_cur
        if heun and i < num_steps - 1:
            d_next = velocity(x_next, t_next, t_cur)
            x_next = x + (t_next - t_cur) * (0.5 * d_cur + 0.5 * d_next)
        x = x_next
    return x


@torch.no_grad()
def euler_maruyama_sde(model: nn.Module, z: torch.Tensor, y: torch.Tensor, num_steps: int,
                       cfg_scale: float = 1.0, guidance_interval: tuple[float, float] = (0.0, 1.0),
                       cfg_channels: int | None = None, null_label: int | None = None,
                       noise: Noise | None = None) -> torch.Tensor:
    """Reverse SDE dx = [v - w/2 s] dt + sqrt(w) dW, w(t) = 2t, from t = 1 (z [N, C, H, W]) to t = 0.

    Time grid: float64 linspace(1, 0.04, num_steps) followed by 0, i.e. num_steps - 1 stochastic
    Euler-Maruyama steps down to t = 0.04 and one noise-free (mean) step 0.04 -> 0 (REPA's sampler; SiT's
    "sigma" diffusion with a "Mean" last step). Score on the linear path: s = ((t - 1) v - x) / t.
    CFG is applied to the drift; since the drift (2 - t) v + x is affine in v with the same x for both
    halves, guiding the drift equals guiding v, which is what is computed. `noise(x)` supplies the
    Brownian increments' standard normals (default torch.randn_like); it is called num_steps - 1 times.
    """
    _check_steps(num_steps)
    null = _null_label(model, null_label)
    noise = noise or torch.randn_like

    def velocity(x: torch.Tensor, t: float) -> torch.Tensor:
        return guided_velocity(model, x, t, y, cfg_scale, guidance_interval, null, cfg_channels)

    t_steps = torch.linspace(1.0, 0.04, num_steps, dtype=torch.float64).tolist() + [0.0]
    x = z.to(torch.float64)
    for i, (t_cur, t_next) in enumerate(pairwise(t_steps)):
        dt = t_next - t_cur
        v = velocity(x, t_cur)
        diffusion = 2.0 * t_cur
        score = ((t_cur - 1.0) * v - x) / t_cur
        drift = v - 0.5 * diffusion * score
        x = x + drift * dt
        if i < num_steps - 1:  # the last step (0.04 -> 0) returns the mean: no noise
            x = x + (diffusion * abs(dt)) ** 0.5 * noise(x).to(torch.float64)
    return x


SAMPLERS = {"ode": euler_ode, "sde": euler_maruyama_sde}
