"""Rollout, physics and statistical metrics against closed forms, hand-made inputs and scipy."""

import math

import numpy as np
import pytest
import scipy.stats
import torch

from physdyn import metrics


def _oscillator_energy(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * (x[:, 0] ** 2 + x[:, 1] ** 2)


@pytest.fixture
def states() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.rand(5, 40, 3, generator=g, dtype=torch.float64) + 0.1  # positive, like concentrations


def test_every_metric_is_perfect_on_identical_inputs(states):
    t = torch.linspace(0.0, 3.9, 40, dtype=torch.float64)
    x = states / states.sum(-1, keepdim=True)  # conserved total, positive
    assert torch.all(metrics.rmse(x, x) == 0)
    assert torch.all(metrics.nrmse(x, x) == 0)
    assert torch.all(metrics.valid_prediction_time(x, x, t=t) == t[-1])
    assert float(metrics.energy_error(x, x, energy=_oscillator_energy)) == 0
    assert torch.all(metrics.positivity_violation(x, x)["depth"] == 0)
    assert torch.all(metrics.positivity_violation(x, x)["fraction"] == 0)
    assert torch.allclose(metrics.mass_error(x, x)["max"], torch.zeros(5, dtype=torch.float64), atol=1e-15)
    stats = metrics.attractor_statistics(x, x)
    assert torch.all(stats["wasserstein"] == 0)
    assert torch.equal(stats["mean_pred"], stats["mean_true"])
    assert torch.equal(stats["std_pred"], stats["std_true"])
    # The exact flow of the oscillator conserves its energy: zero drift.
    ts = t.to(torch.float64)
    exact = torch.stack([torch.cos(ts), -torch.sin(ts)], -1)[None] * torch.tensor([1.0, 2.0])[:, None, None]
    drift = metrics.energy_drift(exact, energy=_oscillator_energy)
    assert torch.allclose(drift["max"], torch.zeros(2, dtype=torch.float64), atol=1e-14)


def test_constant_offset_gives_rmse_equal_to_the_offset(states):
    c = 0.37
    curve = torch.full((40,), c, dtype=torch.float64)
    assert torch.allclose(metrics.rmse(states + c, states), curve)
    assert torch.allclose(metrics.nrmse(states + c, states, scale=1.0), curve)
    # Offset of c σ_i in every coordinate: the normalised error is c at every step.
    sigma = states.reshape(-1, 3).std(0, unbiased=False)
    assert torch.allclose(metrics.nrmse(states + c * sigma, states), curve)
    assert torch.allclose(metrics.nrmse(states - c * sigma, states), curve)


def test_vpt_of_exponentially_growing_error_matches_the_analytic_crossing(states):
    # e_n(t) = ε_n e^{λ t} crosses the threshold θ at t* = ln(θ / ε_n) / λ.
    lam, theta, dt = 0.9, 0.4, 0.01
    t = torch.arange(0, 1001, dtype=torch.float64) * dt
    g = torch.Generator().manual_seed(1)
    true = torch.randn(4, len(t), 3, generator=g, dtype=torch.float64) * torch.tensor([1.0, 5.0, 20.0])
    sigma = true.reshape(-1, 3).std(0, unbiased=False)
    eps = torch.tensor([1e-4, 1e-3, 1e-2, 1e-1], dtype=torch.float64)
    direction = torch.tensor([1.0, -1.0, 1.0], dtype=torch.float64)  # |direction_i| = 1: e_n = ε e^{λt}
    pred = true + (eps[:, None] * torch.exp(lam * t))[..., None] * sigma * direction
    vpt = metrics.valid_prediction_time(pred, true, t=t, threshold=theta)
    analytic = torch.log(theta / eps) / lam
    assert torch.all(vpt >= analytic) and torch.all(vpt < analytic + dt + 1e-12)
    # Per-trajectory grids: shifting a grid by t_0 does not change the VPT.
    vpt_shifted = metrics.valid_prediction_time(pred, true, t=t + torch.arange(4.0)[:, None], threshold=theta)
    assert torch.allclose(vpt_shifted, vpt)
    assert torch.allclose(metrics.lyapunov_times(vpt, lam), vpt * lam)
    # Never crossing: the whole horizon.
    assert torch.all(metrics.valid_prediction_time(true, true, t=t) == t[-1])


def test_energy_drift_of_explicit_euler_on_the_oscillator_follows_the_closed_form():
    # x' = (p, −q) by explicit Euler: H_{k+1} = (1 + h²) H_k, so the relative drift after k steps is
    # (1 + h²)^k − 1.
    h, steps = 0.05, 200
    x = torch.tensor([[1.0, 0.0], [0.3, -2.0]], dtype=torch.float64)
    path = [x]
    for _ in range(steps):
        q, p = path[-1].unbind(-1)
        path.append(torch.stack([q + h * p, p - h * q], -1))
    pred = torch.stack(path, 1)
    drift = metrics.energy_drift(pred, energy=_oscillator_energy)
    expected = (1 + h**2) ** steps - 1
    assert torch.allclose(drift["final"], torch.full((2,), expected, dtype=torch.float64), rtol=1e-10)
    assert torch.allclose(drift["max"], drift["final"])
    absolute = metrics.energy_drift(pred, energy=_oscillator_energy, relative=False)
    h0 = _oscillator_energy(x)
    assert torch.allclose(absolute["final"], expected * h0, rtol=1e-10)


def test_energy_error_on_scaled_states():
    # pred = a · true for the oscillator: H(pred) − H(true) = (a² − 1) H(true).
    g = torch.Generator().manual_seed(2)
    true = torch.randn(3, 7, 2, generator=g, dtype=torch.float64)
    a = 1.1
    h = 0.5 * (true.numpy() ** 2).sum(-1)
    expected = np.mean(((a**2 - 1) * h) ** 2)
    error = metrics.energy_error(a * true, true, energy=_oscillator_energy)
    assert math.isclose(float(error), expected, rel_tol=1e-12)


def test_mass_error_and_positivity_on_hand_made_trajectories():
    pred = torch.tensor([[[0.5, 0.5, 0.0], [0.6, 0.5, 0.0], [0.2, 0.4, 0.1]],
                         [[1.0, 0.0, 0.0], [0.9, -0.05, 0.15], [0.8, 0.1, 0.1]]], dtype=torch.float64)
    mass = metrics.mass_error(pred)
    assert torch.allclose(mass["max"], torch.tensor([0.3, 0.0], dtype=torch.float64), atol=1e-15)
    assert torch.allclose(mass["final"], torch.tensor([0.3, 0.0], dtype=torch.float64), atol=1e-15)
    weighted = metrics.mass_error(pred, weights=torch.tensor([1.0, 2.0, 0.0]))
    assert torch.allclose(weighted["max"], torch.tensor([0.5, 0.2], dtype=torch.float64))
    pos = metrics.positivity_violation(pred)
    assert torch.allclose(pos["depth"], torch.tensor([0.0, 0.05], dtype=torch.float64))
    assert torch.allclose(pos["fraction"], torch.tensor([0.0, 1 / 9], dtype=torch.float64))


def test_wasserstein_between_shifted_gaussians_is_the_shift():
    g = torch.Generator().manual_seed(3)
    a = torch.randn(8, 2500, 2, generator=g, dtype=torch.float64)
    b = torch.randn(8, 2500, 2, generator=g, dtype=torch.float64) + torch.tensor([0.5, 0.0])
    stats = metrics.attractor_statistics(a, b)
    assert abs(float(stats["wasserstein"][0]) - 0.5) < 0.03
    assert float(stats["wasserstein"][1]) < 0.03
    assert abs(float(stats["mean_true"][0] - stats["mean_pred"][0]) - 0.5) < 0.03


def test_wasserstein_matches_scipy_for_unequal_sample_sizes():
    g = torch.Generator().manual_seed(4)
    a = torch.randn(3, 101, generator=g, dtype=torch.float64)
    b = torch.rand(3, 57, generator=g, dtype=torch.float64) * 3
    ours = metrics.wasserstein_1d(a, b)
    for i in range(3):
        assert math.isclose(float(ours[i]), scipy.stats.wasserstein_distance(a[i].numpy(), b[i].numpy()),
                            rel_tol=1e-12)
    pred = a.T.reshape(1, 101, 3)
    true = b.T.reshape(1, 57, 3)
    stats = metrics.attractor_statistics(pred, true, burn_in=1)
    assert math.isclose(float(stats["wasserstein"][2]),
                        scipy.stats.wasserstein_distance(a[2, 1:].numpy(), b[2, 1:].numpy()), rel_tol=1e-12)


def test_bad_inputs_raise_value_error(states):
    with pytest.raises(ValueError, match="same shape"):
        metrics.rmse(states, states[:, :-1])
    with pytest.raises(ValueError, match="N, T"):
        metrics.nrmse(states[0], states[0])
    with pytest.raises(ValueError, match="t must have shape"):
        metrics.valid_prediction_time(states, states, t=torch.arange(3.0))
    with pytest.raises(ValueError, match="energy must map"):
        metrics.energy_drift(states, energy=lambda x: x)
    with pytest.raises(ValueError, match="burn_in"):
        metrics.attractor_statistics(states, states, burn_in=40)
    with pytest.raises(ValueError, match="lyapunov_max"):
        metrics.lyapunov_times(1.0, 0.0)
