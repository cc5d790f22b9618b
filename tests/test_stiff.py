"""stiff_integrate against closed forms, finite differences and scipy's Radau."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from physdyn.solvers import stiff_integrate
from physdyn.solvers._stiff import METHODS, rosenbrock_step

F64 = torch.float64


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Each step solves batched 3×3 systems; each such call opens an OpenMP region, which costs milliseconds
    on a shared, oversubscribed CPU (as in CI). One thread keeps these tests fast there."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _linear_stiff(lam_fast: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A = V diag(−1, −lam_fast) V⁻¹ (non-normal), and V, the eigenvalues, for the closed form."""
    v = torch.tensor([[1.0, 1.0], [1.0, 2.0]], dtype=F64)
    lam = torch.tensor([-1.0, -lam_fast], dtype=F64)
    return v @ torch.diag(lam) @ torch.linalg.inv(v), v, lam


def _linear_exact(v: torch.Tensor, lam: torch.Tensor, x0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """x(t) = V exp(Λ t) V⁻¹ x0 for x0 (D,), t (T,): (T, D)."""
    c = torch.linalg.solve(v, x0)
    return (torch.exp(t[:, None] * lam) * c) @ v.T


@pytest.mark.parametrize("rtol", [1e-6, 1e-9])
def test_linear_stiff_system_matches_closed_form(rtol: float) -> None:
    # Eigenvalues −1 and −1e6: an explicit method would need ~5e6 steps on [0, 10]; max_steps=2000 proves the
    # steps are not limited by the fast mode (L-stability), and the error must follow the tolerance.
    a, v, lam = _linear_stiff(1e6)
    x0 = torch.tensor([[1.0, -3.0]], dtype=F64)
    t = torch.linspace(0.0, 10.0, 11, dtype=F64)
    out = stiff_integrate(lambda _, x: x @ a.T, x0, t, rtol=rtol, atol=1e-14, autonomous=True, max_steps=2000)
    exact = _linear_exact(v, lam, x0[0], t)
    rel = ((out[0] - exact).abs() / exact.abs().clamp(min=1e-12)).max().item()
    assert out.shape == (1, 11, 2)
    assert rel < 50 * rtol


def _manufactured():
    """dy/dt = g(y) − g(u(t)) + u'(t) has the exact solution y = u(t): nonlinear, coupled, non-autonomous."""

    def u(t):
        return torch.stack([torch.sin(t) + 0.5, torch.cos(2 * t)], -1)

    def du(t):
        return torch.stack([torch.cos(t), -2 * torch.sin(2 * t)], -1)

    def ddu(t):
        return torch.stack([-torch.sin(t), -4 * torch.cos(2 * t)], -1)

    def g(y):
        return torch.stack([-y[..., 0] * y[..., 1] - y[..., 0] ** 3, y[..., 0] ** 2 - y[..., 1]], -1)

    def jac(y):
        a, b = y.unbind(-1)
        rows = [torch.stack([-b - 3 * a * a, -a], -1), torch.stack([2 * a, -torch.ones_like(b)], -1)]
        return torch.stack(rows, -2)

    def f(t, y):
        return g(y) - g(u(t)) + du(t)

    def dfdt(t, y):
        return -(jac(u(t)) @ du(t)[..., None])[..., 0] + ddu(t)

    return u, f, jac, dfdt


@pytest.mark.parametrize("method", list(METHODS))
def test_fixed_step_order_and_error_estimate_order(method: str) -> None:
    """Global error slope = the method's order; the embedded estimate's slope = its controller exponent."""
    u, f, jac, dfdt = _manufactured()
    expected = {"rodas5p": 5, "rodas4": 4}[method]
    errors, estimates = [], []
    steps = (8, 16, 32)
    for n in steps:
        h, t = 1.0 / n, torch.zeros(1, dtype=F64)
        y = u(t)
        for _ in range(n):
            y, _ = rosenbrock_step(f, jac(y), t, y, torch.full((1,), h, dtype=F64), method=method,
                                   dfdt=dfdt(t, y))
            t = t + h
        errors.append((y - u(t)).abs().max().item())
        t = torch.full((1,), 0.3, dtype=F64)
        _, est = rosenbrock_step(f, jac(u(t)), t, u(t), torch.full((1,), h, dtype=F64), method=method,
                                 dfdt=dfdt(t, u(t)))
        estimates.append(est.abs().max().item())
    order = -np.polyfit(np.log(steps), np.log(errors), 1)[0]
    est_order = -np.polyfit(np.log(steps[1:]), np.log(estimates[1:]), 1)[0]
    assert abs(order - expected) < 0.3, (errors, order)
    assert abs(est_order - METHODS[method].order) < 0.4, (estimates, est_order)


def test_adaptive_nonautonomous_with_finite_difference_time_derivative() -> None:
    # y' = −λ (y − cos t), λ = 1e4: y(t) = (λ² cos t + λ sin t)/(λ² + 1) + C e^{−λt}.
    lam = 1e4
    t = torch.linspace(0.0, 3.0, 7, dtype=F64)
    out = stiff_integrate(lambda s, y: -lam * (y - torch.cos(s)[:, None]), torch.zeros(1, 1, dtype=F64), t,
                          rtol=1e-9, atol=1e-12)
    steady = (lam**2 * torch.cos(t) + lam * torch.sin(t)) / (lam**2 + 1)
    exact = steady - steady[0] * torch.exp(-lam * t)
    assert (out[0, :, 0] - exact).abs().max().item() < 1e-8


def test_per_trajectory_steps_give_each_sample_its_own_accuracy() -> None:
    """A batch mixing an easy (λ = 1) and stiff (λ = 1e3, 1e6) problems: each sample gets exactly what it
    gets alone (its step sequence does not depend on the others) and the closed-form accuracy."""
    problems = [_linear_stiff(lam) for lam in (1.0 + 1e-3, 1e3, 1e6)]
    a = torch.stack([p[0] for p in problems])  # (3, 2, 2), one matrix per trajectory
    x0 = torch.tensor([[1.0, -3.0], [2.0, 0.5], [-1.0, 1.0]], dtype=F64)
    t = torch.tensor([0.0, 1e-4, 1e-2, 0.5, 2.0], dtype=F64)

    def field(mats):
        return lambda _, x: (mats @ x[..., None])[..., 0]

    kwargs = {"rtol": 1e-8, "atol": 1e-14, "autonomous": True}
    batch = stiff_integrate(field(a), x0, t, **kwargs)
    for i, (_, v, lam) in enumerate(problems):
        alone = stiff_integrate(field(a[i : i + 1]), x0[i : i + 1], t, **kwargs)
        np.testing.assert_allclose(batch[i].numpy(), alone[0].numpy(), rtol=1e-13, atol=1e-15)
        exact = _linear_exact(v, lam, x0[i], t)
        assert ((batch[i] - exact).abs() / exact.abs().clamp(min=1e-12)).max().item() < 1e-6


def test_per_trajectory_output_grids() -> None:
    lam = torch.tensor([1.0, 50.0], dtype=F64)
    t = torch.tensor([[0.0, 0.1, 0.7, 2.0], [1.0, 1.01, 1.05, 1.2]], dtype=F64)  # each its own start too
    x0 = torch.tensor([[1.0], [2.0]], dtype=F64)
    out = stiff_integrate(lambda _, x: -lam[:, None] * x, x0, t, rtol=1e-10, atol=1e-14, autonomous=True)
    exact = x0 * torch.exp(-lam[:, None] * (t - t[:, :1]))
    np.testing.assert_allclose(out[..., 0].numpy(), exact.numpy(), rtol=1e-8, atol=1e-14)


def test_gradient_matches_closed_form_derivative() -> None:
    # y' = −θ y: y(T) = y0 e^{−θT}, ∂y(T)/∂θ = −T y(T), ∂y(T)/∂y0 = e^{−θT}. One θ per trajectory.
    theta = torch.tensor([0.7, 3.0], dtype=F64, requires_grad=True)
    x0 = torch.tensor([[1.5], [-0.5]], dtype=F64, requires_grad=True)
    t = torch.tensor([0.0, 0.5, 1.0], dtype=F64)
    out = stiff_integrate(lambda _, x: -theta[:, None] * x, x0, t, rtol=1e-11, atol=1e-14, autonomous=True)
    g_theta, g_x0 = torch.autograd.grad(out[:, -1, 0].sum(), (theta, x0))
    with torch.no_grad():
        np.testing.assert_allclose(g_theta.numpy(), (-x0[:, 0] * torch.exp(-theta)).numpy(), rtol=1e-8)
        np.testing.assert_allclose(g_x0[:, 0].numpy(), torch.exp(-theta).numpy(), rtol=1e-8)


def test_gradient_through_autograd_jacobian_matches_finite_differences() -> None:
    """A stiff nonlinear system with a per-trajectory parameter; the Jacobian comes from autograd."""
    t = torch.tensor([0.0, 0.05, 0.2], dtype=F64)

    def solve(theta: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        def f(_, x):
            return torch.stack([-theta * x[:, 0] + x[:, 1] ** 2, -1e3 * (x[:, 1] - torch.sin(x[:, 0]))], -1)

        return stiff_integrate(f, x0, t, rtol=1e-9, atol=1e-12, autonomous=True)

    def loss(out: torch.Tensor) -> torch.Tensor:
        return (out[:, -1] ** 2).sum() + out[:, 1, 0].sum()

    theta = torch.tensor([2.0, 0.5], dtype=F64, requires_grad=True)
    x0 = torch.tensor([[1.0, 0.5], [0.3, -1.0]], dtype=F64, requires_grad=True)
    g_theta, g_x0 = torch.autograd.grad(loss(solve(theta, x0)), (theta, x0))
    eps = 1e-5
    with torch.no_grad():
        for i in range(2):
            e = torch.zeros(2, dtype=F64)
            e[i] = eps
            fd = (loss(solve(theta + e, x0)) - loss(solve(theta - e, x0))) / (2 * eps)
            assert math.isclose(g_theta[i].item(), fd.item(), rel_tol=1e-5, abs_tol=1e-8)
        e = torch.zeros(2, 2, dtype=F64)
        e[0, 0] = eps
        fd = (loss(solve(theta, x0 + e)) - loss(solve(theta, x0 - e))) / (2 * eps)
        assert math.isclose(g_x0[0, 0].item(), fd.item(), rel_tol=1e-5, abs_tol=1e-8)


def test_no_graph_is_built_when_nothing_needs_gradients() -> None:
    out = stiff_integrate(lambda _, x: -x, torch.ones(2, 1, dtype=F64), torch.tensor([0.0, 1.0], dtype=F64))
    assert not out.requires_grad
    np.testing.assert_allclose(out[:, 1, 0].numpy(), math.exp(-1.0), rtol=1e-7)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"t": torch.tensor([0.0, 1.0, 1.0])}, "strictly increasing"),
        ({"t": torch.tensor([0.0])}, "shape"),
        ({"x0": torch.ones(2)}, "x0 must have shape"),
        ({"rtol": 1e-20}, "rtol"),
        ({"atol": -1.0}, "atol"),
        ({"method": "rk4"}, "unknown method"),
        ({"h0": 0.0}, "h0"),
    ],
)
def test_bad_input_raises_value_error(kwargs: dict, message: str) -> None:
    args = {"x0": torch.ones(2, 1, dtype=F64), "t": torch.tensor([0.0, 1.0], dtype=F64)} | kwargs
    with pytest.raises(ValueError, match=message):
        stiff_integrate(lambda _, x: -x, args.pop("x0"), args.pop("t"), **args)


def test_max_steps_exhausted_raises() -> None:
    with pytest.raises(RuntimeError, match="max_steps"):
        stiff_integrate(lambda _, x: -x, torch.ones(1, 1, dtype=F64), torch.tensor([0.0, 100.0], dtype=F64),
                        rtol=1e-12, max_steps=3)


@pytest.mark.slow
def test_van_der_pol_mu_1000_matches_scipy_radau() -> None:
    from scipy.integrate import solve_ivp

    mu = 1000.0
    t = np.linspace(0.0, 3000.0, 31)
    ref = solve_ivp(lambda _, x: [x[1], mu * (1 - x[0] ** 2) * x[1] - x[0]], (0.0, 3000.0), [2.0, 0.0],
                    method="Radau", t_eval=t, rtol=1e-11, atol=1e-11,
                    jac=lambda _, x: [[0.0, 1.0], [-2 * mu * x[0] * x[1] - 1, mu * (1 - x[0] ** 2)]]).y.T
    def f(_, x):
        return torch.stack([x[:, 1], mu * (1 - x[:, 0] ** 2) * x[:, 1] - x[:, 0]], -1)

    x0 = torch.tensor([[2.0, 0.0]], dtype=F64)
    out = stiff_integrate(f, x0, torch.tensor(t), rtol=1e-8, atol=1e-10, autonomous=True)[0].numpy()
    assert np.abs(out[:, 0] - ref[:, 0]).max() < 1e-6
    assert (np.abs(out[:, 1] - ref[:, 1]) / np.maximum(np.abs(ref[:, 1]), 1e-3)).max() < 1e-6
