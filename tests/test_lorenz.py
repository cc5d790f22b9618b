"""Lorenz-63: equations against finite differences and scipy, the constant divergence, the stochastic forms
against the closed-form laws of the Ornstein–Uhlenbeck process and geometric Brownian motion."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp
from scipy.linalg import expm, solve_continuous_lyapunov

from physdyn.systems import get

F64 = torch.float64
SCALES = (0.1, 0.28, 0.3)  # multiplicative diffusion scales of torchsde's stochastic Lorenz


def attractor_states(n: int, seed: int = 0, **params: float) -> torch.Tensor:
    system = get("lorenz", **params)
    x0 = system.random_initial_states(n, torch.Generator().manual_seed(seed))
    return system.integrate(x0, torch.tensor([0.0, 2.0], dtype=F64))[:, -1]


def test_defaults_and_facts():
    system = get("lorenz")
    assert system.params == {"sigma": 10.0, "rho": 28.0, "beta": 8 / 3}
    assert system.state_names == ("x", "y", "z") and system.state_shape == (3,)
    assert system.lyapunov_max == pytest.approx(0.9056)
    assert system.facts["default_noise_type"] == "additive"
    assert get("lorenz", rho=20.0).lyapunov_max is None  # the published value is for the defaults only


@pytest.mark.parametrize("params", [{}, {"sigma": 16.0, "rho": 45.92, "beta": 4.0}])
def test_jacobian_matches_central_differences(params):
    system = get("lorenz", **params)
    x = 20 * torch.randn(16, 3, generator=torch.Generator().manual_seed(1), dtype=F64)
    h = 1e-4  # f is quadratic, so central differences carry round-off error only
    columns = [
        (system.vector_field(0.0, x + h * e) - system.vector_field(0.0, x - h * e)) / (2 * h)
        for e in torch.eye(3, dtype=F64)
    ]
    numeric = torch.stack(columns, dim=-1)  # (B, 3, 3): column j is ∂f/∂x_j
    torch.testing.assert_close(system.jacobian(0.0, x), numeric, rtol=0, atol=1e-7)


@pytest.mark.parametrize("params", [{}, {"sigma": 3.0, "rho": 99.0, "beta": 0.5}])
def test_divergence_is_constant(params):
    # tr J = −(σ + 1 + β) at every state, on and far off the attractor
    system = get("lorenz", **params)
    p = system.params
    x = 100 * torch.randn(64, 3, generator=torch.Generator().manual_seed(2), dtype=F64)
    trace = torch.diagonal(system.jacobian(0.0, x), dim1=-2, dim2=-1).sum(-1)
    torch.testing.assert_close(trace, torch.full((64,), -(p["sigma"] + 1 + p["beta"]), dtype=F64))


def test_trajectory_matches_scipy_dop853():
    system = get("lorenz")
    p = system.params
    x0 = system.random_initial_states(4, torch.Generator().manual_seed(1))
    t = torch.arange(501, dtype=F64) * 0.01  # t ∈ [0, 5]
    ours = system.integrate(x0, t).numpy()

    def rhs(_, s):
        u, v, w = s
        return [p["sigma"] * (v - u), u * (p["rho"] - w) - v, u * v - p["beta"] * w]

    for i in range(4):
        ref = solve_ivp(rhs, (0.0, 5.0), x0[i].numpy(), method="DOP853", t_eval=t.numpy(),
                        rtol=1e-12, atol=1e-12)
        # both errors are ~1e-10 here; chaos multiplies them by ~e^(0.9 t) ≈ 90 over this span
        np.testing.assert_allclose(ours[i], ref.y.T, rtol=0, atol=1e-8)


def test_simulate_is_deterministic_and_stores_derivatives():
    system = get("lorenz")
    a = system.simulate(3, t_end=1.0, dt=0.05, seed=4)
    b = system.simulate(3, t_end=1.0, dt=0.05, seed=4)
    assert a.states.shape == (3, 21, 3) and a.states.dtype == F64
    torch.testing.assert_close(a.states, b.states, rtol=0, atol=0)
    f = system.vector_field(0.0, a.states.reshape(-1, 3)).reshape(a.states.shape)
    torch.testing.assert_close(a.derivatives, f)


def test_integrate_is_differentiable_in_the_initial_state():
    # a finite-difference check of ∂x(t)/∂x0 through the fixed-step solver
    system = get("lorenz")
    x0 = attractor_states(2)
    t = torch.tensor([0.0, 0.5], dtype=F64)
    x0g = x0.clone().requires_grad_()
    system.integrate(x0g, t)[:, -1, 2].sum().backward()
    h = 1e-6
    numeric = torch.stack([
        (system.integrate(x0 + h * e, t)[:, -1, 2] - system.integrate(x0 - h * e, t)[:, -1, 2]) / (2 * h)
        for e in torch.eye(3, dtype=F64)
    ], dim=-1)
    torch.testing.assert_close(x0g.grad, numeric, rtol=1e-6, atol=1e-6)


# -- stochastic forms ------------------------------------------------------------------------------------


@pytest.mark.parametrize("noise_type", ["additive", "multiplicative"])
def test_stochastic_paths_follow_the_seed(noise_type):
    system = get("lorenz")
    x0 = attractor_states(3)
    run = lambda seed: system.simulate(x0=x0, t_end=0.2, dt=0.05, seed=seed, noise=2.0,  # noqa: E731
                                       noise_type=noise_type).states
    with torch.no_grad():
        a, b, c = run(7), run(7), run(8)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert float((a[:, 1:] - c[:, 1:]).abs().min()) > 0  # every later state differs
    deterministic = system.simulate(x0=x0, t_end=0.2, dt=0.05).states
    assert float((a[:, -1] - deterministic[:, -1]).abs().max()) > 1e-3


#: Lorenz at ρ = 0, whose linearisation about the origin is dX = A X dt + ε dW with
#: A = [[−σ, σ, 0], [0, −1, 0], [0, 0, −β]].
LINEAR = {"sigma": 2.0, "rho": 0.0, "beta": 0.5}


def ornstein_uhlenbeck_law(t: float, noise: float) -> tuple[np.ndarray, np.ndarray]:
    """The Ornstein–Uhlenbeck process dX = A X dt + ε dW (A of ``LINEAR``) from X(0) = 0: X(t) is Gaussian
    with mean 0 and covariance Σ(t) = Σ∞ − e^(At) Σ∞ e^(Aᵀt), where A Σ∞ + Σ∞ Aᵀ = −ε² I.

    Returns (Σ(t), e^(At))."""
    a = np.array([[-LINEAR["sigma"], LINEAR["sigma"], 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -LINEAR["beta"]]])
    stationary = solve_continuous_lyapunov(a, -noise**2 * np.eye(3))
    flow = expm(a * t)
    return stationary - flow @ stationary @ flow.T, flow


def assert_covariance(x: np.ndarray, y: np.ndarray, expected: np.ndarray, var_x: np.ndarray,
                      var_y: np.ndarray) -> None:
    """The sample covariance of samples x, y (n, 3) is ``expected`` within 5 standard errors; for Gaussian
    samples the standard error of Cov(x_i, y_j) is sqrt((Var x_i Var y_j + Cov(x_i, y_j)²) / n)."""
    n = len(x)
    sample = (x - x.mean(0)).T @ (y - y.mean(0)) / (n - 1)
    standard_error = np.sqrt((np.outer(var_x, var_y) + expected**2) / n)
    assert np.all(np.abs(sample - expected) < 5 * standard_error), (sample, expected)


@pytest.mark.parametrize(("t_end", "dt"), [
    (2.0, 0.01),  # 2000 steps: Brownian windows of 1000 steps must join into one Brownian motion
    (1.5, 1.5),  # one output interval of 1500 steps, cut into windows
    pytest.param(20.0, 0.01, marks=pytest.mark.slow),  # the CLI's default length: 20 000 steps
])
def test_additive_noise_at_rho_0_is_an_ornstein_uhlenbeck_process(t_end, dt):
    # With ρ = 0, dx = σ(y − x) dt + ε dW₁, dy = (−y − xz) dt + ε dW₂, dz = (xy − βz) dt + ε dW₃. From
    # X(0) = 0 the quadratic terms are O(ε) relative to the linear ones, so for small ε X is the
    # Ornstein–Uhlenbeck process of LINEAR: Gaussian, with the covariance Σ(t) and the lag covariance
    # e^(Aτ) Σ(t) in closed form.
    n_paths, noise = 2000, 1e-3
    system = get("lorenz", **LINEAR)
    traj = system.simulate(x0=torch.zeros(n_paths, 3, dtype=F64), t_end=t_end, dt=dt, seed=0, noise=noise)
    assert traj.meta["noise_type"] == "additive"
    checked = [(i, float(t)) for i, t in enumerate(traj.t)
               if math.isclose(t, t_end / 2) or math.isclose(t, t_end)]
    assert checked[-1][1] == t_end
    laws = {t: ornstein_uhlenbeck_law(t, noise) for _, t in checked}
    for i, t in checked:
        states, (cov, _) = traj.states[:, i].numpy(), laws[t]
        assert np.all(np.abs(states.mean(0)) < 5 * np.sqrt(np.diag(cov) / n_paths))
        assert_covariance(states, states, cov, np.diag(cov), np.diag(cov))
    if len(checked) == 2:  # Cov(X(t), X(s)) = e^(A(t − s)) Σ(s), across the windows in between
        (i, s), (j, t) = checked
        (cov_s, _), (cov_t, _) = laws[s], laws[t]
        _, flow = ornstein_uhlenbeck_law(t - s, noise)
        assert_covariance(traj.states[:, j].numpy(), traj.states[:, i].numpy(), flow @ cov_s, np.diag(cov_t),
                          np.diag(cov_s))


def test_multiplicative_noise_is_geometric_brownian_motion():
    # With ρ = 0 and x0 = (1, 0, 0): y, z stay 0 and dx = −σ x dt + 0.1 n x dW (geometric Brownian motion).
    # With x0 = (0, 0, 1): x, y stay 0 and dz = −β z dt + 0.3 n z dW.
    # Itô: log(X_t / X_0) ~ Normal((μ − c²/2) t, c² t) for dX = μ X dt + c X dW.
    n_paths, noise, t = 3000, 2.0, 0.5
    system = get("lorenz", **LINEAR)
    x0 = torch.tensor([[1.0, 0.0, 0.0]] * n_paths + [[0.0, 0.0, 1.0]] * n_paths, dtype=F64)
    with torch.no_grad():
        traj = system.simulate(x0=x0, t_end=t, dt=t, seed=1, noise=noise, noise_type="multiplicative")
    first, second = traj.states[:n_paths, -1], traj.states[n_paths:, -1]
    assert float(first[:, 1:].abs().max()) == 0 and float(second[:, :2].abs().max()) == 0
    logs = torch.stack([first[:, 0].log(), second[:, 2].log()], dim=-1)
    c = noise * torch.tensor([SCALES[0], SCALES[2]], dtype=F64)
    mu = -torch.tensor([LINEAR["sigma"], LINEAR["beta"]], dtype=F64)
    # relative standard error of a sample variance: sqrt(2 / n) ≈ 2.6 %
    torch.testing.assert_close(logs.var(0), c**2 * t, rtol=0.12, atol=0)
    # standard error of the mean is c sqrt(t / n) ≤ 0.008; the Itô correction −c²t/2 is up to −0.09
    assert float(((logs.mean(0) - (mu - c**2 / 2) * t).abs() / (c * math.sqrt(t / n_paths))).max()) < 5


def test_diffusion_of_each_form():
    system = get("lorenz")
    x = attractor_states(5)
    torch.testing.assert_close(system.sde(0.5, "additive").g(0.0, x), torch.full_like(x, 0.5))
    torch.testing.assert_close(system.sde(2.0, "multiplicative").g(0.0, x),
                               2.0 * x * torch.tensor(SCALES, dtype=F64))
    assert system.sde(1.0).noise_type == "diagonal" and system.sde(1.0).sde_type == "ito"
    with pytest.raises(ValueError, match="noise_type"):
        system.sde(1.0, "general")
