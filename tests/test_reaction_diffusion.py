"""2D FitzHugh–Nagumo reaction–diffusion (PDEBench configuration): checks against closed forms, finite
differences and the spatial-mean balance law."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.integrate import cumulative_simpson
from scipy.linalg import expm
from torch import Tensor

from physdyn.solvers import odeint
from physdyn.systems import get

F64 = torch.float64


def cos_mode(system, a: float, b: float) -> Tensor:
    """cos(a(x + 1)) cos(b(y + 1)) at the cell centres, shape (n, n) indexed [y, x]."""
    c = system.cell_centres() + 1
    return torch.cos(b * c)[:, None] * torch.cos(a * c)[None, :]


def cell_average_cos(system, a: float) -> Tensor:
    """Exact cell averages of cos(a(x + 1)) over the cells of one axis, shape (n,)."""
    if a == 0:
        return torch.ones(system.n, dtype=F64)
    left = system.cell_centres() + 1 - system.dx / 2
    return (torch.sin(a * (left + system.dx)) - torch.sin(a * left)) / (a * system.dx)


def slope(ns, errors) -> float:
    """Order p in error ∝ n^(−p), by least squares on the logs."""
    return -float(np.polyfit(np.log(ns), np.log(errors), 1)[0])


# -- parameters and construction -------------------------------------------------------------------------


def test_defaults_shapes_and_names():
    s = get("reaction_diffusion")
    assert s.params == {"Du": 1e-3, "Dv": 5e-3, "k": 5e-3, "n": 64}
    assert isinstance(s.params["n"], int)
    assert s.state_names == ("u", "v")
    assert s.state_shape == (2, 64, 64)
    assert s.invariants == ("mean_balance",)
    assert s.lyapunov_max is None
    assert get("reaction_diffusion", n=8.0).state_shape == (2, 8, 8)


@pytest.mark.parametrize("params", [{"n": 0}, {"n": -4}, {"n": 2.5}, {"n": math.inf}, {"Du": -1e-3},
                                    {"Dv": math.nan}, {"k": math.inf}, {"D": 1.0}])
def test_bad_parameters_raise(params):
    with pytest.raises(ValueError):
        get("reaction_diffusion", **params)


def test_no_stochastic_form():
    with pytest.raises(ValueError, match="no stochastic form"):
        get("reaction_diffusion", n=4).simulate(1, noise=0.1)


def test_wrong_initial_state_shape_raises():
    s = get("reaction_diffusion", n=4)
    with pytest.raises(ValueError, match="shape"):
        s.simulate(x0=torch.zeros(1, 2, 4, 5), t_end=0.1, dt=0.05)


def test_random_initial_states_are_standard_normal_and_seeded():
    s = get("reaction_diffusion", n=32)
    x = s.random_initial_states(8, torch.Generator().manual_seed(0))
    assert x.shape == (8, 2, 32, 32) and x.dtype == F64
    # 16384 samples: mean within 5 standard errors of 0, variance within 5 % of 1.
    assert abs(float(x.mean())) < 5 / math.sqrt(x.numel())
    assert abs(float(x.var()) - 1) < 0.05
    assert torch.equal(x, s.random_initial_states(8, torch.Generator().manual_seed(0)))


# -- the discrete Laplacian ------------------------------------------------------------------------------


def test_laplacian_of_constant_is_zero_and_random_fields_sum_to_zero():
    s = get("reaction_diffusion", n=16)
    constant = torch.full((3, 2, 16, 16), 1.7, dtype=F64)
    assert torch.equal(s.laplacian(constant), torch.zeros_like(constant))
    x = torch.randn(5, 2, 16, 16, dtype=F64, generator=torch.Generator().manual_seed(1))
    lap = s.laplacian(x)
    scale = lap.abs().sum((-2, -1))
    assert bool((lap.sum((-2, -1)).abs() <= 1e-13 * scale).all())


def test_laplacian_matches_five_point_stencil_with_mirror_ghosts():
    # Independent construction: pad with ghost cells copying the boundary cells (zero normal derivative).
    s = get("reaction_diffusion", n=7)
    x = torch.randn(2, 2, 7, 7, dtype=F64, generator=torch.Generator().manual_seed(2))
    g = torch.nn.functional.pad(x, (1, 1, 1, 1), mode="replicate")
    expected = (g[..., 1:-1, 2:] + g[..., 1:-1, :-2] + g[..., 2:, 1:-1] + g[..., :-2, 1:-1] - 4 * x) / s.dx**2
    torch.testing.assert_close(s.laplacian(x), expected, rtol=1e-13, atol=1e-10)


def test_laplacian_is_second_order_on_neumann_cos_modes():
    # cos(a(x+1)) cos(b(y+1)) with a, b multiples of π/2 has zero normal derivative on the walls and
    # Laplacian −(a² + b²) f; it is an exact eigenvector of the discrete operator, so the stencil's
    # eigenvalue −(4/dx²)(sin²(a dx/2) + sin²(b dx/2)) must show the O(dx²) error everywhere.
    a, b = math.pi, 1.5 * math.pi
    ns, errors = [16, 32, 64, 128], []
    for n in ns:
        s = get("reaction_diffusion", n=n)
        f = cos_mode(s, a, b)
        errors.append(float((s.laplacian(f) + (a**2 + b**2) * f).abs().max()))
        discrete = 4 / s.dx**2 * (math.sin(a * s.dx / 2) ** 2 + math.sin(b * s.dx / 2) ** 2)
        torch.testing.assert_close(s.laplacian(f), -discrete * f, rtol=0, atol=1e-9 * discrete)
    assert slope(ns, errors) == pytest.approx(2.0, abs=0.05)


# -- vector field, Jacobian, JVP -------------------------------------------------------------------------


def test_vector_field_uniform_state_is_pure_reaction():
    s = get("reaction_diffusion", n=5, k=0.3)
    x = torch.empty(1, 2, 5, 5, dtype=F64)
    x[:, 0], x[:, 1] = 0.7, -0.2
    f = s.vector_field(0.0, x)
    torch.testing.assert_close(f[:, 0], torch.full((1, 5, 5), 0.7 - 0.7**3 - 0.3 + 0.2, dtype=F64))
    torch.testing.assert_close(f[:, 1], torch.full((1, 5, 5), 0.9, dtype=F64))


@pytest.mark.parametrize("n", [4, 6])
def test_jacobian_and_jvp_match_central_differences(n):
    s = get("reaction_diffusion", n=n, Du=0.03, Dv=0.07, k=0.1)
    gen = torch.Generator().manual_seed(n)
    x = torch.randn(2, 2, n, n, dtype=F64, generator=gen)
    size, eps = 2 * n * n, 1e-6
    jac = s.jacobian(0.0, x)
    assert jac.shape == (2, size, size)
    fd = torch.empty_like(jac)
    for j in range(size):
        e = torch.zeros(size, dtype=F64)
        e[j] = eps
        e = e.reshape(2, n, n)
        fd[:, :, j] = ((s.vector_field(0.0, x + e) - s.vector_field(0.0, x - e)) / (2 * eps)).reshape(2, size)
    torch.testing.assert_close(jac, fd, rtol=1e-7, atol=1e-6)
    v = torch.randn(2, 2, n, n, dtype=F64, generator=gen)
    fd_v = (s.vector_field(0.0, x + eps * v) - s.vector_field(0.0, x - eps * v)) / (2 * eps)
    torch.testing.assert_close(s.jvp(0.0, x, v), fd_v, rtol=1e-7, atol=1e-6)
    torch.testing.assert_close(s.jvp(0.0, x, v).reshape(2, size), (jac @ v.reshape(2, size, 1))[..., 0])


def test_dense_jacobian_refuses_huge_grids():
    s = get("reaction_diffusion", n=128)
    with pytest.raises(ValueError, match="jvp"):
        s.jacobian(0.0, torch.zeros(1, 2, 128, 128, dtype=F64))


# -- dynamics --------------------------------------------------------------------------------------------


def test_spatial_convergence_is_second_order_on_smooth_data():
    # Smooth Neumann-compatible start given by its exact cell averages, solved on n = 8, 16, 32, 64 with a
    # tight time tolerance so only the spatial error remains. Each solution is compared with the 2×2-block
    # averages of the next finer one: for a second-order scheme these differences shrink as n^−2 with no
    # bias from a reference's own error. Diffusivities raised so the Laplacian, not only the cubic, matters.
    params = {"Du": 0.01, "Dv": 0.02, "k": 0.1}
    t = torch.tensor([0.0, 0.3], dtype=F64)

    def solve(n: int) -> Tensor:
        s = get("reaction_diffusion", n=n, **params)
        u0 = 0.3 + 0.8 * cell_average_cos(s, math.pi / 2)[:, None] * cell_average_cos(s, math.pi)[None, :]
        v0 = -0.2 + 0.5 * cell_average_cos(s, 1.5 * math.pi)[:, None] * cell_average_cos(s, 0.0)[None, :]
        return odeint(s.vector_field, torch.stack([u0, v0])[None], t, rtol=1e-10, atol=1e-10)[0, -1]

    ns = [8, 16, 32, 64]
    solutions = [solve(n) for n in ns]
    differences = [float((coarse - fine.reshape(2, n, 2, n, 2).mean((2, 4))).pow(2).mean().sqrt())
                   for n, coarse, fine in zip(ns[:-1], solutions[:-1], solutions[1:], strict=True)]
    order = slope(ns[:-1], differences)
    assert order >= 1.8, (order, differences)


def test_linear_modes_follow_the_continuum_dispersion_relation():
    # About the uniform steady state u* = v* = −k^(1/3), a small cosine mode (an exact eigenvector of the
    # discrete Laplacian) in u evolves by exp(M(κ) t) with κ = a² + b² and
    # M = [[1 − 3u*² − Du κ, −1], [1, −1 − Dv κ]]: the closed-form linearised PDE, independent of the code.
    params = {"Du": 0.05, "Dv": 0.1, "k": 5e-3}
    a, b, eps, t_end = math.pi, 0.5 * math.pi, 1e-6, 1.0
    ustar = -params["k"] ** (1 / 3)
    kappa = a**2 + b**2
    m = np.array([[1 - 3 * ustar**2 - params["Du"] * kappa, -1.0], [1.0, -1 - params["Dv"] * kappa]])
    expected = expm(m * t_end) @ np.array([eps, 0.0])
    assert abs(expected[0]) > 0.1 * eps and abs(expected[1]) > 0.1 * eps  # both channels carry signal
    ns, errors = [8, 16, 32], []
    for n in ns:
        s = get("reaction_diffusion", n=n, **params)
        mode = cos_mode(s, a, b)
        x0 = torch.full((1, 2, n, n), ustar, dtype=F64)
        x0[0, 0] += eps * mode
        x1 = odeint(s.vector_field, x0, torch.tensor([0.0, t_end], dtype=F64), rtol=1e-12, atol=1e-16)[0, -1]
        amplitude = ((x1 - ustar) * mode).sum((-2, -1)) / (mode * mode).sum()
        errors.append(float(np.abs(amplitude.numpy() - expected).max()) / eps)
    assert errors[-1] < 2e-3, errors
    assert slope(ns, errors) >= 1.8, errors


def test_spatial_means_obey_the_balance_law():
    # Zero flux through the walls: d⟨u⟩/dt = ⟨u − u³ − k − v⟩, d⟨v⟩/dt = ⟨u − v⟩.
    s = get("reaction_diffusion", n=16)
    traj = s.simulate(2, t_end=1.0, dt=0.0025, seed=3)
    x, t = traj.states, traj.t.numpy()
    local = s.reaction(x.flatten(0, 1)).reshape(x.shape)
    local_mean = local.mean((-2, -1))
    # 1. the solver's vector field: its spatial mean is the mean of the local terms, to round-off.
    torch.testing.assert_close(traj.derivatives.mean((-2, -1)), local_mean, rtol=0, atol=1e-13)
    # 2. along the trajectory: mean(t) − mean(0) = ∫ ⟨local terms⟩ dt (Simpson's rule).
    means = x.mean((-2, -1)).numpy()
    integral = cumulative_simpson(local_mean.numpy(), x=t, axis=1, initial=0)
    assert np.abs(means - means[:, :1] - integral).max() < 1e-7
    # and the balance is not trivial: the means do move.
    assert np.abs(means[:, -1] - means[:, 0]).min() > 1e-2


def test_simulate_shape_seeds_and_derivatives():
    s = get("reaction_diffusion", n=8)
    a = s.simulate(3, seed=1)
    assert a.states.shape == (3, 101, 2, 8, 8)
    torch.testing.assert_close(a.t, torch.arange(101, dtype=F64) * 0.05)
    assert a.state_names == ("u", "v")
    assert a.derivatives.shape == a.states.shape
    f = s.vector_field(0.0, a.states.flatten(0, 1)).reshape(a.states.shape)
    torch.testing.assert_close(a.derivatives, f)
    short = {"t_end": 0.5, "dt": 0.05}
    assert torch.equal(s.simulate(2, seed=1, **short).states, s.simulate(2, seed=1, **short).states)
    assert not torch.allclose(a.states[:2, 0], s.simulate(2, seed=2, **short).states[:, 0])
    assert torch.isfinite(a.states).all()


def test_progress_bar_runs():
    s = get("reaction_diffusion", n=4)
    plain = s.simulate(1, t_end=0.5, dt=0.05, seed=0)
    with_bar = s.simulate(1, t_end=0.5, dt=0.05, seed=0, progress=True)
    torch.testing.assert_close(with_bar.states, plain.states, rtol=1e-6, atol=1e-7)
