"""Samplers against exact velocity fields of Gaussian targets, where the flow has a closed form, plus class
labels. Convention (REPA): t = 0 data, t = 1 noise, x_t = (1 - t) x + t eps, v = eps - x."""

import pytest
import torch
from torch import nn

from genbench.errors import GenbenchError
from genbench.sampling.labels import balanced_labels, random_labels
from genbench.sampling.samplers import euler_maruyama_sde, euler_ode


class GaussianVelocity(nn.Module):
    """Exact velocity E[eps - x | x_t] for data x ~ N(mean[y], std^2) per element, eps ~ N(0, 1).

    With a = 1 - t and var_t = a^2 std^2 + t^2: v = (t - a std^2) / var_t * (x_t - a m) - m. The ODE flow maps
    z at t = 1 to x_0 = m + std * z exactly. Records the batch size and time of every call."""

    def __init__(self, means: list[float], std: float):
        super().__init__()
        self.num_classes = len(means) - 1  # the last mean is the null class's
        self.register_buffer("means", torch.tensor(means))
        self.std = std
        self.calls: list[tuple[int, float]] = []

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.calls.append((x.shape[0], float(t[0])))
        t = t.view(-1, 1, 1, 1).to(torch.float64)
        a = 1 - t
        m = self.means[y].view(-1, 1, 1, 1).to(torch.float64)
        var = a**2 * self.std**2 + t**2
        return ((t - a * self.std**2) / var * (x - a * m) - m).to(x.dtype)


class ConstantVelocity(nn.Module):
    """v = velocities[y] everywhere (per channel), to check the guidance arithmetic."""

    def __init__(self, velocities: torch.Tensor):
        super().__init__()
        self.num_classes = velocities.shape[0] - 1
        self.register_buffer("velocities", velocities)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.velocities[y].view(-1, x.shape[1], 1, 1).expand_as(x).clone()


def _setup(n: int = 64, seed: int = 0):
    model = GaussianVelocity([1.5, -2.0, 0.0], std=0.5)
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(n, 2, 4, 4, generator=gen)
    y = torch.randint(2, (n,), generator=gen)
    return model, z, y


def test_ode_reaches_the_exact_endpoint_and_heun_beats_euler():
    model, z, y = _setup()
    exact = model.means[y].view(-1, 1, 1, 1).double() + model.std * z.double()
    err_euler = (euler_ode(model, z, y, num_steps=16) - exact).abs().max().item()
    err_heun = (euler_ode(model, z, y, num_steps=16, heun=True) - exact).abs().max().item()
    err_euler_fine = (euler_ode(model, z, y, num_steps=256) - exact).abs().max().item()
    assert err_heun < 0.1 * err_euler and err_heun < 0.02  # measured: 0.014 vs 0.18
    assert err_euler_fine < 0.1 * err_euler < 0.1  # first order: 16x the steps, much smaller error
    assert euler_ode(model, z, y, num_steps=16).dtype == torch.float64


def test_heun_skips_the_correction_on_the_last_step():
    model, z, y = _setup(n=4)
    euler_ode(model, z, y, num_steps=5, heun=True)
    assert len(model.calls) == 2 * 5 - 1
    assert [t for _, t in model.calls][-1] == pytest.approx(0.2)  # last call at t_cur = 0.2, none at t = 0


def _zero_noise_except(draw: int | None, draws: list[int]):
    """Noise that is zero except on draw number `draw` (1-based), recording how many draws happen."""
    def noise(x: torch.Tensor) -> torch.Tensor:
        draws.append(1)
        return torch.full_like(x, 0.3) if len(draws) == draw else torch.zeros_like(x)
    return noise


def test_sde_final_step_adds_no_noise():
    model, z, y = _setup(n=8)
    draws: list[int] = []
    out = euler_maruyama_sde(model, z, y, num_steps=6, noise=_zero_noise_except(None, draws))
    assert len(draws) == 5  # num_steps - 1 noisy steps; the 0.04 -> 0 step draws nothing
    assert [t for _, t in model.calls] == pytest.approx([1.0, 0.808, 0.616, 0.424, 0.232, 0.04])
    # The 5th draw (step 0.232 -> 0.04) enters as sqrt(w |dt|) * xi with w = 2t, then passes the noise-free
    # mean step 0.04 -> 0, affine in x: x += dt * drift, drift = (2 - t) v + x, dv/dx = (t - a s^2) / var.
    shifted = euler_maruyama_sde(model, z, y, num_steps=6, noise=_zero_noise_except(5, []))
    t, a, s2 = 0.04, 0.96, model.std**2
    dv_dx = (t - a * s2) / (a**2 * s2 + t**2)
    gain = 1 + (0.0 - t) * ((2 - t) * dv_dx + 1)
    expected = gain * (2 * 0.232 * 0.192) ** 0.5 * 0.3
    assert torch.allclose(shifted - out, torch.full_like(out, expected), atol=1e-5)


def test_sde_samples_the_target_distribution():
    model = GaussianVelocity([1.5, 0.0], std=0.5)
    z = torch.randn(4000, 1, 1, 1, generator=torch.Generator().manual_seed(1))
    y = torch.zeros(4000, dtype=torch.long)
    torch.manual_seed(2)
    x0 = euler_maruyama_sde(model, z, y, num_steps=250).flatten()
    assert abs(x0.mean().item() - 1.5) < 0.03  # 4 standard errors (0.5 / sqrt(4000) = 0.008)
    assert abs(x0.std().item() - 0.5) < 0.03
    # A wrong score sign or diffusion coefficient is far off: the ODE from the same noise is a different map.
    assert (x0 - euler_ode(model, z, y, num_steps=250).flatten()).abs().mean() > 0.1


@pytest.mark.parametrize("sampler", [euler_ode, euler_maruyama_sde])
def test_guidance_doubles_the_batch_only_inside_the_interval(sampler):
    model, z, y = _setup(n=4)
    sampler(model, z, y, num_steps=10, cfg_scale=2.0, guidance_interval=(0.0, 0.55))
    for batch, t in model.calls:
        assert batch == (8 if t <= 0.55 else 4), (batch, t)
    assert sum(batch == 8 for batch, _ in model.calls) == 5
    model.calls.clear()
    sampler(model, z, y, num_steps=10, cfg_scale=1.0, guidance_interval=(0.0, 1.0))  # scale 1: never doubled
    assert [batch for batch, _ in model.calls] == [4] * 10


def test_heun_guides_a_step_as_a_whole_by_its_start_time():
    model, z, y = _setup(n=4)
    euler_ode(model, z, y, num_steps=10, heun=True, cfg_scale=2.0, guidance_interval=(0.0, 0.55))
    batches = {round(t, 6): [] for _, t in model.calls}
    for batch, t in model.calls:
        batches[round(t, 6)].append(batch)
    # Step 0.6 -> 0.5 is unguided, so its Heun call at t = 0.5 is too; step 0.5 -> 0.4 is guided throughout.
    assert batches[0.5] == [4, 8] and batches[0.6] == [4, 4] and batches[0.4] == [8, 8]


def test_guidance_mixes_all_channels_or_only_the_first_three():
    velocities = torch.tensor([[1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 0.0, 1.0], [0.5, 0.5, 0.5, 0.5]])
    model = ConstantVelocity(velocities)
    z = torch.zeros(2, 4, 1, 1)
    y = torch.tensor([0, 1])
    out = euler_ode(model, z, y, num_steps=1, cfg_scale=3.0).flatten(1)  # x0 = z - v (dt = -1)
    guided = velocities[2] + 3.0 * (velocities[:2] - velocities[2])
    assert torch.allclose(out, -guided.double())
    out3 = euler_ode(model, z, y, num_steps=1, cfg_scale=3.0, cfg_channels=3).flatten(1)
    assert torch.allclose(out3[:, :3], -guided[:, :3].double())
    assert torch.allclose(out3[:, 3], -velocities[:2, 3].double())  # 4th channel stays conditional


def test_zero_steps_is_a_readable_error():
    model, z, y = _setup(n=2)
    with pytest.raises(GenbenchError, match="steps"):
        euler_ode(model, z, y, num_steps=0)


def test_balanced_labels_are_exact_shuffled_and_seeded():
    labels = balanced_labels(1000, 10, seed=3)
    assert torch.bincount(labels, minlength=10).tolist() == [100] * 10
    assert not torch.equal(labels, labels.sort().values)
    assert torch.equal(labels, balanced_labels(1000, 10, seed=3))
    assert not torch.equal(labels, balanced_labels(1000, 10, seed=4))
    # 23 = 2 * 10 + 3: classes 0..2 get one extra.
    assert torch.bincount(balanced_labels(23, 10, seed=0), minlength=10).tolist() == [3] * 3 + [2] * 7


def test_random_labels_are_seeded_and_in_range():
    labels = random_labels(500, 7, seed=1)
    assert labels.min() >= 0 and labels.max() < 7 and len(labels.unique()) == 7
    assert torch.equal(labels, random_labels(500, 7, seed=1))
    assert not torch.equal(labels, random_labels(500, 7, seed=2))
